//! The `numa` component: looks at the nodes and the processes every
//! interval, reports where memory is and what kind of work each process
//! does, moves placed processes' pages home when nodus, not the kernel, is
//! in charge of balancing, and places a process on its accelerator's node
//! the moment the kernel reports it opened the device.

use std::{
    collections::HashMap,
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use nodus_common::numa::{DeviceOpen, kernel_dev};
use tokio::{io::unix::AsyncFd, sync::watch};

use super::{
    NumaConfig,
    counters::Counting,
    homes::{DeviceUsers, Homes},
    kernel::{self, DeviceWatch, KernelCounts},
    look::{Bounds, Look, Observer},
    mover::{Mover, Tally},
    pages, place, procs,
    view::{NumaView, ViewSlot},
};
use crate::{
    probe::Feature,
    supervisor::{
        BEAT_INTERVAL, BoxFuture, Component, ComponentContext, Counter, Float, Gauge, Health,
        MainLoop, Maybe, StartError, StatSet, Stats, Text,
    },
    sync::lock,
    workload::{Work, WorkloadTable},
};

crate::stats! {
    /// What the NUMA locality component reports.
    pub struct NumaStats {
        /// Who moves memory between nodes: `nodus (256 MiB/s)`, `kernel
        /// (kernel.numa_balancing=1)` (nodus then only observes), `nobody
        /// (numa.migrate = false)`, or `one node` (nothing to balance).
        balancing: Text,
        /// Each node: its CPUs' busy share over the last interval, memory
        /// used of total, and the allocator's counters since boot
        /// (`node1: cpus 2-3 12% busy, 310/1024 MiB used, hit 81234 miss 0
        /// foreign 0 local 80012 other 1222`).
        nodes: Text,
        /// The placed processes, then the largest others: resident MiB,
        /// the share of their sampled pages on each node, the node they
        /// last ran on, their home and why, and pages nodus moved
        /// (`touch 812: 64 MiB, node0 2% node1 98%, runs on node1, home
        /// node1 (layer critical), 16022 pages moved`).
        processes: Text,
        /// User processes seen at the last look.
        processes_seen: Gauge,
        /// Processes with a home node: by the profile (placement, a layer
        /// on one node) or, for those of `min_rss_mib` and more, a CPU
        /// affinity within one node.
        placed: Gauge,
        /// Of the placed processes looked at, the share of their sampled
        /// pages on their home node, weighted by resident size; absent
        /// before the first look or with none placed.
        placed_local_pct: Maybe<Float>,
        /// Pages nodus moved to their home node since start.
        pages_moved: Counter,
        /// Pages the kernel refused to move (busy, pinned, or no room on
        /// the node).
        pages_refused: Counter,
        /// Misplaced pages left in place because other processes map them
        /// too (shared libraries, copy-on-write pages after a fork).
        pages_shared: Counter,
        /// Pages the kernel migrated since boot, by anyone
        /// (`pgmigrate_success`).
        kernel_pages_migrated: Counter,
        /// Pages the kernel's automatic NUMA balancing migrated since boot
        /// (`numa_pages_migrated`).
        balancing_pages_migrated: Counter,
        /// The last look's CPU time: nodes, every process's stat, and the
        /// sampled page queries, µs (moving pages not included).
        look_cpu_us: Maybe<Gauge>,
        /// User processes in each workload class at the last look, from
        /// what the scheduler did to them over the interval (`latency 3,
        /// batch 2, idle 140`): latency, short runs ending in sleeps;
        /// batch, runs until preempted or 10 ms and more; idle, under 1 %
        /// of a CPU. Empty without the scheduler tracepoints.
        classes: Text,
        /// Times a user process's thread moved to another CPU since start
        /// (`sched_migrate_task`).
        task_migrations: Counter,
        /// Of those, moves to a CPU of another node.
        task_node_migrations: Counter,
        /// The profile's accelerators (a `[[device]]` with a device node)
        /// and the processes that opened each, placed on its node
        /// (`npu0 /dev/accel/accel0 node1: infer 412 (2 threads pinned to
        /// cpus 2-3)`); an absent device says so.
        accelerators: Text,
        /// How the accelerators' opens are seen: `fexit on chrdev_open`,
        /// `kprobes on chrdev_open (fexit: why not)` (kprobes need
        /// perf_event_open, which the shipped service unit denies), `not
        /// seen: why`, or `no accelerator to watch`.
        accelerator_watch: Text,
        /// Successful opens of a watched accelerator since start.
        accelerator_opens: Counter,
        /// Opens the kernel saw but could not report (its event ring was
        /// full): their processes were not placed.
        accelerator_opens_lost: Counter,
        /// The CPU's hardware counters read per process (IPC and cache
        /// misses per 1000 instructions in `processes`): `instructions,
        /// cycles counted per process on 4 cpus` with any event the PMU
        /// refused; `none: why` without a PMU counting instructions (most
        /// VMs, a TCG board without -icount); `not read: why` where the PMU
        /// is there but no counter opened (the shipped service unit denies
        /// perf_event_open).
        hardware_counters: Text,
    }
}

/// What the loop knows, for `stats()` and `health()`.
#[derive(Default)]
struct Measures {
    look: Option<Look>,
    balancing: String,
    tally: Tally,
    last_error: Option<String>,
    /// Why the scheduler tracepoints or the device probes are missing.
    kernel_missing: Option<String>,
    /// Each accelerator: its device number (None: absent) and its users.
    accelerators: Vec<Accelerator>,
    accelerator_opens: u64,
    /// What `accelerator_watch` says.
    watch: String,
    /// What `hardware_counters` says.
    counters: Counting,
}

/// One watched accelerator and who uses it.
#[derive(Clone, Debug, Default)]
struct Accelerator {
    /// Kernel encoding; `None`: no such device node here.
    rdev: Option<u32>,
    /// `name pid (what was done)`, the latest last.
    users: Vec<String>,
}

/// The supervised locality component.
pub struct Numa {
    config: NumaConfig,
    homes: Arc<Homes>,
    measures: Arc<Mutex<Measures>>,
    view: ViewSlot,
    workloads: WorkloadTable,
    running: Option<MainLoop>,
}

impl Numa {
    /// A component for `homes` (the active profile's, on this board) that
    /// leaves each look's view in `view` (for `nodus top`) and each
    /// process's class and accelerator in `workloads` (for the scheduler's
    /// layer rules).
    pub fn new(
        config: NumaConfig,
        homes: Arc<Homes>,
        view: ViewSlot,
        workloads: WorkloadTable,
    ) -> Numa {
        Numa {
            config,
            homes,
            measures: Arc::default(),
            view,
            workloads,
            running: None,
        }
    }
}

impl Component for Numa {
    fn name(&self) -> &'static str {
        "numa"
    }

    fn start(&mut self, ctx: ComponentContext) -> Result<(), StartError> {
        let shared = Published {
            view: self.view.clone(),
            workloads: self.workloads.clone(),
        };
        let (config, homes, measures) = (
            self.config.clone(),
            self.homes.clone(),
            self.measures.clone(),
        );
        self.running = Some(MainLoop::spawn(|stopped| {
            run(config, homes, measures, shared, ctx, stopped)
        }));
        Ok(())
    }

    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(running) = self.running.take() {
                running.stop().await;
            }
        })
    }

    fn health(&self) -> Health {
        if self.running.as_ref().is_none_or(MainLoop::is_finished) {
            return Health::Unavailable("main loop not running".into());
        }
        let m = lock(&self.measures);
        match (&m.last_error, &m.kernel_missing) {
            (Some(e), _) | (None, Some(e)) => Health::Degraded(e.clone()),
            (None, None) => Health::Healthy,
        }
    }

    fn stats(&self) -> Stats {
        let m = lock(&self.measures);
        let homes = &self.homes;
        let look = m.look.as_ref();
        let scheduling = look.and_then(|l| l.scheduling.as_ref());
        NumaStats {
            balancing: m.balancing.clone(),
            nodes: look.map(render_nodes).unwrap_or_default(),
            processes: look
                .map(|l| render_procs(l, homes, &m.tally.moved_by))
                .unwrap_or_default(),
            processes_seen: look.map_or(0, |l| l.processes as i64),
            placed: look.map_or(0, |l| l.placed as i64),
            placed_local_pct: look.and_then(|l| placed_local_pct(l, homes)),
            pages_moved: m.tally.moved,
            pages_refused: m.tally.refused,
            pages_shared: m.tally.shared,
            kernel_pages_migrated: look.map_or(0, |l| l.migrations.pages),
            balancing_pages_migrated: look.map_or(0, |l| l.migrations.balancing_pages),
            look_cpu_us: look.map(|l| l.cpu_us as i64),
            classes: scheduling
                .map(|s| {
                    format!(
                        "latency {}, batch {}, idle {}",
                        s.classes[0], s.classes[1], s.classes[2]
                    )
                })
                .unwrap_or_default(),
            task_migrations: scheduling.map_or(0, |s| s.migrations),
            task_node_migrations: scheduling.map_or(0, |s| s.node_migrations),
            accelerators: render_accelerators(homes, &m.accelerators),
            accelerator_watch: m.watch.clone(),
            accelerator_opens: m.accelerator_opens,
            accelerator_opens_lost: scheduling.map_or(0, |s| s.opens_lost),
            hardware_counters: m.counters.to_string(),
        }
        .to_stats()
    }
}

