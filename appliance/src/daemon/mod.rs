//! `nodus run`: boot, serve, reload and stop, in the order docs/design.md gives.
//!
//! 1. config (already parsed by the caller: a bad file never gets here);
//! 2. kernel probe (after mounting tracefs/bpffs if absent);
//! 3. components, each under the supervisor;
//! 4. READY=1 with a STATUS line; WATCHDOG=1 only while every component beats;
//! 5. SIGHUP: validate, apply, keep or roll back; SIGTERM/SIGINT: stop in reverse.

mod notify;
mod process;
mod registry;
mod transition;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, oneshot, watch},
};

pub use notify::{Notifier, NotifyState};
pub use registry::{REGISTRY, Registration, Shared, stat_tables};

use crate::{
    board::Topology,
    change::{Outcome, Proposal},
    config::{Config, Layers, Source},
    control::{
        Query,
        protocol::{Request, Response},
    },
    fleet::{BootDocuments, FleetShared},
    logging,
    numa::Homes,
    probe::{self, ProbeReport},
    proccache::{ProcessTable, PsQuery},
    profile::{
        self, Chosen, ProfileComponent, ThreadPlacement,
        journal::{self, Journal},
    },
    sched::Plan,
    status::{StatusReport, StatusRequest, StatusSource},
    supervisor::{Component, Health, Supervisor},
};

/// Everything `run` needs.
pub struct RunOptions {
    /// The validated configuration.
    pub config: Config,
    /// Where it came from (a file is re-read on SIGHUP).
    pub source: Source,
    /// The service-manager link.
    pub notifier: Notifier,
    /// When the process started, for the start-to-READY time.
    pub started: Instant,
    /// Components to run after the registry's; for embedding and tests.
    pub extra: Vec<Box<dyn Component>>,
    /// Stops the daemon like SIGTERM when set to true; for embedding and tests.
    pub stop: Option<watch::Receiver<bool>>,
}

/// Why the daemon could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The async runtime could not be built.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// Another daemon answers on the configured control socket.
    #[error("another nodus is already running (it answers on {0})")]
    AlreadyRunning(PathBuf),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Runs the daemon until SIGTERM/SIGINT (or `opts.stop`), then stops cleanly.
pub fn run(opts: RunOptions) -> Result<(), DaemonError> {
    let socket = &opts.config.control.socket;
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        return Err(DaemonError::AlreadyRunning(socket.clone()));
    }
    let mut opts = opts;
    let (layers, fleet) = boot_layers(&mut opts);
    // Board profile before the runtime: its threads inherit the CPU affinity
    // and memory policy the profile sets on this one.
    let (mut profile, placement, sched_plan, numa_homes) = apply_profile(&opts.config);
    // After the profile (its [limits] may set the hard limit): components
    // budget their descriptors against this.
    match crate::fdlimit::raise_soft_limit() {
        Ok(l) if l.before < l.soft => {
            log::info!(
                "open files: soft limit raised from {} to {}",
                l.before,
                l.soft
            )
        }
        Ok(_) => {}
        Err(e) => log::warn!("open files: cannot raise the soft limit: {e}"),
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if opts.config.daemon.worker_threads > 0 {
        builder.worker_threads(opts.config.daemon.worker_threads);
    }
    let runtime = match builder.thread_name("nodus-rt").enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            profile.restore();
            return Err(DaemonError::Runtime(e));
        }
    };
    runtime.block_on(async move {
        // Before anything else: a signal that arrives during boot (or right
        // after READY=1) must be handled, not take its default action.
        let signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                profile.restore();
                return Err(DaemonError::Signals(e));
            }
        };
        let daemon = Daemon::boot(
            opts, layers, fleet, profile, placement, sched_plan, numa_homes,
        )
        .await;
        daemon.serve(signals).await
    })
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

struct Daemon {
    config: Config,
    /// What `config` is made of (file, fleet group and device documents).
    layers: Layers,
    /// A change applied and not yet committed.
    pending: Option<transition::Pending>,
    proposals: mpsc::Receiver<Proposal>,
    source: Source,
    notifier: Notifier,
    started: Instant,
    ready_ms: Option<u64>,
    kernel: Arc<ProbeReport>,
    supervisor: Supervisor,
    shared: Shared,
    queries: mpsc::Receiver<Query>,
    status_requests: mpsc::Receiver<StatusRequest>,
    stop: Option<watch::Receiver<bool>>,
}

