//! Loading and attaching the process-cache programs, and reading what they
//! report.

use std::{
    os::fd::{AsFd, OwnedFd},
    sync::{Arc, Mutex},
};

use aya::maps::{MapData, PerCpuArray, RingBuf};
use nodus_common::{
    objects::proccache::{OBJECT, maps, programs},
    proccache::TaskLayout,
};

use crate::{
    btf::{Btf, BtfError},
    ebpf::{self, error_chain},
};

/// The three scheduler tracepoints and the program attached to each.
const ATTACH: [(&str, &str); 3] = [
    (programs::proccache_fork, "sched_process_fork"),
    (programs::proccache_exec, "sched_process_exec"),
    (programs::proccache_exit, "sched_process_exit"),
];

/// The attached programs and the maps they write.
pub struct KernelEvents {
    /// Holds the programs (and so their links) for as long as it lives.
    _ebpf: aya::Ebpf,
    /// Events, shared by the consumer thread and reconciliation.
    pub ring: Arc<Mutex<RingBuf<MapData>>>,
    /// A duplicate of the ring buffer's descriptor, to poll(2) for
    /// readiness without holding the ring's lock.
    pub ring_fd: Arc<OwnedFd>,
    drops: PerCpuArray<MapData, u64>,
}

/// The kernel-structure offsets the programs need, from this kernel's BTF.
pub fn task_layout(btf: &Btf) -> Result<TaskLayout, BtfError> {
    let task = |f| btf.field_offset("task_struct", f);
    Ok(TaskLayout {
        task_pid: task("pid")?,
        task_tgid: task("tgid")?,
        task_real_parent: task("real_parent")?,
        task_group_leader: task("group_leader")?,
        task_start_boottime: task("start_boottime")?,
        task_exit_code: task("exit_code")?,
        task_signal: task("signal")?,
        task_mm: task("mm")?,
        signal_live: btf.field_offset("signal_struct", "live")?,
        mm_arg_start: btf.field_offset("mm_struct", "arg_start")?,
        mm_arg_end: btf.field_offset("mm_struct", "arg_end")?,
        binprm_filename: btf.field_offset("linux_binprm", "filename")?,
    })
}

impl KernelEvents {
    /// Loads the programs for this kernel, with a ring buffer of
    /// `ring_bytes`, and attaches them.
    pub fn attach(ring_bytes: u32) -> Result<KernelEvents, String> {
        let btf = Btf::kernel().map_err(|e| e.to_string())?;
        let layout = task_layout(&btf).map_err(|e| e.to_string())?;
        let mut bpf = ebpf::load_with(&OBJECT, |loader| {
            loader
                .override_global("TASK_LAYOUT", &layout, true)
                .map_max_entries(maps::PROC_EVENTS, ring_bytes);
        })
        .map_err(|e| format!("loading the proccache programs: {}", error_chain(&e)))?;
        ebpf::attach_raw_tracepoints(&mut bpf, &ATTACH).map_err(|e| error_chain(&e))?;
        let mut map = |name: &str| {
            bpf.take_map(name)
                .ok_or_else(|| format!("map {name} missing from the object"))
        };
        let ring = RingBuf::try_from(map(maps::PROC_EVENTS)?).map_err(|e| error_chain(&e))?;
        let drops = PerCpuArray::try_from(map(maps::PROC_DROPS)?).map_err(|e| error_chain(&e))?;
        Ok(KernelEvents {
            _ebpf: bpf,
            ring_fd: Arc::new(
                ring.as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| e.to_string())?,
            ),
            ring: Arc::new(Mutex::new(ring)),
            drops,
        })
    }

    /// Events the kernel could not queue because the ring buffer was full,
    /// summed over CPUs and event kinds.
    pub fn drops(&self) -> u64 {
        self.drops
            .iter()
            .filter_map(Result::ok)
            .map(|per_cpu| per_cpu.iter().sum::<u64>())
            .sum()
    }
}
