//! The `fileserver` component: binds the listeners, starts the pinned
//! workers, attaches the eBPF that the kernel allows, and reports health and
//! statistics.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, atomic::Ordering::Relaxed},
    time::Duration,
};

use crate::{
    board::{CpuList, Topology},
    cachesim::Kind,
    fileserver::{
        bpf::{self, Classifier, Steering},
        cache::{CacheOptions, FileCache},
        config::FileserverConfig,
        conn::ServerShared,
        hotset::{self, Choice},
        http::Limits,
        path::Symlinks,
        server,
        stats::{FileserverStats, WorkerStats, summarize},
    },
    probe::Feature,
    supervisor::{
        BEAT_INTERVAL, BoxFuture, Component, ComponentContext, Health, Heartbeat, StartError,
        StatSet, Stats,
    },
    sync::lock,
};
use nodus_common::fileserver::{
    METHOD_GET, METHOD_HEAD, METHOD_OTHER, PATH_ASSET, PATH_HTML, PATH_IMAGE, PATH_INDEX,
    PATH_OTHER, PATH_SUSPICIOUS,
};

/// The embedded demo site: (name, contents).
const DEMO: &[(&str, &[u8])] = &[
    ("index.html", include_bytes!("demo/index.html")),
    ("style.css", include_bytes!("demo/style.css")),
    ("style.css.gz", include_bytes!("demo/style.css.gz")),
];

/// The static file server, as the supervisor sees it.
pub struct Fileserver {
    config: FileserverConfig,
    placement: Option<CpuList>,
    degraded: Vec<String>,
    running: Option<Running>,
}

struct Running {
    workers: Vec<server::Worker>,
    beat: tokio::task::JoinHandle<()>,
    /// Reviews the hot set's policy each window of requests.
    review: tokio::task::JoinHandle<()>,
    shared: Arc<ServerShared>,
    steering: Option<Steering>,
    /// Filled by a background task: verifying the classifier takes the
    /// kernel tens of milliseconds, which READY need not wait for.
    classifier: Arc<Mutex<Option<Classifier>>>,
    /// Reasons the classifier could not attach, once known.
    classifier_errors: Arc<Mutex<Vec<String>>>,
    addr: SocketAddr,
    docroot: PathBuf,
    demo: Option<PathBuf>,
    cpus: Vec<Option<u32>>,
}

impl Fileserver {
    /// A file server for `config`; `placement` is the board profile's
    /// `placement.fileserver` CPUs, if it has any.
    pub fn new(config: FileserverConfig, placement: Option<CpuList>) -> Self {
        Fileserver {
            config,
            placement,
            degraded: Vec::new(),
            running: None,
        }
    }

    /// The CPU each worker is pinned to (`None`: not pinned).
    fn worker_cpus(&self) -> Vec<Option<u32>> {
        let cpus: Vec<u32> = match &self.placement {
            Some(list) if !list.is_empty() => list.cpus().collect(),
            _ => CpuList::of_current_thread().cpus().collect(),
        };
        let n = match self.config.workers {
            0 => cpus.len().max(1),
            n => n,
        };
        (0..n)
            .map(|i| (self.config.pin_workers && !cpus.is_empty()).then(|| cpus[i % cpus.len()]))
            .collect()
    }

    /// The docroot to serve, writing the demo site when it is missing and allowed.
    fn docroot(&self) -> Result<(PathBuf, Option<PathBuf>), StartError> {
        let root = &self.config.docroot;
        if root.is_dir() {
            return Ok((root.clone(), None));
        }
        if !self.config.demo_when_missing {
            return Err(StartError(format!(
                "docroot {} is not a directory",
                root.display()
            )));
        }
        let run_dir = std::path::Path::new("/run/nodus");
        remove_stale_demo_sites(run_dir);
        let demo = run_dir.join(format!("www-demo.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&demo)?;
            for (name, bytes) in DEMO {
                std::fs::write(demo.join(name), bytes)?;
            }
            Ok(())
        };
        write().map_err(|e| StartError(format!("demo site {}: {e}", demo.display())))?;
        log::warn!(
            "fileserver: docroot {} missing: serving the embedded demo site from {}",
            root.display(),
            demo.display()
        );
        Ok((demo.clone(), Some(demo)))
    }
}

impl Component for Fileserver {
    fn name(&self) -> &'static str {
        "fileserver"
    }

