//! Socket-map probe: a SOCKHASH map and an sk_skb stream verdict program that
//! can be attached to it (the pair the TLS proxy splices with).
#![no_std]
#![no_main]
// aya-ebpf's attribute macros expand to `pub fn(ctx: *mut ...)` entry points
// that hand the pointer to the context type; the kernel owns that pointer.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use aya_ebpf::{
    bindings::sk_action::SK_PASS,
    macros::{map, stream_verdict},
    maps::SockHash,
    programs::SkBuffContext,
};

nodus_ebpf::abi_stamp!();

#[map]
static PROBE_SOCKS: SockHash<u32> = SockHash::with_max_entries(2, 0);

#[stream_verdict]
pub fn probe_verdict(_ctx: SkBuffContext) -> u32 {
    SK_PASS
}
