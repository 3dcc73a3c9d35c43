//! The `numa` component: looks at the nodes and the processes every
//! interval, reports where memory is, and moves placed processes' pages
//! home when nodus, not the kernel, is in charge of balancing.

use std::{
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::watch;

use super::{
    NumaConfig,
    homes::Homes,
    look::{Bounds, Look, Observer},
    mover::{Mover, Tally},
    pages,
};
use crate::{
    supervisor::{
        BEAT_INTERVAL, BoxFuture, Component, ComponentContext, Counter, Float, Gauge, Health,
        MainLoop, Maybe, StartError, StatSet, Stats, Text,
    },
    sync::lock,
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
    }
}

/// What the loop knows, for `stats()` and `health()`.
#[derive(Default)]
struct Measures {
    look: Option<Look>,
    balancing: String,
    tally: Tally,
    last_error: Option<String>,
}

/// The supervised locality component.
pub struct Numa {
    config: NumaConfig,
    homes: Arc<Homes>,
    measures: Arc<Mutex<Measures>>,
    running: Option<MainLoop>,
}

impl Numa {
    /// A component for `homes` (the active profile's, on this board).
    pub fn new(config: NumaConfig, homes: Arc<Homes>) -> Numa {
        Numa {
            config,
            homes,
            measures: Arc::default(),
            running: None,
        }
    }
}

impl Component for Numa {
    fn name(&self) -> &'static str {
        "numa"
    }

    fn start(&mut self, ctx: ComponentContext) -> Result<(), StartError> {
        let (config, homes, measures) = (
            self.config.clone(),
            self.homes.clone(),
            self.measures.clone(),
        );
        self.running = Some(MainLoop::spawn(|stopped| {
            run(config, homes, measures, ctx, stopped)
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
        match &lock(&self.measures).last_error {
            Some(e) => Health::Degraded(e.clone()),
            None => Health::Healthy,
        }
    }

    fn stats(&self) -> Stats {
        let m = lock(&self.measures);
        let homes = &self.homes;
        let look = m.look.as_ref();
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
        }
        .to_stats()
    }
}

async fn run(
    config: NumaConfig,
    homes: Arc<Homes>,
    measures: Arc<Mutex<Measures>>,
    ctx: ComponentContext,
    mut stopped: watch::Receiver<bool>,
) {
    let mut beat = tokio::time::interval(BEAT_INTERVAL);
    let every = Duration::from_millis(config.interval_ms);
    let mut look_every = tokio::time::interval(every);
    look_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let budget =
        config.migrate_mib_per_s * (1 << 20) / pages::page_size() * config.interval_ms / 1000;
    let bounds = Bounds {
        top: config.top,
        placed: config.placed,
        samples: config.samples,
        min_rss_pages: config.min_rss_mib * (1 << 20) / pages::page_size(),
    };
    let state = Arc::new(Mutex::new((Observer::from_now(), Mover::default())));
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = beat.tick() => ctx.heartbeat.beat(),
            _ = look_every.tick() => {
                let (state, homes, config) = (state.clone(), homes.clone(), config.clone());
                let looked = tokio::task::spawn_blocking(move || {
                    let mut s = lock(&state);
                    let (observer, mover) = &mut *s;
                    let look = observer.look(&homes, bounds);
                    let in_charge = in_charge(&config, &homes, look.kernel_balancing);
                    if in_charge == InCharge::Nodus {
                        mover.act(&look, &homes, budget.max(1), f64::from(config.local_target_pct));
                    }
                    let balancing = in_charge.describe(&config, look.kernel_balancing);
                    (look, balancing, mover.tally.clone(), mover.last_error.take())
                });
                let mut looked = std::pin::pin!(looked);
                // Beats continue while the board is looked at.
                let result = loop {
                    tokio::select! {
                        r = &mut looked => break r,
                        _ = beat.tick() => ctx.heartbeat.beat(),
                    }
                };
                if let Ok((look, balancing, tally, error)) = result {
                    if let Some(e) = &error {
                        log::warn!("numa: {e}");
                    }
                    let mut m = lock(&measures);
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
        let off = NumaConfig::default();
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