    fn start(&mut self, ctx: ComponentContext) -> Result<(), StartError> {
        let c = &self.config;
        self.degraded.clear();
        descriptor_budget(c, self.worker_cpus().len(), crate::fdlimit::soft_limit())?;
        let (docroot, demo) = self.docroot()?;
        let cleanup = |demo: &Option<PathBuf>| {
            if let Some(d) = demo {
                let _ = std::fs::remove_dir_all(d);
            }
        };
        let cache = FileCache::new(CacheOptions {
            root: docroot.clone(),
            index: c.index.clone(),
            symlinks: if c.symlinks_outside {
                Symlinks::Anywhere
            } else {
                Symlinks::Inside
            },
            small_file_max: c.small_file_max,
            hot_bytes: c.hot_bytes,
            hot_policy: Choice::parse(&c.hot_policy).unwrap_or(Choice::Auto),
            hot_review_requests: c.hot_review_requests,
            open_files: c.open_files,
        })
        .map_err(|e| {
            cleanup(&demo);
            StartError(format!("docroot {}: {e}", docroot.display()))
        })?;
        let cpus = self.worker_cpus();
        let listeners = server::bind(c.listen, cpus.len(), c.backlog).map_err(|e| {
            cleanup(&demo);
            StartError(format!("listen {}: {e}", c.listen))
        })?;
        let addr = listeners
            .first()
            .and_then(|l| l.local_addr().ok())
            .unwrap_or(c.listen);
        let shared = Arc::new(ServerShared {
            cache,
            limits: Limits {
                max_request_line: c.max_request_line,
                max_header_bytes: c.max_header_bytes,
                max_headers: c.max_headers,
            },
            header_timeout: Duration::from_millis(c.header_timeout_ms),
            idle_timeout: Duration::from_millis(c.idle_timeout_ms),
            max_connections: c.max_connections as u64,
            workers: (0..cpus.len()).map(|_| WorkerStats::default()).collect(),
            alive: (0..cpus.len()).map(|_| Heartbeat::new()).collect(),
            conns: Default::default(),
        });
        let steering = if !c.reuseport_steering {
            None
        } else if !ctx.kernel.has(Feature::SkReuseport) {
            self.degraded
                .push("sk_reuseport unavailable in this kernel: connections spread by hash".into());
            None
        } else {
            let topology = Topology::discover().ok();
            let online: Vec<u32> = topology
                .iter()
                .flat_map(|t| t.nodes.iter().flat_map(|n| n.cpus.cpus()))
                .collect();
            let node_of = |cpu| topology.as_ref().and_then(|t| t.node_of(cpu));
            match bpf::steer(&listeners, &cpus, &online, node_of) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.degraded.push(format!(
                        "sk_reuseport steering: {e}; connections spread by hash"
                    ));
                    None
                }
            }
        };
        let classifier = Arc::new(Mutex::new(None));
        let classifier_errors = Arc::new(Mutex::new(Vec::new()));
        if !c.tc_interfaces.is_empty() && !ctx.kernel.has(Feature::Tc) {
            self.degraded
                .push("tc unavailable in this kernel: no kernel-side request counters".into());
        } else if !c.tc_interfaces.is_empty() {
            let (slot, errors) = (classifier.clone(), classifier_errors.clone());
            let (interfaces, port) = (c.tc_interfaces.clone(), addr.port());
            tokio::task::spawn_blocking(move || {
                let (attached, problems) = bpf::classify(&interfaces, port);
                *lock(&slot) = attached;
                *lock(&errors) = problems;
            });
        }
        let workers = server::spawn(listeners, &cpus, shared.clone()).map_err(|e| {
            cleanup(&demo);
            StartError(format!("worker threads: {e}"))
        })?;
        let ticks = shared.clone();
        let heartbeat = ctx.heartbeat.clone();
        let beat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(BEAT_INTERVAL / 2);
            loop {
                tick.tick().await;
                // The component is alive only while every worker is: each
                // proves it by beating from its own loop. One that died or
                // is stuck withholds the beat (and so WATCHDOG=1).
                if ticks.alive.iter().all(|w| w.age() <= WORKER_SILENCE) {
                    heartbeat.beat();
                }
            }
        });
        let reviewed = shared.clone();
        let review = tokio::spawn(async move {
            let mut tick = tokio::time::interval(REVIEW_POLL);
            loop {
                tick.tick().await;
                let Some(input) = reviewed.cache.hot_review_due() else {
                    continue;
                };
                // Milliseconds of replay: off the runtime's threads.
                if let Ok(successor) =
                    tokio::task::spawn_blocking(move || hotset::judge(&input)).await
                {
                    reviewed.cache.hot_adopt(successor);
                }
            }
        });
        log::info!(
            "fileserver: {} workers on {addr}, docroot {}",
            cpus.len(),
            docroot.display()
        );
        self.running = Some(Running {
            workers,
            beat,
            review,
            shared,
            steering,
            classifier,
            classifier_errors,
            addr,
            docroot,
            demo,
            cpus,
        });
        Ok(())
    }

    fn stop(&mut self) -> BoxFuture<'_, ()> {
        let running = self.running.take();
        Box::pin(async move {
            let Some(r) = running else { return };
            for w in &r.workers {
                let _ = w.stop.send(true);
            }
            r.beat.abort();
            r.review.abort();
            let workers = r.workers;
            let _ = tokio::task::spawn_blocking(move || {
                for w in workers {
                    let _ = w.thread.join();
                }
            })
            .await;
            drop(r.steering);
            lock(&r.classifier).take();
            if let Some(d) = r.demo {
                let _ = std::fs::remove_dir_all(d);
            }
        })
    }

    fn health(&self) -> Health {
        let Some(r) = &self.running else {
            return Health::Unavailable("not running".into());
        };
        if let Some(why) = worker_failure(&r.workers, &r.shared.alive) {
            return Health::Unavailable(why);
        }
        let mut reasons = self.degraded.clone();
        reasons.extend(lock(&r.classifier_errors).iter().cloned());
        if reasons.is_empty() {
            Health::Healthy
        } else {
            Health::Degraded(reasons.join("; "))
        }
    }

    fn stats(&self) -> Stats {
        let Some(r) = &self.running else {
            return Stats::new();
        };
        let sum = summarize(&r.shared.workers);
        let [r1, r2, r3, r4, r5] = sum.by_class;
        let conns = &r.shared.conns;
        let cache = &r.shared.cache;
        let k = &cache.counters;
        let (hot_bytes, hot_files) = cache.resident();
        let pinned: Vec<String> = r
            .cpus
            .iter()
            .map(|c| c.map_or("-".into(), |c| c.to_string()))
            .collect();
        let mut s = FileserverStats {
            listen: r.addr.to_string(),
            docroot: r.docroot.display().to_string(),
            worker_cpus: pinned.join(","),
            requests: sum.by_class.iter().sum(),
            responses_1xx: r1,
            responses_2xx: r2,
            responses_3xx: r3,
            responses_4xx: r4,
            responses_5xx: r5,
            bytes_sent: sum.bytes,
            latency_p50_us: sum.p50_us as i64,
            latency_p99_us: sum.p99_us as i64,
            connections_open: conns.open.load(Relaxed) as i64,
            connections_accepted: conns.accepted.load(Relaxed),
            connections_refused: conns.refused.load(Relaxed),
            header_timeouts: conns.timeouts.load(Relaxed),
            accept_fd_exhausted: conns.fd_exhausted.load(Relaxed),
            cache_hits: k.hits.load(Relaxed),
            cache_misses: k.misses.load(Relaxed),
            cache_invalidations: k.invalidations.load(Relaxed),
            open_files: cache.len() as i64,
            hot_hits: k.hot_hits.load(Relaxed),
            hot_loads: k.loads.load(Relaxed),
            hot_load_failures: k.load_failures.load(Relaxed),
            hot_bytes: hot_bytes as i64,
            hot_files: hot_files as i64,
            ..FileserverStats::default()
        };
        let (kind, choice, verdict, (reviews, changes)) = cache.hot_policy();
        s.hot_policy = match choice {
            Choice::Auto => format!("{} (auto)", kind.name()),
            Choice::Fixed(_) => format!("{} (fixed)", kind.name()),
        };
        s.hot_policy_reviews = reviews;
        s.hot_policy_changes = changes;
        if let Some(v) = verdict {
            s.hot_reviewed_requests = Some(v.requests as u64);
            s.hot_hit_ratio_pct = Some(100.0 * v.measured);
            for (k, ratio) in v.simulated {
                let slot = match k {
                    Kind::Lru => &mut s.hot_sim_lru_pct,
                    Kind::Arc => &mut s.hot_sim_arc_pct,
                    Kind::S3fifo => &mut s.hot_sim_s3fifo_pct,
                    Kind::Sieve => &mut s.hot_sim_sieve_pct,
                };
                *slot = Some(100.0 * ratio);
            }
        }
        if let Some(st) = &r.steering {
            let counts = st.counts();
            s.reuseport_steered = Some(counts.same_cpu);
            s.reuseport_same_node = Some(counts.same_node);
            s.reuseport_fallback = Some(counts.hash);
        }
        if let Some(cl) = &*lock(&r.classifier) {
            s.tc_interfaces = Some(cl.attached.join(", "));
            let get = |class| Some(cl.count(METHOD_GET, class));
            let head = |class| Some(cl.count(METHOD_HEAD, class));
            s.kernel_get_index = get(PATH_INDEX);
            s.kernel_get_html = get(PATH_HTML);
            s.kernel_get_asset = get(PATH_ASSET);
            s.kernel_get_image = get(PATH_IMAGE);
            s.kernel_get_other = get(PATH_OTHER);
            s.kernel_get_suspicious = get(PATH_SUSPICIOUS);
            s.kernel_head_index = head(PATH_INDEX);
            s.kernel_head_html = head(PATH_HTML);
            s.kernel_head_asset = head(PATH_ASSET);
            s.kernel_head_image = head(PATH_IMAGE);
            s.kernel_head_other = head(PATH_OTHER);
            s.kernel_head_suspicious = head(PATH_SUSPICIOUS);
            s.kernel_other_method = Some(cl.count(METHOD_OTHER, PATH_OTHER));
        }
        s.to_stats()
    }
}

