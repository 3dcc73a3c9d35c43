//! One look at the board: every node's figures, where the memory of the
//! largest and the placed processes is, sampled, and (with the scheduler
//! tracepoints attached) what kind of work every process does.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    time::Instant,
};

use nodus_common::numa::TaskCounts;

use super::{
    class::{self, Behaviour, Class},
    homes::{DeviceUsers, Homes, Matcher, Reason},
    kernel::KernelCounts,
    nodes::{self, CpuTime, Migrations, NodeLook},
    pages, procs,
};

/// One process's locality.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcLook {
    /// Its pid.
    pub pid: u32,
    /// Its start time (with the pid, who it is).
    pub start: u64,
    /// Its name.
    pub comm: String,
    /// Resident memory, MiB.
    pub rss_mib: u64,
    /// The node of the CPU it last ran on.
    pub ran_on: Option<u32>,
    /// Where it belongs and why.
    pub home: Option<(u32, Reason)>,
    /// Sampled present pages per node (in `Homes::nodes` order).
    pub by_node: Vec<u64>,
    /// What the scheduler did to it since the last look (with the
    /// scheduler tracepoints attached).
    pub behaviour: Option<Behaviour>,
}

impl ProcLook {
    /// Sampled pages that were present.
    pub fn sampled(&self) -> u64 {
        self.by_node.iter().sum()
    }

    /// The share of its sampled pages on `node`, percent.
    pub fn pct_on(&self, homes: &Homes, node: u32) -> Option<f64> {
        let i = homes.index_of(node)?;
        let n = self.sampled();
        (n > 0).then(|| self.by_node[i] as f64 * 100.0 / n as f64)
    }

    /// The share on its home node, or (without one) on the node it runs on.
    pub fn local_pct(&self, homes: &Homes) -> Option<f64> {
        let node = self.home.as_ref().map(|(n, _)| *n).or(self.ran_on)?;
        self.pct_on(homes, node)
    }
}

/// The board at one look.
#[derive(Clone, Debug, Default)]
pub struct Look {
    /// Each node.
    pub nodes: Vec<NodeLook>,
    /// The kernel's migration counters.
    pub migrations: Migrations,
    /// The kernel's automatic balancing mode (`None`: not built in).
    pub kernel_balancing: Option<u32>,
    /// User processes seen.
    pub processes: usize,
    /// Processes with a home node.
    pub placed: usize,
    /// The processes looked at closely: the placed ones (largest first,
    /// up to the config's count), then the largest others.
    pub procs: Vec<ProcLook>,
    /// CPU time the look took (this thread's, so time the board's other
    /// work had the CPU is not counted), µs.
    pub cpu_us: u64,
    /// What the scheduler tracepoints saw; `None` without them.
    pub scheduling: Option<Scheduling>,
    /// Every user process's class (empty without the tracepoints).
    pub classes: HashMap<u32, Class>,
}

/// What the scheduler tracepoints saw, over every user process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scheduling {
    /// Processes in each class at this look: latency, batch, idle.
    pub classes: [usize; 3],
    /// CPU migrations of user processes' threads since start.
    pub migrations: u64,
    /// Of which to another node.
    pub node_migrations: u64,
    /// Accelerator opens the kernel could not report (its ring was full).
    pub opens_lost: u64,
}

/// What a look keeps for the next one.
pub struct Observer {
    cpu_times: BTreeMap<u32, CpuTime>,
    kernel: Option<KernelCounts>,
    counted: HashMap<u32, TaskCounts>,
    counted_at: Instant,
    totals: Scheduling,
}

/// How much to look at.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Largest processes besides the placed ones.
    pub top: usize,
    /// Placed processes.
    pub placed: usize,
    /// Addresses sampled per process.
    pub samples: usize,
    /// The smallest resident size looked at closely, in pages.
    pub min_rss_pages: u64,
}

impl Observer {
    /// An observer whose first look already has CPU times (and, with
    /// `kernel`, scheduler counts) to compare with.
    pub fn from_now(kernel: Option<KernelCounts>) -> Observer {
        Observer {
            cpu_times: nodes::parse_cpu_times(
                &std::fs::read_to_string("/proc/stat").unwrap_or_default(),
            ),
            counted: kernel
                .as_ref()
                .map(KernelCounts::counts)
                .unwrap_or_default(),
            counted_at: Instant::now(),
            kernel,
            totals: Scheduling::default(),
        }
    }

