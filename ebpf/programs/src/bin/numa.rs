//! NUMA locality: what the scheduler does to each process (its runs, run
//! time, voluntary and involuntary switches, run-queue wait, and moves
//! between CPUs and nodes), from its own tracepoints attached raw; and
//! which process opened one of the profile's accelerator devices, from
//! `chrdev_open`, only an open that succeeded being reported: by fexit
//! where the kernel has it, else by a kprobe at entry and one at return.
//! The object is built once for every architecture, so the kprobes read
//! their registers where userspace says this kernel's `pt_regs` keeps
//! them.
//!
//! Counts are per CPU per process (`NUMA_TASKS`), summed by userspace; the
//! maps are LRU maps, so a board with more processes than slots keeps the
//! busiest ones. A full event ring is counted in `NUMA_DROPS`, never silent.
#![no_std]
#![no_main]
// aya-ebpf's attribute macros expand to `pub fn(ctx: *mut ...)` entry points
// that hand the pointer to the context type; the kernel owns that pointer.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use core::ptr::read_volatile;

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_F_CURRENT_CPU, BPF_NOEXIST},
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{fexit, kprobe, kretprobe, map, raw_tracepoint},
    maps::{Array, HashMap, LruHashMap, LruPerCpuHashMap, PerCpuArray, PerfEventArray, RingBuf},
    programs::{FExitContext, ProbeContext, RawTracePointContext, RetProbeContext},
};
use nodus_common::numa::{
    DeviceOpen, MAX_CPUS, NumaLayout, PMU_CACHE_MISSES, PMU_CYCLES, PMU_EVENTS, PMU_INSTRUCTIONS,
    REGS_AARCH64, REGS_X86_64, TaskCounts, X86_64_AX, X86_64_DI,
};

use nodus_ebpf::read_kernel as read;

nodus_ebpf::abi_stamp!();

/// Field offsets of this kernel, written by userspace before load.
#[unsafe(no_mangle)]
static NUMA_LAYOUT: NumaLayout = NumaLayout::UNSET;

/// Per process (tgid), per CPU. Userspace sizes it from the config at load.
#[map]
static NUMA_TASKS: LruPerCpuHashMap<u32, TaskCounts> = LruPerCpuHashMap::with_max_entries(4096, 0);

/// When each runnable thread (tid) began to wait for a CPU.
#[map]
static NUMA_QUEUED: LruHashMap<u32, u64> = LruHashMap::with_max_entries(8192, 0);

/// When the thread on this CPU was switched in: slot 0.
#[map]
static NUMA_RUNNING: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The process (tgid) of the thread on this CPU, 0 for none: slot 0.
/// With `NUMA_RUNNING`, userspace adds a run still going to the counts it
/// reads (a thread that is never switched out would otherwise count none).
#[map]
static NUMA_RUNNING_TGID: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's hardware counters, one per event, opened by userspace on
/// every CPU where the kernel has them ([`NumaLayout::pmu`] says which).
#[map]
static NUMA_PMU_INSTRUCTIONS: PerfEventArray<u64> = PerfEventArray::new(0);
#[map]
static NUMA_PMU_CYCLES: PerfEventArray<u64> = PerfEventArray::new(0);
#[map]
static NUMA_PMU_CACHE_MISSES: PerfEventArray<u64> = PerfEventArray::new(0);

/// The hardware counters' values when the thread on this CPU was switched
/// in: slot 0, in `PMU_*` order.
#[map]
static NUMA_PMU_AT: PerCpuArray<[u64; PMU_EVENTS]> = PerCpuArray::with_max_entries(1, 0);

/// Each CPU's NUMA node, written by userspace.
#[map]
static NUMA_CPU_NODE: Array<u32> = Array::with_max_entries(MAX_CPUS, 0);

/// The watched devices: kernel device number to the profile's index.
#[map]
static NUMA_DEVICES: HashMap<u32, u32> = HashMap::with_max_entries(64, 0);

