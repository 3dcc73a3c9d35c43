//! The last look, typed, for `nodus top` (the control socket's `numa`
//! request).
//!
//! The status stats are sentences for a person reading `nodus status`;
//! `nodus top` draws bars and sorts columns, so it takes numbers. The loop
//! publishes one of these after every look into a slot the daemon holds
//! (`Shared`), and the daemon answers from the slot without asking the
//! component: a busy look never delays the answer.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{homes::Homes, look::Look, mover::Tally};

/// Where the loop leaves its last view and the daemon reads it.
pub type ViewSlot = Arc<Mutex<Option<NumaView>>>;

/// The board at the last look.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NumaView {
    /// Who moves memory between nodes (as the `balancing` stat says).
    pub balancing: String,
    /// Each node.
    pub nodes: Vec<NodeView>,
    /// The placed processes, then the largest others.
    pub processes: Vec<ProcessView>,
    /// User processes seen.
    pub processes_seen: usize,
    /// User processes in each class; absent without the scheduler
    /// tracepoints.
    pub classes: Option<ClassCounts>,
    /// Moves of a user thread to another CPU since start.
    pub task_migrations: u64,
    /// Of those, to a CPU of another node.
    pub task_node_migrations: u64,
    /// Pages nodus moved home since start.
    pub pages_moved: u64,
    /// The look's own CPU time, µs.
    pub look_cpu_us: u64,
    /// What the kernel does not give this component (the scheduler
    /// tracepoints, accelerator opens, hardware counters), and why.
    pub missing: Vec<String>,
}

/// One node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// Node id.
    pub id: u32,
    /// Its CPUs (`2-3`).
    pub cpus: String,
    /// Its CPUs' busy share over the last interval, percent.
    pub busy_pct: Option<f64>,
    /// Memory used, MiB.
    pub used_mib: u64,
    /// Memory, MiB.
    pub total_mib: u64,
    /// Allocations satisfied here as intended (`numa_hit`).
    pub numa_hit: u64,
    /// Allocations that wanted another node and got this one (`numa_miss`).
    pub numa_miss: u64,
}

/// Processes per workload class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassCounts {
    /// Short runs ending in sleeps.
    pub latency: usize,
    /// Runs until preempted, or long runs.
    pub batch: usize,
    /// Under 1 % of a CPU.
    pub idle: usize,
}

/// One process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessView {
    /// Its pid.
    pub pid: u32,
    /// Its name, as the kernel has it (not yet made safe for a terminal).
    pub comm: String,
    /// Resident memory, MiB.
    pub rss_mib: u64,
    /// The share of its sampled pages on each node, percent, in node
    /// order; empty when no page was sampled.
    pub pages_pct: Vec<NodeShare>,
    /// The node it last ran on.
    pub runs_on: Option<u32>,
    /// The node it belongs on.
    pub home: Option<u32>,
    /// Why it belongs there (`layer critical`, `device npu0`).
    pub home_reason: Option<String>,
    /// Pages nodus moved home for it.
    pub pages_moved: u64,
    /// Its workload class, with the scheduler tracepoints.
    pub class: Option<String>,
    /// Its CPU share over the interval, percent of one CPU.
    pub cpu_pct: Option<f64>,
    /// Moves of its threads to another CPU over the interval.
    pub migrations: u64,
    /// Of those, to another node.
    pub node_migrations: u64,
    /// Instructions per cycle over the interval, where the CPU's counters
    /// are read.
    #[serde(default)]
    pub ipc: Option<f64>,
    /// Cache misses per thousand instructions over the interval, where
    /// counted.
    #[serde(default)]
    pub cache_misses_per_kilo_instruction: Option<f64>,
}

/// A share of pages on one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeShare {
    /// Node id.
    pub node: u32,
    /// Percent of the sampled pages.
    pub pct: f64,
}

impl ProcessView {
    /// The share on its home node, or (without one) on the node it runs
    /// on: what "local" means for it.
    pub fn local_pct(&self) -> Option<f64> {
        let node = self.home.or(self.runs_on)?;
        self.pages_pct
            .iter()
            .find(|s| s.node == node)
            .map(|s| s.pct)
    }
}

impl NumaView {
    /// The view of `look`.
    pub fn of(
        look: &Look,
        homes: &Homes,
        balancing: &str,
        tally: &Tally,
        missing: Vec<String>,
    ) -> NumaView {
        let scheduling = look.scheduling.as_ref();
        NumaView {
            balancing: balancing.to_owned(),
            nodes: look
                .nodes
                .iter()
                .map(|n| NodeView {
                    id: n.id,
                    cpus: n
                        .cpus
                        .iter()
                        .copied()
                        .collect::<crate::board::CpuList>()
                        .to_string(),
                    busy_pct: n.busy_pct,
                    used_mib: n.total_mib.saturating_sub(n.free_mib),
                    total_mib: n.total_mib,
                    numa_hit: n.numastat.hit,
                    numa_miss: n.numastat.miss,
                })
                .collect(),
            processes: look
                .procs
                .iter()
                .map(|p| ProcessView {
                    pid: p.pid,
                    comm: p.comm.clone(),
                    rss_mib: p.rss_mib,
                    pages_pct: homes
                        .nodes
                        .iter()
                        .filter_map(|(id, _)| {
                            Some(NodeShare {
                                node: *id,
                                pct: p.pct_on(homes, *id)?,
                            })
                        })
                        .collect(),
                    runs_on: p.ran_on,
                    home: p.home.as_ref().map(|(n, _)| *n),
                    home_reason: p.home.as_ref().map(|(_, why)| why.to_string()),
                    pages_moved: tally.moved_by.get(&(p.pid, p.start)).copied().unwrap_or(0),
                    class: p.behaviour.as_ref().map(|b| b.class.name().to_owned()),
                    cpu_pct: p.behaviour.as_ref().map(|b| b.cpu_pct),
                    migrations: p.behaviour.as_ref().map_or(0, |b| b.migrations),
                    node_migrations: p.behaviour.as_ref().map_or(0, |b| b.node_migrations),
                    ipc: p.behaviour.as_ref().and_then(|b| b.ipc),
                    cache_misses_per_kilo_instruction: p
                        .behaviour
                        .as_ref()
                        .and_then(|b| b.misses_per_kilo_instruction),
                })
                .collect(),
            processes_seen: look.processes,
            classes: scheduling.map(|s| ClassCounts {
                latency: s.classes[0],
                batch: s.classes[1],
                idle: s.classes[2],
            }),
            task_migrations: scheduling.map_or(0, |s| s.migrations),
            task_node_migrations: scheduling.map_or(0, |s| s.node_migrations),
            pages_moved: tally.moved,
            look_cpu_us: look.cpu_us,
            missing,
        }
    }
}
