//! Applying a profile to the running system, recording every original value
//! first, restoring them on stop, and noticing when someone changes them back.

use std::{
    fs,
    path::{Path, PathBuf},
};

use super::{MemPolicyMode, Profile, WorkPlacement, journal::Journal};
use crate::board::{CpuList, Topology};

/// One value nodus changed.
#[derive(Clone, Debug)]
pub struct Change {
    /// `sysctl kernel.numa_balancing`, `irq 34 (nic0)`.
    pub what: String,
    /// The file written.
    pub path: PathBuf,
    /// What it held before.
    pub original: String,
    /// What the profile wants.
    pub desired: String,
    /// Compare as cpulists (IRQ affinity) rather than text.
    cpus: bool,
}

/// Everything applied, for verify and restore.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// Changed files, in the order they were changed.
    pub changes: Vec<Change>,
    /// What could not be applied (the rest was).
    pub warnings: Vec<String>,
    /// CPUs nodus's threads were pinned to.
    pub runtime_cpus: Option<CpuList>,
    /// The memory policy set for nodus's threads.
    pub mempolicy: Option<String>,
    /// Where the originals are kept until they are restored.
    pub journal: Journal,
}

/// The CPUs a placement names.
/// The CPUs the chosen profile gives each kind of nodus thread, resolved
/// against the discovered board (a cluster or a node becomes its CPUs).
/// `None` where the profile says nothing: those threads stay on the
/// runtime's CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadPlacement {
    /// File-server workers (one per CPU).
    pub fileserver: Option<CpuList>,
    /// TLS proxy threads.
    pub proxy: Option<CpuList>,
    /// Telemetry and fleet link.
    pub telemetry: Option<CpuList>,
    /// eBPF ring-buffer consumer threads.
    pub ebpf_events: Option<CpuList>,
}

impl ThreadPlacement {
    /// Resolves `p`'s `[placement]` on `topo`.
    pub fn resolve(p: &Profile, topo: &Topology) -> ThreadPlacement {
        let cpus = |w: &Option<WorkPlacement>| w.as_ref().and_then(|w| placement_cpus(w, p, topo));
        let pl = &p.placement;
        ThreadPlacement {
            fileserver: cpus(&pl.fileserver),
            proxy: cpus(&pl.proxy),
            telemetry: cpus(&pl.telemetry),
            ebpf_events: cpus(&pl.ebpf_events),
        }
    }
}

/// The CPUs a placement entry names: its cpulist, its cluster's CPUs, or
/// its node's CPUs.
pub fn placement_cpus(w: &WorkPlacement, p: &Profile, topo: &Topology) -> Option<CpuList> {
    if let Some(c) = &w.cpus {
        return Some(c.clone());
    }
    if let Some(name) = &w.cluster {
        return p
            .clusters
            .iter()
            .find(|c| &c.name == name)
            .map(|c| c.cpus.clone());
    }
    let n = w.node?;
    topo.nodes
        .iter()
        .find(|x| x.id == n)
        .map(|x| x.cpus.clone())
}

fn same(a: &str, b: &str, cpus: bool) -> bool {
    if cpus {
        a.trim().parse::<CpuList>().ok() == b.trim().parse::<CpuList>().ok()
    } else {
        a.trim() == b.trim()
    }
}

fn write_value(path: &Path, value: &str) -> std::io::Result<()> {
    fs::write(path, format!("{value}\n"))
}

impl Applied {
    fn change(&mut self, what: String, path: PathBuf, desired: String, cpus: bool) {
        let current = match fs::read_to_string(&path) {
            Ok(v) => v.trim().to_owned(),
            Err(e) => {
                self.warnings
                    .push(format!("{what}: cannot read {}: {e}", path.display()));
                return;
            }
        };
        // After a crash the value may already be ours: the original is the
        // one the journal kept, not what the file holds now.
        let original = self
            .journal
            .original(&path)
            .map_or_else(|| current.clone(), str::to_owned);
        if same(&current, &desired, cpus) {
            if !same(&original, &desired, cpus) {
                self.changes.push(Change {
                    what,
                    path,
                    original,
                    desired,
                    cpus,
                });
            }
            return;
        }
        if let Err(e) = self.journal.record(&what, &path, &original) {
            self.warnings.push(format!(
                "{what}: left at {current}: cannot journal its original ({e}), so a crash would lose it"
            ));
            return;
        }
        match write_value(&path, &desired) {
            Ok(()) => self.changes.push(Change {
                what,
                path,
                original,
                desired,
                cpus,
            }),
            Err(e) => self
                .warnings
                .push(format!("{what}: cannot write {desired}: {e}")),
        }
    }

