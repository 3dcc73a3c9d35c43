//! The `sched` component: loads the layered scheduler for the active
//! profile's layers, keeps grouped layers sized to their load and cgroup
//! and executable rules current, reports each layer, and notices within a
//! tenth of a second when the kernel ends the scheduler (an error, a stall,
//! SysRq-S): the exit is logged and shown, and the scheduler is loaded
//! again after a backoff that doubles with each exit.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::watch;

use super::{
    SchedConfig,
    kernel::{self, LayerCounts, Mode},
    loader::Scheduler,
    membership::{self, Members},
    plan::Plan,
    tuning,
};
use crate::{
    ebpf::error_chain,
    probe::Feature,
    supervisor::{
        BEAT_INTERVAL, BoxFuture, Component, ComponentContext, Counter, Gauge, Health, MainLoop,
        StartError, StatSet, Stats, Text,
    },
    sync::lock,
    workload::WorkloadTable,
};

crate::stats! {
    /// What the scheduler component reports.
    pub struct SchedStats {
        /// `enabled (nodus, full)` or `(nodus, partial)` while the kernel
        /// runs it, `reloading in 2 s` after an exit, `starting`, or
        /// `unavailable` (health says why).
        state: Text,
        /// Each layer (the default layer last): its kind, CPUs owned, busy
        /// share of those CPUs over the last interval, tasks in it,
        /// wakeups that preempted another layer, and its tasks' wakeup
        /// latency (runnable to running, measured in BPF; log2 buckets, so
        /// each quantile is an upper bound within 2x)
        /// (`critical: confined, 2 cpus, 12% busy, 3 tasks, 15 preempts,
        /// wake p50 <= 8 us, p99 <= 64 us`).
        layers: Text,
        /// Times the kernel ended the scheduler.
        exits: Counter,
        /// Times nodus loaded it again after an exit.
        reloads: Counter,
        /// The last exit: kind, the kernel's reason and message, and how
        /// long ago (`SysRq-S: disabled by sysrq-S, 12 s ago`), or `none`.
        last_exit: Text,
        /// Wakeups of any layer that preempted a task of another.
        preemptions: Counter,
        /// Cgroups matched by a layer's cgroup prefix, at the last scan.
        cgroups_matched: Gauge,
    }
}

/// What the loop knows, for `stats()` and `health()`.
#[derive(Default)]
struct Measures {
    phase: Phase,
    layers: Vec<String>,
    exits: u64,
    reloads: u64,
    last_exit: Option<(String, Instant)>,
    preemptions: u64,
    cgroups: usize,
    problems: Vec<String>,
}

#[derive(Default, Clone)]
enum Phase {
    #[default]
    Starting,
    Enabled,
    Reloading(Instant),
    Unavailable(String),
}

/// The supervised scheduler.
pub struct Sched {
    config: SchedConfig,
    plan: Option<Arc<Plan>>,
    workloads: WorkloadTable,
    measures: Arc<Mutex<Measures>>,
    running: Option<MainLoop>,
}

impl Sched {
    /// A component for `plan` (the active profile's layers; `None` when it
    /// has none).
    ///
    /// `workloads` (each process's class and accelerator, from the numa
    /// component) feeds the `class` and `device` rules.
    pub fn new(config: SchedConfig, plan: Option<Arc<Plan>>, workloads: WorkloadTable) -> Sched {
        Sched {
            config,
            plan,
            workloads,
            measures: Arc::default(),
            running: None,
        }
    }
}

