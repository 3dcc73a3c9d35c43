//! Shared glue for nodus's eBPF program binaries: the panic handler every
//! `no_std` object needs, the ABI stamp the appliance build checks, and the
//! kernel-memory read the programs that follow kernel structures share.
#![no_std]

/// Places the shared-types layout fingerprint in the object's
/// [`nodus_common::abi::SECTION`] section. Every program binary invokes it once,
/// so an object built against different shared types is refused at build time.
#[macro_export]
macro_rules! abi_stamp {
    () => {
        #[unsafe(no_mangle)]
        #[unsafe(link_section = "nodus_abi")]
        #[used]
        static NODUS_ABI: [u8; 8] = ::nodus_common::abi::LAYOUT_FINGERPRINT.to_le_bytes();
    };
}

/// Reads a `T` at `base + offset` of kernel memory: `None` for a null
/// `base` or an address the kernel will not read. For programs that follow
/// kernel structures at offsets userspace found in the kernel's BTF (aya-ebpf
/// cannot emit CO-RE relocations).
#[inline(always)]
pub fn read_kernel<T>(base: *const u8, offset: u32) -> Option<T> {
    if base.is_null() {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel copies through the kernel's fault-safe
    // path; a bad address is an error, never a crash.
    unsafe {
        aya_ebpf::helpers::bpf_probe_read_kernel(base.wrapping_add(offset as usize) as *const T)
            .ok()
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // eBPF cannot unwind or abort; the verifier proves this is unreachable.
    loop {}
}
