//! Loading and attaching the NUMA programs, and reading what they count:
//! per process, the scheduler's runs, switches, waits and migrations; and
//! the opens of watched accelerator devices, as events.
//!
//! The scheduler tracepoints and the device probes are attached apart: a
//! kernel without fexit or kprobes (or without `chrdev_open` to probe)
//! loses only accelerator detection, and says so. fexit comes first: it is
//! attached through a BPF link, where aya attaches kprobes through
//! perf_event_open, which the shipped service unit's system-call filter
//! denies.

use std::{collections::HashMap, os::fd::AsFd};

use aya::{
    maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{FExit, KProbe},
};
use nodus_common::{
    numa::{DeviceOpen, MAX_CPUS, NumaLayout, REGS_AARCH64, REGS_X86_64, TaskCounts},
    objects::numa::{OBJECT, maps, programs},
};

use super::counters::{self, EVENTS, HardwareCounters};
use crate::{
    btf::{Btf, BtfError},
    ebpf::{self, error_chain, read_record},
};

/// The scheduler tracepoints and the program attached to each.
const SCHED: [(&str, &str); 4] = [
    (programs::numa_switch, "sched_switch"),
    (programs::numa_wakeup, "sched_wakeup"),
    (programs::numa_wakeup_new, "sched_wakeup_new"),
    (programs::numa_migrate, "sched_migrate_task"),
];

/// The function every open of a character device node runs.
const CHRDEV_OPEN: &str = "chrdev_open";

/// The attached programs and the maps userspace reads.
pub struct KernelCounts {
    /// Holds the programs (and so their links) for as long as it lives.
    _ebpf: aya::Ebpf,
    tasks: PerCpuHashMap<MapData, u32, TaskCounts>,
    /// Per CPU: when its thread was switched in, and its process.
    running_since: PerCpuArray<MapData, u64>,
    running_tgid: PerCpuArray<MapData, u32>,
    /// Opens of watched devices; `None` when the probes could not attach.
    pub opens: Option<RingBuf<MapData>>,
    drops: PerCpuArray<MapData, u64>,
    /// How the watched devices' opens are seen, or why they are not.
    pub device_watch: DeviceWatch,
    /// The hardware counters the programs read, held open.
    pub counters: HardwareCounters,
}

/// How the opens of the profile's accelerator devices are seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceWatch {
    /// The profile has no accelerator device present on this board.
    NothingToWatch,
    /// fexit on `chrdev_open`.
    Fexit,
    /// A kprobe/kretprobe pair on `chrdev_open`.
    Kprobes {
        /// Why fexit was refused.
        no_fexit: String,
    },
    /// Neither could attach (why).
    Unavailable(String),
}

impl DeviceWatch {
    /// Why the opens are not seen, when they are not.
    pub fn unavailable(&self) -> Option<&str> {
        match self {
            DeviceWatch::Unavailable(why) => Some(why),
            _ => None,
        }
    }
}

impl std::fmt::Display for DeviceWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceWatch::NothingToWatch => f.write_str("no accelerator to watch"),
            DeviceWatch::Fexit => write!(f, "fexit on {CHRDEV_OPEN}"),
            DeviceWatch::Kprobes { no_fexit } => {
                write!(f, "kprobes on {CHRDEV_OPEN} (fexit: {no_fexit})")
            }
            DeviceWatch::Unavailable(why) => write!(f, "not seen: {why}"),
        }
    }
}

/// The kernel-structure offsets the programs need, from this kernel's BTF.
pub fn layout(btf: &Btf) -> Result<NumaLayout, BtfError> {
    let task = |f| btf.field_offset("task_struct", f);
    Ok(NumaLayout {
        task_pid: task("pid")?,
        task_tgid: task("tgid")?,
        // Where the CPU number lives differs by architecture and version:
        // `thread_info::cpu` (x86, arm64: thread_info first in the task)
        // or `task_struct::cpu`.
        task_cpu: match (task("thread_info"), btf.field_offset("thread_info", "cpu")) {
            (Ok(info), Ok(cpu)) => info + cpu,
            _ => task("cpu")?,
        },
        inode_rdev: btf.field_offset("inode", "i_rdev")?,
        // The counters opened, set when they are.
        pmu: 0,
        regs: if cfg!(target_arch = "x86_64") {
            REGS_X86_64
        } else if cfg!(target_arch = "aarch64") {
            REGS_AARCH64
        } else {
            0
        },
    })
}