impl Daemon {
    async fn boot(
        opts: RunOptions,
        layers: Layers,
        fleet: FleetShared,
        profile: ProfileComponent,
        placement: ThreadPlacement,
        sched_plan: Option<Arc<Plan>>,
        numa_homes: Arc<Homes>,
    ) -> Daemon {
        for m in probe::ensure_mounts() {
            log::info!("mounted {m}");
        }
        let kernel = Arc::new(tokio::task::block_in_place(ProbeReport::run));
        log::info!("kernel {}: {}", kernel.kernel, kernel.summary());
        let (tx, queries) = mpsc::channel(64);
        let (proposals_tx, proposals) = mpsc::channel(4);
        let (status, status_requests) = StatusSource::channel();
        let mut daemon = Daemon {
            layers,
            pending: None,
            proposals,
            supervisor: Supervisor::new(
                Duration::from_millis(opts.config.daemon.wedge_timeout_ms),
                kernel.clone(),
            ),
            config: opts.config,
            source: opts.source,
            notifier: opts.notifier,
            started: opts.started,
            ready_ms: None,
            kernel,
            shared: Shared {
                queries: tx,
                processes: ProcessTable::new(),
                placement,
                proposals: proposals_tx,
                status,
                fleet,
                sched_plan,
                numa_homes,
                numa_view: Default::default(),
                workloads: Default::default(),
            },
            queries,
            status_requests,
            stop: opts.stop,
        };
        let _ = daemon.supervisor.start(Box::new(profile));
        for reg in REGISTRY {
            if let Some(c) = (reg.build)(&daemon.config, &daemon.shared) {
                let _ = daemon.supervisor.start(c);
            }
        }
        for c in opts.extra {
            let _ = daemon.supervisor.start(c);
        }
        let ready = daemon.started.elapsed();
        daemon.ready_ms = Some(ready.as_millis() as u64);
        let status = daemon.status_line();
        daemon.notifier.notify(&[
            NotifyState::Ready,
            NotifyState::Status(&status),
            NotifyState::MainPid(std::process::id()),
        ]);
        log::info!(
            "ready in {} ms ({status}); config {}",
            ready.as_millis(),
            daemon.layers.describe()
        );
        daemon
    }

    async fn serve(mut self, signals: Signals) -> Result<(), DaemonError> {
        let Signals {
            mut term,
            mut int,
            mut hup,
        } = signals;
        // systemd asks for keep-alives at least every WATCHDOG_USEC; send at half.
        let mut watchdog = self
            .notifier
            .watchdog()
            .map(|d| tokio::time::interval(d / 2));
        let mut health_tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_status = self.status_line();
        let mut was_alive = true;
        let mut stop = self.stop.take();
        loop {
            tokio::select! {
                _ = term.recv() => { log::info!("SIGTERM: stopping"); break }
                _ = int.recv() => { log::info!("SIGINT: stopping"); break }
                _ = stopped(&mut stop) => { log::info!("stop requested"); break }
                _ = hup.recv() => self.reload().await,
                Some(p) = self.proposals.recv() => {
                    let next = self.layers.with_overlay(p.change.scope, p.change.overlay);
                    self.change(next, format!("fleet {}", p.label), Some(p.reply)).await;
                }
                Some(q) = self.queries.recv() => {
                    let _ = q.reply.send(self.answer(&q.request));
                }
                Some(r) = self.status_requests.recv() => {
                    let _ = r.reply.send(self.status_report());
                }
                _ = crate::supervisor::tick_every(&mut watchdog) => {
                    let alive = self.supervisor.all_alive();
                    if alive {
                        self.notifier.notify(&[NotifyState::Watchdog]);
                    } else if was_alive {
                        log::error!("a component is wedged; withholding WATCHDOG=1: {}", self.status_line());
                    }
                    was_alive = alive;
                }
                _ = health_tick.tick() => {
                    self.verify_pending(false).await;
                    let now = self.status_line();
                    if now != last_status {
                        log::info!("status: {now}");
                        self.notifier.notify(&[NotifyState::Status(&now)]);
                        last_status = now;
                    }
                }
            }
        }
        self.notifier
            .notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
        let timeout = Duration::from_millis(self.config.daemon.stop_timeout_ms);
        self.supervisor.stop_all(timeout).await;
        let kept = self.shared.fleet.outbox.persist();
        if kept > 0 {
            log::info!("telemetry: {kept} unsent reports kept in the spool for the next run");
        }
        log::info!("stopped");
        Ok(())
    }

    fn status_report(&self) -> StatusReport {
        StatusReport {
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            ready_ms: self.ready_ms,
            rss_bytes: process::rss_bytes(),
            log_lines_dropped: crate::logging::dropped(),
            config: self.layers.describe(),
            kernel: (*self.kernel).clone(),
            components: self.supervisor.status(),
        }
    }

