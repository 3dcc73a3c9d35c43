//! Process cache: one event per process fork, exec and exit, from the
//! scheduler's own tracepoints (attached raw, so the programs see the task
//! structures and not only the formatted record).
//!
//! Syscall tracepoints are not used: they miss `execveat`, fire before the
//! exec is known to succeed, and differ on arm64. Threads are folded into
//! their process here, in the kernel, so thread churn costs no ring space.
//! A full ring buffer never loses an event silently: each failed reservation
//! is counted per event kind in `PROC_DROPS`.
#![no_std]
#![no_main]
// aya-ebpf's attribute macros expand to `pub fn(ctx: *mut ...)` entry points
// that hand the pointer to the context type; the kernel owns that pointer.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use core::{ffi::c_void, ptr::read_volatile};

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_uid_gid,
        bpf_ktime_get_boot_ns, bpf_probe_read_kernel_str_bytes, generated::bpf_probe_read_user,
    },
    macros::{map, raw_tracepoint},
    maps::{PerCpuArray, RingBuf},
    programs::RawTracePointContext,
};
use nodus_common::proccache::{
    ARGS_MAX, EVENT_EXEC, EVENT_EXIT, EVENT_FORK, EVENT_KINDS, ExecEvent, FILENAME_MAX,
    FLAG_ARGS_TRUNCATED, FLAG_ARGS_UNREADABLE, FLAG_FILENAME_TRUNCATED, ProcEvent, TaskLayout,
};

use nodus_ebpf::read_kernel as read;

nodus_ebpf::abi_stamp!();

/// Field offsets of this kernel, written by userspace before load.
#[unsafe(no_mangle)]
static TASK_LAYOUT: TaskLayout = TaskLayout::UNSET;

/// Events for userspace. Userspace sizes it from the config at load.
#[map]
static PROC_EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Events lost to a full ring buffer, by event kind.
#[map]
static PROC_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(EVENT_KINDS, 0);

type Task = *const u8;

// Every helper is inlined: BPF-to-BPF calls cannot return values through the
// caller's stack, which is how Rust returns `Option<struct>`.

#[inline(always)]
fn layout() -> Option<TaskLayout> {
    // SAFETY: a plain read of our own read-only global; volatile so that the
    // compiler does not fold in the zeros it was compiled with.
    let l = unsafe { read_volatile(&TASK_LAYOUT) };
    (l.task_tgid != 0).then_some(l)
}

#[inline(always)]
fn count_drop(kind: u32) {
    if let Some(counter) = PROC_DROPS.get_ptr_mut(kind) {
        // SAFETY: a per-CPU slot only this CPU writes, with preemption off.
        unsafe { *counter += 1 };
    }
}

/// The common part of an event about `task`'s process.
#[inline(always)]
fn header(kind: u32, task: Task, l: &TaskLayout) -> Option<ProcEvent> {
    let pid: i32 = read(task, l.task_tgid)?;
    let parent: Task = read(task, l.task_real_parent)?;
    let ppid: i32 = read(parent, l.task_tgid).unwrap_or(0);
    let leader: Task = read(task, l.task_group_leader)?;
    let start_ns: u64 = read(leader, l.task_start_boottime)?;
    let uid_gid = bpf_get_current_uid_gid();
    Some(ProcEvent {
        kind,
        pid: pid as u32,
        ppid: ppid as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        exit_status: 0,
        start_ns,
        // SAFETY: these helpers take no pointers.
        time_ns: unsafe { bpf_ktime_get_boot_ns() },
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        comm: bpf_get_current_comm().unwrap_or_default(),
    })
}

#[inline(always)]
fn submit(event: ProcEvent) {
    match PROC_EVENTS.reserve::<ProcEvent>(0) {
        Some(mut entry) => {
            entry.write(event);
            entry.submit(0);
        }
        None => count_drop(event.kind),
    }
}

/// `sched_process_fork(parent, child)`: runs in the parent.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn proccache_fork(ctx: RawTracePointContext) -> i32 {
    let _ = on_fork(&ctx);
    0
}

