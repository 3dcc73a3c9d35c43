//! The `proxy` component: listens, peeks at each connection's ClientHello
//! ([`super::hello`]), picks its route ([`super::routes`]), connects to the
//! route's first backend that answers ([`super::backends`], health-checked
//! from here), tells it the client's address if the route asks
//! ([`super::proxy_protocol`]) and hands both sockets to the route's data
//! path: the sockhash ([`super::sockhash`]) or splice
//! ([`super::splice`]). The hello is only peeked, so it is still in the
//! client's socket and reaches the backend through the data path, first.

use std::{
    collections::HashMap,
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    os::fd::{AsFd, AsRawFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use nix::{
    poll::{PollFd, PollFlags, PollTimeout, poll},
    sys::socket::MsgFlags,
};
use tokio::{
    io::{AsyncWriteExt, Interest},
    net::{TcpListener, TcpStream},
};

use super::{
    ProxyConfig,
    backends::{Backends, Change, Thresholds},
    config::DataPath,
    guard::Guard,
    hello::{HelloError, HelloReader, MAX_HELLO, Progress},
    resolve::{Resolver, Target},
    routes::{Decision, NamePattern, Rule, Table},
    sockhash::{RelayError, Sockhash},
    splice::{self, Tally},
};
use crate::{
    probe::Feature,
    ratelimit::RateLimit,
    supervisor::{
        BEAT_INTERVAL, BoxFuture, Component, ComponentContext, Counter, Gauge, Health, MainLoop,
        StartError, StatSet, Stats, Text, tick_every,
    },
    sync::lock,
};

crate::stats! {
    /// What the proxy reports. Bytes are counted as they move: by the
    /// kernel on the sockhash path, by each spliced chunk on the other.
    pub struct ProxyStats {
        /// The address it listens on.
        listen: Text,
        /// Each route: the data path it runs on (with the connections the
        /// sockhash refused and splice took), connections since start, bytes
        /// to the backend and to the client (`name: sockhash (1 spliced), 3
        /// conns, 512 B up, 4096 B down, 2/2 backends up`).
        routes: Text,
        /// Backends down now, by route, with the last failure (`alpha:
        /// 127.0.0.1:9 (Connection refused (os error 111))`), or `none`.
        backends_down: Text,
        /// The sockhash data path: `attached`, `not used` (every route
        /// splices) or `refused: <why>` (its routes splice instead).
        sockhash: Text,
        /// The XDP guard: where it is attached (`lo (generic)`), `off` (no
        /// `guard.interfaces`) or `refused: <why>` (the proxy runs
        /// unguarded).
        guard: Text,
        /// SYNs to the proxy's port the guard let through.
        guard_passed: Counter,
        /// SYNs the guard dropped: source in `guard.blocklist`.
        guard_blocked: Counter,
        /// SYNs the guard dropped: over `guard.syn_per_second` from one
        /// source.
        guard_rate_limited: Counter,
        /// Where backend names are resolved (`/etc/resolv.conf (cache 256
        /// names)`), `not used` (every backend is an address) or `refused:
        /// <why>` (their connections fail).
        resolver: Text,
        /// Connections the sockhash refused, spliced instead: a full map, or
        /// a client that half-closed right after its hello (the kernel takes
        /// only established sockets).
        sockhash_fallbacks: Counter,
        /// Connections open now.
        connections_open: Gauge,
        /// Connections accepted since start.
        connections_accepted: Counter,
        /// Connections closed at once: over `max_connections` or
        /// `max_per_source`.
        connections_refused: Counter,
        /// Connections whose first bytes were not a ClientHello nodus
        /// routes (not TLS, malformed, too large, a bad server name).
        hello_errors: Counter,
        /// Connections that did not deliver a whole hello within
        /// `handshake_timeout_ms`.
        hello_timeouts: Counter,
        /// Routed connections closed after `idle_timeout_ms` without a byte
        /// either way.
        idle_timeouts: Counter,
        /// Hellos no route took, with no default route: refused.
        unrouted: Counter,
        /// Backend connections that failed (refused, timed out); the next
        /// backend of the route was tried.
        backend_failures: Counter,
        /// Health checks (TCP connects every `check_interval_ms`) that
        /// failed.
        check_failures: Counter,
        /// Times a backend went down or came back up.
        backend_changes: Counter,
        /// Routed connections for which no backend answered.
        no_backend: Counter,
        /// Bytes relayed to backends, the hello included (all routes).
        bytes_to_backend: Counter,
        /// Bytes relayed to clients.
        bytes_to_client: Counter,
    }
}

/// One route's settings and counters.
struct Route {
    name: String,
    /// The data path the config asks for.
    path: DataPath,
    backends: Backends,
    connect_timeout: Duration,
    /// Whether backends get a PROXY protocol v2 header first.
    proxy_protocol: bool,
    /// What a health check sends after connecting: a PROXY protocol check
    /// header where backends expect the protocol, else nothing.
    check_greeting: Arc<[u8]>,
    connections: AtomicU64,
    /// Bytes its splice relays moved (the kernel counts the sockhash's).
    spliced: Tally,
    /// Its connections the sockhash refused (spliced instead).
    fallbacks: AtomicU64,
}

#[derive(Default)]
struct Counters {
    open: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    hello_errors: AtomicU64,
    hello_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
    unrouted: AtomicU64,
    backend_failures: AtomicU64,
    check_failures: AtomicU64,
    backend_changes: AtomicU64,
    no_backend: AtomicU64,
    sockhash_fallbacks: AtomicU64,
}

/// What every connection task shares.
struct Shared {
    table: Table,
    routes: Vec<Route>,
    counters: Counters,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    max_connections: u64,
    max_per_source: usize,
    /// Time between health checks; None: no checks.
    check_interval: Option<Duration>,
    /// The sockhash data path, when a route wants it and the kernel took it.
    sockhash: Option<Sockhash>,
    /// Why the kernel refused it, when a route wanted it.
    sockhash_refused: Option<String>,
    /// The XDP guard, when configured and the kernel took it.
    guard: Option<Guard>,
    /// Why it is not running, when configured.
    guard_refused: Option<String>,
    /// The resolver of backend names: where it asks, or why there is none.
    resolver: Result<String, String>,
    /// Says why a connection fell back to splice, at most once a minute.
    fallback_warning: Mutex<RateLimit>,
}

impl Shared {
    /// The data path `route` runs on.
    fn path_of(&self, route: &Route) -> DataPath {
        match route.path {
            DataPath::Sockhash if self.sockhash.is_some() => DataPath::Sockhash,
            _ => DataPath::Splice,
        }
    }
}

/// The proxy component.
pub struct Proxy {
    config: ProxyConfig,
    running: Option<(MainLoop, Arc<Shared>, SocketAddr)>,
}

impl Proxy {
    /// A proxy configured by `config` (validated).
    pub fn new(config: ProxyConfig) -> Proxy {
        Proxy {
            config,
            running: None,
        }
    }

    fn shared(&self) -> Shared {
        let c = &self.config;
        // A resolver only where a backend is a name.
        let named = c
            .routes
            .iter()
            .flat_map(|r| &r.backends)
            .any(|b| matches!(Target::parse(b), Some(Target::Name { .. })));
        let (resolver, resolver_status) = if !named {
            (None, Ok("not used".to_owned()))
        } else {
            match Resolver::new(&c.nameservers, c.dns_cache_entries) {
                Ok(r) => {
                    let status = Ok(format!(
                        "{} (cache {} names)",
                        r.source(),
                        c.dns_cache_entries
                    ));
                    (Some(Arc::new(r)), status)
                }
                Err(why) => (None, Err(why)),
            }
        };
        let rules = c
            .routes
            .iter()
            .map(|r| Rule {
                names: r
                    .server_names
                    .iter()
                    .filter_map(|n| NamePattern::parse(n))
                    .collect(),
                alpn: r.alpn.iter().map(|a| a.as_bytes().to_vec()).collect(),
            })
            .collect();
        let default = c.routes.iter().position(|r| r.name == c.default_route);
        Shared {
            table: Table::new(rules, default),
            routes: c
                .routes
                .iter()
                .map(|r| Route {
                    name: r.name.clone(),
                    path: r.data_path.unwrap_or(c.data_path),
                    backends: Backends::new(
                        &r.backends
                            .iter()
                            .filter_map(|b| Target::parse(b))
                            .collect::<Vec<_>>(),
                        Thresholds {
                            rise: c.check_rise,
                            fall: c.check_fall,
                        },
                        resolver.clone(),
                    ),
                    connect_timeout: Duration::from_millis(r.connect_timeout_ms),
                    proxy_protocol: r.proxy_protocol,
                    check_greeting: if r.proxy_protocol {
                        // A fixed 16 bytes from constants: cannot fail.
                        super::proxy_protocol::check_header()
                            .unwrap_or_default()
                            .into()
                    } else {
                        Arc::from(&b""[..])
                    },
                    connections: AtomicU64::new(0),
                    spliced: Tally::default(),
                    fallbacks: AtomicU64::new(0),
                })
                .collect(),
            counters: Counters::default(),
            per_source: Mutex::new(HashMap::new()),
            handshake_timeout: Duration::from_millis(c.handshake_timeout_ms),
            idle_timeout: Duration::from_millis(c.idle_timeout_ms),
            max_connections: c.max_connections as u64,
            max_per_source: c.max_per_source,
            check_interval: (c.check_interval_ms > 0)
                .then(|| Duration::from_millis(c.check_interval_ms)),
            sockhash: None,
            sockhash_refused: None,
            guard: None,
            guard_refused: None,
            resolver: resolver_status,
            fallback_warning: Mutex::new(RateLimit::new(Duration::from_secs(60))),
        }
    }
}

impl Component for Proxy {
    fn name(&self) -> &'static str {
        "proxy"
    }

    fn start(&mut self, ctx: ComponentContext) -> Result<(), StartError> {
        let std_listener = std::net::TcpListener::bind(self.config.listen)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| StartError(format!("listen {}: {e}", self.config.listen)))?;
        let addr = std_listener.local_addr().unwrap_or(self.config.listen);
        let listener = TcpListener::from_std(std_listener)
            .map_err(|e| StartError(format!("listen {addr}: {e}")))?;
        let mut shared = self.shared();
        if shared.routes.iter().any(|r| r.path == DataPath::Sockhash) {
            match Sockhash::load(self.config.max_connections) {
                Ok(s) => shared.sockhash = Some(s),
                Err(e) => {
                    let why = crate::ebpf::error_chain(&e);
                    log::warn!("proxy: sockhash data path refused ({why}): its routes splice");
                    shared.sockhash_refused = Some(why);
                }
            }
        }
        let guard = &self.config.guard;
        if !guard.interfaces.is_empty() {
            let attached = if ctx.kernel.has(Feature::Xdp) {
                Guard::attach(addr.port(), guard).map_err(|e| crate::ebpf::error_chain(&e))
            } else {
                Err("the kernel has no XDP (nodus probe)".to_owned())
            };
            match attached {
                Ok(g) => {
                    log::info!("proxy: XDP guard on {}", g.attached());
                    shared.guard = Some(g);
                }
                Err(why) => {
                    log::warn!("proxy: XDP guard refused ({why}): running unguarded");
                    shared.guard_refused = Some(why);
                }
            }
        }
        let shared = Arc::new(shared);
        let accepting = shared.clone();
        let main = MainLoop::spawn(move |mut stopped| async move {
            let mut beat = tokio::time::interval(BEAT_INTERVAL / 2);
            let mut checks = accepting.check_interval.map(tokio::time::interval);
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = beat.tick() => ctx.heartbeat.beat(),
                    () = tick_every(&mut checks) => {
                        tokio::spawn(check_backends(accepting.clone()));
                    }
                    accepted = listener.accept() => match accepted {
                        Ok((conn, peer)) => admit(&accepting, conn, peer),
                        Err(e) => {
                            // Out of descriptors and the like: pass, retry.
                            log::debug!("proxy: accept: {e}");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    },
                }
            }
        });
        log::info!(
            "proxy: listening on {addr}, {} routes ({})",
            shared.routes.len(),
            shared
                .routes
                .iter()
                .map(|r| format!("{}: {}", r.name, shared.path_of(r).name()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.running = Some((main, shared, addr));
        Ok(())
    }

    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some((main, _, _)) = self.running.take() {
                main.stop().await;
            }
        })
    }

    fn health(&self) -> Health {
        match &self.running {
            Some((main, shared, _)) if !main.is_finished() => {
                let mut problems = Vec::new();
                if let Some(why) = &shared.sockhash_refused {
                    problems.push(format!("sockhash refused, splicing: {why}"));
                }
                if let Err(why) = &shared.resolver {
                    problems.push(format!("no resolver for backend names: {why}"));
                }
                if let Some(why) = &shared.guard_refused {
                    problems.push(format!("XDP guard refused, unguarded: {why}"));
                }
                if problems.is_empty() {
                    Health::Healthy
                } else {
                    Health::Degraded(problems.join("; "))
                }
            }
            _ => Health::Unavailable("not listening".into()),
        }
    }

    fn stats(&self) -> Stats {
        let Some((_, s, addr)) = &self.running else {
            return Stats::new();
        };
        let k = &s.counters;
        let mut routes = String::new();
        let mut backends_down = String::new();
        let (mut up_total, mut down_total) = (0, 0);
        for (i, r) in s.routes.iter().enumerate() {
            let (kernel_up, kernel_down) = s
                .sockhash
                .as_ref()
                .map_or((0, 0), |k| k.route_bytes(i as u32));
            let up = r.spliced.to_backend.load(Relaxed) + kernel_up;
            let down = r.spliced.to_client.load(Relaxed) + kernel_down;
            up_total += up;
            down_total += down;
            let fallbacks = r.fallbacks.load(Relaxed);
            let _ = write!(
                routes,
                "{}{}: {}{}, {} conns, {up} B up, {down} B down, {}/{} backends up",
                if routes.is_empty() { "" } else { "; " },
                r.name,
                s.path_of(r).name(),
                if fallbacks > 0 {
                    format!(" ({fallbacks} spliced)")
                } else {
                    String::new()
                },
                r.connections.load(Relaxed),
                r.backends.up(),
                r.backends.len(),
            );
            let down = r.backends.down_text();
            if !down.is_empty() {
                let _ = write!(
                    backends_down,
                    "{}{}: {down}",
                    if backends_down.is_empty() { "" } else { "; " },
                    r.name
                );
            }
        }
        if backends_down.is_empty() {
            backends_down.push_str("none");
        }
        let sockhash = match (&s.sockhash, &s.sockhash_refused) {
            (Some(_), _) => "attached".to_owned(),
            (None, Some(why)) => format!("refused: {why}"),
            (None, None) => "not used".to_owned(),
        };
        let guard_counts = s.guard.as_ref().map(Guard::counts).unwrap_or_default();
        let guard = match (&s.guard, &s.guard_refused) {
            (Some(g), _) => g.attached().to_owned(),
            (None, Some(why)) => format!("refused: {why}"),
            (None, None) => "off".to_owned(),
        };
        ProxyStats {
            listen: addr.to_string(),
            resolver: match &s.resolver {
                Ok(status) => status.clone(),
                Err(why) => format!("refused: {why}"),
            },
            guard,
            guard_passed: guard_counts.passed,
            guard_blocked: guard_counts.blocked,
            guard_rate_limited: guard_counts.rate_limited,
            routes,
            backends_down,
            sockhash,
            sockhash_fallbacks: k.sockhash_fallbacks.load(Relaxed),
            connections_open: k.open.load(Relaxed) as i64,
            connections_accepted: k.accepted.load(Relaxed),
            connections_refused: k.refused.load(Relaxed),
            hello_errors: k.hello_errors.load(Relaxed),
            hello_timeouts: k.hello_timeouts.load(Relaxed),
            idle_timeouts: k.idle_timeouts.load(Relaxed),
            unrouted: k.unrouted.load(Relaxed),
            backend_failures: k.backend_failures.load(Relaxed),
            check_failures: k.check_failures.load(Relaxed),
            backend_changes: k.backend_changes.load(Relaxed),
            no_backend: k.no_backend.load(Relaxed),
            bytes_to_backend: up_total,
            bytes_to_client: down_total,
        }
        .to_stats()
    }
}