impl Component for Sched {
    fn name(&self) -> &'static str {
        "sched"
    }

    fn start(&mut self, ctx: ComponentContext) -> Result<(), StartError> {
        let unavailable = if !cfg!(feature = "sched") {
            Some(kernel::NOT_BUILT.to_owned())
        } else if !ctx.kernel.has(Feature::SchedExt) {
            let why = ctx.kernel.features.get(&Feature::SchedExt);
            Some(format!(
                "the kernel has no sched_ext: {}",
                why.and_then(|s| s.reason.as_deref())
                    .unwrap_or("not probed")
            ))
        } else if self.plan.is_none() {
            Some("the board profile declares no [[layer]]".to_owned())
        } else {
            None
        };
        let worker = Worker {
            config: self.config.clone(),
            plan: self.plan.clone(),
            workloads: self.workloads.clone(),
            measures: self.measures.clone(),
        };
        if let Some(why) = unavailable {
            log::info!("sched: unavailable: {why}");
            lock(&self.measures).phase = Phase::Unavailable(why);
        }
        self.running = Some(MainLoop::spawn(|stopped| worker.run(ctx, stopped)));
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
        match &m.phase {
            Phase::Unavailable(why) => Health::Unavailable(why.clone()),
            Phase::Reloading(_) => Health::Degraded(format!(
                "the kernel ended the scheduler ({}); every task is on the default scheduler until the reload",
                m.last_exit.as_ref().map_or("", |(e, _)| e.as_str())
            )),
            _ if !m.problems.is_empty() => Health::Degraded(m.problems.join("; ")),
            _ => Health::Healthy,
        }
    }

    fn stats(&self) -> Stats {
        let m = lock(&self.measures);
        let mode = if self.config.switch_partial {
            "partial"
        } else {
            "full"
        };
        SchedStats {
            state: match &m.phase {
                Phase::Starting => "starting".into(),
                Phase::Enabled => format!("enabled (nodus, {mode})"),
                Phase::Reloading(at) => format!(
                    "reloading in {} s",
                    at.saturating_duration_since(Instant::now()).as_secs()
                ),
                Phase::Unavailable(_) => "unavailable".into(),
            },
            layers: if m.layers.is_empty() {
                "none".into()
            } else {
                m.layers.join("; ")
            },
            exits: m.exits,
            reloads: m.reloads,
            last_exit: m.last_exit.as_ref().map_or("none".into(), |(e, at)| {
                format!("{e}, {} s ago", at.elapsed().as_secs())
            }),
            preemptions: m.preemptions,
            cgroups_matched: m.cgroups as i64,
        }
        .to_stats()
    }
}

/// The spawned side.
struct Worker {
    config: SchedConfig,
    plan: Option<Arc<Plan>>,
    workloads: WorkloadTable,
    measures: Arc<Mutex<Measures>>,
}

/// A registered scheduler and the cgroup/executable sets its maps hold.
struct Running {
    scheduler: Scheduler,
    members: Members,
}

/// Why a running scheduler stopped being watched.
enum Stopped {
    /// The component is stopping.
    Asked,
    /// The kernel ended it.
    Ended(kernel::Ended),
}

