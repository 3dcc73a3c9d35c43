//! The topology the kernel reports in sysfs: NUMA nodes, their CPUs, memory
//! and distances. Read from a configurable root so tests can use a fixture.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::CpuList;

/// One NUMA node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaNode {
    /// The node number.
    pub id: u32,
    /// Its CPUs.
    pub cpus: CpuList,
    /// Its memory, in MiB (0 for a CPU-only node).
    pub memory_mib: u64,
    /// SLIT distances to every node, in node order.
    pub distances: Vec<u32>,
}

/// A set of CPUs that share something (a cluster, a cache instance).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuGroup {
    /// Cache level, or 0 for a cluster.
    pub level: u8,
    /// The CPUs.
    pub cpus: CpuList,
}

/// How the board identifies itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Device-tree `compatible` strings, most specific first.
    pub compatible: Vec<String>,
    /// DMI product name, on ACPI machines.
    pub dmi_product: Option<String>,
    /// Distinct MIDR part numbers of the CPUs (`0xd4f`).
    pub cpu_parts: Vec<String>,
    /// MIDR part number of each CPU, where sysfs exposes `midr_el1` (arm64).
    pub part_of_cpu: std::collections::BTreeMap<u32, String>,
}

/// What the kernel says the machine is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// NUMA nodes in id order; a non-NUMA machine reports one node.
    pub nodes: Vec<NumaNode>,
    /// Online CPUs.
    pub online_cpus: CpuList,
    /// Clusters (`topology/cluster_cpus_list`), distinct, by first CPU.
    pub clusters: Vec<CpuGroup>,
    /// Shared caches of level 2 and up (`cache/index*/shared_cpu_list`).
    pub caches: Vec<CpuGroup>,
    /// `cpu_capacity` per CPU where the kernel reports it (big.LITTLE).
    pub capacity: Vec<(u32, u32)>,
    /// Identity strings.
    pub identity: Identity,
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct TopologyError {
    path: PathBuf,
    reason: String,
}

