//! The `pagecache` component: counts page-cache accesses and misses in the
//! kernel for as long as the daemon runs, and watches the file server's
//! docroot (how much of it is cached, how often its files hit).

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use nodus_common::pagecache::Counts;
use tokio::sync::watch;

use super::{
    PageCacheConfig,
    kernel::{Counting, Emit, HitCounter, TableSizes},
    live::Tally,
    names::user_dev,
    scan,
};
use crate::{
    ebpf::error_chain,
    probe::Feature,
    supervisor::{
        BEAT_INTERVAL, BoxFuture, Component, ComponentContext, Counter, Float, Gauge, Health,
        MainLoop, Maybe, StartError, StatSet, Stats, Text,
    },
    sync::lock,
};

crate::stats! {
    /// What the page-cache component reports. Counts are in pages of the
    /// kernel's page size, since the component started.
    pub struct PageCacheStats {
        /// How hits and misses are counted: `fentry` (around the kernel's
        /// read, splice and fault functions: hits counted), `tracepoints`
        /// (hits estimated as accesses less misses) or `off` (health says
        /// why).
        counting: Text,
        /// Pages asked of the page cache: reads and file page faults.
        accesses: Maybe<Counter>,
        /// Pages inserted into the page cache (misses).
        misses: Maybe<Counter>,
        /// Pages a read or fault found cached: counted with `fentry`, else
        /// accesses less misses (an estimate).
        hits: Maybe<Counter>,
        /// Hits per access, percent.
        hit_ratio_pct: Maybe<Float>,
        /// Pages accessed per second, over the last second.
        accesses_per_s: Maybe<Float>,
        /// Pages missed per second, over the last second.
        misses_per_s: Maybe<Float>,
        /// Files the kernel's table holds counts for, at the last docroot look.
        files_counted: Maybe<Gauge>,
        /// Pages of the file server's docroot files in the page cache now
        /// (cachestat, else mincore), at the last look.
        docroot_cached_pages: Maybe<Gauge>,
        /// Pages the docroot's measured files take in all.
        docroot_pages: Maybe<Gauge>,
        /// Docroot files the kernel would not report on, or that could not
        /// be opened: not in the two figures above (never a false zero).
        docroot_unmeasured: Maybe<Gauge>,
        /// Pages of docroot files accessed, among the files counted.
        docroot_accesses: Maybe<Counter>,
        /// Pages of docroot files missed, among the files counted.
        docroot_misses: Maybe<Counter>,
        /// Hits per access of docroot files, percent (estimated with
        /// `tracepoints`): what the page cache does for the file server.
        docroot_hit_ratio_pct: Maybe<Float>,
    }
}

/// What the loop measured, for `stats()`.
#[derive(Default)]
struct Measures {
    counting: Option<Result<Counting, String>>,
    total: Option<Counts>,
    accesses_per_s: Option<f64>,
    misses_per_s: Option<f64>,
    files_counted: Option<usize>,
    docroot: Option<DocrootLook>,
}

/// One look at the docroot.
#[derive(Clone, Copy, Default)]
struct DocrootLook {
    cached_pages: u64,
    pages: u64,
    unmeasured: u64,
    counts: Option<Counts>,
}

/// The supervised page-cache counter.
pub struct PageCache {
    config: PageCacheConfig,
    /// The file server's docroot, when it serves one.
    docroot: Option<PathBuf>,
    measures: Arc<Mutex<Measures>>,
    running: Option<MainLoop>,
}

impl PageCache {
    /// A component configured by `config`, watching `docroot`.
    pub fn new(config: PageCacheConfig, docroot: Option<PathBuf>) -> PageCache {
        PageCache {
            config,
            docroot,
            measures: Arc::default(),
            running: None,
        }
    }
}

