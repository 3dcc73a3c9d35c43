//! Shared glue for nodus's eBPF program binaries: the panic handler every
//! `no_std` object needs, the ABI stamp the appliance build checks, and the
//! kernel-memory read the programs that follow kernel structures share, and
//! the packet constants of the programs that parse packets.
#![no_std]

/// EtherType of IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// EtherType of an 802.1Q VLAN tag.
pub const ETH_P_8021Q: u16 = 0x8100;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;

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
