//! Which cgroups, executables and processes belong to which layers.
//!
//! The BPF policy matches comm, nice and uid itself; a cgroup path prefix or
//! an executable path it cannot compare in the kernel cheaply, so userspace
//! turns them into ids: each cgroup under a layer's prefix by its cgroup id
//! (the directory's inode), each executable by device and inode. The
//! component rescans every tuning interval, so new cgroups and replaced
//! binaries join within one. A workload class or an accelerator is known
//! only in userspace (the numa component measures and sees them): each
//! process meeting a `class` or `device` rule goes in by its pid, from
//! the shared workload table, at the same interval.

use std::{collections::HashMap, os::unix::fs::MetadataExt, path::Path};

use nodus_common::sched::Exe;

use super::plan::{Layer, Rule};
use crate::workload::{WorkloadTable, Workloads};

/// Where cgroup v2 is mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The most cgroups the kernel's table takes (NODUS_CGROUPS).
pub const MAX_CGROUPS: usize = 4096;

/// The most processes the kernel's table takes (NODUS_PROCS).
pub const MAX_PROCS: usize = 4096;

/// Layer bitmasks by cgroup id and by executable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// cgroup id -> the layers (bit i: layer i) whose cgroup prefix it is under.
    pub cgroups: HashMap<u64, u32>,
    /// executable -> the layers whose exe rule names it.
    pub exes: HashMap<Exe, u32>,
    /// process (tgid) -> the layers whose class or device rule it meets.
    pub procs: HashMap<u32, u32>,
    /// Processes left out because the table was full.
    pub procs_dropped: usize,
    /// Cgroups left out because the table was full.
    pub cgroups_dropped: usize,
    /// Exe rules whose file could not be read, with why.
    pub exes_missing: Vec<String>,
    /// Cgroup rules exist but there was no cgroup v2 tree to match them in.
    pub no_cgroup_tree: bool,
}

impl Members {
    /// What kept some rules from matching, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.no_cgroup_tree {
            out.push(format!(
                "cgroup rules match nothing: {CGROUP_ROOT} is not a cgroup v2 mount"
            ));
        }
        if self.cgroups_dropped > 0 {
            out.push(format!(
                "{} cgroups over the table's {MAX_CGROUPS} left unmatched",
                self.cgroups_dropped
            ));
        }
        out.extend(self.exes_missing.iter().map(|e| format!("exe rule: {e}")));
        if self.procs_dropped > 0 {
            out.push(format!(
                "{} processes over the table's {MAX_PROCS} left out of class and device rules",
                self.procs_dropped
            ));
        }
        out
    }
}

/// The cgroup v2 tree at [`CGROUP_ROOT`], or `None` when that is not a
/// cgroup v2 mount (only there are directory inodes the cgroup ids the
/// kernel gives tasks; ids from another file system would match nothing,
/// or the wrong task).
pub fn cgroup_tree() -> Option<&'static Path> {
    let root = Path::new(CGROUP_ROOT);
    nix::sys::statfs::statfs(root)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .then_some(root)
}

/// The members of `layers`: cgroups under the cgroup tree `root` (none
/// without one), executables, and the processes of `workloads` meeting a
/// class or device rule.
pub fn scan(root: Option<&Path>, layers: &[Layer], workloads: &Workloads) -> Members {
    let mut m = walk(root, layers);
    scan_processes(layers, workloads, &mut m);
    m
}

/// [`scan`] with the daemon's shared table, locked only for the
/// processes, not across the cgroup walk: the numa component replaces the
/// table after each look and must not wait behind a directory walk.
pub fn scan_shared(root: Option<&Path>, layers: &[Layer], workloads: &WorkloadTable) -> Members {
    let mut m = walk(root, layers);
    scan_processes(layers, &crate::sync::lock(workloads), &mut m);
    m
}

/// The cgroups and executables of `layers`: what the file systems say.
fn walk(root: Option<&Path>, layers: &[Layer]) -> Members {
    let mut m = Members::default();
    scan_cgroups(root, layers, &mut m);
    scan_exes(layers, &mut m);
    m
}

fn scan_processes(layers: &[Layer], workloads: &Workloads, m: &mut Members) {
    let rules: Vec<(u32, &Rule)> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.rules.iter().map(move |r| (1u32 << i, r)))
        .filter(|(_, r)| matches!(r, Rule::Class(_) | Rule::Device(_)))
        .collect();
    if rules.is_empty() {
        return;
    }
    for (pid, work) in workloads.iter() {
        let bits = rules
            .iter()
            .filter(|(_, r)| match r {
                Rule::Class(c) => work.class == Some(*c),
                Rule::Device(d) => work.device.as_ref() == Some(d),
                _ => false,
            })
            .fold(0, |acc, (bit, _)| acc | bit);
        if bits == 0 {
            continue;
        }
        if m.procs.len() >= MAX_PROCS {
            m.procs_dropped += 1;
            continue;
        }
        m.procs.insert(pid, bits);
    }
}