    /// The control socket's questions: JSON only from here on.
    fn answer(&self, request: &Request) -> Response {
        match request {
            Request::Status {} => Response::data(self.status_report()),
            Request::Numa {} => Response::data(crate::sync::lock(&self.shared.numa_view).clone()),
            Request::Ps { exited, pid, comm } => {
                let query = PsQuery {
                    exited: *exited,
                    pid: *pid,
                    comm: comm.clone(),
                };
                match self.shared.processes.ps(&query) {
                    Ok(report) => Response::data(report),
                    Err(e) => Response::error(e),
                }
            }
        }
    }

    /// `2 healthy, 1 degraded (proccache: ...)`: short enough for systemctl status.
    fn status_line(&self) -> String {
        let all = self.supervisor.health();
        let healthy = all.iter().filter(|(_, h)| *h == Health::Healthy).count();
        let mut line = format!("{healthy}/{} components healthy", all.len());
        for (name, health) in all.iter().filter(|(_, h)| *h != Health::Healthy) {
            line.push_str(&format!("; {name}: {health}"));
        }
        line
    }

    /// SIGHUP: re-read the config file and change to it (the fleet's
    /// documents stay on top of it).
    async fn reload(&mut self) {
        let Source::File(path) = &self.source else {
            log::info!("SIGHUP: running on embedded defaults, nothing to reload");
            return;
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                log::error!(
                    "SIGHUP: keeping the running config: {}: {e}",
                    path.display()
                );
                return;
            }
        };
        let next = self.layers.with_base(text);
        self.change(next, "SIGHUP".into(), None).await;
    }

    /// The one change path: validate `next`, apply it, and watch it for the
    /// grace period (see [`transition`]); `reply` learns the outcome.
    async fn change(
        &mut self,
        next: Layers,
        label: String,
        reply: Option<oneshot::Sender<Outcome>>,
    ) {
        // One change at a time: the one being watched is decided first.
        self.verify_pending(true).await;
        let new = match next.effective() {
            Ok(c) => c,
            Err(e) => {
                log::error!("{label}: keeping the running config: {e}");
                answer(reply, Outcome::Refused(e.to_string()));
                return;
            }
        };
        if new == self.config {
            log::info!("{label}: {} unchanged", next.describe());
            self.layers = next;
            answer(reply, Outcome::Unchanged);
            return;
        }
        if new.daemon != self.config.daemon || new.profile != self.config.profile {
            log::warn!("{label}: [daemon] and [profile] changes take effect at the next start");
        }
        let baseline: BTreeMap<String, _> = self
            .supervisor
            .health()
            .into_iter()
            .map(|(n, h)| (n.to_owned(), h))
            .collect();
        match self.apply(&new).await {
            Ok(changed) => {
                logging::init(&new.log);
                let grace = Duration::from_millis(new.fleet.grace_ms);
                log::info!(
                    "{label}: applied {} (restarted: {}); verifying for {} ms",
                    next.describe(),
                    changed.join(", "),
                    grace.as_millis()
                );
                let previous = (
                    std::mem::replace(&mut self.layers, next),
                    std::mem::replace(&mut self.config, new),
                );
                self.pending = Some(transition::Pending {
                    previous,
                    baseline,
                    restarted: changed,
                    deadline: Instant::now() + grace,
                    label,
                    reply,
                });
                if grace.is_zero() {
                    self.verify_pending(true).await;
                }
            }
            Err(e) => {
                log::error!("{label}: rolled back to the running config: {e}");
                answer(reply, Outcome::RolledBack(e));
            }
        }
    }

    /// Checks the change being watched: rolls it back if a component got
    /// worse, commits it once its grace period is over (or now, with
    /// `decide_now`, when another change is waiting).
    async fn verify_pending(&mut self, decide_now: bool) {
        let Some(p) = &self.pending else { return };
        let final_check = decide_now || Instant::now() >= p.deadline;
        let now = self.supervisor.health();
        let regression = transition::regression(&p.baseline, &now, &p.restarted, final_check);
        if regression.is_none() && !final_check {
            return;
        }
        let Some(p) = self.pending.take() else { return };
        match regression {
            None => {
                log::info!("{}: committed {}", p.label, self.layers.describe());
                answer(p.reply, Outcome::Committed);
            }
            Some(why) => {
                let (layers, config) = p.previous;
                let _ = self.apply(&config).await;
                logging::init(&config.log);
                self.layers = layers;
                self.config = config;
                log::error!("{}: rolled back to the running config: {why}", p.label);
                answer(p.reply, Outcome::RolledBack(why));
            }
        }
    }

    /// Restarts components whose section differs in `new`; on any failure puts
    /// every restarted component back on the old config.
    async fn apply(&mut self, new: &Config) -> Result<Vec<&'static str>, String> {
        let timeout = Duration::from_millis(self.config.daemon.stop_timeout_ms);
        let changed: Vec<&Registration> = REGISTRY
            .iter()
            .filter(|r| (r.section)(&self.config) != (r.section)(new))
            .collect();
        let mut failure = None;
        for reg in &changed {
            self.supervisor.remove(reg.name, timeout).await;
            if let Some(c) = (reg.build)(new, &self.shared)
                && let Err(e) = self.supervisor.start(c)
            {
                failure = Some(format!("{}: {e}", reg.name));
                break;
            }
        }
        let Some(failure) = failure else {
            return Ok(changed.iter().map(|r| r.name).collect());
        };
        for reg in &changed {
            self.supervisor.remove(reg.name, timeout).await;
            if let Some(c) = (reg.build)(&self.config, &self.shared) {
                let _ = self.supervisor.start(c);
            }
        }
        Err(failure)
    }
}