async fn run(
    config: NumaConfig,
    homes: Arc<Homes>,
    measures: Arc<Mutex<Measures>>,
    published: Published,
    ctx: ComponentContext,
    mut stopped: watch::Receiver<bool>,
) {
    let pmu = match ctx.kernel.features.get(&Feature::HardwareCounters) {
        Some(f) if f.available => Ok(()),
        Some(f) => Err(f
            .reason
            .clone()
            .unwrap_or_else(|| "the probe said unavailable".into())),
        None => Err("not probed".into()),
    };
    let mut beat = tokio::time::interval(BEAT_INTERVAL);
    let every = Duration::from_millis(config.interval_ms);
    let budget =
        config.migrate_mib_per_s * (1 << 20) / pages::page_size() * config.interval_ms / 1000;
    let bounds = Bounds {
        top: config.top,
        placed: config.placed,
        samples: config.samples,
        min_rss_pages: config.min_rss_mib * (1 << 20) / pages::page_size(),
    };
    // The kernel's BTF is parsed to load the programs: off the runtime.
    let attach = {
        let (homes, processes) = (homes.clone(), config.counted_processes);
        tokio::task::spawn_blocking(move || attach(&homes, processes, pmu))
    };
    let mut attach = std::pin::pin!(attach);
    let (counts, mut opens) = loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = beat.tick() => ctx.heartbeat.beat(),
            r = &mut attach => break r.unwrap_or_else(|e| Attached {
                missing: Some(format!("loading the numa programs panicked: {e}")),
                ..Attached::default()
            }),
        }
    }
    .record(&measures);
    let users: Arc<Mutex<DeviceUsers>> = Arc::default();
    let mut look_every = tokio::time::interval(every);
    look_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = Arc::new(Mutex::new((Observer::from_now(counts), Mover::default())));
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = beat.tick() => ctx.heartbeat.beat(),
            Some(mut ready) = readable(&mut opens) => {
                while let Some(open) = kernel::next_open(ready.get_inner_mut()) {
                    on_open(&open, &config, &homes, &users, &measures);
                }
                ready.clear_ready();
            }
            _ = look_every.tick() => {
                let (state, board, config, users) =
                    (state.clone(), homes.clone(), config.clone(), users.clone());
                let looked = tokio::task::spawn_blocking(move || {
                    let mut s = lock(&state);
                    let (observer, mover) = &mut *s;
                    let mut users = lock(&users);
                    // A user that exited (or whose pid is another's now)
                    // is forgotten.
                    users.retain(|pid, (start, _)| procs::start_of(*pid) == Some(*start));
                    let look = observer.look(&board, bounds, &users);
                    let work = workloads_of(&look, &board, &users);
                    drop(users);
                    let in_charge = in_charge(&config, &board, look.kernel_balancing);
                    if in_charge == InCharge::Nodus {
                        mover.act(&look, &board, budget.max(1), f64::from(config.local_target_pct));
                    }
                    let balancing = in_charge.describe(&config, look.kernel_balancing);
                    (look, balancing, mover.tally.clone(), mover.last_error.take(), work)
                });
                let mut looked = std::pin::pin!(looked);
                // Beats continue while the board is looked at.
                let result = loop {
                    tokio::select! {
                        r = &mut looked => break r,
                        _ = beat.tick() => ctx.heartbeat.beat(),
                    }
                };
                if let Ok((look, balancing, tally, error, work)) = result {
                    lock(&published.workloads).replace(work);
                    if let Some(e) = &error {
                        log::warn!("numa: {e}");
                    }
                    let mut m = lock(&measures);
                    let mut missing: Vec<String> = m.kernel_missing.iter().cloned().collect();
                    if m.counters.is_missing() {
                        missing.push(format!("hardware counters: {}", m.counters));
                    }
                    *lock(&published.view) = Some(NumaView::of(&look, &homes, &balancing, &tally, missing));
                    m.look = Some(look);
                    m.balancing = balancing;
                    m.tally = tally;
                    // An error stays in health until a look without one.
                    m.last_error = error;
                }
            }
        }
    }
}

