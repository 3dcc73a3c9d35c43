//! The scheduler in the kernel, as the component sees it: how it runs,
//! how it ended, its counters, and what `/sys/kernel/sched_ext` says. The
//! libbpf side is `loader` (cargo feature `sched`; a build without it has
//! `loader_absent.rs` in its place, whose every load fails with the reason).

use std::fs;

use nodus_common::sched as abi;

/// Why a build without the `sched` feature has no scheduler.
pub const NOT_BUILT: &str =
    "this nodus was built without the sched_ext loader (cargo feature `sched`: libbpf)";

/// How the scheduler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// The kernel's watchdog: a runnable task not run for this long ends
    /// the scheduler (every task back on the default scheduler).
    pub watchdog_ms: u32,
    /// Only tasks set to SCHED_EXT are scheduled by nodus (the rest stay on
    /// the default scheduler).
    pub switch_partial: bool,
}

/// How the kernel ended the scheduler (ops.exit), once it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// `enum scx_exit_kind`.
    pub kind: i64,
    /// The exit code.
    pub exit_code: i64,
    /// The kernel's reason (`disabled by sysrq-S`).
    pub reason: String,
    /// The message (a BPF error, or which task stalled).
    pub msg: String,
}

/// A layer's counters, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerCounts {
    /// Time its tasks ran, ns.
    pub runtime_ns: u64,
    /// Wakeups queued.
    pub enqueued: u64,
    /// Wakeups sent to an idle CPU at once.
    pub direct: u64,
    /// Wakeups that preempted another layer's task.
    pub preempted: u64,
    /// Tasks moved in from another layer on a new match.
    pub moved_in: u64,
    /// Tasks in it now.
    pub tasks: i64,
    /// Runnable-to-running waits: log2 histogram (bucket b: [2^b, 2^(b+1)) ns).
    pub wait_hist: [u64; abi::LAT_BUCKETS],
    /// Waits counted.
    pub wait_count: u64,
    /// Their sum, ns.
    pub wait_sum_ns: u64,
}

/// What `/sys/kernel/sched_ext` says: the state (`enabled`, `disabled`)
/// and the ops registered (`nodus`), or why it cannot be read.
pub fn kernel_state() -> Result<(String, String), String> {
    let read = |p: &str| {
        fs::read_to_string(p)
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("{p}: {e}"))
    };
    let state = read("/sys/kernel/sched_ext/state")?;
    let ops = read("/sys/kernel/sched_ext/root/ops").unwrap_or_default();
    Ok((state, ops))
}

/// A name for `enum scx_exit_kind`.
pub fn exit_kind_name(kind: i64) -> &'static str {
    match kind {
        1 => "done",
        64 => "unregistered",
        65 => "unregistered by BPF",
        66 => "unregistered by the kernel",
        67 => "SysRq-S",
        68 | 69 => "parent scheduler",
        1024 => "error",
        1025 => "BPF error",
        1026 => "stall (watchdog)",
        1027 => "re-enqueue error",
        1028 => "rescue error",
        _ => "unknown",
    }
}

/// Whether the scheduler should be loaded again after this exit: every
/// exit but our own unregistering (a SysRq-S, an error, a stall, the
/// kernel's unregistering are all restarted, with backoff).
pub fn restartable(kind: i64) -> bool {
    kind != 64
}
