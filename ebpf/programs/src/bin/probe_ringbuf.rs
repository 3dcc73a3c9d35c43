//! Ring-buffer probe: a map of type RINGBUF and a tracepoint program that writes
//! a [`ProbeRecord`] into it. Kept in its own object so that a kernel without
//! ring buffers fails only this probe.
#![no_std]
#![no_main]
// aya-ebpf's attribute macros expand to `pub fn(ctx: *mut ...)` entry points
// that hand the pointer to the context type; the kernel owns that pointer.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, tracepoint},
    maps::RingBuf,
    programs::TracePointContext,
};
use nodus_common::probe::{PROBE_MAGIC, ProbeRecord};

nodus_ebpf::abi_stamp!();

#[map]
static PROBE_EVENTS: RingBuf = RingBuf::with_byte_size(4096, 0);

#[tracepoint]
pub fn probe_ringbuf(_ctx: TracePointContext) -> u32 {
    let record = ProbeRecord {
        magic: PROBE_MAGIC,
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        ktime_ns: unsafe { bpf_ktime_get_ns() },
    };
    let _ = PROBE_EVENTS.output(&record, 0);
    0
}