/// Where the loop leaves what other parts of nodus read.
struct Published {
    /// Each look's view, for `nodus top`.
    view: ViewSlot,
    /// Each process's class and accelerator, for the scheduler.
    workloads: WorkloadTable,
}

/// Each process's class (from the look) and the accelerator it opened.
fn workloads_of(look: &Look, homes: &Homes, users: &DeviceUsers) -> HashMap<u32, Work> {
    let mut out: HashMap<u32, Work> = look
        .classes
        .iter()
        .map(|(pid, class)| {
            let work = Work {
                class: Some(*class),
                device: None,
            };
            (*pid, work)
        })
        .collect();
    for (pid, (_, i)) in users {
        if let Some(d) = homes.devices.get(*i) {
            out.entry(*pid).or_default().device = Some(d.name.clone());
        }
    }
    out
}

/// What loading the programs gave.
#[derive(Default)]
struct Attached {
    counts: Option<KernelCounts>,
    opens: Option<AsyncFd<RingBuf<MapData>>>,
    accelerators: Vec<Accelerator>,
    watch: String,
    counting: Counting,
    missing: Option<String>,
}

impl Attached {
    /// Records what is missing and the accelerators in `measures`, logs
    /// it, and hands over the counts and the open events.
    fn record(
        self,
        measures: &Mutex<Measures>,
    ) -> (Option<KernelCounts>, Option<AsyncFd<RingBuf<MapData>>>) {
        if let Some(why) = &self.missing {
            log::warn!("numa: {why}");
        }
        let mut m = lock(measures);
        m.kernel_missing = self.missing;
        m.accelerators = self.accelerators;
        m.watch = self.watch;
        m.counters = self.counting;
        (self.counts, self.opens)
    }
}