fn answer(reply: Option<oneshot::Sender<Outcome>>, outcome: Outcome) {
    if let Some(r) = reply {
        let _ = r.send(outcome);
    }
}

/// The layers the daemon starts with: the config file, then the fleet's
/// last-good documents if there are any and the configuration they make
/// still validates (the board then boots into its last fleet config even
/// with no broker). Updates `opts.config` to the merged result.
fn boot_layers(opts: &mut RunOptions) -> (Layers, FleetShared) {
    let run_dir = opts.config.control.run_dir();
    let fleet = FleetShared::new(&opts.config.fleet, &run_dir);
    let layers = match Layers::read(&opts.source) {
        Ok(l) if matches!(l.effective(), Ok(c) if c == opts.config) => l,
        // The file changed since it was parsed, or cannot be read again:
        // keep what was validated.
        _ => Layers::new(
            opts.source.clone(),
            toml::to_string(&opts.config).unwrap_or_default(),
        ),
    };
    let boot = BootDocuments::load(&opts.config.fleet, &fleet.versions);
    let changes = boot.changes();
    if changes.is_empty() {
        return (layers, fleet);
    }
    let with = changes
        .into_iter()
        .fold(layers.clone(), |l, c| l.with_overlay(c.scope, c.overlay));
    match with.effective() {
        Ok(config) => {
            log::info!("fleet last-good: running {}", with.describe());
            opts.config = config;
            fleet.adopt(boot);
            (with, fleet)
        }
        Err(e) => {
            log::error!("fleet last-good: not used, it does not validate over this config: {e}");
            (layers, fleet)
        }
    }
}

/// Discovers the topology, chooses and applies the board profile; also
/// returns where its threads go, the scheduler's layers on this board and
/// which node each process belongs on.
fn apply_profile(
    config: &Config,
) -> (
    ProfileComponent,
    ThreadPlacement,
    Option<Arc<Plan>>,
    Arc<Homes>,
) {
    let root = std::path::Path::new("/");
    let every = (config.profile.verify_interval_s > 0)
        .then(|| Duration::from_secs(config.profile.verify_interval_s));
    match Topology::discover() {
        Ok(topo) => {
            let chosen = profile::choose(&config.profile, &topo, root);
            let (journal, problem) =
                Journal::open(&config.control.run_dir().join(journal::FILE_NAME));
            if let Some(p) = problem {
                log::warn!("profile journal: {p}");
            }
            let applied = profile::apply(&chosen.profile, &topo, root, journal);
            log::info!(
                "profile {} ({}): {} changes; topology {}",
                chosen.profile.board.name,
                chosen.origin,
                applied.changes.len(),
                topo.summary()
            );
            let placement = ThreadPlacement::resolve(&chosen.profile, &topo);
            let plan = Plan::resolve(&chosen.profile, &topo).map(Arc::new);
            let homes = Arc::new(Homes::resolve(&chosen.profile, &topo));
            (
                ProfileComponent::new(chosen, applied, every),
                placement,
                plan,
                homes,
            )
        }
        Err(e) => {
            let chosen = Chosen {
                profile: profile::builtin("generic").unwrap_or_default(),
                origin: profile::Origin::Builtin("generic"),
                fallback: Some(format!("cannot read the topology: {e}")),
            };
            (
                ProfileComponent::new(chosen, Default::default(), None),
                ThreadPlacement::default(),
                None,
                Arc::default(),
            )
        }
    }
}

async fn stopped(stop: &mut Option<watch::Receiver<bool>>) {
    match stop {
        Some(rx) => {
            if rx.wait_for(|&s| s).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