fn read(path: &Path) -> Result<String, TopologyError> {
    fs::read_to_string(path).map_err(|e| TopologyError {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn cpulist(path: &Path) -> Result<CpuList, TopologyError> {
    read(path)?
        .parse()
        .map_err(|e: super::CpuListError| TopologyError {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
impl Topology {
    /// The QEMU board's shape for unit tests: node 0 = CPUs 0-1, node 1 =
    /// CPUs 2-3, 1 GiB each.
    pub fn two_nodes() -> Topology {
        let node = |id: u32, cpus: &str| NumaNode {
            id,
            cpus: cpus.parse().expect("cpus"),
            memory_mib: 1024,
            distances: vec![10, 20],
        };
        Topology {
            nodes: vec![node(0, "0-1"), node(1, "2-3")],
            online_cpus: "0-3".parse().expect("cpus"),
            clusters: vec![],
            caches: vec![],
            capacity: vec![],
            identity: Default::default(),
        }
    }
}

impl Topology {
    /// Reads the running machine's topology from `/sys` and `/proc`.
    pub fn discover() -> Result<Topology, TopologyError> {
        Topology::discover_at(Path::new("/"))
    }

    /// Reads the topology from `root/sys` and `root/proc` (tests use a fixture).
    pub fn discover_at(root: &Path) -> Result<Topology, TopologyError> {
        let sys = &root.join("sys");
        let online_cpus = cpulist(&sys.join("devices/system/cpu/online"))?;
        let node_dir = sys.join("devices/system/node");
        let mut ids = node_ids(&node_dir).map_err(|e| TopologyError {
            path: node_dir.clone(),
            reason: e.to_string(),
        })?;
        ids.sort_unstable();
        let mut nodes = Vec::new();
        for id in ids {
            let dir = node_dir.join(format!("node{id}"));
            let distances = read(&dir.join("distance"))?
                .split_whitespace()
                .filter_map(|d| d.parse().ok())
                .collect();
            nodes.push(NumaNode {
                id,
                cpus: cpulist(&dir.join("cpulist"))?,
                memory_mib: node_memory_mib(&dir.join("meminfo")).unwrap_or(0),
                distances,
            });
        }
        if nodes.is_empty() {
            // Kernels without CONFIG_NUMA have no node directory: one node.
            nodes.push(NumaNode {
                id: 0,
                cpus: online_cpus.clone(),
                memory_mib: 0,
                distances: vec![10],
            });
        }
        let cpu_dir = sys.join("devices/system/cpu");
        let (clusters, caches, capacity) = cpu_groups(&cpu_dir, &online_cpus);
        let identity = Identity {
            compatible: device_tree_compatible(sys),
            dmi_product: fs::read_to_string(sys.join("class/dmi/id/product_name"))
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            cpu_parts: cpu_parts(&root.join("proc/cpuinfo")),
            part_of_cpu: online_cpus
                .cpus()
                .filter_map(|c| Some((c, midr_part(&cpu_dir.join(format!("cpu{c}")))?)))
                .collect(),
        };
        Ok(Topology {
            nodes,
            online_cpus,
            clusters,
            caches,
            capacity,
            identity,
        })
    }

    /// The node a CPU belongs to.
    pub fn node_of(&self, cpu: u32) -> Option<u32> {
        self.nodes
            .iter()
            .find(|n| n.cpus.cpus().any(|c| c == cpu))
            .map(|n| n.id)
    }

    /// `2 nodes: node0 cpus 0-1 (1024 MiB), node1 cpus 2-3 (1024 MiB)`.
    pub fn summary(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("node{} cpus {} ({} MiB)", n.id, n.cpus, n.memory_mib))
            .collect();
        let plural = if self.nodes.len() == 1 { "" } else { "s" };
        format!("{} node{plural}: {}", self.nodes.len(), nodes.join(", "))
    }
}

type Groups = (Vec<CpuGroup>, Vec<CpuGroup>, Vec<(u32, u32)>);

/// Clusters, shared caches and capacities from each online CPU's directory.
/// Missing files are normal (x86 has no cluster_cpus_list on old kernels, VMs
/// often have no cache directories): what is absent is simply not reported.
fn cpu_groups(cpu_dir: &Path, online: &CpuList) -> Groups {
    let mut clusters: Vec<CpuGroup> = Vec::new();
    let mut caches: Vec<CpuGroup> = Vec::new();
    let mut capacity = Vec::new();
    let add = |list: &mut Vec<CpuGroup>, level: u8, path: &Path| {
        if let Ok(cpus) = cpulist(path)
            && !list.iter().any(|g| g.level == level && g.cpus == cpus)
        {
            list.push(CpuGroup { level, cpus });
        }
    };
    for cpu in online.cpus() {
        let dir = cpu_dir.join(format!("cpu{cpu}"));
        add(&mut clusters, 0, &dir.join("topology/cluster_cpus_list"));
        for index in 0..8 {
            let idx = dir.join(format!("cache/index{index}"));
            let Ok(level) = fs::read_to_string(idx.join("level")) else {
                break;
            };
            let level: u8 = level.trim().parse().unwrap_or(0);
            let kind = fs::read_to_string(idx.join("type")).unwrap_or_default();
            if level >= 2 && kind.trim() != "Instruction" {
                add(&mut caches, level, &idx.join("shared_cpu_list"));
            }
        }
        if let Some(c) = fs::read_to_string(dir.join("cpu_capacity"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            capacity.push((cpu, c));
        }
    }
    (clusters, caches, capacity)
}

/// The part number field (bits 15:4) of a CPU's MIDR_EL1, as `0xd81`.
fn midr_part(cpu_dir: &Path) -> Option<String> {
    let text = fs::read_to_string(cpu_dir.join("regs/identification/midr_el1")).ok()?;
    let midr = u64::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()?;
    Some(format!("0x{:03x}", (midr >> 4) & 0xfff))
}

fn device_tree_compatible(sys: &Path) -> Vec<String> {
    let path = sys.join("firmware/devicetree/base/compatible");
    fs::read(path)
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Distinct `CPU part` values from /proc/cpuinfo (arm64 only; empty elsewhere).
fn cpu_parts(cpuinfo: &Path) -> Vec<String> {
    let mut parts: Vec<String> = fs::read_to_string(cpuinfo)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("CPU part"))
        .filter_map(|v| v.split(':').nth(1))
        .map(|v| v.trim().to_lowercase())
        .collect();
    parts.sort();
    parts.dedup();
    parts
}

fn node_ids(dir: &Path) -> io::Result<Vec<u32>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_prefix("node"))
            .and_then(|n| n.parse().ok())
        {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// `Node 0 MemTotal:  1015800 kB` -> MiB.
fn node_memory_mib(path: &Path) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.contains("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().rev().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn reads_a_two_node_board() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "sys/devices/system/cpu/online", "0-3\n");
        write(r, "sys/devices/system/node/node0/cpulist", "0-1\n");
        write(r, "sys/devices/system/node/node0/distance", "10 20\n");
        write(
            r,
            "sys/devices/system/node/node0/meminfo",
            "Node 0 MemTotal:       1048576 kB\n",
        );
        write(r, "sys/devices/system/node/node1/cpulist", "2-3\n");
        write(r, "sys/devices/system/node/node1/distance", "20 10\n");
        write(
            r,
            "sys/devices/system/node/node1/meminfo",
            "Node 1 MemTotal:       1048576 kB\n",
        );
        for cpu in 0..4 {
            let d = format!("sys/devices/system/cpu/cpu{cpu}");
            let pair = if cpu < 2 { "0-1" } else { "2-3" };
            write(r, &format!("{d}/topology/cluster_cpus_list"), pair);
            write(r, &format!("{d}/cache/index0/level"), "1");
            write(r, &format!("{d}/cache/index0/type"), "Data");
            write(
                r,
                &format!("{d}/cache/index0/shared_cpu_list"),
                &cpu.to_string(),
            );
            write(r, &format!("{d}/cache/index1/level"), "2");
            write(r, &format!("{d}/cache/index1/type"), "Unified");
            write(r, &format!("{d}/cache/index1/shared_cpu_list"), pair);
            write(
                r,
                &format!("{d}/cpu_capacity"),
                if cpu < 2 { "1024" } else { "512" },
            );
            let midr = if cpu < 2 {
                "0x00000000410fd811"
            } else {
                "0x00000000410fd801"
            };
            write(r, &format!("{d}/regs/identification/midr_el1"), midr);
        }
        write(
            r,
            "sys/firmware/devicetree/base/compatible",
            "radxa,orion-o6\0cix,sky1\0",
        );
        write(
            r,
            "proc/cpuinfo",
            "CPU part\t: 0xd81\n\nCPU part\t: 0xD80\nCPU part\t: 0xd81\n",
        );
        let topo = Topology::discover_at(r).unwrap();
        assert_eq!(topo.clusters.len(), 2);
        assert_eq!(topo.clusters[1].cpus.to_string(), "2-3");
        assert_eq!(topo.caches.len(), 2, "L1 is per-core and not reported");
        assert_eq!(topo.caches[0].level, 2);
        assert_eq!(
            topo.capacity,
            vec![(0, 1024), (1, 1024), (2, 512), (3, 512)]
        );
        assert_eq!(topo.identity.compatible, vec!["radxa,orion-o6", "cix,sky1"]);
        assert_eq!(topo.identity.cpu_parts, vec!["0xd80", "0xd81"]);
        assert_eq!(
            topo.identity.part_of_cpu.get(&0).map(String::as_str),
            Some("0xd81")
        );
        assert_eq!(
            topo.identity.part_of_cpu.get(&3).map(String::as_str),
            Some("0xd80")
        );
        assert_eq!(topo.node_of(3), Some(1));
        assert_eq!(topo.nodes.len(), 2);
        assert_eq!(topo.nodes[1].cpus.to_string(), "2-3");
        assert_eq!(topo.nodes[0].distances, vec![10, 20]);
        assert_eq!(topo.nodes[0].memory_mib, 1024);
        assert_eq!(
            topo.summary(),
            "2 nodes: node0 cpus 0-1 (1024 MiB), node1 cpus 2-3 (1024 MiB)"
        );
    }

    #[test]
    fn a_kernel_without_numa_is_one_node() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "sys/devices/system/cpu/online", "0-1\n");
        let topo = Topology::discover_at(t.path()).unwrap();
        assert_eq!(topo.nodes.len(), 1);
        assert_eq!(topo.nodes[0].cpus.to_string(), "0-1");
    }

    #[test]
    fn a_corrupt_cpulist_names_the_file() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "sys/devices/system/cpu/online", "0-x\n");
        let e = Topology::discover_at(t.path()).unwrap_err().to_string();
        assert!(e.contains("sys/devices/system/cpu/online"), "{e}");
    }
}