/// Loads and attaches the programs for `homes`'s CPUs and accelerators,
/// with the CPU's hardware counters where `pmu` says the probe found them.
fn attach(homes: &Homes, processes: u32, pmu: Result<(), String>) -> Attached {
    let cpu_nodes = homes.cpu_nodes();
    let accelerators: Vec<Accelerator> = homes
        .devices
        .iter()
        .map(|d| Accelerator {
            rdev: crate::board::char_device_number(&d.dev).map(|(ma, mi)| kernel_dev(ma, mi)),
            users: Vec::new(),
        })
        .collect();
    let watched: Vec<(u32, u32)> = accelerators
        .iter()
        .enumerate()
        .filter_map(|(i, a)| Some((a.rdev?, i as u32)))
        .collect();
    let attached = KernelCounts::attach(processes, &cpu_nodes, &watched, pmu.is_ok());
    let counting = match (pmu, &attached) {
        (Err(why), _) => Counting::NoPmu(why),
        (Ok(()), Ok(k)) => Counting::of(&k.counters),
        (Ok(()), Err(why)) => Counting::NotRead(format!("the numa programs did not load: {why}")),
    };
    match attached {
        Ok(mut k) => {
            if let Counting::Counted { refused, .. } = &counting {
                for (name, why) in refused {
                    log::warn!("numa: hardware counter {name} refused: {why}");
                }
            }
            let missing = k
                .device_watch
                .unavailable()
                .map(|why| format!("accelerator opens not seen: {why}"));
            if let DeviceWatch::Kprobes { no_fexit } = &k.device_watch {
                log::info!("numa: accelerator opens seen by kprobes (fexit: {no_fexit})");
            }
            let watch = k.device_watch.to_string();
            // SAFETY: the AsyncFd owns the ring buffer, so the descriptor
            // it registers stays open (and is the same one) for as long as
            // the AsyncFd exists.
            let registered = |ring| unsafe {
                AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE)
            };
            let opens = k.opens.take().and_then(|ring| match registered(ring) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    log::warn!("numa: polling the accelerator-open events: {e}");
                    None
                }
            });
            Attached {
                counts: Some(k),
                opens,
                accelerators,
                watch,
                counting,
                missing,
            }
        }
        Err(why) => Attached {
            counts: None,
            opens: None,
            accelerators,
            watch: format!("not seen: {why}"),
            counting,
            missing: Some(format!(
                "scheduler tracepoints and accelerator opens not seen: {why}"
            )),
        },
    }
}