impl Component for PageCache {
    fn name(&self) -> &'static str {
        "pagecache"
    }

    fn start(&mut self, ctx: ComponentContext) -> Result<(), StartError> {
        let worker = Worker {
            sizes: TableSizes {
                files: self.config.files,
                processes: self.config.processes,
                cgroups: self.config.cgroups,
            },
            docroot: self.docroot.clone(),
            every: Duration::from_secs(self.config.docroot_interval_s),
            measures: self.measures.clone(),
        };
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
        match &lock(&self.measures).counting {
            Some(Err(why)) => Health::Degraded(format!(
                "hit/miss counting unavailable ({why}); docroot residency only"
            )),
            _ => Health::Healthy,
        }
    }

    fn stats(&self) -> Stats {
        let m = lock(&self.measures);
        let (name, counting) = match &m.counting {
            Some(Ok(c)) => (c.name(), c.clone()),
            Some(Err(_)) => ("off", Counting::Tracepoints(String::new())),
            None => ("starting", Counting::Tracepoints(String::new())),
        };
        let total = m.total.map(|c| Tally::new(c, &counting));
        let docroot = m.docroot;
        let docroot_tally = docroot
            .and_then(|d| d.counts)
            .map(|c| Tally::new(c, &counting));
        PageCacheStats {
            counting: name.into(),
            accesses: total.map(|t| t.accesses),
            misses: total.map(|t| t.misses),
            hits: total.map(|t| t.hits),
            hit_ratio_pct: total.and_then(|t| t.hit_ratio_pct),
            accesses_per_s: m.accesses_per_s,
            misses_per_s: m.misses_per_s,
            files_counted: m.files_counted.map(|n| n as i64),
            docroot_cached_pages: docroot.map(|d| d.cached_pages as i64),
            docroot_pages: docroot.map(|d| d.pages as i64),
            docroot_unmeasured: docroot.map(|d| d.unmeasured as i64),
            docroot_accesses: docroot_tally.map(|t| t.accesses),
            docroot_misses: docroot_tally.map(|t| t.misses),
            docroot_hit_ratio_pct: docroot_tally.and_then(|t| t.hit_ratio_pct),
        }
        .to_stats()
    }
}

/// The spawned side.
struct Worker {
    sizes: TableSizes,
    docroot: Option<PathBuf>,
    every: Duration,
    measures: Arc<Mutex<Measures>>,
}

impl Worker {
    /// Loads the programs off the start path, beating meanwhile: a load
    /// parses the kernel's BTF (the footprint bench measured READY 86 ms
    /// later when it was done in `start`). Trying fentry costs a second
    /// load, so it is tried only where the probe found fentry. `None` when
    /// asked to stop meanwhile.
    async fn attach(
        &self,
        ctx: &ComponentContext,
        beat: &mut tokio::time::Interval,
        stopped: &mut watch::Receiver<bool>,
    ) -> Option<Option<Arc<Mutex<HitCounter>>>> {
        let no_fentry = (!ctx.kernel.has(Feature::Fentry)).then(|| {
            let why = ctx.kernel.features.get(&Feature::Fentry);
            format!(
                "the probe found no fentry: {}",
                why.and_then(|s| s.reason.as_deref())
                    .unwrap_or("not probed")
            )
        });
        let sizes = self.sizes;
        // The ring buffer is unused (no events): one page is the least.
        let loading = tokio::task::spawn_blocking(move || {
            HitCounter::attach(sizes, Emit::Nothing, 4096, no_fentry)
        });
        let mut loading = std::pin::pin!(loading);
        let loaded = loop {
            tokio::select! {
                r = &mut loading => break r,
                _ = beat.tick() => ctx.heartbeat.beat(),
                _ = stopped.changed() => return None,
            }
        };
        let (counting, counter) = match loaded {
            Ok(Ok(c)) => {
                if let Counting::Tracepoints(why) = &c.counting {
                    log::info!("pagecache: counting with tracepoints, hits estimated ({why})");
                }
                (Ok(c.counting.clone()), Some(Arc::new(Mutex::new(c))))
            }
            Ok(Err(e)) => {
                let why = error_chain(&e);
                log::warn!("pagecache: hit/miss counting unavailable: {why}");
                (Err(why), None)
            }
            Err(e) => (Err(format!("loading the programs panicked: {e}")), None),
        };
        lock(&self.measures).counting = Some(counting);
        Some(counter)
    }