/// Counts a connection in, or refuses it over a limit; its task counts it
/// out when it ends, whatever ends it.
fn admit(shared: &Arc<Shared>, conn: TcpStream, peer: SocketAddr) {
    let k = &shared.counters;
    k.accepted.fetch_add(1, Relaxed);
    {
        let mut per = lock(&shared.per_source);
        let mine = per.entry(peer.ip()).or_insert(0);
        if k.open.load(Relaxed) >= shared.max_connections || *mine >= shared.max_per_source {
            if *mine == 0 {
                per.remove(&peer.ip());
            }
            k.refused.fetch_add(1, Relaxed);
            return;
        }
        *mine += 1;
        k.open.fetch_add(1, Relaxed);
    }
    let guard = Admitted {
        shared: shared.clone(),
        source: peer.ip(),
    };
    tokio::spawn(async move {
        serve(&guard.shared, conn).await;
        drop(guard);
    });
}

/// One admitted connection; counted out when dropped.
struct Admitted {
    shared: Arc<Shared>,
    source: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.shared.counters.open.fetch_sub(1, Relaxed);
        let mut per = lock(&self.shared.per_source);
        if let Some(n) = per.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.source);
            }
        }
    }
}

/// Reads the hello, routes, connects, relays.
async fn serve(shared: &Shared, client: TcpStream) {
    let k = &shared.counters;
    let read = tokio::time::timeout(shared.handshake_timeout, read_hello(&client)).await;
    let hello = match read {
        Err(_) => {
            k.hello_timeouts.fetch_add(1, Relaxed);
            return;
        }
        Ok(Err(e)) => {
            k.hello_errors.fetch_add(1, Relaxed);
            log::debug!("proxy: {e}");
            return;
        }
        Ok(Ok(h)) => h,
    };
    let index = match shared.table.decide(&hello) {
        Decision::Route(i) | Decision::Default(i) => i,
        Decision::Refuse => {
            k.unrouted.fetch_add(1, Relaxed);
            return;
        }
    };
    let Some(route) = shared.routes.get(index) else {
        return;
    };
    route.connections.fetch_add(1, Relaxed);
    let Some(mut backend) = connect_backend(shared, route).await else {
        k.no_backend.fetch_add(1, Relaxed);
        return;
    };
    if route.proxy_protocol {
        let told = match (client.peer_addr(), client.local_addr()) {
            (Ok(from), Ok(to)) => match super::proxy_protocol::header(from, to) {
                Ok(header) => backend.write_all(&header).await,
                Err(e) => Err(e),
            },
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        if let Err(e) = told {
            log::debug!("proxy: {}: PROXY header: {e}", route.name);
            return;
        }
    }
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    let (client, backend) = match (&shared.sockhash, shared.path_of(route)) {
        (Some(kernel), DataPath::Sockhash) => {
            match kernel
                .relay(client, backend, index as u32, shared.idle_timeout)
                .await
            {
                // Its bytes are on the kernel's per-route counters.
                Ok(_) => return,
                Err(RelayError::NotEntered {
                    client,
                    backend,
                    error,
                }) => {
                    k.sockhash_fallbacks.fetch_add(1, Relaxed);
                    route.fallbacks.fetch_add(1, Relaxed);
                    if let Some(held_back) = lock(&shared.fallback_warning).allow() {
                        log::warn!(
                            "proxy: {}: sockhash refused a connection ({error}), splicing it ({held_back} more since the last warning)",
                            route.name
                        );
                    }
                    (client, backend)
                }
                Err(RelayError::Io(e)) => {
                    relay_ended(k, &route.name, &e);
                    return;
                }
            }
        }
        _ => (client, backend),
    };
    if let Err(e) = splice::relay(&client, &backend, &route.spliced, shared.idle_timeout).await {
        relay_ended(k, &route.name, &e);
    }
}

/// The route's first backend that takes a connection: up ones in order,
/// then down ones; each result counts toward the backend's health.
async fn connect_backend(shared: &Shared, route: &Route) -> Option<TcpStream> {
    for b in route.backends.order() {
        let result = route.backends.connect(b, route.connect_timeout).await;
        if result.is_err() {
            shared.counters.backend_failures.fetch_add(1, Relaxed);
        }
        let change = route
            .backends
            .record(b, result.as_ref().map(drop).map_err(Clone::clone));
        if let Some(change) = change {
            backend_changed(shared, route, &b.target, change);
        }
        if let Ok(stream) = result {
            return Some(stream);
        }
    }
    None
}

/// One round of health checks of every route's backends.
async fn check_backends(shared: Arc<Shared>) {
    for route in &shared.routes {
        let failed = route
            .backends
            .check_round(route.connect_timeout, &route.check_greeting, |b, change| {
                backend_changed(&shared, route, &b.target, change);
            })
            .await;
        shared
            .counters
            .check_failures
            .fetch_add(failed as u64, Relaxed);
    }
}

/// Logs and counts a backend's change of state.
fn backend_changed(shared: &Shared, route: &Route, addr: &Target, change: Change) {
    shared.counters.backend_changes.fetch_add(1, Relaxed);
    match change {
        Change::Down(why) => log::warn!(
            "proxy: {}: backend {addr} down ({why}); {}/{} up",
            route.name,
            route.backends.up(),
            route.backends.len()
        ),
        Change::Up => log::info!(
            "proxy: {}: backend {addr} up again; {}/{} up",
            route.name,
            route.backends.up(),
            route.backends.len()
        ),
    }
}

/// Counts an idle timeout; other relay errors (resets) are the peers'.
fn relay_ended(k: &Counters, route: &str, e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::TimedOut {
        k.idle_timeouts.fetch_add(1, Relaxed);
    }
    log::debug!("proxy: {route}: relay ended: {e}");
}

/// Why a connection gave no hello.
#[derive(Debug, thiserror::Error)]
enum NoHello {
    #[error("reading the hello: {0}")]
    Io(#[source] std::io::Error),
    #[error("client closed before its hello was whole")]
    Closed,
    #[error(transparent)]
    Hello(#[from] HelloError),
}

/// Peeks at the client's bytes until they hold a whole ClientHello, leaving
/// them all in the socket for the data path to move.
async fn read_hello(client: &TcpStream) -> Result<super::hello::Hello, NoHello> {
    let mut reader = HelloReader::new();
    let mut buf = vec![0u8; 4096];
    let mut seen = 0;
    loop {
        let peeked = client
            .async_io(Interest::READABLE, || {
                let n = nix::sys::socket::recv(
                    client.as_raw_fd(),
                    &mut buf,
                    MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
                )
                .map_err(std::io::Error::from)?;
                if n == seen && n > 0 {
                    if closed(client) {
                        return Ok(0);
                    }
                    // Nothing new: wait for the next segment.
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            })
            .await
            .map_err(NoHello::Io)?;
        if peeked == 0 {
            return Err(NoHello::Closed);
        }
        if let Progress::Done(h) = reader.push(&buf[seen..peeked])? {
            return Ok(h);
        }
        seen = peeked;
        if seen == buf.len() {
            // The reader refuses hellos over its limit long before this.
            if buf.len() >= PEEK_MAX {
                return Err(HelloError::TooLarge(seen).into());
            }
            buf.resize(buf.len() * 2, 0);
        }
    }
}

/// Whether the client has sent its FIN (a peek cannot tell: it returns the
/// bytes still queued).
fn closed(client: &TcpStream) -> bool {
    // nix names no POLLRDHUP.
    let rdhup = PollFlags::from_bits_retain(libc::POLLRDHUP);
    let mut fds = [PollFd::new(client.as_fd(), rdhup)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(rdhup | PollFlags::POLLHUP))
}

/// The most bytes peeked: the reader's record limit (twice [`MAX_HELLO`])
/// with room for record headers.
const PEEK_MAX: usize = 4 * MAX_HELLO;