/// Waits until the open events are readable; forever without them.
async fn readable(
    opens: &mut Option<AsyncFd<RingBuf<MapData>>>,
) -> Option<tokio::io::unix::AsyncFdReadyMutGuard<'_, RingBuf<MapData>>> {
    match opens {
        Some(fd) => fd.readable_mut().await.ok(),
        None => std::future::pending().await,
    }
}

/// A watched accelerator was opened: the process belongs on its node from
/// now on, and (when the config says so) is pinned there.
fn on_open(
    open: &DeviceOpen,
    config: &NumaConfig,
    homes: &Homes,
    users: &Mutex<DeviceUsers>,
    measures: &Mutex<Measures>,
) {
    let mut m = lock(measures);
    m.accelerator_opens += 1;
    let Some(i) = m
        .accelerators
        .iter()
        .position(|a| a.rdev == Some(open.rdev))
    else {
        return;
    };
    let Some(device) = homes.devices.get(i) else {
        return;
    };
    let Some(start) = procs::start_of(open.pid) else {
        return; // exited already
    };
    let fresh = lock(users).insert(open.pid, (start, i)) != Some((start, i));
    if !fresh {
        return; // another open by a process already placed
    }
    let name = String::from_utf8_lossy(open.comm.split(|&b| b == 0).next().unwrap_or_default());
    let comm = crate::terminal::printable(&name);
    let cpus = homes
        .nodes
        .iter()
        .find(|(n, _)| *n == device.node)
        .map(|(_, c)| c.clone())
        .unwrap_or_default();
    let cpu_list: crate::board::CpuList = cpus.iter().copied().collect();
    let done = if !config.place_accelerator_users {
        "not placed: numa.place_accelerator_users = false".to_owned()
    } else if cpus.is_empty() {
        format!("not placed: no CPUs on node{}", device.node)
    } else {
        match place::pin_process(open.pid, &cpus) {
            Ok(n) => format!("{n} threads pinned to cpus {cpu_list}"),
            Err(e) => {
                m.last_error = Some(format!("placing {comm} {}: {e}", open.pid));
                format!("not placed: {e}")
            }
        }
    };
    log::info!(
        "numa: {comm} {} opened {} ({}): home node{}, {done}",
        open.pid,
        device.name,
        device.dev.display(),
        device.node
    );
    let list = &mut m.accelerators[i].users;
    list.push(format!("{comm} {} ({done})", open.pid));
    // The latest few: a device reopened by short-lived clients all day
    // must not grow the status without bound.
    if list.len() > 8 {
        list.remove(0);
    }
}

fn render_accelerators(homes: &Homes, accelerators: &[Accelerator]) -> String {
    let mut out = String::new();
    for (d, a) in homes.devices.iter().zip(accelerators) {
        if !out.is_empty() {
            out.push_str("; ");
        }
        let _ = write!(out, "{} {} node{}: ", d.name, d.dev.display(), d.node);
        if a.rdev.is_none() {
            out.push_str("absent");
        } else if a.users.is_empty() {
            out.push_str("no users");
        } else {
            out.push_str(&a.users.join(", "));
        }
    }
    out
}

/// Who moves memory between nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InCharge {
    /// One node: nothing to move.
    OneNode,
    /// The kernel's automatic NUMA balancing is on: nodus does not fight it.
    Kernel,
    /// Migration is off in the config.
    Nobody,
    /// nodus moves placed processes' pages home.
    Nodus,
}

/// Who is in charge, given the config, the board and the kernel's mode.
pub fn in_charge(config: &NumaConfig, homes: &Homes, kernel: Option<u32>) -> InCharge {
    if !homes.numa() {
        InCharge::OneNode
    } else if kernel.unwrap_or(0) != 0 {
        InCharge::Kernel
    } else if !config.migrate {
        InCharge::Nobody
    } else {
        InCharge::Nodus
    }
}

impl InCharge {
    fn describe(self, config: &NumaConfig, kernel: Option<u32>) -> String {
        match self {
            InCharge::OneNode => "one node".into(),
            InCharge::Kernel => format!(
                "kernel (kernel.numa_balancing={}): nodus observes",
                kernel.unwrap_or(0)
            ),
            InCharge::Nobody => "nobody (numa.migrate = false)".into(),
            InCharge::Nodus => format!("nodus ({} MiB/s)", config.migrate_mib_per_s),
        }
    }
}

