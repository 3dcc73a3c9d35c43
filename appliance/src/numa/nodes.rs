//! Per-node figures from sysfs and procfs: CPU utilisation, memory, the
//! allocator's `numastat` counters, and the kernel's page migrations.
//!
//! Everything here is a counter or a gauge the kernel already keeps: one
//! small read per node per look, nothing walked.

use std::{collections::BTreeMap, path::Path};

/// The allocator's counters for one node (`/sys/devices/system/node/nodeN/numastat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NumaStat {
    /// Pages allocated here that were meant for here.
    pub hit: u64,
    /// Pages allocated here that were meant for another node (it was full).
    pub miss: u64,
    /// Pages meant for here allocated elsewhere.
    pub foreign: u64,
    /// Pages allocated here by a task running on this node.
    pub local: u64,
    /// Pages allocated here by a task running on another node.
    pub other: u64,
}

/// One node at one look.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeLook {
    /// The node's number.
    pub id: u32,
    /// Its CPUs, ascending.
    pub cpus: Vec<u32>,
    /// Share of its CPUs' time spent busy since the previous look, percent.
    pub busy_pct: Option<f64>,
    /// Memory, MiB.
    pub total_mib: u64,
    /// Free memory, MiB.
    pub free_mib: u64,
    /// The allocator's counters since boot.
    pub numastat: NumaStat,
}

/// The kernel's page-migration counters (`/proc/vmstat`), since boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Migrations {
    /// Pages migrated, by anyone (`pgmigrate_success`).
    pub pages: u64,
    /// Pages the kernel's automatic NUMA balancing migrated
    /// (`numa_pages_migrated`).
    pub balancing_pages: u64,
    /// NUMA hinting faults taken by automatic balancing (`numa_hint_faults`).
    pub hint_faults: u64,
}

/// Busy and total jiffies of one CPU (`/proc/stat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTime {
    busy: u64,
    total: u64,
}

/// Reads the node directory `dir` (`/sys/devices/system/node/nodeN`).
pub fn read_node(dir: &Path, id: u32, cpus: Vec<u32>) -> NodeLook {
    let meminfo = std::fs::read_to_string(dir.join("meminfo")).unwrap_or_default();
    let kib = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| {
                // "Node 0 MemTotal:       1015124 kB"
                let mut w = l.split_whitespace().skip(2);
                (w.next()? == key).then(|| w.next()?.parse::<u64>().ok())?
            })
            .unwrap_or(0)
    };
    NodeLook {
        id,
        cpus,
        busy_pct: None,
        total_mib: kib("MemTotal:") / 1024,
        free_mib: kib("MemFree:") / 1024,
        numastat: parse_numastat(
            &std::fs::read_to_string(dir.join("numastat")).unwrap_or_default(),
        ),
    }
}

/// `numa_hit 123\nnuma_miss 0\n...`.
pub fn parse_numastat(text: &str) -> NumaStat {
    let v = keyed(text);
    let get = |k: &str| v.get(k).copied().unwrap_or(0);
    NumaStat {
        hit: get("numa_hit"),
        miss: get("numa_miss"),
        foreign: get("numa_foreign"),
        local: get("local_node"),
        other: get("other_node"),
    }
}

/// The migration counters of `/proc/vmstat`'s text.
pub fn parse_vmstat(text: &str) -> Migrations {
    let v = keyed(text);
    let get = |k: &str| v.get(k).copied().unwrap_or(0);
    Migrations {
        pages: get("pgmigrate_success"),
        balancing_pages: get("numa_pages_migrated"),
        hint_faults: get("numa_hint_faults"),
    }
}

fn keyed(text: &str) -> BTreeMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k, v.trim().parse().ok()?))
        })
        .collect()
}

/// Each CPU's times from `/proc/stat`'s text, by CPU number.
pub fn parse_cpu_times(text: &str) -> BTreeMap<u32, CpuTime> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("cpu")?;
            let (num, fields) = rest.split_once(' ')?;
            let cpu: u32 = num.parse().ok()?;
            let f: Vec<u64> = fields
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal (guest is in user).
            let total: u64 = f.iter().take(8).sum();
            let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
            Some((
                cpu,
                CpuTime {
                    busy: total.saturating_sub(idle),
                    total,
                },
            ))
        })
        .collect()
}

/// The busy share of `cpus` between two readings, percent; `None` when no
/// time passed on them.
pub fn busy_pct(
    cpus: &[u32],
    before: &BTreeMap<u32, CpuTime>,
    now: &BTreeMap<u32, CpuTime>,
) -> Option<f64> {
    let (mut busy, mut total) = (0u64, 0u64);
    for c in cpus {
        if let (Some(b), Some(n)) = (before.get(c), now.get(c)) {
            busy += n.busy.saturating_sub(b.busy);
            total += n.total.saturating_sub(b.total);
        }
    }
    (total > 0).then(|| busy as f64 * 100.0 / total as f64)
}

/// The kernel's automatic NUMA balancing mode (`kernel.numa_balancing`):
/// 0 off, 1 normal, 2 memory tiering; `None` where the kernel has none.
pub fn kernel_balancing() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/numa_balancing")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numastat_vmstat_and_cpu_times() {
        let s = parse_numastat(
            "numa_hit 100\nnuma_miss 3\nnuma_foreign 4\ninterleave_hit 9\nlocal_node 90\nother_node 13\n",
        );
        assert_eq!(
            s,
            NumaStat {
                hit: 100,
                miss: 3,
                foreign: 4,
                local: 90,
                other: 13
            }
        );
        let m = parse_vmstat(
            "nr_free_pages 5\npgmigrate_success 42\nnuma_pages_migrated 7\nnuma_hint_faults 11\n",
        );
        assert_eq!(
            m,
            Migrations {
                pages: 42,
                balancing_pages: 7,
                hint_faults: 11
            }
        );
        let before =
            parse_cpu_times("cpu  1 2 3 4\ncpu0 10 0 10 80 0 0 0 0 0 0\ncpu1 0 0 0 100 0 0 0 0\n");
        let now = parse_cpu_times("cpu0 40 0 20 140 0 0 0 0 0 0\ncpu1 0 0 0 200 0 0 0 0\n");
        assert_eq!(before.len(), 2, "the aggregate line is not a CPU");
        // cpu0: 40 busy of 100; cpu1: 0 of 100.
        assert_eq!(busy_pct(&[0], &before, &now), Some(40.0));
        assert_eq!(busy_pct(&[0, 1], &before, &now), Some(20.0));
        assert_eq!(busy_pct(&[7], &before, &now), None);
    }

    #[test]
    fn reads_a_node_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("meminfo"),
            "Node 1 MemTotal:        2097152 kB\nNode 1 MemFree:         1048576 kB\nNode 1 MemUsed:         1048576 kB\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("numastat"), "numa_hit 5\nnuma_miss 1\n").unwrap();
        let n = read_node(dir.path(), 1, vec![2, 3]);
        assert_eq!((n.total_mib, n.free_mib), (2048, 1024));
        assert_eq!((n.numastat.hit, n.numastat.miss), (5, 1));
    }
}