    /// Puts every original value back, newest change first. Returns failures.
    pub fn restore(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        while let Some(c) = self.changes.pop() {
            if let Err(e) = write_value(&c.path, &c.original) {
                errors.push(format!("{}: cannot restore {}: {e}", c.what, c.original));
            } else if let Err(e) = self.journal.restored(&c.path) {
                errors.push(format!("{}: restored, but the journal: {e}", c.what));
            }
        }
        errors
    }

    /// Puts back what an earlier run of this boot changed and this profile
    /// does not (the profile changed between the runs).
    fn restore_others(&mut self) {
        let keep: Vec<&Path> = self.changes.iter().map(|c| c.path.as_path()).collect();
        for o in self.journal.take_others(&keep) {
            match write_value(&o.path, &o.value) {
                Ok(()) => log::info!(
                    "profile: {} restored to {} (left by a crashed run)",
                    o.what,
                    o.value
                ),
                Err(e) => {
                    self.warnings.push(format!(
                        "{}: cannot restore {} left by a crashed run: {e}",
                        o.what, o.value
                    ));
                    if let Err(e) = self.journal.keep(o) {
                        self.warnings.push(format!("profile journal: {e}"));
                    }
                }
            }
        }
    }

    /// What differs now from what was applied.
    pub fn verify(&self) -> Vec<String> {
        let mut drift = Vec::new();
        for c in &self.changes {
            match fs::read_to_string(&c.path) {
                Ok(now) if same(&now, &c.desired, c.cpus) => {}
                Ok(now) => drift.push(format!(
                    "{} is {}, profile says {}",
                    c.what,
                    now.trim(),
                    c.desired
                )),
                Err(e) => drift.push(format!("{}: {e}", c.what)),
            }
        }
        if let Some(want) = &self.runtime_cpus {
            drift.extend(
                thread_affinities()
                    .into_iter()
                    .filter_map(|(tid, cpus)| thread_drift(tid, &cpus, want)),
            );
        }
        drift
    }
}

/// Drift of one of nodus's threads from the runtime CPUs `want`: only a
/// thread allowed on a CPU outside them has drifted. A thread on fewer of
/// them is where the profile put it: nodus pins some of its own threads to
/// one runtime CPU on purpose (the process cache's event thread, the file
/// server's workers).
fn thread_drift(tid: u32, cpus: &CpuList, want: &CpuList) -> Option<String> {
    (cpus.is_empty() || !cpus.is_subset(want))
        .then(|| format!("thread {tid} runs on CPUs {cpus}, profile says {want}"))
}

/// `Cpus_allowed_list` of each of this process's threads.
pub fn thread_affinities() -> Vec<(u32, CpuList)> {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let tid = t.file_name().to_str()?.parse().ok()?;
            let status = fs::read_to_string(t.path().join("status")).ok()?;
            let list = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
            Some((tid, list.trim().parse().ok()?))
        })
        .collect()
}