    async fn run(self, ctx: ComponentContext, mut stopped: watch::Receiver<bool>) {
        let mut beat = tokio::time::interval(BEAT_INTERVAL);
        let Some(counter) = self.attach(&ctx, &mut beat, &mut stopped).await else {
            return; // asked to stop while loading
        };
        let look_every = (!self.every.is_zero()).then_some(self.every);
        let mut look = look_every.map(|d| tokio::time::interval_at(tokio::time::Instant::now(), d));
        let mut last: Option<(Instant, Counts)> = None;
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = beat.tick() => {
                    ctx.heartbeat.beat();
                    self.rates(counter.as_deref(), &mut last);
                }
                _ = crate::supervisor::tick_every(&mut look) => {
                    let (counter, docroot) = (counter.clone(), self.docroot.clone());
                    let looked = tokio::task::spawn_blocking(move || {
                        look_at(docroot.as_deref(), counter.as_deref())
                    });
                    let mut looked = std::pin::pin!(looked);
                    // Beats continue while the docroot is read.
                    let result = loop {
                        tokio::select! {
                            r = &mut looked => break r,
                            _ = beat.tick() => ctx.heartbeat.beat(),
                        }
                    };
                    if let Ok((look, files)) = result {
                        let mut m = lock(&self.measures);
                        m.docroot = look;
                        m.files_counted = files;
                    }
                }
            }
        }
        // `counter` drops here: the programs detach.
    }

    /// The totals and their rates since the last call.
    fn rates(&self, counter: Option<&Mutex<HitCounter>>, last: &mut Option<(Instant, Counts)>) {
        let Some(counter) = counter else {
            return;
        };
        let Ok(now) = lock(counter).totals() else {
            return;
        };
        let mut m = lock(&self.measures);
        m.total = Some(now);
        if let Some((at, before)) = *last {
            let secs = at.elapsed().as_secs_f64();
            if secs > 0.0 {
                m.accesses_per_s = Some(now.accesses.saturating_sub(before.accesses) as f64 / secs);
                m.misses_per_s = Some(now.misses.saturating_sub(before.misses) as f64 / secs);
            }
        }
        *last = Some((Instant::now(), now));
    }
}

/// What of `docroot` is cached and its files' counts (none when it does
/// not exist: the file server then serves its demo site, or nothing), with
/// the size of the kernel's file table.
fn look_at(
    docroot: Option<&std::path::Path>,
    counter: Option<&Mutex<HitCounter>>,
) -> (Option<DocrootLook>, Option<usize>) {
    let snapshot = counter.and_then(|c| lock(c).snapshot().ok());
    let counted = snapshot.as_ref().map(|s| s.files.len());
    let Some(docroot) = docroot.filter(|d| d.is_dir()) else {
        return (None, counted);
    };
    let scanned = scan::scan(&[docroot.to_owned()]);
    let mut look = DocrootLook {
        cached_pages: scanned.totals.cached,
        pages: scanned.totals.pages,
        unmeasured: scanned.errors.len() as u64,
        counts: None,
    };
    let Some(snapshot) = snapshot else {
        return (Some(look), counted);
    };
    // The scan's own fstat of each file: one walk of the docroot per look.
    let files: HashSet<(u64, u64)> = scanned.files.iter().map(|f| f.dev_ino).collect();
    let mut sum = Counts::default();
    for (key, c) in &snapshot.files {
        if files.contains(&(user_dev(key.dev), key.ino)) {
            sum.accesses += c.accesses;
            sum.misses += c.misses;
            sum.hits += c.hits;
        }
    }
    look.counts = Some(sum);
    (Some(look), counted)
}