impl Worker {
    async fn run(self, ctx: ComponentContext, mut stopped: watch::Receiver<bool>) {
        let mut beat = tokio::time::interval(BEAT_INTERVAL);
        let starting = matches!(lock(&self.measures).phase, Phase::Starting);
        let plan = match &self.plan {
            Some(plan) if starting => plan.clone(),
            // Unavailable: beat until stopped.
            _ => return self.idle(&ctx, &mut beat, &mut stopped).await,
        };
        let mode = Mode {
            watchdog_ms: self.config.watchdog_ms,
            switch_partial: self.config.switch_partial,
        };
        let first_backoff = Duration::from_millis(self.config.backoff_ms);
        let mut backoff = first_backoff;
        loop {
            let mut sizes = tuning::initial_sizes(&plan);
            let owners = tuning::owners(&plan, &sizes);
            let load_started = Instant::now();
            let loading = {
                let (plan, workloads) = (plan.clone(), self.workloads.clone());
                // The cgroup and executable sets go in before the
                // scheduler is registered: every task is matched once, as
                // it joins, and must find them there.
                tokio::task::spawn_blocking(move || {
                    let members = membership::scan_shared(
                        membership::cgroup_tree(),
                        &plan.layers,
                        &workloads,
                    );
                    Scheduler::start(&plan, mode, &owners, &members)
                        .map(|scheduler| Running { scheduler, members })
                })
            };
            let mut loading = std::pin::pin!(loading);
            let started = loop {
                tokio::select! {
                    r = &mut loading => break r,
                    _ = beat.tick() => ctx.heartbeat.beat(),
                    // The load finishes on its own thread; a scheduler it
                    // registers meanwhile is unregistered when it drops.
                    _ = stopped.changed() => return,
                }
            };
            let outcome = match started {
                Ok(Ok(mut running)) => {
                    log::info!(
                        "sched: nodus scheduler enabled in {} ms, {} layers ({})",
                        load_started.elapsed().as_millis(),
                        plan.layers.len(),
                        kernel::kernel_state()
                            .map(|(s, ops)| format!("kernel: {s}, ops {ops}"))
                            .unwrap_or_else(|e| e)
                    );
                    {
                        let mut m = lock(&self.measures);
                        m.phase = Phase::Enabled;
                        m.problems.clear();
                    }
                    let since = Instant::now();
                    let outcome = self
                        .watch(
                            &ctx,
                            &plan,
                            &mut running,
                            &mut sizes,
                            &mut beat,
                            &mut stopped,
                        )
                        .await;
                    // Dropping it unregisters (a no-op once the kernel ended it).
                    drop(running);
                    if since.elapsed() > Duration::from_secs(60) {
                        backoff = first_backoff;
                    }
                    outcome
                }
                Ok(Err(e)) => {
                    let why = error_chain(&e);
                    log::warn!("sched: cannot load the scheduler: {why}");
                    let mut m = lock(&self.measures);
                    m.problems = vec![format!("cannot load: {why}")];
                    None
                }
                Err(e) => {
                    lock(&self.measures).problems = vec![format!("loading panicked: {e}")];
                    None
                }
            };
            match outcome {
                Some(Stopped::Asked) => return,
                Some(Stopped::Ended(e)) if !kernel::restartable(e.kind) => {
                    lock(&self.measures).phase =
                        Phase::Unavailable(format!("unregistered: {}", describe(&e)));
                    return self.idle(&ctx, &mut beat, &mut stopped).await;
                }
                Some(Stopped::Ended(_)) | None => {}
            }
            lock(&self.measures).phase = Phase::Reloading(Instant::now() + backoff);
            let wait = tokio::time::sleep(backoff);
            let mut wait = std::pin::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    _ = beat.tick() => ctx.heartbeat.beat(),
                    _ = stopped.changed() => return,
                }
            }
            backoff = (backoff * 2).min(Duration::from_millis(self.config.max_backoff_ms));
            lock(&self.measures).reloads += 1;
            log::info!("sched: reloading the scheduler");
        }
    }

    /// Beats until stopped: nothing to schedule.
    async fn idle(
        &self,
        ctx: &ComponentContext,
        beat: &mut tokio::time::Interval,
        stopped: &mut watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = stopped.changed() => return,
                _ = beat.tick() => ctx.heartbeat.beat(),
            }
        }
    }

    /// Watches a running scheduler: its exit every 100 ms, its layers every
    /// interval. Returns why it stopped watching.
    async fn watch(
        &self,
        ctx: &ComponentContext,
        plan: &Arc<Plan>,
        running: &mut Running,
        sizes: &mut Vec<u32>,
        beat: &mut tokio::time::Interval,
        stopped: &mut watch::Receiver<bool>,
    ) -> Option<Stopped> {
        let mut poll = tokio::time::interval(Duration::from_millis(100));
        let every = Duration::from_millis(self.config.interval_ms);
        let mut tune = tokio::time::interval(every);
        let mut last: Option<(Instant, Vec<LayerCounts>)> = None;
        let Running { scheduler, members } = running;
        loop {
            tokio::select! {
                _ = stopped.changed() => return Some(Stopped::Asked),
                _ = beat.tick() => ctx.heartbeat.beat(),
                _ = poll.tick() => {
                    if let Some(e) = scheduler.ended() {
                        let what = describe(&e);
                        log::warn!("sched: the kernel ended the scheduler: {what}; every task is back on the default scheduler");
                        let mut m = lock(&self.measures);
                        m.exits += 1;
                        m.last_exit = Some((what, Instant::now()));
                        return Some(Stopped::Ended(e));
                    }
                }
                _ = tune.tick() => {
                    // Cgroups and executables: a directory walk, off the
                    // runtime; processes from the numa component's table.
                    let scanned = {
                        let (plan, workloads) = (plan.clone(), self.workloads.clone());
                        tokio::task::spawn_blocking(move || {
                            membership::scan_shared(membership::cgroup_tree(), &plan.layers, &workloads)
                        })
                        .await
                    };
                    let mut problems = Vec::new();
                    if let Ok(scanned) = scanned {
                        problems = scanned.problems();
                        if scanned.cgroups != members.cgroups
                            || scanned.exes != members.exes
                            || scanned.procs != members.procs
                        {
                            if let Err(e) = scheduler.maps().set_members(&scanned) {
                                problems.push(format!("cannot update the cgroup/exe/process sets: {}", error_chain(&e)));
                            }
                        }
                        *members = scanned;
                    }
                    match scheduler.counts(plan.layers.len()) {
                        Ok(counts) => {
                            let now = Instant::now();
                            let busy = last.as_ref().map(|(at, before)| {
                                busy_cpus(before, &counts, now.duration_since(*at))
                            });
                            if let Some(busy) = &busy {
                                let next = tuning::next_sizes(plan, sizes, busy);
                                if next != *sizes {
                                    let owners = tuning::owners(plan, &next);
                                    match scheduler.maps().set_owners(plan, &owners) {
                                        Ok(()) => *sizes = next,
                                        Err(e) => problems.push(format!("cannot resize: {}", error_chain(&e))),
                                    }
                                }
                            }
                            let owners = tuning::owners(plan, sizes);
                            let mut m = lock(&self.measures);
                            m.layers = render(plan, &counts, &owners, busy.as_deref());
                            m.preemptions = counts.iter().map(|c| c.preempted).sum();
                            m.cgroups = members.cgroups.len();
                            m.problems = problems;
                            drop(m);
                            last = Some((now, counts));
                        }
                        Err(e) => {
                            problems.push(format!("cannot read the counters: {}", error_chain(&e)));
                            lock(&self.measures).problems = problems;
                        }
                    }
                }
            }
        }
    }
}