/// A watched device being opened, by thread (pid_tgid): its number.
#[map]
static NUMA_OPENING: LruHashMap<u64, u32> = LruHashMap::with_max_entries(1024, 0);

/// Opens of watched devices that succeeded.
#[map]
static NUMA_OPENS: RingBuf = RingBuf::with_byte_size(16 * 1024, 0);

/// Opens lost to a full ring: slot 0.
#[map]
static NUMA_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

type Task = *const u8;

#[inline(always)]
fn layout() -> Option<NumaLayout> {
    // SAFETY: a plain read of our own read-only global; volatile so that the
    // compiler does not fold in the zeros it was compiled with.
    let l = unsafe { read_volatile(&NUMA_LAYOUT) };
    (l.task_tgid != 0).then_some(l)
}

/// The 64-bit register at byte offset `at` of a probe's `pt_regs`. Read
/// with the kernel-memory helper, not a load: the compiler may add the
/// offset to the context pointer first, and the verifier refuses a load
/// through a modified context pointer (it did on x86_64, at offset 112).
#[inline(always)]
fn reg(ctx: &impl EbpfContext, at: usize) -> Option<u64> {
    read(ctx.as_ptr() as *const u8, at as u32)
}

/// A probe's first argument, or its return value (the same register on
/// arm64, not on x86_64).
#[inline(always)]
fn first_arg(ctx: &impl EbpfContext, l: &NumaLayout) -> Option<u64> {
    match l.regs {
        REGS_X86_64 => reg(ctx, X86_64_DI),
        REGS_AARCH64 => reg(ctx, 0),
        _ => None,
    }
}

#[inline(always)]
fn return_value(ctx: &impl EbpfContext, l: &NumaLayout) -> Option<u64> {
    match l.regs {
        REGS_X86_64 => reg(ctx, X86_64_AX),
        REGS_AARCH64 => reg(ctx, 0),
        _ => None,
    }
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: takes no pointers.
    unsafe { bpf_ktime_get_ns() }
}

/// `task`'s process's counters on this CPU, created zeroed on first use.
#[inline(always)]
fn counts(tgid: u32) -> Option<*mut TaskCounts> {
    if let Some(c) = NUMA_TASKS.get_ptr_mut(&tgid) {
        return Some(c);
    }
    let _ = NUMA_TASKS.insert(&tgid, &TaskCounts::default(), u64::from(BPF_NOEXIST));
    NUMA_TASKS.get_ptr_mut(&tgid)
}

/// `sched_switch(preempt, prev, next, prev_state)`: `prev` ran until now;
/// `next` starts now, and its wait (if we saw it begin) ends.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn numa_switch(ctx: RawTracePointContext) -> i32 {
    let _ = on_switch(&ctx);
    0
}

#[inline(always)]
fn on_switch(ctx: &RawTracePointContext) -> Option<()> {
    let l = layout()?;
    let prev: Task = ctx.arg(1);
    let next: Task = ctx.arg(2);
    let prev_state: u64 = ctx.arg(3);
    let t = now();
    let started = NUMA_RUNNING.get_ptr_mut(0)?;
    // SAFETY: this CPU's own slot, written with preemption off.
    let since = unsafe { core::mem::replace(&mut *started, t) };
    let hw = hardware_since_switch(l.pmu);

    let prev_tgid: u32 = read(prev, l.task_tgid)?;
    if prev_tgid != 0 {
        if let Some(c) = counts(prev_tgid) {
            // SAFETY: a per-CPU value only this CPU writes.
            unsafe {
                if since != 0 && since < t {
                    (*c).run_ns += t - since;
                }
                (*c).instructions += hw[PMU_INSTRUCTIONS as usize];
                (*c).cycles += hw[PMU_CYCLES as usize];
                (*c).cache_misses += hw[PMU_CACHE_MISSES as usize];
                (*c).runs += 1;
                if prev_state == 0 {
                    (*c).involuntary += 1;
                } else {
                    (*c).voluntary += 1;
                }
            }
        }
        // Preempted: still runnable, waiting from now.
        if prev_state == 0
            && let Some(tid) = read::<i32>(prev, l.task_pid)
        {
            let _ = NUMA_QUEUED.insert(&(tid as u32), &t, 0);
        }
    }

    let next_tgid: u32 = read(next, l.task_tgid).unwrap_or(0);
    if let Some(running) = NUMA_RUNNING_TGID.get_ptr_mut(0) {
        // SAFETY: this CPU's own slot, written with preemption off.
        unsafe { *running = next_tgid };
    }
    if next_tgid == 0 {
        return None;
    }
    let tid: i32 = read(next, l.task_pid)?;
    let tid = tid as u32;
    // SAFETY: the value is copied out before the entry is removed.
    let queued = unsafe { NUMA_QUEUED.get(&tid).copied() }?;
    let _ = NUMA_QUEUED.remove(&tid);
    if queued < t
        && let Some(c) = counts(next_tgid)
    {
        // SAFETY: a per-CPU value only this CPU writes.
        unsafe { (*c).wait_ns += t - queued };
    }
    Some(())
}