impl KernelCounts {
    /// Loads the programs with room for `processes` processes, tells them
    /// each CPU's node and the watched devices (kernel device number to
    /// index), and attaches them.
    pub fn attach(
        processes: u32,
        cpu_nodes: &[(u32, u32)],
        devices: &[(u32, u32)],
        read_counters: bool,
    ) -> Result<KernelCounts, String> {
        let btf = Btf::kernel().map_err(|e| e.to_string())?;
        let mut layout = layout(&btf).map_err(|e| e.to_string())?;
        let mut counters = if read_counters {
            let cpus: Vec<u32> = cpu_nodes.iter().map(|&(cpu, _)| cpu).collect();
            HardwareCounters::open(&cpus)
        } else {
            HardwareCounters::default()
        };
        layout.pmu = counters.mask();
        let mut bpf = ebpf::load_with(&OBJECT, |loader| {
            loader
                .override_global("NUMA_LAYOUT", &layout, true)
                .map_max_entries(maps::NUMA_TASKS, processes);
        })
        .map_err(|e| format!("loading the numa programs: {}", error_chain(&e)))?;
        {
            let mut nodes: Array<_, u32> = Array::try_from(
                bpf.map_mut(maps::NUMA_CPU_NODE)
                    .ok_or("map NUMA_CPU_NODE missing from the object")?,
            )
            .map_err(|e| error_chain(&e))?;
            for &(cpu, node) in cpu_nodes.iter().filter(|(c, _)| *c < MAX_CPUS) {
                nodes.set(cpu, node, 0).map_err(|e| error_chain(&e))?;
            }
        }
        hand_over(&mut bpf, &mut counters);
        ebpf::attach_raw_tracepoints(&mut bpf, &SCHED).map_err(|e| error_chain(&e))?;
        let device_watch = if devices.is_empty() {
            DeviceWatch::NothingToWatch
        } else {
            watch_devices(&mut bpf, devices, layout.regs)
        };
        let tasks = ebpf::take_map(&mut bpf, maps::NUMA_TASKS).map_err(|e| error_chain(&e))?;
        let drops = ebpf::take_map(&mut bpf, maps::NUMA_DROPS).map_err(|e| error_chain(&e))?;
        let running_since =
            ebpf::take_map(&mut bpf, maps::NUMA_RUNNING).map_err(|e| error_chain(&e))?;
        let running_tgid =
            ebpf::take_map(&mut bpf, maps::NUMA_RUNNING_TGID).map_err(|e| error_chain(&e))?;
        let opens = match device_watch {
            DeviceWatch::Fexit | DeviceWatch::Kprobes { .. } => {
                Some(ebpf::take_map(&mut bpf, maps::NUMA_OPENS).map_err(|e| error_chain(&e))?)
            }
            _ => None,
        };
        Ok(KernelCounts {
            _ebpf: bpf,
            tasks,
            running_since,
            running_tgid,
            opens,
            drops,
            device_watch,
            counters,
        })
    }

    /// Every counted process's counters, summed over CPUs, with the runs
    /// still going on each CPU counted up to now: a thread that is never
    /// switched out (alone on its CPU, or real-time) would otherwise show
    /// no CPU at all, and then a whole long run in one interval.
    ///
    /// The map is read before the running threads: a run that ends in
    /// between is missing from this reading (and in the next whole), so a
    /// process's run time can read lower than at the last look; the look
    /// keeps the higher of the two.
    pub fn counts(&self) -> HashMap<u32, TaskCounts> {
        let mut out: HashMap<u32, TaskCounts> = self
            .tasks
            .iter()
            .filter_map(Result::ok)
            .map(|(pid, per_cpu)| (pid, per_cpu.iter().fold(TaskCounts::default(), add)))
            .collect();
        let now = monotonic_ns();
        if let (Ok(since), Ok(tgids)) =
            (self.running_since.get(&0, 0), self.running_tgid.get(&0, 0))
        {
            for (&since, &tgid) in since.iter().zip(tgids.iter()) {
                if tgid != 0 && since != 0 && since < now {
                    out.entry(tgid).or_default().run_ns += now - since;
                }
            }
        }
        out
    }

    /// Opens lost to a full ring, summed over CPUs.
    pub fn drops(&self) -> u64 {
        ebpf::per_cpu_sum(&self.drops, 0)
    }
}