#[inline(always)]
fn on_fork(ctx: &RawTracePointContext) -> Option<()> {
    let l = layout()?;
    let child: Task = ctx.arg(1);
    let tid: i32 = read(child, l.task_pid)?;
    let tgid: i32 = read(child, l.task_tgid)?;
    if tid != tgid {
        return None; // a new thread: part of a process we already know
    }
    submit(header(EVENT_FORK, child, &l)?);
    Some(())
}

/// `sched_process_exit(task, ...)`: runs in each exiting thread; only the
/// last one of its process reports.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn proccache_exit(ctx: RawTracePointContext) -> i32 {
    let _ = on_exit(&ctx);
    0
}

#[inline(always)]
fn on_exit(ctx: &RawTracePointContext) -> Option<()> {
    let l = layout()?;
    let task: Task = ctx.arg(0);
    let signal: *const u8 = read(task, l.task_signal)?;
    let live: i32 = read(signal, l.signal_live)?;
    if live != 0 {
        return None; // other threads still run the process
    }
    let mut event = header(EVENT_EXIT, task, &l)?;
    event.exit_status = read::<i32>(task, l.task_exit_code)? as u32;
    submit(event);
    Some(())
}

/// `sched_process_exec(task, old_pid, bprm)`: runs in the task, after the new
/// image, its `comm` and its argument pages are in place.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn proccache_exec(ctx: RawTracePointContext) -> i32 {
    let _ = on_exec(&ctx);
    0
}

#[inline(always)]
fn on_exec(ctx: &RawTracePointContext) -> Option<()> {
    let l = layout()?;
    let task: Task = ctx.arg(0);
    let bprm: *const u8 = ctx.arg(2);
    let header = header(EVENT_EXEC, task, &l)?;
    let Some(mut entry) = PROC_EVENTS.reserve::<ExecEvent>(0) else {
        count_drop(EVENT_EXEC);
        return None;
    };
    // Filled in place: the event is far larger than the 512-byte BPF stack.
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at a reserved, exclusively owned ring slot of
    // size_of::<ExecEvent>() bytes; every field is written before submit.
    unsafe {
        (*event).header = header;
        (*event).flags = 0;
        (*event).reserved = 0;
        (*event).filename_len = 0;
        (*event).args_len = 0;
        if let Some(name) = read::<*const u8>(bprm, l.binprm_filename)
            && let Ok(s) = bpf_probe_read_kernel_str_bytes(name, &mut (*event).filename)
        {
            (*event).filename_len = s.len() as u32;
            if s.len() >= FILENAME_MAX - 1 {
                (*event).flags |= FLAG_FILENAME_TRUNCATED;
            }
        }
        read_args(task, &l, &mut *event);
    }
    entry.submit(0);
    Some(())
}

/// Copies the new image's argument area (`mm->arg_start..arg_end`, the
/// NUL-separated strings exec just laid out) into the event.
#[inline(always)]
fn read_args(task: Task, l: &TaskLayout, event: &mut ExecEvent) {
    let span = read::<*const u8>(task, l.task_mm).and_then(|mm| {
        let start: u64 = read(mm, l.mm_arg_start)?;
        let end: u64 = read(mm, l.mm_arg_end)?;
        Some((start, end))
    });
    let Some((start, end)) = span else {
        event.flags |= FLAG_ARGS_UNREADABLE;
        return;
    };
    let mut len = end.saturating_sub(start);
    if len > ARGS_MAX as u64 {
        event.flags |= FLAG_ARGS_TRUNCATED;
        len = ARGS_MAX as u64;
    }
    // The mask restates the bound in a form the verifier tracks.
    let len = (len as u32) & (2 * ARGS_MAX as u32 - 1);
    if len > ARGS_MAX as u32 {
        return;
    }
    // SAFETY: the destination is the event's own `args` array and `len` is
    // at most its size; the source is user memory read fault-safely.
    let ret = unsafe {
        bpf_probe_read_user(
            event.args.as_mut_ptr() as *mut c_void,
            len,
            start as *const c_void,
        )
    };
    if ret == 0 {
        event.args_len = len;
    } else {
        event.flags |= FLAG_ARGS_UNREADABLE;
    }
}
