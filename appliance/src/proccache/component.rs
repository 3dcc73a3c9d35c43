//! The `proccache` component: attaches the kernel programs, feeds their
//! events into the table, seeds and reconciles it from /proc, and reports.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use tokio::sync::watch;

use super::{
    ProcCacheConfig, ProcessTable,
    cache::{Cache, ProcStat, ReconcileRules, Retention},
    consumer::{Consumer, Sink},
    kernel::KernelEvents,
    measures::{Measures, Mode},
    process::Origin,
    procfs::{Procfs, now_boot_ns},
};
use crate::{
    board::CpuList,
    supervisor::{
        BEAT_INTERVAL, BoxFuture, Component, ComponentContext, Counter, Float, Gauge, Health,
        MainLoop, Maybe, StartError, StatSet, Stats, Text,
    },
    sync::lock,
};

/// Processes younger than this at a reconciliation scan are left to their
/// events, which may still be on their way.
const RECONCILE_GRACE: Duration = Duration::from_millis(100);
/// A ring-buffer overflow keeps the component degraded for this long.
const DROP_MEMORY: Duration = Duration::from_secs(60);

crate::stats! {
    /// What the process cache reports. Stats of the table are absent while
    /// it is not installed (the component starting or stopped).
    pub struct ProcCacheStats {
        /// How processes are learnt of: `events` (kernel tracepoints),
        /// `proc-poll` (the kernel refused the programs) or `starting`.
        mode: Text,
        /// How the ring-buffer consumer thread is scheduled (`fifo:1`, or why not).
        event_thread: Text,
        /// Processes the table holds at most, live and exited.
        capacity: Gauge,
        /// Share of the capacity in use, percent.
        capacity_used_pct: Maybe<Float>,
        /// Live processes in the table.
        live: Maybe<Gauge>,
        /// Exited processes still retained.
        exited: Maybe<Gauge>,
        /// Most entries the table has held at once.
        peak: Maybe<Gauge>,
        /// Kernel events consumed since start.
        events: Counter,
        /// Kernel events per second over the last interval.
        events_per_s: Float,
        /// Events the kernel could not queue (ring buffer full); repaired by
        /// the next reconciliation.
        drops: Counter,
        /// Events that could not be decoded.
        undecodable: Counter,
        /// Fork events applied.
        forks: Maybe<Counter>,
        /// Exec events applied.
        execs: Maybe<Counter>,
        /// Exit events applied.
        exits: Maybe<Counter>,
        /// Exited processes dropped to make room before their retention ended.
        evicted: Maybe<Counter>,
        /// Exited processes dropped because their retention ended.
        expired: Maybe<Counter>,
        /// New live processes not recorded because every slot held a live one.
        refused: Maybe<Counter>,
        /// /proc reconciliation scans made.
        reconciliations: Counter,
        /// Repairs reconciliation made: `missed_exits` + `missed_processes`.
        reconcile_fixes: Maybe<Counter>,
        /// Processes whose exit was never reported, found gone.
        missed_exits: Maybe<Counter>,
        /// Live processes /proc showed that no event had reported.
        missed_processes: Maybe<Counter>,
        /// Parent changes found by reconciliation (re-parented children).
        reparented: Maybe<Counter>,
        /// Median time from the kernel's exec tracepoint to the record being
        /// visible to queries, µs.
        exec_latency_p50_us: Maybe<Float>,
        /// 99th percentile of the same, µs.
        exec_latency_p99_us: Maybe<Float>,
    }
}

/// The supervised process cache.
pub struct ProcCache {
    config: ProcCacheConfig,
    /// The board profile's `placement.ebpf_events` CPUs for the event thread.
    event_cpus: Option<CpuList>,
    table: ProcessTable,
    measures: Arc<Measures>,
    running: Option<MainLoop>,
}

impl ProcCache {
    /// A cache configured by `config` that fills `table`; its event thread
    /// runs on `event_cpus` when the board profile places it.
    pub fn new(
        config: ProcCacheConfig,
        table: ProcessTable,
        event_cpus: Option<CpuList>,
    ) -> ProcCache {
        ProcCache {
            config,
            event_cpus,
            table,
            measures: Arc::default(),
            running: None,
        }
    }
}