fn render_nodes(look: &Look) -> String {
    let mut out = String::new();
    for n in &look.nodes {
        if !out.is_empty() {
            out.push_str("; ");
        }
        let cpus: crate::board::CpuList = n.cpus.iter().copied().collect();
        let busy = n.busy_pct.map_or("-".into(), |b| format!("{b:.0}%"));
        let s = n.numastat;
        let _ = write!(
            out,
            "node{}: cpus {cpus} {busy} busy, {}/{} MiB used, hit {} miss {} foreign {} local {} other {}",
            n.id,
            n.total_mib.saturating_sub(n.free_mib),
            n.total_mib,
            s.hit,
            s.miss,
            s.foreign,
            s.local,
            s.other
        );
    }
    out
}

fn render_procs(
    look: &Look,
    homes: &Homes,
    moved_by: &std::collections::HashMap<(u32, u64), u64>,
) -> String {
    let mut out = String::new();
    for p in &look.procs {
        if !out.is_empty() {
            out.push_str("; ");
        }
        let comm = crate::terminal::printable(&p.comm);
        let _ = write!(out, "{comm} {}: {} MiB,", p.pid, p.rss_mib);
        if p.sampled() == 0 {
            out.push_str(" no pages sampled");
        }
        for (id, _) in homes.nodes.iter().filter(|_| p.sampled() > 0) {
            let pct = p.pct_on(homes, *id).unwrap_or(0.0);
            let _ = write!(out, " node{id} {pct:.0}%");
        }
        if let Some(n) = p.ran_on {
            let _ = write!(out, ", runs on node{n}");
        }
        if let Some((n, why)) = &p.home {
            let _ = write!(out, ", home node{n} ({why})");
        }
        if let Some(moved) = moved_by.get(&(p.pid, p.start)) {
            let _ = write!(out, ", {moved} pages moved");
        }
        if let Some(b) = &p.behaviour {
            let _ = write!(
                out,
                ", {} ({:.0}% cpu, runs {:.2} ms, {:.0} sleeps/s, waits {:.2} ms, {} migrations, {} across nodes)",
                b.class.name(),
                b.cpu_pct,
                b.run_us / 1000.0,
                b.sleeps_per_s,
                b.wait_us / 1000.0,
                b.migrations,
                b.node_migrations
            );
            if let Some(ipc) = b.ipc {
                let _ = write!(out, ", ipc {ipc:.2}");
            }
            if let Some(m) = b.misses_per_kilo_instruction {
                let _ = write!(out, ", {m:.1} cache misses per 1000 instructions");
            }
        }
    }
    out
}

fn placed_local_pct(look: &Look, homes: &Homes) -> Option<f64> {
    let (mut local, mut weight) = (0.0, 0.0);
    for p in look.procs.iter().filter(|p| p.home.is_some()) {
        if let Some(pct) = p.local_pct(homes) {
            let w = p.rss_mib.max(1) as f64;
            local += pct * w;
            weight += w;
        }
    }
    (weight > 0.0).then(|| local / weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_balancing_means_nodus_only_observes() {
        let two = Homes {
            nodes: vec![(0, vec![0, 1]), (1, vec![2, 3])],
            ..Homes::default()
        };
        let one = Homes {
            nodes: vec![(0, vec![0, 1])],
            ..Homes::default()
        };
        let on = NumaConfig {
            migrate: true,
            ..NumaConfig::default()
        };
        let off = NumaConfig {
            migrate: false,
            ..NumaConfig::default()
        };
        assert_eq!(in_charge(&on, &two, Some(0)), InCharge::Nodus);
        assert_eq!(in_charge(&on, &two, None), InCharge::Nodus);
        assert_eq!(in_charge(&on, &two, Some(1)), InCharge::Kernel);
        assert_eq!(in_charge(&on, &two, Some(2)), InCharge::Kernel);
        assert_eq!(in_charge(&off, &two, Some(0)), InCharge::Nobody);
        assert_eq!(in_charge(&on, &one, Some(0)), InCharge::OneNode);
        assert_eq!(
            InCharge::Kernel.describe(&on, Some(1)),
            "kernel (kernel.numa_balancing=1): nodus observes"
        );
    }
}
