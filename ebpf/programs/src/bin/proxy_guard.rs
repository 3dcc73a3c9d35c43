//! The proxy's XDP guard, on the interface the proxy listens on: every TCP
//! SYN (without ACK) to the proxy's port is judged before the kernel
//! allocates anything for it. A source in the CIDR blocklist (an LPM trie)
//! is dropped; a source over `syn_per_second` in the current one-second
//! window (an LRU hash, so a flood of spoofed sources only evicts the
//! oldest) has the rest of its window dropped. Every other packet passes
//! untouched. Each outcome is counted per CPU.
//!
//! Ethernet frames, with at most one VLAN tag, carrying IPv4 or IPv6; IPv4
//! sources are keyed as IPv4-mapped IPv6 so one trie and one map serve
//! both. An IPv6 SYN behind extension headers passes unjudged.
#![no_std]
#![no_main]
// aya-ebpf's attribute macros expand to `pub fn(ctx: *mut ...)` entry points
// that hand the pointer to the context type; the kernel owns that pointer.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use aya_ebpf::{
    bindings::{
        BPF_F_NO_PREALLOC,
        xdp_action::{XDP_DROP, XDP_PASS},
    },
    helpers::bpf_ktime_get_ns,
    macros::{map, xdp},
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, lpm_trie::Key},
    programs::XdpContext,
};
use nodus_common::proxy::{
    GUARD_BLOCKED, GUARD_COUNTERS, GUARD_MAX_PREFIXES, GUARD_MAX_SOURCES, GUARD_PASSED,
    GUARD_RATE_LIMITED, GuardConfig, SynWindow, mapped_v4,
};

use nodus_ebpf::{ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP};

nodus_ebpf::abi_stamp!();

/// Slot 0: the port and the rate (written by userspace before attaching).
#[map]
static GUARD_CONFIG: Array<GuardConfig> = Array::with_max_entries(1, 0);

/// Blocked prefixes: key = prefix length (IPv4: 96 + its length) and the
/// IPv6 (or mapped IPv4) address; the value is unused.
#[map]
static GUARD_BLOCKLIST: LpmTrie<[u8; 16], u8> =
    LpmTrie::with_max_entries(GUARD_MAX_PREFIXES, BPF_F_NO_PREALLOC);

/// Each recent source's SYN window.
#[map]
static GUARD_SOURCES: LruHashMap<[u8; 16], SynWindow> =
    LruHashMap::with_max_entries(GUARD_MAX_SOURCES, 0);

/// Outcomes by `GUARD_*`.
#[map]
static GUARD_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(GUARD_COUNTERS, 0);

const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;
const SECOND_NS: u64 = 1_000_000_000;

#[xdp]
pub fn proxy_guard(ctx: XdpContext) -> u32 {
    match judge(&ctx) {
        Some(outcome) => {
            count(outcome);
            if outcome == GUARD_PASSED {
                XDP_PASS
            } else {
                XDP_DROP
            }
        }
        None => XDP_PASS,
    }
}

fn count(outcome: u32) {
    if let Some(n) = GUARD_COUNTS.get_ptr_mut(outcome) {
        // SAFETY: a per-CPU slot, written only by this CPU.
        unsafe { *n += 1 };
    }
}

/// A `T` at `offset` bytes into the packet, bounds-checked for the
/// verifier.
#[inline(always)]
fn at<T: Copy>(ctx: &XdpContext, offset: usize) -> Option<T> {
    let start = ctx.data() + offset;
    if start + core::mem::size_of::<T>() > ctx.data_end() {
        return None;
    }
    // SAFETY: within [data, data_end), checked above; unaligned read.
    Some(unsafe { core::ptr::read_unaligned(start as *const T) })
}

/// The outcome for a SYN to the proxy's port; None for anything else.
fn judge(ctx: &XdpContext) -> Option<u32> {
    let config = GUARD_CONFIG.get(0)?;
    let mut l3 = 14;
    let mut proto = u16::from_be(at::<u16>(ctx, 12)?);
    if proto == ETH_P_8021Q {
        proto = u16::from_be(at::<u16>(ctx, 16)?);
        l3 = 18;
    }
    let (source, l4) = if proto == ETH_P_IP {
        let vihl: u8 = at(ctx, l3)?;
        if at::<u8>(ctx, l3 + 9)? != IPPROTO_TCP {
            return None;
        }
        (
            mapped_v4(at::<[u8; 4]>(ctx, l3 + 12)?),
            l3 + ((vihl & 0x0f) as usize) * 4,
        )
    } else if proto == ETH_P_IPV6 {
        if at::<u8>(ctx, l3 + 6)? != IPPROTO_TCP {
            return None;
        }
        (at::<[u8; 16]>(ctx, l3 + 8)?, l3 + 40)
    } else {
        return None;
    };
    let dport = u16::from_be(at::<u16>(ctx, l4 + 2)?);
    let flags: u8 = at(ctx, l4 + 13)?;
    if u32::from(dport) != config.port || flags & (TCP_SYN | TCP_ACK) != TCP_SYN {
        return None;
    }
    if GUARD_BLOCKLIST.get(&Key::new(128, source)).is_some() {
        return Some(GUARD_BLOCKED);
    }
    if config.syn_per_second == 0 {
        return Some(GUARD_PASSED);
    }
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    match GUARD_SOURCES.get_ptr_mut(&source) {
        Some(w) => {
            // SAFETY: a map value pointer the helper returned, valid for
            // this run. Two CPUs may update one source at once; a lost
            // count is one SYN more let through, never one wrongly dropped.
            let w = unsafe { &mut *w };
            if now.wrapping_sub(w.start_ns) >= SECOND_NS {
                w.start_ns = now;
                w.count = 1;
            } else if w.count >= config.syn_per_second {
                return Some(GUARD_RATE_LIMITED);
            } else {
                w.count += 1;
            }
        }
        None => {
            let w = SynWindow {
                start_ns: now,
                count: 1,
                pad: 0,
            };
            // Full map: the LRU evicts the oldest source. A failed insert
            // lets the SYN through (the guard fails open).
            let _ = GUARD_SOURCES.insert(&source, &w, 0);
        }
    }
    Some(GUARD_PASSED)
}
