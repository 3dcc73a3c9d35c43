//! The `proccache` component: attaches the kernel programs, feeds their
//! events into the table, seeds and reconciles it from /proc, and reports.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};
use tokio::{io::unix::AsyncFdReadyMutGuard, sync::watch, task::JoinHandle};

use super::{
    ProcCacheConfig, ProcessTable,
    cache::{Cache, ProcStat, ReconcileRules, Retention},
    event::Event,
    kernel::KernelEvents,
    process::Origin,
    procfs::{Procfs, now_boot_ns},
};
use crate::{
    histogram::Histogram,
    supervisor::{
        BEAT_INTERVAL, BoxFuture, Component, ComponentContext, Health, StartError, Stat, Stats,
    },
};

/// Events applied per hold of the table lock, so queries never wait long.
const BATCH: usize = 256;
/// Processes younger than this at a reconciliation scan are left to their
/// events, which may still be on their way.
const RECONCILE_GRACE: Duration = Duration::from_millis(100);
/// A ring-buffer overflow keeps the component degraded for this long.
const DROP_MEMORY: Duration = Duration::from_secs(60);

/// How processes are being learnt of.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Mode {
    Starting,
    /// Kernel events, with /proc reconciliation.
    Events,
    /// /proc polling, because the kernel refused the programs (the reason).
    Polling(String),
}

/// What the loop measures, shared with `stats()` and `health()`.
struct Measures {
    mode: Mutex<Mode>,
    events: AtomicU64,
    events_per_s: AtomicU64,
    drops: AtomicU64,
    last_drop: Mutex<Option<Instant>>,
    undecodable: AtomicU64,
    reconciliations: AtomicU64,
    latency_ns: Mutex<Histogram>,
}

impl Default for Measures {
    fn default() -> Self {
        Measures {
            mode: Mutex::new(Mode::Starting),
            events: AtomicU64::default(),
            events_per_s: AtomicU64::default(),
            drops: AtomicU64::default(),
            last_drop: Mutex::default(),
            undecodable: AtomicU64::default(),
            reconciliations: AtomicU64::default(),
            latency_ns: Mutex::default(),
        }
    }
}

