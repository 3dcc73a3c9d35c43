//! Types of the NUMA programs: what the scheduler's tracepoints count per
//! process (runs, run time, switches, run-queue wait, CPU and node
//! migrations), the event an accelerator open raises, and the kernel
//! layout userspace hands them at load.
//!
//! The programs hang off `sched_switch`, `sched_wakeup`, `sched_wakeup_new`
//! and `sched_migrate_task` (attached raw, like the process cache's), and
//! `chrdev_open` (fexit, else a kprobe/kretprobe pair), the function every
//! open of a character device node runs (whatever the path, link or
//! namespace it was opened by): the device is told by its number, not its
//! name.

use crate::layout::Fnv;

/// Length of `task_struct::comm`.
pub const COMM_LEN: usize = 16;

/// CPUs the node map (`NUMA_CPU_NODE`) covers.
pub const MAX_CPUS: u32 = 1024;

/// [`NumaLayout::regs`]: the kernel is x86_64 (a probe's first argument
/// in `pt_regs::di`, its return value in `pt_regs::ax`).
pub const REGS_X86_64: u32 = 1;
/// [`NumaLayout::regs`]: the kernel is arm64 (both in `regs[0]`).
pub const REGS_AARCH64: u32 = 2;
/// Byte offset of `pt_regs::di` on x86_64.
pub const X86_64_DI: usize = 112;
/// Byte offset of `pt_regs::ax` on x86_64.
pub const X86_64_AX: usize = 80;

/// What the scheduler tracepoints counted for one process (tgid), per CPU;
/// userspace sums the CPUs and takes differences between looks.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// Nanoseconds on a CPU (switched in to switched out).
    pub run_ns: u64,
    /// Times switched out.
    pub runs: u64,
    /// Times switched out because it blocked (slept, waited for I/O).
    pub voluntary: u64,
    /// Times switched out while still runnable (preempted, slice ended).
    pub involuntary: u64,
    /// Nanoseconds runnable but waiting for a CPU (woken or preempted to
    /// switched in).
    pub wait_ns: u64,
    /// Times a thread of it was moved to another CPU.
    pub migrations: u64,
    /// Of those, moves to a CPU of another NUMA node.
    pub node_migrations: u64,
    /// Instructions retired while on a CPU ([`PMU_INSTRUCTIONS`]; 0 where
    /// the CPU's counters are not read).
    pub instructions: u64,
    /// CPU cycles while on a CPU ([`PMU_CYCLES`]).
    pub cycles: u64,
    /// Cache misses while on a CPU ([`PMU_CACHE_MISSES`]).
    pub cache_misses: u64,
}

/// [`NumaLayout::pmu`] bit and index: retired instructions are counted.
pub const PMU_INSTRUCTIONS: u32 = 0;
/// [`NumaLayout::pmu`] bit and index: CPU cycles are counted.
pub const PMU_CYCLES: u32 = 1;
/// [`NumaLayout::pmu`] bit and index: cache misses (the kernel's generic
/// event: the last-level cache's, or L1D refills on arm64) are counted.
pub const PMU_CACHE_MISSES: u32 = 2;
/// How many hardware events the programs can read.
pub const PMU_EVENTS: usize = 3;

/// An open of a watched character device that succeeded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceOpen {
    /// The process (tgid).
    pub pid: u32,
    /// The thread that opened it.
    pub tid: u32,
    /// The device number, kernel encoding (`major << 20 | minor`).
    pub rdev: u32,
    /// Zero.
    pub reserved: u32,
    /// The opening thread's name.
    pub comm: [u8; COMM_LEN],
}

/// Byte offsets of the kernel-structure fields the programs read, from the
/// running kernel's BTF. A zero `task_tgid` means "not filled in" and makes
/// the programs do nothing rather than read garbage.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NumaLayout {
    /// `task_struct::pid` (the thread id).
    pub task_pid: u32,
    /// `task_struct::tgid` (the process id).
    pub task_tgid: u32,
    /// `task_struct::cpu` (the CPU it is on or queued for).
    pub task_cpu: u32,
    /// `inode::i_rdev`.
    pub inode_rdev: u32,
    /// Which registers a probe's arguments are in: the object is built
    /// once for every architecture, the kernel's `pt_regs` differ
    /// ([`REGS_X86_64`], [`REGS_AARCH64`]; 0: no probes).
    pub regs: u32,
    /// The hardware events userspace opened on every CPU, a bit each
    /// (`1 << PMU_CYCLES`...): the switch program reads only these.
    pub pmu: u32,
}

impl NumaLayout {
    /// All offsets zero: what the object carries until userspace fills it in.
    pub const UNSET: NumaLayout = NumaLayout {
        task_pid: 0,
        task_tgid: 0,
        task_cpu: 0,
        inode_rdev: 0,
        regs: 0,
        pmu: 0,
    };
}

/// The kernel's encoding of a device number (`MKDEV`): what `inode::i_rdev`
/// holds, unlike the `st_rdev` userspace sees.
pub const fn kernel_dev(major: u32, minor: u32) -> u32 {
    (major << 20) | (minor & 0xf_ffff)
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all three are repr(C), Copy, and laid out without padding
    // (checked by the size assertions below).
    unsafe impl aya::Pod for super::TaskCounts {}
    unsafe impl aya::Pod for super::DeviceOpen {}
    unsafe impl aya::Pod for super::NumaLayout {}
}

const _: () = assert!(core::mem::size_of::<TaskCounts>() == 10 * 8);
const _: () = assert!(core::mem::size_of::<DeviceOpen>() == 4 * 4 + COMM_LEN);
const _: () = assert!(core::mem::size_of::<NumaLayout>() == 6 * 4);

pub(crate) const fn layout(h: Fnv) -> Fnv {
    let h = crate::layout_of!(
        h,
        TaskCounts {
            run_ns,
            runs,
            voluntary,
            involuntary,
            wait_ns,
            migrations,
            node_migrations,
            instructions,
            cycles,
            cache_misses
        }
    );
    let h = crate::layout_of!(
        h,
        DeviceOpen {
            pid,
            tid,
            rdev,
            reserved,
            comm
        }
    );
    crate::layout_of!(
        h,
        NumaLayout {
            task_pid,
            task_tgid,
            task_cpu,
            inode_rdev,
            regs,
            pmu
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_encodes_a_device_number_with_a_20_bit_minor() {
        // /dev/full: 1:7
        assert_eq!(kernel_dev(1, 7), 0x0010_0007);
        assert_eq!(kernel_dev(226, 128), (226 << 20) | 128);
    }
}