/// IRQ numbers of a device directory (MSI vectors, else the legacy line).
fn device_irqs(dir: &Path) -> Vec<u32> {
    for d in [dir.to_path_buf(), dir.join("device"), dir.join("device/..")] {
        if let Ok(entries) = fs::read_dir(d.join("msi_irqs")) {
            let mut irqs: Vec<u32> = entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect();
            if !irqs.is_empty() {
                irqs.sort_unstable();
                return irqs;
            }
        }
        if let Some(irq) = fs::read_to_string(d.join("irq"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|&i: &u32| i > 0)
        {
            return vec![irq];
        }
    }
    Vec::new()
}

/// Applies `p` on a machine whose files are under `root` (`/`), keeping
/// each original in `journal` before its first write (and taking originals
/// an earlier run of this boot left there). The current thread's CPU
/// affinity and memory policy are set here, so call it before spawning the
/// threads that should inherit them.
pub fn apply(p: &Profile, topo: &Topology, root: &Path, journal: Journal) -> Applied {
    let mut a = Applied {
        journal,
        ..Applied::default()
    };
    set_limits(p, &mut a);
    for (name, value) in &p.sysctl {
        let path = root.join("proc/sys").join(name.replace('.', "/"));
        a.change(format!("sysctl {name}"), path, value.clone(), false);
    }
    for q in &p.irqs {
        let Some(dev) = p.devices.iter().find(|d| d.name == q.device) else {
            continue;
        };
        let cpus = match (&q.cpus, q.node) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(n)) => topo
                .nodes
                .iter()
                .find(|x| x.id == n)
                .map(|x| x.cpus.clone()),
            _ => None,
        };
        let (Some(dir), Some(cpus)) = (dev.locator().sysfs_dir(root), cpus) else {
            a.warnings.push(format!(
                "irq placement for {}: device or target not found",
                dev.name
            ));
            continue;
        };
        let irqs = device_irqs(&dir);
        if irqs.is_empty() {
            a.warnings.push(format!(
                "{}: no interrupts found under {}",
                dev.name,
                dir.display()
            ));
        }
        for irq in irqs {
            let path = root.join(format!("proc/irq/{irq}/smp_affinity_list"));
            a.change(
                format!("irq {irq} ({})", dev.name),
                path,
                cpus.to_string(),
                true,
            );
        }
    }
    if let Some(w) = &p.placement.runtime {
        if let Some(cpus) = placement_cpus(w, p, topo) {
            match cpus.pin_current_thread() {
                Ok(()) => a.runtime_cpus = Some(cpus),
                Err(e) => a
                    .warnings
                    .push(format!("placement.runtime: CPUs {cpus}: {e}")),
            }
        }
        let nodes = if w.mem_nodes.is_empty() {
            a.runtime_cpus
                .iter()
                .flat_map(|c| c.cpus())
                .filter_map(|c| topo.node_of(c))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        } else {
            w.mem_nodes.clone()
        };
        if w.mempolicy != MemPolicyMode::Default {
            match set_mempolicy(w.mempolicy, &nodes) {
                Ok(()) => a.mempolicy = Some(format!("{:?} {nodes:?}", w.mempolicy).to_lowercase()),
                Err(e) => a.warnings.push(format!("placement.runtime.mempolicy: {e}")),
            }
        }
    }
    a.restore_others();
    a
}

fn set_limits(p: &Profile, a: &mut Applied) {
    use nix::sys::resource::{Resource, setrlimit};
    let set = |res, value: u64, what: &str, a: &mut Applied| {
        if let Err(e) = setrlimit(res, value, value) {
            a.warnings.push(format!("limits.{what}: {e}"));
        }
    };
    if let Some(n) = p.limits.open_files {
        set(Resource::RLIMIT_NOFILE, n, "open_files", a);
    }
    if let Some(m) = p.limits.memlock_mib {
        set(
            Resource::RLIMIT_MEMLOCK,
            m.saturating_mul(1 << 20),
            "memlock_mib",
            a,
        );
    }
}

/// set_mempolicy(2) for the calling thread (inherited by its children).
fn set_mempolicy(mode: MemPolicyMode, nodes: &[u32]) -> std::io::Result<()> {
    let mode = match mode {
        MemPolicyMode::Default => 0,
        MemPolicyMode::Preferred => 1,
        MemPolicyMode::Bind => 2,
        MemPolicyMode::Interleave => 3,
        MemPolicyMode::Local => 4,
    };
    let mut mask = [0u64; 16]; // 1024 nodes
    for &n in nodes {
        if let Some(word) = mask.get_mut(n as usize / 64) {
            *word |= 1 << (n % 64);
        }
    }
    let (ptr, maxnode) = if mode == 4 || mode == 0 {
        (std::ptr::null(), 0)
    } else {
        (mask.as_ptr(), mask.len() as u64 * 64 + 1)
    };
    // Raw syscall: neither nix nor libc wraps set_mempolicy (libnuma does,
    // and is not worth a C dependency for one call).
    // SAFETY: mask outlives the call; maxnode matches its size in bits (+1 as the syscall expects).
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod thread_drift_tests {
    use super::thread_drift;
    use crate::board::CpuList;

    fn list(s: &str) -> CpuList {
        s.parse().expect("cpulist")
    }

    #[test]
    fn a_thread_pinned_inside_the_runtime_cpus_has_not_drifted() {
        let want = list("2-3");
        assert_eq!(thread_drift(7, &list("3"), &want), None);
        assert_eq!(thread_drift(7, &list("2-3"), &want), None);
    }

    #[test]
    fn a_thread_allowed_outside_the_runtime_cpus_has_drifted() {
        let want = list("2-3");
        assert_eq!(
            thread_drift(7, &list("1-3"), &want).as_deref(),
            Some("thread 7 runs on CPUs 1-3, profile says 2-3")
        );
        assert!(thread_drift(7, &list("0"), &want).is_some());
    }
}