    /// Each process's behaviour since the last look, and the totals.
    fn behaviours(&mut self, all: &[procs::Proc]) -> Option<HashMap<u32, Behaviour>> {
        let kernel = self.kernel.as_ref()?;
        let mut now = kernel.counts();
        // A run that ended between the two reads of `counts` is missing
        // from this one: hold the run time where it was (a process whose
        // switches went backwards is a new one under a reused pid).
        for (pid, c) in &mut now {
            if let Some(before) = self.counted.get(pid)
                && c.runs >= before.runs
            {
                c.run_ns = c.run_ns.max(before.run_ns);
            }
        }
        let elapsed = self.counted_at.elapsed().as_nanos() as u64;
        self.counted_at = Instant::now();
        let zero = TaskCounts::default();
        let mut out = HashMap::with_capacity(all.len());
        let mut classes = [0; 3];
        for p in all {
            let b = match now.get(&p.pid) {
                Some(c) => class::behaviour(self.counted.get(&p.pid).unwrap_or(&zero), c, elapsed),
                None => class::behaviour(&zero, &zero, elapsed),
            };
            classes[match b.class {
                Class::Latency => 0,
                Class::Batch => 1,
                Class::Idle => 2,
            }] += 1;
            self.totals.migrations += b.migrations;
            self.totals.node_migrations += b.node_migrations;
            out.insert(p.pid, b);
        }
        self.totals.classes = classes;
        self.totals.opens_lost = kernel.drops();
        self.counted = now;
        Some(out)
    }

    /// Looks at the board; `users`: the processes that opened an
    /// accelerator.
    pub fn look(&mut self, homes: &Homes, bounds: Bounds, users: &DeviceUsers) -> Look {
        let began = thread_cpu_us();
        let times =
            nodes::parse_cpu_times(&std::fs::read_to_string("/proc/stat").unwrap_or_default());
        let nodes = homes
            .nodes
            .iter()
            .map(|(id, cpus)| {
                let dir = Path::new("/sys/devices/system/node").join(format!("node{id}"));
                let mut n = nodes::read_node(&dir, *id, cpus.clone());
                n.busy_pct = nodes::busy_pct(cpus, &self.cpu_times, &times);
                n
            })
            .collect();
        self.cpu_times = times;
        let migrations =
            nodes::parse_vmstat(&std::fs::read_to_string("/proc/vmstat").unwrap_or_default());
        let mut all = procs::scan();
        all.sort_by(|a, b| b.rss_pages.cmp(&a.rss_pages));
        let behaviours = self.behaviours(&all);
        let classes: HashMap<u32, Class> = behaviours
            .iter()
            .flatten()
            .map(|(pid, b)| (*pid, b.class))
            .collect();
        let matcher = Matcher::new(homes, std::process::id())
            .with_users(users)
            .with_classes(&classes);
        let homed: Vec<_> = all
            .iter()
            .map(|p| matcher.home_of(p, p.rss_pages >= bounds.min_rss_pages))
            .collect();
        let placed = homed.iter().filter(|h| h.is_some()).count();
        let big = all.partition_point(|p| p.rss_pages >= bounds.min_rss_pages);
        let mut chosen: Vec<usize> = (0..big)
            .filter(|&i| homed[i].is_some())
            .take(bounds.placed)
            .collect();
        chosen.extend((0..big).filter(|&i| homed[i].is_none()).take(bounds.top));
        let page = pages::page_size();
        let procs = chosen
            .into_iter()
            .map(|i| {
                let p = &all[i];
                let by_node = pages::ranges_of(p.pid)
                    .map(|r| pages::spread(&r, bounds.samples.min(p.rss_pages as usize), page))
                    .and_then(|a| pages::where_are(p.pid, &a))
                    .map(|s| pages::count_by_node_ids(&s, homes))
                    .unwrap_or_else(|_| vec![0; homes.nodes.len()]);
                ProcLook {
                    pid: p.pid,
                    start: p.start,
                    comm: p.comm.clone(),
                    rss_mib: p.rss_pages * page / (1 << 20),
                    ran_on: homes.node_of_cpu(p.cpu),
                    home: homed[i].clone(),
                    by_node,
                    behaviour: behaviours.as_ref().and_then(|b| b.get(&p.pid).copied()),
                }
            })
            .collect();
        Look {
            nodes,
            migrations,
            kernel_balancing: nodes::kernel_balancing(),
            processes: all.len(),
            placed,
            procs,
            cpu_us: thread_cpu_us().saturating_sub(began),
            scheduling: behaviours.as_ref().map(|_| self.totals.clone()),
            classes,
        }
    }
}

/// This thread's CPU time, µs: what a look costs, whatever else ran.
pub fn thread_cpu_us() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0)
}
