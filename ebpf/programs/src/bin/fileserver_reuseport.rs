//! File-server connection steering: an sk_reuseport program that hands each new
//! connection to the listening socket of the worker pinned to the CPU that
//! received it, so the connection's softirq work, its accept and its requests
//! all stay on one CPU (and one NUMA node). A CPU without a worker hands it to
//! a worker on the same node (userspace fills the table so); a node without
//! any falls back to the kernel's hash. Each outcome is counted.
#![no_std]
#![no_main]
// aya-ebpf's attribute macros expand to `pub fn(ctx: *mut ...)` entry points
// that hand the pointer to the context type; the kernel owns that pointer.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use aya_ebpf::{
    bindings::sk_action::SK_PASS,
    helpers::bpf_get_smp_processor_id,
    macros::{map, sk_reuseport},
    maps::{Array, PerCpuArray, ReusePortSockArray},
    programs::SkReuseportContext,
};
use nodus_common::fileserver::{
    MAX_CPUS, REUSEPORT_COUNTERS, REUSEPORT_FALLBACK, REUSEPORT_SAME_NODE, REUSEPORT_STEERED,
    SLOT_SAME_NODE,
};

nodus_ebpf::abi_stamp!();

/// Worker listening sockets, by worker index.
#[map]
static FS_SOCKETS: ReusePortSockArray = ReusePortSockArray::with_max_entries(MAX_CPUS, 0);

/// CPU number -> worker index + 1, with [`SLOT_SAME_NODE`] set when the
/// worker is on another CPU of the node (0: no worker on that node).
#[map]
static FS_CPU_SLOT: Array<u32> = Array::with_max_entries(MAX_CPUS, 0);

/// Steered / fallback counts.
#[map]
static FS_STEER_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(REUSEPORT_COUNTERS, 0);

#[sk_reuseport]
pub fn fileserver_reuseport(ctx: SkReuseportContext) -> u32 {
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let outcome = match FS_CPU_SLOT.get(cpu) {
        Some(&slot)
            if slot & !SLOT_SAME_NODE != 0
                && FS_SOCKETS
                    .select_reuseport(&ctx, (slot & !SLOT_SAME_NODE) - 1)
                    .is_ok() =>
        {
            if slot & SLOT_SAME_NODE != 0 {
                REUSEPORT_SAME_NODE
            } else {
                REUSEPORT_STEERED
            }
        }
        _ => REUSEPORT_FALLBACK,
    };
    if let Some(n) = FS_STEER_STATS.get_ptr_mut(outcome) {
        // SAFETY: a per-CPU slot, written only by this CPU.
        unsafe { *n += 1 };
    }
    SK_PASS
}
