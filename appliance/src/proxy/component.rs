//! The `proxy` component: listens, reads each connection's ClientHello
//! ([`super::hello`]), picks its route ([`super::routes`]), connects to the
//! route's first backend that answers, sends it every byte read so far and
//! relays the rest with splice ([`super::splice`]).

use std::{
    collections::HashMap,
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
};

use super::{
    ProxyConfig,
    hello::{HelloError, HelloReader, Progress},
    routes::{Decision, NamePattern, Rule, Table},
    splice,
};
use crate::{
    supervisor::{
        BEAT_INTERVAL, BoxFuture, Component, ComponentContext, Counter, Gauge, Health, MainLoop,
        StartError, StatSet, Stats, Text,
    },
    sync::lock,
};

crate::stats! {
    /// What the proxy reports. Byte counts are added when a connection ends.
    pub struct ProxyStats {
        /// The address it listens on.
        listen: Text,
        /// Each route: its data path, connections since start, bytes to
        /// the backend and to the client (`name: splice, 3 conns, 512 B up,
        /// 4096 B down`).
        routes: Text,
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
        /// Hellos no route took, with no default route: refused.
        unrouted: Counter,
        /// Backend connections that failed (refused, timed out); the next
        /// backend of the route was tried.
        backend_failures: Counter,
        /// Routed connections for which no backend answered.
        no_backend: Counter,
        /// Bytes relayed to backends, the hello included.
        bytes_to_backend: Counter,
        /// Bytes relayed to clients.
        bytes_to_client: Counter,
    }
}

/// One route's settings and counters.
struct Route {
    name: String,
    backends: Vec<SocketAddr>,
    connect_timeout: Duration,
    connections: AtomicU64,
    to_backend: AtomicU64,
    to_client: AtomicU64,
}

#[derive(Default)]
struct Counters {
    open: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    hello_errors: AtomicU64,
    hello_timeouts: AtomicU64,
    unrouted: AtomicU64,
    backend_failures: AtomicU64,
    no_backend: AtomicU64,
}

/// What every connection task shares.
struct Shared {
    table: Table,
    routes: Vec<Route>,
    counters: Counters,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    handshake_timeout: Duration,
    max_connections: u64,
    max_per_source: usize,
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
                    backends: r.backends.clone(),
                    connect_timeout: Duration::from_millis(r.connect_timeout_ms),
                    connections: AtomicU64::new(0),
                    to_backend: AtomicU64::new(0),
                    to_client: AtomicU64::new(0),
                })
                .collect(),
            counters: Counters::default(),
            per_source: Mutex::new(HashMap::new()),
            handshake_timeout: Duration::from_millis(c.handshake_timeout_ms),
            max_connections: c.max_connections as u64,
            max_per_source: c.max_per_source,
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
        let shared = Arc::new(self.shared());
        let accepting = shared.clone();
        let main = MainLoop::spawn(move |mut stopped| async move {
            let mut beat = tokio::time::interval(BEAT_INTERVAL / 2);
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = beat.tick() => ctx.heartbeat.beat(),
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
        log::info!("proxy: listening on {addr}, {} routes", shared.routes.len());
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
            Some((main, _, _)) if !main.is_finished() => Health::Healthy,
            _ => Health::Unavailable("not listening".into()),
        }
    }

    fn stats(&self) -> Stats {
        let Some((_, s, addr)) = &self.running else {
            return Stats::new();
        };
        let k = &s.counters;
        let mut routes = String::new();
        for r in &s.routes {
            let _ = write!(
                routes,
                "{}{}: splice, {} conns, {} B up, {} B down",
                if routes.is_empty() { "" } else { "; " },
                r.name,
                r.connections.load(Relaxed),
                r.to_backend.load(Relaxed),
                r.to_client.load(Relaxed)
            );
        }
        ProxyStats {
            listen: addr.to_string(),
            routes,
            connections_open: k.open.load(Relaxed) as i64,
            connections_accepted: k.accepted.load(Relaxed),
            connections_refused: k.refused.load(Relaxed),
            hello_errors: k.hello_errors.load(Relaxed),
            hello_timeouts: k.hello_timeouts.load(Relaxed),
            unrouted: k.unrouted.load(Relaxed),
            backend_failures: k.backend_failures.load(Relaxed),
            no_backend: k.no_backend.load(Relaxed),
            bytes_to_backend: s.routes.iter().map(|r| r.to_backend.load(Relaxed)).sum(),
            bytes_to_client: s.routes.iter().map(|r| r.to_client.load(Relaxed)).sum(),
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
    let (hello, first_bytes) = match read {
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
    let mut backend = None;
    for addr in &route.backends {
        match tokio::time::timeout(route.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(b)) => {
                backend = Some(b);
                break;
            }
            _ => {
                k.backend_failures.fetch_add(1, Relaxed);
            }
        }
    }
    let Some(mut backend) = backend else {
        k.no_backend.fetch_add(1, Relaxed);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    // Everything read so far (the hello, early data) goes first.
    if backend.write_all(&first_bytes).await.is_err() {
        return;
    }
    route
        .to_backend
        .fetch_add(first_bytes.len() as u64, Relaxed);
    match splice::relay(&client, &backend).await {
        Ok(moved) => {
            route.to_backend.fetch_add(moved.to_backend, Relaxed);
            route.to_client.fetch_add(moved.to_client, Relaxed);
        }
        Err(e) => log::debug!("proxy: {}: relay ended: {e}", route.name),
    }
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

async fn read_hello(client: &TcpStream) -> Result<(super::hello::Hello, Vec<u8>), NoHello> {
    let mut reader = HelloReader::new();
    let mut buf = vec![0u8; 4096];
    loop {
        client.readable().await.map_err(NoHello::Io)?;
        let n = match client.try_read(&mut buf) {
            Ok(0) => return Err(NoHello::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(NoHello::Io(e)),
        };
        if let Progress::Done(h) = reader.push(&buf[..n])? {
            return Ok((h, reader.into_received()));
        }
    }
}