fn scan_cgroups(root: Option<&Path>, layers: &[Layer], m: &mut Members) {
    let prefixes: Vec<(u32, &str)> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            l.rules.iter().filter_map(move |r| match r {
                Rule::CgroupPrefix(p) => Some((1u32 << i, p.as_str())),
                _ => None,
            })
        })
        .collect();
    if prefixes.is_empty() {
        return;
    }
    let Some(root) = root else {
        m.no_cgroup_tree = true;
        return;
    };
    for entry in walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_dir())
    {
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let path = format!("/{}", rel.display());
        let bits = prefixes
            .iter()
            .filter(|(_, p)| path.starts_with(p))
            .fold(0, |acc, (bit, _)| acc | bit);
        if bits == 0 {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if m.cgroups.len() >= MAX_CGROUPS {
            m.cgroups_dropped += 1;
            continue;
        }
        m.cgroups.insert(meta.ino(), bits);
    }
}

fn scan_exes(layers: &[Layer], m: &mut Members) {
    for (i, l) in layers.iter().enumerate() {
        for r in &l.rules {
            let Rule::Exe(path) = r else { continue };
            match std::fs::metadata(path) {
                Ok(meta) => {
                    *m.exes.entry(exe_of(&meta)).or_default() |= 1 << i;
                }
                Err(e) => m.exes_missing.push(format!("{}: {e}", path.display())),
            }
        }
    }
}

/// A file as the kernel names it: `super_block::s_dev` (`major << 20 |
/// minor`) and the inode.
pub fn exe_of(meta: &std::fs::Metadata) -> Exe {
    let dev = meta.dev();
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    Exe {
        dev: (major << 20) | minor,
        ino: meta.ino(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::LayerPolicy;

    fn layer(rules: Vec<Rule>) -> Layer {
        Layer {
            name: "l".into(),
            policy: LayerPolicy::Open,
            cpus: vec![],
            min_cpus: 0,
            preempt: false,
            slice_ns: 0,
            rules,
        }
    }

    #[test]
    fn cgroups_under_each_prefix_carry_its_bit() {
        let root = tempfile::tempdir().expect("tempdir");
        for d in ["work/a", "work/b/c", "other", "workshop"] {
            std::fs::create_dir_all(root.path().join(d)).expect("mkdir");
        }
        let ino = |d: &str| std::fs::metadata(root.path().join(d)).expect("stat").ino();
        let layers = vec![
            layer(vec![Rule::CgroupPrefix("/work/".into())]),
            layer(vec![Rule::CgroupPrefix("/work".into())]),
        ];
        let m = scan(Some(root.path()), &layers, &Workloads::default());
        assert_eq!(m.cgroups.get(&ino("work/a")), Some(&0b11));
        assert_eq!(m.cgroups.get(&ino("work/b/c")), Some(&0b11));
        // A string prefix, as the profile says: /workshop is under /work.
        assert_eq!(m.cgroups.get(&ino("workshop")), Some(&0b10));
        assert_eq!(m.cgroups.get(&ino("work")), Some(&0b10));
        assert_eq!(m.cgroups.get(&ino("other")), None);
    }

    #[test]
    fn executables_by_device_and_inode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("tool");
        std::fs::write(&exe, b"#!/bin/sh\n").expect("write");
        let layers = vec![
            layer(vec![Rule::Exe(exe.clone())]),
            layer(vec![Rule::Exe(dir.path().join("absent"))]),
        ];
        let m = scan(Some(dir.path()), &layers, &Workloads::default());
        let meta = std::fs::metadata(&exe).expect("stat");
        let key = exe_of(&meta);
        assert_eq!(m.exes.get(&key), Some(&0b01));
        assert_eq!(key.ino, meta.ino());
        assert_eq!(
            key.dev >> 20,
            nix::sys::stat::major(meta.dev()),
            "kernel encoding: major above bit 20"
        );
        assert_eq!(m.exes_missing.len(), 1);
        assert!(m.exes_missing[0].contains("absent"), "{:?}", m.exes_missing);
    }

    #[test]
    fn processes_meeting_a_class_or_device_rule_carry_the_layers_bits() {
        use crate::workload::{Class, Work};
        let layers = vec![
            layer(vec![Rule::Device("npu0".into())]),
            layer(vec![Rule::Class(Class::Latency)]),
            layer(vec![Rule::CommPrefix("x".into())]),
        ];
        let mut w = Workloads::default();
        let work = |class, device: Option<&str>| Work {
            class,
            device: device.map(str::to_owned),
        };
        w.replace(
            [
                (10, work(Some(Class::Latency), None)),
                (11, work(Some(Class::Batch), Some("npu0"))),
                (12, work(Some(Class::Latency), Some("npu0"))),
                (13, work(Some(Class::Idle), Some("gpu0"))),
            ]
            .into(),
        );
        let m = scan(None, &layers, &w);
        assert_eq!(m.procs.get(&10), Some(&0b010));
        assert_eq!(m.procs.get(&11), Some(&0b001));
        assert_eq!(
            m.procs.get(&12),
            Some(&0b011),
            "both: the first layer wins in the kernel"
        );
        assert_eq!(m.procs.get(&13), None);
        assert!(m.problems().is_empty(), "{:?}", m.problems());
    }
}
