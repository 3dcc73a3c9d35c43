//! The contract between a compiled eBPF object and the userspace that loads it.
//!
//! Firmware builds (Yocto, Buildroot) embed eBPF objects that were compiled
//! elsewhere. Each object carries, in its [`SECTION`] section, the
//! [`LAYOUT_FINGERPRINT`] of the shared types it was built with; the appliance
//! build refuses an object whose fingerprint differs from its own, so a stale
//! object can never misread a map value at runtime.

/// ELF section holding the 8-byte little-endian layout fingerprint.
pub const SECTION: &str = "nodus_abi";

/// Names of the eBPF objects the appliance embeds, one per program binary in
/// `ebpf/programs`. A prebuilt-object directory must hold each of them.
pub const OBJECTS: &[&str] = &[
    "probe",
    "probe_ringbuf",
    "probe_sockhash",
    "proccache",
    "fileserver_reuseport",
    "fileserver_tc",
];

/// FNV-1a over the layout facts of every shared type (name, size, alignment and
/// field offsets). Any change to a shared type changes it.
pub const LAYOUT_FINGERPRINT: u64 = {
    let mut h = Fnv::new();
    h = crate::probe::layout(h);
    h = crate::proccache::layout(h);
    h = crate::fileserver::layout(h);
    h.finish()
};

/// A `const` FNV-1a hasher, so the fingerprint is computed by the compiler on
/// both sides rather than maintained by hand.
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Fnv {
    /// The FNV-1a offset basis.
    pub const fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Mixes in raw bytes.
    pub const fn bytes(mut self, b: &[u8]) -> Self {
        let mut i = 0;
        while i < b.len() {
            self.0 ^= b[i] as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        self
    }

    /// Mixes in a number (size, alignment or offset).
    pub const fn num(self, n: usize) -> Self {
        self.bytes(&(n as u64).to_le_bytes())
    }

    /// The hash so far.
    pub const fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Self::new()
    }
}

/// Hashes a `#[repr(C)]` type's name, size, alignment and each named field's
/// offset. Used by every module that defines shared types.
#[macro_export]
macro_rules! layout_of {
    ($h:expr, $ty:ident { $($field:ident),* $(,)? }) => {{
        let h = $h
            .bytes(stringify!($ty).as_bytes())
            .num(core::mem::size_of::<$ty>())
            .num(core::mem::align_of::<$ty>());
        $( let h = h.bytes(stringify!($field).as_bytes()).num(core::mem::offset_of!($ty, $field)); )*
        h
    }};
}
