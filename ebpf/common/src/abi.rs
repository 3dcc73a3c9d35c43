//! The contract between a compiled eBPF object and the userspace that loads it.
//!
//! Firmware builds (Yocto, Buildroot) embed eBPF objects that were compiled
//! elsewhere. Each object carries, in its [`SECTION`] section, the
//! [`LAYOUT_FINGERPRINT`] of the shared types it was built with; the appliance
//! build refuses an object whose fingerprint differs from its own, so a stale
//! object can never misread a map value at runtime.

/// ELF section holding the 8-byte little-endian layout fingerprint.
pub const SECTION: &str = "nodus_abi";

/// FNV-1a over the layout facts of every shared type (name, size, alignment and
/// field offsets). Any change to a shared type changes it.
pub const LAYOUT_FINGERPRINT: u64 = {
    use crate::layout::Fnv;

    let mut h = Fnv::new();
    h = crate::probe::layout(h);
    h = crate::proccache::layout(h);
    h = crate::fileserver::layout(h);
    h = crate::pagecache::layout(h);
    h = crate::proxy::layout(h);
    h = crate::sched::layout(h);
    h = crate::numa::layout(h);
    h.finish()
};