/// Removes demo sites that daemons killed before they could clean up left
/// in `run_dir` (`www-demo.<pid>` whose process is gone), so a board that
/// restarts nodus often does not fill its tmpfs with copies.
fn remove_stale_demo_sites(run_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("www-demo."))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Descriptors the rest of nodus may hold (eBPF maps and programs, the
/// control socket, the fleet link, /proc reads).
const FD_RESERVE: usize = 256;
/// Descriptors each worker holds besides its connections: its listener, its
/// runtime's epoll and eventfd, its spare.
const FD_PER_WORKER: usize = 4;

/// Checks that `max_connections` and `open_files` fit under the open-file
/// limit: otherwise the server would fail with EMFILE under load instead of
/// at start with the numbers.
fn descriptor_budget(c: &FileserverConfig, workers: usize, limit: u64) -> Result<(), StartError> {
    let need = c.max_connections + c.open_files + FD_RESERVE + FD_PER_WORKER * workers;
    if need as u64 <= limit {
        return Ok(());
    }
    Err(StartError(format!(
        "needs {need} file descriptors (fileserver.max_connections {} + fileserver.open_files {} \
         + {} for {workers} workers + {FD_RESERVE} for the rest of nodus), the limit is {limit}: \
         raise LimitNOFILE= (or [limits] open_files in the board profile) or lower those keys",
        c.max_connections,
        c.open_files,
        FD_PER_WORKER * workers
    )))
}

/// How long a worker may go without beating before it counts as stuck.
const WORKER_SILENCE: Duration = Duration::from_secs(3);

/// How often the review task asks whether a window of requests has been
/// served (the review itself runs once per window).
const REVIEW_POLL: Duration = Duration::from_millis(500);

/// Why the workers no longer serve, if they do not: one ended (its share of
/// new connections would go unanswered), or one has not beaten for
/// [`WORKER_SILENCE`].
fn worker_failure(workers: &[server::Worker], alive: &[Heartbeat]) -> Option<String> {
    for (i, (w, beat)) in workers.iter().zip(alive).enumerate() {
        if w.thread.is_finished() {
            return Some(format!(
                "worker {i} (thread nodus-fs-{i}) ended; connections the kernel gives its socket go unanswered"
            ));
        }
        if beat.age() > WORKER_SILENCE {
            return Some(format!(
                "worker {i} (thread nodus-fs-{i}) stuck: no heartbeat for {:.1} s",
                beat.age().as_secs_f64()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_descriptors_must_fit_the_limit() {
        let c = FileserverConfig::default();
        let need = 10_000 + 4096 + FD_RESERVE + 2 * FD_PER_WORKER;
        assert!(descriptor_budget(&c, 2, need as u64).is_ok());
        let err = descriptor_budget(&c, 2, 1024).unwrap_err().to_string();
        assert!(
            err.contains(&format!("needs {need} file descriptors"))
                && err.contains("fileserver.max_connections 10000")
                && err.contains("the limit is 1024"),
            "{err}"
        );
    }

    /// A worker that ends takes the component down with it: unavailable,
    /// and its heartbeat (so WATCHDOG=1) withheld, while the others still run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_worker_makes_the_file_server_unavailable_and_silent() {
        let docroot = tempfile::tempdir().expect("temp dir");
        std::fs::write(docroot.path().join("index.html"), "hi").expect("write");
        let config = FileserverConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            docroot: docroot.path().to_owned(),
            workers: 2,
            pin_workers: false,
            reuseport_steering: false,
            tc_interfaces: Vec::new(),
            ..FileserverConfig::default()
        };
        let mut fs = Fileserver::new(config, None);
        let heartbeat = Heartbeat::new();
        let ctx = ComponentContext {
            heartbeat: heartbeat.clone(),
            kernel: Default::default(),
        };
        fs.start(ctx).expect("start");
        tokio::time::sleep(BEAT_INTERVAL * 2).await;
        assert_eq!(fs.health(), Health::Healthy);
        assert!(heartbeat.age() < BEAT_INTERVAL);

        // Worker 0 ends; worker 1 goes on.
        let r = fs.running.as_ref().expect("running");
        let _ = r.workers[0].stop.send(true);
        while !r.workers[0].thread.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!r.workers[1].thread.is_finished());
        match fs.health() {
            Health::Unavailable(why) => assert!(why.contains("worker 0"), "{why}"),
            other => panic!("health is {other}"),
        }
        tokio::time::sleep(WORKER_SILENCE + BEAT_INTERVAL * 2).await;
        assert!(
            heartbeat.age() > BEAT_INTERVAL * 2,
            "the component stopped beating ({:?} ago)",
            heartbeat.age()
        );
        fs.stop().await;
    }

    #[test]
    fn demo_sites_of_dead_daemons_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        // pid_max is at most 2^22, so this pid cannot be running.
        let dead = dir.path().join("www-demo.4294967290");
        let live = dir.path().join(format!("www-demo.{}", std::process::id()));
        let other = dir.path().join("www-demo.notapid");
        for d in [&dead, &live, &other] {
            std::fs::create_dir(d).expect("mkdir");
            std::fs::write(d.join("index.html"), "x").expect("write");
        }
        remove_stale_demo_sites(dir.path());
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other.exists(), "only www-demo.<pid> names are touched");
    }
}