impl Component for ProcCache {
    fn name(&self) -> &'static str {
        "proccache"
    }

    fn start(&mut self, ctx: ComponentContext) -> Result<(), StartError> {
        let procfs = Procfs::system();
        let c = &self.config;
        let ms = |v: u64| v.saturating_mul(1_000_000);
        self.table.install(Cache::new(
            c.capacity,
            Retention {
                exited_ns: ms(c.retain_exited_s.saturating_mul(1000)),
                short_lived_retention_ns: ms(c.retain_short_lived_s.saturating_mul(1000)),
                short_lived_ns: ms(c.short_lived_ms),
            },
            procfs.ns_per_tick(),
        ));
        let attaching = Instant::now();
        let events = match KernelEvents::attach(c.ring_buffer_kib.saturating_mul(1024)) {
            Ok(events) => {
                log::debug!("proccache: programs attached in {:?}", attaching.elapsed());
                *lock(&self.measures.mode) = Mode::Events;
                Some(events)
            }
            Err(why) => {
                log::warn!("proccache: kernel events unavailable, polling /proc: {why}");
                *lock(&self.measures.mode) = Mode::Polling(why);
                None
            }
        };
        let worker = Worker {
            table: self.table.clone(),
            measures: self.measures.clone(),
            procfs,
            config: self.config.clone(),
            event_cpus: self.event_cpus.clone(),
        };
        self.running = Some(MainLoop::spawn(|stopped| worker.run(ctx, events, stopped)));
        Ok(())
    }

    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(running) = self.running.take() {
                running.stop().await;
            }
            self.table.clear();
        })
    }

    fn health(&self) -> Health {
        if self.running.as_ref().is_none_or(MainLoop::is_finished) {
            return Health::Unavailable("event loop not running".into());
        }
        let m = &self.measures;
        let refused = self.table.with(|c| c.counters().refused).unwrap_or(0);
        if let Mode::Polling(why) = &*lock(&m.mode) {
            return Health::Degraded(format!(
                "kernel events unavailable ({why}); polling /proc every {} ms, so shorter-lived processes are missed",
                self.config.poll_interval_ms
            ));
        }
        if refused > 0 {
            return Health::Degraded(format!(
                "capacity {} held only live processes: {refused} not recorded (raise proccache.capacity)",
                self.config.capacity
            ));
        }
        if lock(&m.last_drop).is_some_and(|t| t.elapsed() < DROP_MEMORY) {
            return Health::Degraded(format!(
                "ring buffer overflowed: {} events lost since start; reconciliation repairs the table (raise proccache.ring_buffer_kib)",
                m.drops.load(Ordering::Relaxed)
            ));
        }
        Health::Healthy
    }

    fn stats(&self) -> Stats {
        let m = &self.measures;
        let mode = match &*lock(&m.mode) {
            Mode::Starting => "starting",
            Mode::Events => "events",
            Mode::Polling(_) => "proc-poll",
        };
        let latency = m.latency_ns.snapshot();
        let latency_us = |q| latency.quantile(q).map(|ns| ns as f64 / 1000.0);
        let mut s = ProcCacheStats {
            mode: mode.into(),
            event_thread: lock(&m.scheduling).clone(),
            capacity: self.config.capacity as i64,
            events: m.events.load(Ordering::Relaxed),
            events_per_s: f64::from_bits(m.events_per_s.load(Ordering::Relaxed)),
            drops: m.drops.load(Ordering::Relaxed),
            undecodable: m.undecodable.load(Ordering::Relaxed),
            reconciliations: m.reconciliations.load(Ordering::Relaxed),
            exec_latency_p50_us: latency_us(0.5),
            exec_latency_p99_us: latency_us(0.99),
            ..ProcCacheStats::default()
        };
        if let Some((live, exited, peak, c)) = self
            .table
            .with(|c| (c.live_len(), c.exited_len(), c.peak(), c.counters()))
        {
            s.capacity_used_pct =
                Some(100.0 * (live + exited) as f64 / self.config.capacity.max(1) as f64);
            s.live = Some(live as i64);
            s.exited = Some(exited as i64);
            s.peak = Some(peak as i64);
            s.forks = Some(c.forks);
            s.execs = Some(c.execs);
            s.exits = Some(c.exits);
            s.evicted = Some(c.evicted);
            s.expired = Some(c.expired);
            s.refused = Some(c.refused);
            s.reconcile_fixes = Some(c.missed_exits + c.missed_processes);
            s.missed_exits = Some(c.missed_exits);
            s.missed_processes = Some(c.missed_processes);
            s.reparented = Some(c.reparented);
        }
        s.to_stats()
    }
}

/// The spawned side: owns the kernel programs, the consumer thread and the
/// /proc scans.
struct Worker {
    table: ProcessTable,
    measures: Arc<Measures>,
    procfs: Procfs,
    config: ProcCacheConfig,
    event_cpus: Option<CpuList>,
}

