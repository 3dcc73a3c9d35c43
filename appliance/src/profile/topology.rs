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

/// What the kernel says the machine is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// NUMA nodes in id order; a non-NUMA machine reports one node.
    pub nodes: Vec<NumaNode>,
    /// Online CPUs.
    pub online_cpus: CpuList,
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

impl Topology {
    /// Reads the running machine's topology from `/sys`.
    pub fn discover() -> Result<Topology, TopologyError> {
        Topology::discover_at(Path::new("/sys"))
    }

    /// Reads the topology from a sysfs tree rooted at `sys`.
    pub fn discover_at(sys: &Path) -> Result<Topology, TopologyError> {
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
        Ok(Topology { nodes, online_cpus })
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
        write(r, "devices/system/cpu/online", "0-3\n");
        write(r, "devices/system/node/node0/cpulist", "0-1\n");
        write(r, "devices/system/node/node0/distance", "10 20\n");
        write(
            r,
            "devices/system/node/node0/meminfo",
            "Node 0 MemTotal:       1048576 kB\n",
        );
        write(r, "devices/system/node/node1/cpulist", "2-3\n");
        write(r, "devices/system/node/node1/distance", "20 10\n");
        write(
            r,
            "devices/system/node/node1/meminfo",
            "Node 1 MemTotal:       1048576 kB\n",
        );
        write(r, "devices/system/node/possible", "0-1\n");
        let topo = Topology::discover_at(r).unwrap();
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
        write(t.path(), "devices/system/cpu/online", "0-1\n");
        let topo = Topology::discover_at(t.path()).unwrap();
        assert_eq!(topo.nodes.len(), 1);
        assert_eq!(topo.nodes[0].cpus.to_string(), "0-1");
    }

    #[test]
    fn a_corrupt_cpulist_names_the_file() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "devices/system/cpu/online", "0-x\n");
        let e = Topology::discover_at(t.path()).unwrap_err().to_string();
        assert!(e.contains("devices/system/cpu/online"), "{e}");
    }
}