/// One line for an exit: its kind, the kernel's reason and message.
fn describe(e: &kernel::Ended) -> String {
    let mut s = format!("{}: {}", kernel::exit_kind_name(e.kind), e.reason);
    if !e.msg.is_empty() {
        s.push_str(&format!(" ({})", e.msg));
    }
    s
}

/// Each layer's busy CPUs (run time over wall time) between two readings.
fn busy_cpus(before: &[LayerCounts], now: &[LayerCounts], over: Duration) -> Vec<f64> {
    let secs = over.as_secs_f64().max(1e-3);
    now.iter()
        .zip(before)
        .map(|(n, b)| n.runtime_ns.saturating_sub(b.runtime_ns) as f64 / 1e9 / secs)
        .collect()
}

/// The upper bound of the bucket holding quantile `q` of a log2 histogram,
/// in microseconds.
pub fn quantile_us(hist: &[u64], q: f64) -> Option<f64> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let want = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (b, &n) in hist.iter().enumerate() {
        seen += n;
        if seen >= want {
            return Some((1u64 << (b + 1).min(63)) as f64 / 1000.0);
        }
    }
    None
}

fn render(
    plan: &Plan,
    counts: &[LayerCounts],
    owners: &[u32],
    busy: Option<&[f64]>,
) -> Vec<String> {
    counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let kind = plan.layers.get(i).map_or("open", |l| match l.policy {
                crate::profile::LayerPolicy::Confined => "confined",
                crate::profile::LayerPolicy::Grouped => "grouped",
                crate::profile::LayerPolicy::Open => "open",
            });
            let cpus = owners.iter().filter(|&&o| o == i as u32).count();
            let mut s = format!("{}: {kind}, {cpus} cpus", plan.layer_name(i));
            if let Some(b) = busy.and_then(|b| b.get(i)) {
                if cpus > 0 {
                    s.push_str(&format!(", {:.0}% busy", b / cpus as f64 * 100.0));
                } else {
                    s.push_str(&format!(", {b:.2} cpus busy"));
                }
            }
            s.push_str(&format!(", {} tasks, {} preempts", c.tasks, c.preempted));
            if let (Some(p50), Some(p99)) = (
                quantile_us(&c.wait_hist, 0.5),
                quantile_us(&c.wait_hist, 0.99),
            ) {
                s.push_str(&format!(", wake p50 <= {p50:.0} us, p99 <= {p99:.0} us"));
            }
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_bucket_upper_bounds() {
        let mut hist = [0u64; 32];
        hist[10] = 99; // [1024, 2048) ns
        hist[16] = 1; // [65536, 131072) ns
        assert_eq!(quantile_us(&hist, 0.5), Some(2.048));
        assert_eq!(quantile_us(&hist, 0.99), Some(2.048));
        assert_eq!(quantile_us(&hist, 1.0), Some(131.072));
        assert_eq!(quantile_us(&[0; 32], 0.5), None);
    }

    #[test]
    fn busy_is_run_time_over_wall_time() {
        let before = vec![LayerCounts::default()];
        let now = vec![LayerCounts {
            runtime_ns: 1_500_000_000,
            ..LayerCounts::default()
        }];
        let busy = busy_cpus(&before, &now, Duration::from_secs(1));
        assert!((busy[0] - 1.5).abs() < 1e-9);
    }
}