/// The supervised process cache.
pub struct ProcCache {
    config: ProcCacheConfig,
    table: ProcessTable,
    measures: Arc<Measures>,
    running: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

impl ProcCache {
    /// A cache configured by `config` that fills `table`.
    pub fn new(config: ProcCacheConfig, table: ProcessTable) -> ProcCache {
        ProcCache {
            config,
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
        let events = match KernelEvents::attach(c.ring_buffer_kib.saturating_mul(1024)) {
            Ok(events) => Some(events),
            Err(why) => {
                log::warn!("proccache: kernel events unavailable, polling /proc: {why}");
                *lock(&self.measures.mode) = Mode::Polling(why);
                None
            }
        };
        let (stop, stopped) = watch::channel(false);
        let worker = Worker {
            table: self.table.clone(),
            measures: self.measures.clone(),
            procfs,
            config: self.config.clone(),
        };
        let task = tokio::spawn(worker.run(ctx, events, stopped));
        self.running = Some((stop, task));
        Ok(())
    }

    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some((stop, task)) = self.running.take() {
                let _ = stop.send(true);
                let _ = task.await;
            }
            self.table.clear();
        })
    }

    fn health(&self) -> Health {
        if self.running.as_ref().is_none_or(|(_, t)| t.is_finished()) {
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
        let mut s = Stats::from([
            ("mode".into(), Stat::Text(mode.into())),
            ("capacity".into(), Stat::Gauge(self.config.capacity as i64)),
            (
                "events".into(),
                Stat::Counter(m.events.load(Ordering::Relaxed)),
            ),
            (
                "events_per_s".into(),
                Stat::Float(f64::from_bits(m.events_per_s.load(Ordering::Relaxed))),
            ),
            (
                "drops".into(),
                Stat::Counter(m.drops.load(Ordering::Relaxed)),
            ),
            (
                "undecodable".into(),
                Stat::Counter(m.undecodable.load(Ordering::Relaxed)),
            ),
            (
                "reconciliations".into(),
                Stat::Counter(m.reconciliations.load(Ordering::Relaxed)),
            ),
        ]);
        if let Some((live, exited, peak, c)) = self
            .table
            .with(|c| (c.live_len(), c.exited_len(), c.peak(), c.counters()))
        {
            for (k, v) in [
                ("live", live as i64),
                ("exited", exited as i64),
                ("peak", peak as i64),
            ] {
                s.insert(k.into(), Stat::Gauge(v));
            }
            for (k, v) in [
                ("forks", c.forks),
                ("execs", c.execs),
                ("exits", c.exits),
                ("evicted", c.evicted),
                ("expired", c.expired),
                ("refused", c.refused),
                ("reconcile_fixes", c.missed_exits + c.missed_processes),
                ("missed_exits", c.missed_exits),
                ("missed_processes", c.missed_processes),
                ("reparented", c.reparented),
            ] {
                s.insert(k.into(), Stat::Counter(v));
            }
        }
        let latency = lock(&m.latency_ns);
        for (k, q) in [("exec_latency_p50_us", 0.5), ("exec_latency_p99_us", 0.99)] {
            if let Some(ns) = latency.quantile(q) {
                s.insert(k.into(), Stat::Float(ns as f64 / 1000.0));
            }
        }
        s
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The spawned side: owns the kernel events and the /proc scans.
struct Worker {
    table: ProcessTable,
    measures: Arc<Measures>,
    procfs: Procfs,
    config: ProcCacheConfig,
}

type Scan = JoinHandle<(u64, Vec<ProcStat>)>;

impl Worker {
    async fn run(
        self,
        ctx: ComponentContext,
        mut events: Option<KernelEvents>,
        mut stopped: watch::Receiver<bool>,
    ) {
        // Seed what predates us. The programs are already attached, so
        // anything born during the seed is in the ring buffer too.
        let procfs = self.procfs.clone();
        let seed = tokio::task::spawn_blocking(move || {
            let now = now_boot_ns();
            (now, procfs.read_all(Origin::Seed, now))
        });
        if let Ok((now, entries)) = seed.await {
            log::info!("proccache: seeded {} processes from /proc", entries.len());
            self.table.with(|c| c.seed(entries, now));
        }
        if events.is_some() {
            *lock(&self.measures.mode) = Mode::Events;
        }
        let every = match (&events, self.config.reconcile_interval_s) {
            (None, _) => Some(Duration::from_millis(self.config.poll_interval_ms)),
            (Some(_), 0) => None,
            (Some(_), s) => Some(Duration::from_secs(s)),
        };
        let mut reconcile =
            every.map(|d| tokio::time::interval_at(tokio::time::Instant::now() + d, d));
        let mut beat = tokio::time::interval(BEAT_INTERVAL);
        let mut scan: Option<Scan> = None;
        let mut rate = (Instant::now(), 0u64);
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                guard = readable(&mut events) => match guard {
                    Ok(mut guard) => {
                        self.drain(guard.get_inner_mut());
                        guard.clear_ready();
                    }
                    Err(e) => {
                        log::error!("proccache: ring buffer: {e}");
                        return;
                    }
                },
                _ = beat.tick() => {
                    ctx.heartbeat.beat();
                    self.tick(&events, &mut rate);
                }
                _ = tick(&mut reconcile), if scan.is_none() => {
                    let procfs = self.procfs.clone();
                    scan = Some(tokio::task::spawn_blocking(move || (now_boot_ns(), procfs.scan())));
                }
                done = wait(&mut scan) => {
                    scan = None;
                    if let Ok((started, found)) = done {
                        // Events emitted before the scan ended are applied
                        // first, so only what was really lost is repaired.
                        if let Some(events) = events.as_mut() {
                            self.drain(events.ring.get_mut());
                        }
                        self.reconcile(started, &found, events.is_some());
                    }
                }
            }
        }
    }

    /// Applies every queued event, `BATCH` per lock hold. Returns whether any
    /// event was read.
    fn drain(&self, ring: &mut RingBuf<MapData>) -> bool {
        let mut any = false;
        let mut exec_times = Vec::with_capacity(BATCH);
        loop {
            exec_times.clear();
            let mut applied = 0;
            self.table.with(|cache| {
                while applied < BATCH {
                    let Some(item) = ring.next() else { break };
                    applied += 1;
                    match Event::decode(&item) {
                        Ok(event) => {
                            if let Some(entry) = cache.apply(&event, now_boot_ns()) {
                                exec_times.push(event.header().time_ns);
                                self.table.publish_exec(entry);
                            }
                        }
                        Err(e) => {
                            self.measures.undecodable.fetch_add(1, Ordering::Relaxed);
                            log::debug!("proccache: {e}");
                        }
                    }
                }
            });
            // Queryable from the moment the lock was released.
            let now = now_boot_ns();
            let mut latency = lock(&self.measures.latency_ns);
            for t in &exec_times {
                latency.record(now.saturating_sub(*t));
            }
            drop(latency);
            self.measures
                .events
                .fetch_add(applied as u64, Ordering::Relaxed);
            any |= applied > 0;
            if applied < BATCH {
                return any;
            }
        }
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

/// Readiness of the ring buffer, or never when there is none.
async fn readable(
    events: &mut Option<KernelEvents>,
) -> std::io::Result<AsyncFdReadyMutGuard<'_, RingBuf<MapData>>> {
    match events {
        Some(e) => e.ring.readable_mut().await,
        None => std::future::pending().await,
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn wait(scan: &mut Option<Scan>) -> Result<(u64, Vec<ProcStat>), tokio::task::JoinError> {
    match scan {
        Some(s) => s.await,
        None => std::future::pending().await,
    }
}
