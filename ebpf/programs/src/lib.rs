//! Shared glue for nodus's eBPF program binaries: the panic handler every
//! `no_std` object needs and the ABI stamp the appliance build checks.
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // eBPF cannot unwind or abort; the verifier proves this is unreachable.
    loop {}
}