/// What this CPU's hardware counters in `mask` counted since the last
/// switch (in `PMU_*` order; 0 for an event not counted or not read), and
/// their values kept for the next one.
#[inline(always)]
fn hardware_since_switch(mask: u32) -> [u64; PMU_EVENTS] {
    let mut out = [0; PMU_EVENTS];
    if mask == 0 {
        return out;
    }
    let Some(at) = NUMA_PMU_AT.get_ptr_mut(0) else {
        return out;
    };
    let events = [
        (PMU_INSTRUCTIONS, &NUMA_PMU_INSTRUCTIONS),
        (PMU_CYCLES, &NUMA_PMU_CYCLES),
        (PMU_CACHE_MISSES, &NUMA_PMU_CACHE_MISSES),
    ];
    for (event, counter) in events {
        if mask & (1 << event) == 0 {
            continue;
        }
        let i = event as usize;
        if let Ok(v) = counter.read_value(BPF_F_CURRENT_CPU as u32) {
            // SAFETY: this CPU's own slot, written with preemption off.
            let last = unsafe { core::mem::replace(&mut (*at)[i], v.counter) };
            if last != 0 && last < v.counter {
                out[i] = v.counter - last;
            }
        }
    }
    out
}

/// `sched_wakeup(p)`: `p` is runnable from now.
#[raw_tracepoint(tracepoint = "sched_wakeup")]
pub fn numa_wakeup(ctx: RawTracePointContext) -> i32 {
    let _ = on_wakeup(&ctx);
    0
}

/// `sched_wakeup_new(p)`: a new task is runnable from now.
#[raw_tracepoint(tracepoint = "sched_wakeup_new")]
pub fn numa_wakeup_new(ctx: RawTracePointContext) -> i32 {
    let _ = on_wakeup(&ctx);
    0
}

#[inline(always)]
fn on_wakeup(ctx: &RawTracePointContext) -> Option<()> {
    let l = layout()?;
    let task: Task = ctx.arg(0);
    let tid: i32 = read(task, l.task_pid)?;
    if tid == 0 {
        return None;
    }
    let _ = NUMA_QUEUED.insert(&(tid as u32), &now(), 0);
    Some(())
}

/// `sched_migrate_task(p, dest_cpu)`: `p` moves from the CPU it is on (or
/// queued for) to `dest_cpu`.
#[raw_tracepoint(tracepoint = "sched_migrate_task")]
pub fn numa_migrate(ctx: RawTracePointContext) -> i32 {
    let _ = on_migrate(&ctx);
    0
}

