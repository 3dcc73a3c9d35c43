//! Types of the process-cache programs: the events they write to the ring
//! buffer and the kernel-structure layout userspace hands them at load.
//!
//! The programs read `task_struct` and friends with `bpf_probe_read_kernel`.
//! aya-ebpf cannot emit CO-RE relocations, so the field offsets are looked up
//! in the running kernel's BTF by userspace and written into [`TaskLayout`]
//! before the programs load: one binary works on every kernel version.

use crate::layout::Fnv;

/// A process (not a thread) was forked.
pub const EVENT_FORK: u32 = 1;
/// A process called `execve`/`execveat` successfully.
pub const EVENT_EXEC: u32 = 2;
/// The last thread of a process exited.
pub const EVENT_EXIT: u32 = 3;
/// How many event kinds there are, plus one (index 0 is unused); the size of
/// the per-kind drop counter array.
pub const EVENT_KINDS: u32 = 4;

/// Length of `task_struct::comm`.
pub const COMM_LEN: usize = 16;
/// Bytes of the executed file's path kept; longer paths are truncated.
pub const FILENAME_MAX: usize = 256;
/// Bytes of the NUL-separated argument list kept; longer lists are truncated.
/// A power of two, so the programs can bound reads with a mask.
pub const ARGS_MAX: usize = 1024;

/// [`ExecEvent::flags`]: the argument list was longer than [`ARGS_MAX`].
pub const FLAG_ARGS_TRUNCATED: u32 = 1;
/// [`ExecEvent::flags`]: the path was [`FILENAME_MAX`] bytes or more.
pub const FLAG_FILENAME_TRUNCATED: u32 = 2;
/// [`ExecEvent::flags`]: the argument list could not be read (unmapped).
pub const FLAG_ARGS_UNREADABLE: u32 = 4;

/// The part every event has. Fork and exit events are only this.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcEvent {
    /// [`EVENT_FORK`], [`EVENT_EXEC`] or [`EVENT_EXIT`].
    pub kind: u32,
    /// The process id (the kernel's tgid).
    pub pid: u32,
    /// The parent process id (the real parent's tgid).
    pub ppid: u32,
    /// Real user id of the task that caused the event.
    pub uid: u32,
    /// Real group id of the task that caused the event.
    pub gid: u32,
    /// For exits, the wait(2) status: `code << 8`, or the signal number with
    /// 0x80 set when a core was dumped.
    pub exit_status: u32,
    /// The process's start, ns since boot (`task_struct::start_boottime`, the
    /// clock /proc/PID/stat's starttime derives from). With `pid` it
    /// identifies a process across pid reuse.
    pub start_ns: u64,
    /// When the event happened, ns since boot (`CLOCK_BOOTTIME`).
    pub time_ns: u64,
    /// The cgroup v2 id of the task that caused the event.
    pub cgroup_id: u64,
    /// The task's command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
}

/// An exec: the common part plus what was executed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecEvent {
    /// Kind [`EVENT_EXEC`].
    pub header: ProcEvent,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Bytes of `filename` used, without the NUL.
    pub filename_len: u32,
    /// Bytes of `args` used (NUL-separated arguments).
    pub args_len: u32,
    /// Keeps `filename` 8-byte aligned.
    pub reserved: u32,
    /// The path given to exec (`linux_binprm::filename`).
    pub filename: [u8; FILENAME_MAX],
    /// The argument vector as the process sees it, NUL-separated.
    pub args: [u8; ARGS_MAX],
}

/// Byte offsets of the kernel-structure fields the programs read, resolved
/// from the running kernel's BTF. A zero `task_tgid` means "not filled in"
/// and makes the programs do nothing rather than read garbage.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskLayout {
    /// `task_struct::pid` (the thread id).
    pub task_pid: u32,
    /// `task_struct::tgid` (the process id).
    pub task_tgid: u32,
    /// `task_struct::real_parent`.
    pub task_real_parent: u32,
    /// `task_struct::group_leader`.
    pub task_group_leader: u32,
    /// `task_struct::start_boottime`.
    pub task_start_boottime: u32,
    /// `task_struct::exit_code`.
    pub task_exit_code: u32,
    /// `task_struct::signal`.
    pub task_signal: u32,
    /// `task_struct::mm`.
    pub task_mm: u32,
    /// `signal_struct::live` (threads still running).
    pub signal_live: u32,
    /// `mm_struct::arg_start`.
    pub mm_arg_start: u32,
    /// `mm_struct::arg_end`.
    pub mm_arg_end: u32,
    /// `linux_binprm::filename`.
    pub binprm_filename: u32,
}

impl TaskLayout {
    /// All offsets zero: what the object carries until userspace fills it in.
    pub const UNSET: TaskLayout = TaskLayout {
        task_pid: 0,
        task_tgid: 0,
        task_real_parent: 0,
        task_group_leader: 0,
        task_start_boottime: 0,
        task_exit_code: 0,
        task_signal: 0,
        task_mm: 0,
        signal_live: 0,
        mm_arg_start: 0,
        mm_arg_end: 0,
        binprm_filename: 0,
    };
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all three are repr(C), Copy, and laid out without padding
    // (checked by the size assertions below).
    unsafe impl aya::Pod for super::ProcEvent {}
    unsafe impl aya::Pod for super::ExecEvent {}
    unsafe impl aya::Pod for super::TaskLayout {}
}

const _: () = assert!(core::mem::size_of::<ProcEvent>() == 6 * 4 + 3 * 8 + COMM_LEN);
const _: () = assert!(
    core::mem::size_of::<ExecEvent>()
        == core::mem::size_of::<ProcEvent>() + 16 + FILENAME_MAX + ARGS_MAX
);
const _: () = assert!(ARGS_MAX.is_power_of_two() && FILENAME_MAX.is_power_of_two());

pub(crate) const fn layout(h: Fnv) -> Fnv {
    let h = crate::layout_of!(
        h,
        ProcEvent {
            kind,
            pid,
            ppid,
            uid,
            gid,
            exit_status,
            start_ns,
            time_ns,
            cgroup_id,
            comm
        }
    );
    let h = crate::layout_of!(
        h,
        ExecEvent {
            header,
            flags,
            filename_len,
            args_len,
            reserved,
            filename,
            args
        }
    );
    crate::layout_of!(
        h,
        TaskLayout {
            task_pid,
            task_tgid,
            task_real_parent,
            task_group_leader,
            task_start_boottime,
            task_exit_code,
            task_signal,
            task_mm,
            signal_live,
            mm_arg_start,
            mm_arg_end,
            binprm_filename
        }
    )
}