impl Worker {
    async fn run(
        self,
        ctx: ComponentContext,
        events: Option<KernelEvents>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let sink = Sink {
            table: self.table.clone(),
            measures: self.measures.clone(),
        };
        // Consuming starts before the seed: anything born while /proc is
        // read is in the ring buffer, and applying it twice is harmless.
        let consumer = events.as_ref().map(|e| {
            Consumer::spawn(
                e.ring.clone(),
                e.ring_fd.clone(),
                sink.clone(),
                self.config.event_thread_priority,
                self.event_cpus.clone(),
            )
        });
        let procfs = self.procfs.clone();
        let seed = tokio::task::spawn_blocking(move || {
            let now = now_boot_ns();
            (now, procfs.read_all(Origin::Seed, now))
        });
        if let Ok((now, entries)) = seed.await {
            log::info!("proccache: seeded {} processes from /proc", entries.len());
            self.table.with(|c| c.seed(entries, now));
        }
        let every = match (&events, self.config.reconcile_interval_s) {
            (None, _) => Some(Duration::from_millis(self.config.poll_interval_ms)),
            (Some(_), 0) => None,
            (Some(_), s) => Some(Duration::from_secs(s)),
        };
        let mut reconcile =
            every.map(|d| tokio::time::interval_at(tokio::time::Instant::now() + d, d));
        let mut beat = tokio::time::interval(BEAT_INTERVAL);
        let mut rate = (Instant::now(), 0u64);
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = beat.tick() => {
                    if consumer.as_ref().is_some_and(|c| c.is_finished()) {
                        log::error!("proccache: the event consumer thread ended");
                        break;
                    }
                    ctx.heartbeat.beat();
                    self.tick(&events, &mut rate);
                }
                _ = crate::supervisor::tick_every(&mut reconcile) => {
                    let (procfs, sink) = (self.procfs.clone(), sink.clone());
                    let ring = events.as_ref().map(|e| e.ring.clone());
                    let with_events = ring.is_some();
                    let scanned = tokio::task::spawn_blocking(move || {
                        let started = now_boot_ns();
                        let found = procfs.scan();
                        // Events emitted before the scan ended are applied
                        // first, so only what was really lost is repaired.
                        if let Some(ring) = ring {
                            sink.drain(&mut lock(&ring));
                        }
                        (started, found)
                    });
                    // Beats continue while /proc is read.
                    let mut scanned = std::pin::pin!(scanned);
                    let result = loop {
                        tokio::select! {
                            r = &mut scanned => break r,
                            _ = beat.tick() => ctx.heartbeat.beat(),
                        }
                    };
                    if let Ok((started, found)) = result {
                        self.reconcile(started, &found, with_events);
                    }
                }
            }
        }
        if let Some(consumer) = consumer {
            let _ = tokio::task::spawn_blocking(move || consumer.stop()).await;
        }
        // `events` drops here: the programs detach.
    }

    /// Once a second: expiry, the event rate and the kernel's drop count.
    fn tick(&self, events: &Option<KernelEvents>, rate: &mut (Instant, u64)) {
        self.table.with(|c| c.expire(now_boot_ns()));
        let total = self.measures.events.load(Ordering::Relaxed);
        let secs = rate.0.elapsed().as_secs_f64();
        if secs > 0.0 {
            let per_s = (total - rate.1) as f64 / secs;
            self.measures
                .events_per_s
                .store(per_s.to_bits(), Ordering::Relaxed);
        }
        *rate = (Instant::now(), total);
        if let Some(events) = events {
            let drops = events.drops();
            let before = self.measures.drops.swap(drops, Ordering::Relaxed);
            if drops > before {
                log::warn!(
                    "proccache: ring buffer full: {} events lost (reconciliation will repair)",
                    drops - before
                );
                *lock(&self.measures.last_drop) = Some(Instant::now());
            }
        }
    }

    fn reconcile(&self, scan_started_ns: u64, found: &[ProcStat], with_events: bool) {
        let rules = ReconcileRules {
            scan_started_ns,
            grace_ns: if with_events {
                RECONCILE_GRACE.as_nanos() as u64
            } else {
                0
            },
        };
        let now = now_boot_ns();
        let repairs = self.table.with(|c| {
            c.reconcile(found, rules, now, |s| {
                self.procfs.read(s, Origin::Procfs, now)
            })
        });
        self.measures
            .reconciliations
            .fetch_add(1, Ordering::Relaxed);
        if let Some(r) = repairs
            && with_events
            && r.fixes() > 0
        {
            log::info!(
                "proccache: reconciliation repaired {} missed exits and {} missed processes",
                r.missed_exits,
                r.missed_processes
            );
        }
    }
}
