//! Tiny programs without maps, one per program type `nodus probe` checks. Each is
//! loaded (and where it makes sense attached) on its own; none does any work.
#![no_std]
#![no_main]
// aya-ebpf's attribute macros expand to `pub fn(ctx: *mut ...)` entry points
// that hand the pointer to the context type; the kernel owns that pointer.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use aya_ebpf::{
    bindings::{TC_ACT_OK, sk_action::SK_PASS, xdp_action::XDP_PASS},
    macros::{classifier, fentry, raw_tracepoint, sk_reuseport, xdp},
    programs::{FEntryContext, RawTracePointContext, SkReuseportContext, TcContext, XdpContext},
};

nodus_ebpf::abi_stamp!();

/// A raw tracepoint, attached the way the process cache attaches its
/// programs (bpf_raw_tracepoint_open: no perf event, so the service's
/// system-call filter need not allow perf_event_open).
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn probe_tracepoint(_ctx: RawTracePointContext) -> i32 {
    0
}

#[classifier]
pub fn probe_tc(_ctx: TcContext) -> i32 {
    TC_ACT_OK
}

#[xdp]
pub fn probe_xdp(_ctx: XdpContext) -> u32 {
    XDP_PASS
}

#[sk_reuseport]
pub fn probe_reuseport(_ctx: SkReuseportContext) -> u32 {
    SK_PASS
}

#[fentry(function = "bpf_fentry_test1")]
pub fn probe_fentry(_ctx: FEntryContext) -> i32 {
    0
}