#[inline(always)]
fn on_migrate(ctx: &RawTracePointContext) -> Option<()> {
    let l = layout()?;
    let task: Task = ctx.arg(0);
    let dest: u64 = ctx.arg(1);
    let tgid: u32 = read(task, l.task_tgid)?;
    if tgid == 0 {
        return None;
    }
    let from: u32 = read(task, l.task_cpu)?;
    let from_node = NUMA_CPU_NODE.get(from).copied();
    let to_node = NUMA_CPU_NODE.get(dest as u32).copied();
    let c = counts(tgid)?;
    // SAFETY: a per-CPU value only this CPU writes.
    unsafe {
        (*c).migrations += 1;
        if let (Some(a), Some(b)) = (from_node, to_node)
            && a != b
        {
            (*c).node_migrations += 1;
        }
    }
    Some(())
}

/// `chrdev_open(inode, filp)`, entry: a watched device is being opened.
#[kprobe]
pub fn numa_dev_open(ctx: ProbeContext) -> u32 {
    let _ = on_dev_open(&ctx);
    0
}

#[inline(always)]
fn on_dev_open(ctx: &ProbeContext) -> Option<()> {
    let l = layout()?;
    let inode = first_arg(ctx, &l)? as *const u8;
    let rdev: u32 = read(inode, l.inode_rdev)?;
    // SAFETY: a lookup; the value is not kept.
    unsafe { NUMA_DEVICES.get(&rdev) }?;
    let _ = NUMA_OPENING.insert(&bpf_get_current_pid_tgid(), &rdev, 0);
    Some(())
}

/// `chrdev_open`, return: the open succeeded (0) or not.
#[kretprobe]
pub fn numa_dev_opened(ctx: RetProbeContext) -> u32 {
    let _ = on_dev_opened(&ctx);
    0
}

#[inline(always)]
fn on_dev_opened(ctx: &RetProbeContext) -> Option<()> {
    let l = layout()?;
    let id = bpf_get_current_pid_tgid();
    // SAFETY: the value is copied out before the entry is removed.
    let rdev = unsafe { NUMA_OPENING.get(&id).copied() }?;
    let _ = NUMA_OPENING.remove(&id);
    // An int: the low 32 bits.
    if return_value(ctx, &l)? as u32 != 0 {
        return None;
    }
    report_open(id, rdev);
    Some(())
}

/// `chrdev_open(inode, filp)` returned, seen by fexit where the kernel
/// allows it: one program has the device and the result together, reads
/// no registers, and is attached through a BPF link, so a service whose
/// system-call filter denies perf_event_open (which kprobes need) still
/// sees the opens.
#[fexit(function = "chrdev_open")]
pub fn numa_dev_open_exit(ctx: FExitContext) -> i32 {
    let _ = on_dev_open_exit(&ctx);
    0
}

#[inline(always)]
fn on_dev_open_exit(ctx: &FExitContext) -> Option<()> {
    let l = layout()?;
    // The return value follows the two arguments; an int.
    let ret: i32 = ctx.arg(2);
    if ret != 0 {
        return None;
    }
    let inode: *const u8 = ctx.arg(0);
    let rdev: u32 = read(inode, l.inode_rdev)?;
    // SAFETY: a lookup; the value is not kept.
    unsafe { NUMA_DEVICES.get(&rdev) }?;
    report_open(bpf_get_current_pid_tgid(), rdev);
    Some(())
}

/// Sends the successful open of watched device `rdev` by thread `id`
/// (pid_tgid) to userspace, or counts it lost when the ring is full.
#[inline(always)]
fn report_open(id: u64, rdev: u32) {
    let event = DeviceOpen {
        pid: (id >> 32) as u32,
        tid: id as u32,
        rdev,
        reserved: 0,
        comm: bpf_get_current_comm().unwrap_or_default(),
    };
    match NUMA_OPENS.reserve::<DeviceOpen>(0) {
        Some(mut entry) => {
            entry.write(event);
            entry.submit(0);
        }
        None => {
            if let Some(d) = NUMA_DROPS.get_ptr_mut(0) {
                // SAFETY: this CPU's own slot, written with preemption off.
                unsafe { *d += 1 };
            }
        }
    }
}
