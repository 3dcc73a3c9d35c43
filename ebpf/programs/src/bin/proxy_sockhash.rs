//! The proxy's sockhash data path: an sk_skb stream verdict program attached
//! to a SOCKHASH holding both sockets of every routed connection. Bytes a
//! relayed socket receives go straight to its peer's send side, in the
//! kernel, without waking userspace.
//!
//! Each socket's peer comes from `PROXY_PEERS`, keyed by the receiving
//! socket's cookie (the key its peer has in `PROXY_SOCKS` is the peer's
//! cookie). A socket without an entry keeps its bytes (SK_PASS), which only
//! happens in the instant userspace is pairing it. Redirected bytes are
//! counted per connection (userspace waits for them to be sent before it
//! passes a FIN on) and per route and direction.
#![no_std]
#![no_main]
// aya-ebpf's attribute macros expand to `pub fn(ctx: *mut ...)` entry points
// that hand the pointer to the context type; the kernel owns that pointer.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use aya_ebpf::{
    EbpfContext,
    bindings::{
        BPF_F_NO_PREALLOC,
        sk_action::{SK_DROP, SK_PASS},
    },
    helpers::bpf_get_socket_cookie,
    macros::{map, stream_verdict},
    maps::{HashMap, PerCpuArray, SockHash},
    programs::SkBuffContext,
};
use nodus_common::proxy::{
    BYTE_SLOTS, Peer, VERDICT_PEER_GONE, VERDICT_REDIRECTED, VERDICT_UNPAIRED, VERDICTS,
};

nodus_ebpf::abi_stamp!();

/// Relayed sockets by cookie. Userspace sizes it from `proxy.max_connections`.
#[map]
static PROXY_SOCKS: SockHash<u64> = SockHash::with_max_entries(2, 0);

/// Each relayed socket's peer and byte count, by the socket's cookie.
/// Allocated per entry: an idle proxy holds none.
#[map]
static PROXY_PEERS: HashMap<u64, Peer> = HashMap::with_max_entries(2, BPF_F_NO_PREALLOC);

/// Bytes redirected, by `route * 2 + direction`.
#[map]
static PROXY_BYTES: PerCpuArray<u64> = PerCpuArray::with_max_entries(BYTE_SLOTS, 0);

/// Verdicts by kind (`VERDICT_*`).
#[map]
static PROXY_VERDICTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(VERDICTS, 0);

fn add(map: &PerCpuArray<u64>, slot: u32, n: u64) {
    if let Some(v) = map.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot, written only by this CPU with preemption off.
        unsafe { *v += n };
    }
}

#[stream_verdict]
pub fn proxy_verdict(ctx: SkBuffContext) -> u32 {
    // SAFETY: the helper reads the socket the kernel handed this program.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let Some(peer) = PROXY_PEERS.get_ptr_mut(&cookie) else {
        add(&PROXY_VERDICTS, VERDICT_UNPAIRED, 1);
        return SK_PASS;
    };
    // SAFETY: a map value pointer the helper returned; the kernel keeps it
    // valid for this run. One socket's receive path runs on one CPU at a
    // time (under its lock), so its own entry has one writer.
    let (mut key, slot) = unsafe { ((*peer).peer, (*peer).slot) };
    let len = u64::from(ctx.len());
    if len == 0 {
        // A bare FIN (TCP hands it to the verdict as an empty skb). Its
        // meaning is already in the socket's state, where userspace sees it
        // and passes it on after the bytes before it; redirected, the empty
        // skb would make the peer's send path report EPIPE.
        return SK_DROP;
    }
    let verdict = PROXY_SOCKS.redirect_skb(&ctx, &mut key, 0) as u32;
    if verdict == SK_PASS {
        // SAFETY: as above.
        unsafe { (*peer).bytes += len };
        add(&PROXY_BYTES, slot, len);
        add(&PROXY_VERDICTS, VERDICT_REDIRECTED, 1);
    } else {
        add(&PROXY_VERDICTS, VERDICT_PEER_GONE, 1);
    }
    verdict
}