/// Puts each opened counter in its event's map at its CPU; an event whose
/// counters could not all be put there is refused whole.
fn hand_over(bpf: &mut aya::Ebpf, counters: &mut HardwareCounters) {
    let opened = std::mem::take(&mut counters.opened);
    for (index, fds) in opened {
        let Some(&(_, map_name, _, name)) = EVENTS.iter().find(|e| e.0 == index) else {
            continue;
        };
        let put_all = || -> Result<(), String> {
            let map = bpf
                .map(map_name)
                .ok_or_else(|| format!("map {map_name} missing from the object"))?;
            let map_fd = match map {
                aya::maps::Map::PerfEventArray(data) => data.fd().as_fd(),
                _ => return Err(format!("map {map_name} is not a perf event array")),
            };
            for (cpu, fd) in &fds {
                counters::put(map_fd, *cpu, fd.as_fd())
                    .map_err(|e| format!("putting cpu {cpu}'s counter in {map_name}: {e}"))?;
            }
            Ok(())
        };
        match put_all() {
            Ok(()) => counters.opened.push((index, fds)),
            Err(why) => counters.refused.push((name, why)),
        }
    }
}

/// Fills the watched-device map and attaches fexit on `chrdev_open`, or,
/// where the kernel refuses it, the entry and return kprobes (their
/// registers read as `regs`, a `NumaLayout::regs` value).
fn watch_devices(bpf: &mut aya::Ebpf, devices: &[(u32, u32)], regs: u32) -> DeviceWatch {
    if let Err(why) = fill_watched(bpf, devices) {
        return DeviceWatch::Unavailable(why);
    }
    let no_fexit = match attach_fexit(bpf) {
        Ok(()) => return DeviceWatch::Fexit,
        Err(why) => why,
    };
    if regs == 0 {
        return DeviceWatch::Unavailable(format!(
            "fexit: {no_fexit}; kprobes: their registers on {} are not known to nodus",
            std::env::consts::ARCH
        ));
    }
    match attach_kprobes(bpf) {
        Ok(()) => DeviceWatch::Kprobes { no_fexit },
        Err(why) => DeviceWatch::Unavailable(format!("fexit: {no_fexit}; kprobes: {why}")),
    }
}

/// Tells the programs the watched devices: kernel device number to index.
fn fill_watched(bpf: &mut aya::Ebpf, devices: &[(u32, u32)]) -> Result<(), String> {
    let mut watched: BpfHashMap<_, u32, u32> = BpfHashMap::try_from(
        bpf.map_mut(maps::NUMA_DEVICES)
            .ok_or("map NUMA_DEVICES missing from the object")?,
    )
    .map_err(|e| error_chain(&e))?;
    for &(rdev, index) in devices {
        watched
            .insert(rdev, index, 0)
            .map_err(|e| error_chain(&e))?;
    }
    Ok(())
}

fn attach_fexit(bpf: &mut aya::Ebpf) -> Result<(), String> {
    let name = programs::numa_dev_open_exit;
    let btf = aya::Btf::from_sys_fs().map_err(|e| error_chain(&e))?;
    let program: &mut FExit = ebpf::program(bpf, name).map_err(|e| error_chain(&e))?;
    let attached = program
        .load(CHRDEV_OPEN, &btf)
        .and_then(|()| program.attach().map(drop))
        .map_err(|source| {
            error_chain(&ebpf::AttachError::Attach {
                program: name,
                target: CHRDEV_OPEN,
                source,
            })
        });
    drop(btf);
    ebpf::release_freed_memory();
    attached
}

fn attach_kprobes(bpf: &mut aya::Ebpf) -> Result<(), String> {
    for name in [programs::numa_dev_open, programs::numa_dev_opened] {
        let program: &mut KProbe = ebpf::program(bpf, name).map_err(|e| error_chain(&e))?;
        program
            .load()
            .and_then(|()| program.attach(CHRDEV_OPEN, 0).map(drop))
            .map_err(|source| {
                error_chain(&ebpf::AttachError::Attach {
                    program: name,
                    target: CHRDEV_OPEN,
                    source,
                })
            })?;
    }
    Ok(())
}

/// The next device open in `ring`, if any.
pub fn next_open(ring: &mut RingBuf<MapData>) -> Option<DeviceOpen> {
    let item = ring.next()?;
    read_record(&item)
}

/// The clock the programs' `bpf_ktime_get_ns` reads.
fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
    })
}

fn add(a: TaskCounts, b: &TaskCounts) -> TaskCounts {
    TaskCounts {
        run_ns: a.run_ns + b.run_ns,
        runs: a.runs + b.runs,
        voluntary: a.voluntary + b.voluntary,
        involuntary: a.involuntary + b.involuntary,
        wait_ns: a.wait_ns + b.wait_ns,
        migrations: a.migrations + b.migrations,
        node_migrations: a.node_migrations + b.node_migrations,
        instructions: a.instructions + b.instructions,
        cycles: a.cycles + b.cycles,
        cache_misses: a.cache_misses + b.cache_misses,
    }
}
