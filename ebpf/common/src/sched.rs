//! Types of the sched_ext scheduler (`ebpf/sched/nodus_sched.bpf.c`).
//!
//! The scheduler is C (aya cannot load struct_ops), so its types are written
//! twice: in `ebpf/sched/nodus_sched.h` and here. They cannot drift apart:
//! the build writes [`C_LAYOUT`] (these types' sizes and offsets) into a
//! header the C compiles against, and the C refuses to compile when its own
//! sizes and offsets differ.

use crate::layout::Fnv;

/// Layers a profile may declare; the default layer is one more.
pub const MAX_LAYERS: u32 = 16;
/// Match rules per layer.
pub const MAX_RULES: usize = 8;
/// CPUs the scheduler knows.
pub const MAX_CPUS: u32 = 512;
/// Scheduling domains (NUMA nodes).
pub const MAX_DOMS: u32 = 8;
/// Wakeup-latency histogram buckets: bucket `b` counts waits of
/// `[2^b, 2^(b+1))` ns, the last one everything longer.
pub const LAT_BUCKETS: usize = 32;
/// No layer, or no owner.
pub const NONE: u32 = u32::MAX;

/// Layer kind: its CPUs run only its tasks, its tasks run only there.
pub const LAYER_CONFINED: u32 = 0;
/// Layer kind: its tasks prefer its CPUs; its idle CPUs are lent.
pub const LAYER_GROUPED: u32 = 1;
/// Layer kind: its tasks run on any CPU no confined layer owns.
pub const LAYER_OPEN: u32 = 2;

/// Rule: `comm` starts with a prefix (masked compare of the 16 bytes).
pub const RULE_COMM: u32 = 1;
/// Rule: nice within `[lo, hi]`.
pub const RULE_NICE: u32 = 2;
/// Rule: effective uid equals `lo`.
pub const RULE_UID: u32 = 3;
/// Rule: the task's cgroup carries the layer's bit in the cgroup map.
pub const RULE_CGROUP: u32 = 4;
/// Rule: the task's executable carries the layer's bit in the exe map.
pub const RULE_EXE: u32 = 5;
/// Rule: the task's process carries the layer's bit in the process map
/// (its workload class or the accelerator it opened, decided in
/// userspace).
pub const RULE_PROCESS: u32 = 6;

/// One match rule.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// `RULE_*`.
    pub kind: u32,
    /// Nice low bound, or the uid.
    pub lo: i32,
    /// Nice high bound.
    pub hi: i32,
    /// Zero.
    pub pad: u32,
    /// The comm prefix, as two little-endian words of its bytes.
    pub comm: [u64; 2],
    /// The mask of the prefix's bytes.
    pub mask: [u64; 2],
}

/// One layer, as the scheduler reads it (`NODUS_LAYERS`, by index).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layer {
    /// `LAYER_*`.
    pub kind: u32,
    /// 1: its wakeups preempt tasks of layers that do not preempt.
    pub preempt: u32,
    /// Time slice, ns (0: the kernel's default, 20 ms).
    pub slice_ns: u64,
    /// Rules in use.
    pub nr_rules: u32,
    /// Zero.
    pub pad: u32,
    /// The rules, first `nr_rules` used.
    pub rules: [Rule; MAX_RULES],
}

/// Key 0 of `NODUS_GLOBAL`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Global {
    /// Layers from the profile (the default layer is index `nr_layers`).
    pub nr_layers: u32,
    /// CPUs described in `NODUS_CPUS`.
    pub nr_cpus: u32,
    /// Scheduling domains.
    pub nr_doms: u32,
    /// Bumped when rules or the cgroup/exe sets change: tasks are matched
    /// again at their next wakeup.
    pub generation: u32,
}

/// `NODUS_CPUS`, by CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpu {
    /// Its scheduling domain.
    pub dom: u32,
    /// The confined or grouped layer owning it, or [`NONE`].
    pub owner: u32,
}

/// `NODUS_CPU_STATE`, by CPU: what runs there.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuState {
    /// The running task's layer, or [`NONE`].
    pub layer: u32,
    /// Zero.
    pub pad: u32,
    /// When it started, ns (CLOCK_MONOTONIC).
    pub started_ns: u64,
}

/// `NODUS_EXES` key: an executable by device (kernel encoding:
/// `major << 20 | minor`) and inode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Exe {
    /// The file system's device.
    pub dev: u64,
    /// The inode.
    pub ino: u64,
}

/// `NODUS_STATS` (per CPU), by layer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerStats {
    /// Time its tasks ran, ns.
    pub runtime_ns: u64,
    /// Wakeups queued on its dispatch queues.
    pub enqueued: u64,
    /// Wakeups sent straight to an idle CPU.
    pub direct: u64,
    /// Wakeups that preempted another layer's task.
    pub preempted: u64,
    /// Tasks that came from another layer on a new match.
    pub moved_in: u64,
    /// Runnable-to-running waits counted.
    pub lat_count: u64,
    /// Their sum, ns.
    pub lat_sum_ns: u64,
    /// Their log2 histogram.
    pub lat_hist: [u64; LAT_BUCKETS],
}

impl Default for LayerStats {
    fn default() -> Self {
        LayerStats {
            runtime_ns: 0,
            enqueued: 0,
            direct: 0,
            preempted: 0,
            moved_in: 0,
            lat_count: 0,
            lat_sum_ns: 0,
            lat_hist: [0; LAT_BUCKETS],
        }
    }
}

/// What a task is matched on; the test program's context (`layer` is its
/// answer).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// `comm`, as two little-endian words.
    pub comm: [u64; 2],
    /// Nice, -20..19.
    pub nice: i32,
    /// Effective uid.
    pub uid: u32,
    /// cgroup v2 id (the cgroup directory's inode).
    pub cgroup_id: u64,
    /// The executable.
    pub exe: Exe,
    /// Out: the layer chosen.
    pub layer: u32,
    /// The task's process (thread group) id.
    pub tgid: u32,
}

/// Key 0 of `NODUS_EXIT`: how the kernel ended the scheduler.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// `enum scx_exit_kind` (0: still running), written last.
    pub kind: i64,
    /// The exit code.
    pub exit_code: i64,
    /// The kernel's reason, NUL-terminated.
    pub reason: [u8; 128],
    /// The message, NUL-terminated.
    pub msg: [u8; 1024],
}

/// The sizes and offsets the C side asserts, as `NODUS_*` macro names.
pub const C_LAYOUT: &[(&str, usize)] = &[
    ("NODUS_SIZE_RULE", size_of::<Rule>()),
    ("NODUS_OFFSET_RULE_MASK", core::mem::offset_of!(Rule, mask)),
    ("NODUS_SIZE_LAYER", size_of::<Layer>()),
    (
        "NODUS_OFFSET_LAYER_RULES",
        core::mem::offset_of!(Layer, rules),
    ),
    ("NODUS_SIZE_GLOBAL", size_of::<Global>()),
    ("NODUS_SIZE_CPU", size_of::<Cpu>()),
    ("NODUS_SIZE_CPU_STATE", size_of::<CpuState>()),
    ("NODUS_SIZE_EXE", size_of::<Exe>()),
    ("NODUS_SIZE_LAYER_STATS", size_of::<LayerStats>()),
    (
        "NODUS_OFFSET_LAYER_STATS_LAT_HIST",
        core::mem::offset_of!(LayerStats, lat_hist),
    ),
    ("NODUS_SIZE_FACTS", size_of::<Facts>()),
    (
        "NODUS_OFFSET_FACTS_LAYER",
        core::mem::offset_of!(Facts, layer),
    ),
    ("NODUS_SIZE_EXIT", size_of::<Exit>()),
    ("NODUS_OFFSET_EXIT_MSG", core::mem::offset_of!(Exit, msg)),
];

/// Mixes this module's types into the layout fingerprint.
pub const fn layout(h: Fnv) -> Fnv {
    let h = crate::layout_of!(
        h,
        Rule {
            kind,
            lo,
            hi,
            pad,
            comm,
            mask
        }
    );
    let h = crate::layout_of!(
        h,
        Layer {
            kind,
            preempt,
            slice_ns,
            nr_rules,
            pad,
            rules
        }
    );
    let h = crate::layout_of!(
        h,
        Global {
            nr_layers,
            nr_cpus,
            nr_doms,
            generation
        }
    );
    let h = crate::layout_of!(h, Cpu { dom, owner });
    let h = crate::layout_of!(
        h,
        CpuState {
            layer,
            pad,
            started_ns
        }
    );
    let h = crate::layout_of!(h, Exe { dev, ino });
    let h = crate::layout_of!(
        h,
        LayerStats {
            runtime_ns,
            enqueued,
            direct,
            preempted,
            moved_in,
            lat_count,
            lat_sum_ns,
            lat_hist
        }
    );
    let h = crate::layout_of!(
        h,
        Facts {
            comm,
            nice,
            uid,
            cgroup_id,
            exe,
            layer,
            tgid
        }
    );
    crate::layout_of!(
        h,
        Exit {
            kind,
            exit_code,
            reason,
            msg
        }
    )
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each is repr(C), Copy, and laid out without padding (the size
    // assertions below add up the fields).
    unsafe impl aya::Pod for super::Rule {}
    unsafe impl aya::Pod for super::Layer {}
    unsafe impl aya::Pod for super::Global {}
    unsafe impl aya::Pod for super::Cpu {}
    unsafe impl aya::Pod for super::CpuState {}
    unsafe impl aya::Pod for super::Exe {}
    unsafe impl aya::Pod for super::LayerStats {}
    unsafe impl aya::Pod for super::Facts {}
    unsafe impl aya::Pod for super::Exit {}
}

const _: () = assert!(size_of::<Rule>() == 4 * 4 + 2 * 16);
const _: () = assert!(size_of::<Layer>() == 4 + 4 + 8 + 4 + 4 + MAX_RULES * size_of::<Rule>());
const _: () = assert!(size_of::<Global>() == 16);
const _: () = assert!(size_of::<Cpu>() == 8);
const _: () = assert!(size_of::<CpuState>() == 16);
const _: () = assert!(size_of::<Exe>() == 16);
const _: () = assert!(size_of::<LayerStats>() == (7 + LAT_BUCKETS) * 8);
const _: () = assert!(size_of::<Facts>() == 16 + 4 + 4 + 8 + 16 + 4 + 4);
const _: () = assert!(size_of::<Exit>() == 8 + 8 + 128 + 1024);
