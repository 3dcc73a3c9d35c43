//! The daemon side of the control socket, run as a supervised component so
//! that its liveness and counters show up like everything else's.

use std::{
    fs, io,
    os::unix::{fs::PermissionsExt, net::UnixStream as StdUnixStream},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{Semaphore, mpsc, oneshot},
};

use nix::sys::stat::{Mode, umask};

use super::protocol::{MAX_REQUEST_BYTES, Request, Response};
use crate::supervisor::{
    BEAT_INTERVAL, BoxFuture, Component, ComponentContext, Counter, Gauge, Health, MainLoop,
    StartError, StatSet, Stats, Text,
};

/// Most clients served at once; one more is told the socket is busy and
/// closed (never waited for: the accept loop must keep beating and stopping).
const MAX_CLIENTS: usize = 32;
/// A client idle this long is disconnected.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request may wait for the daemon's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// A request on its way to the daemon loop, with where to send the answer.
pub struct Query {
    /// What the client asked.
    pub request: Request,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Response>,
}

crate::stats! {
    /// What the control socket reports.
    pub struct ControlStats {
        /// The socket's path.
        socket: Text,
        /// Clients accepted since start.
        connections: Counter,
        /// Requests answered since start.
        requests: Counter,
        /// Requests refused as malformed, unknown or too long.
        bad_requests: Counter,
        /// Clients connected now.
        active_clients: Gauge,
        /// Clients turned away because as many as the socket serves at once
        /// (32) were connected.
        busy_refusals: Counter,
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    bad_requests: AtomicU64,
    active: AtomicI64,
    busy: AtomicU64,
}

/// Serves the control socket.
pub struct ControlServer {
    path: PathBuf,
    queries: mpsc::Sender<Query>,
    counters: Arc<Counters>,
    running: Option<MainLoop>,
}

impl ControlServer {
    /// A server for `path` that forwards queries to `queries`.
    pub fn new(path: PathBuf, queries: mpsc::Sender<Query>) -> Self {
        ControlServer {
            path,
            queries,
            counters: Arc::default(),
            running: None,
        }
    }

    fn bind(&self) -> io::Result<UnixListener> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        if self.path.exists() {
            if StdUnixStream::connect(&self.path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another nodus is already serving this socket",
                ));
            }
            // Left behind by a daemon that did not stop cleanly.
            fs::remove_file(&self.path)?;
        }
        // Created 0600 from the start: no window in which others can connect.
        let old = umask(Mode::from_bits_truncate(0o177));
        let listener = std::os::unix::net::UnixListener::bind(&self.path);
        umask(old);
        let listener = listener?;
        fs::set_permissions(&self.path, fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        UnixListener::from_std(listener)
    }
}

impl Component for ControlServer {
    fn name(&self) -> &'static str {
        "control"
    }

    fn start(&mut self, ctx: ComponentContext) -> Result<(), StartError> {
        let listener = self
            .bind()
            .map_err(|e| StartError(format!("{}: {e}", self.path.display())))?;
        let queries = self.queries.clone();
        let counters = self.counters.clone();
        self.running = Some(MainLoop::spawn(|mut stopped| async move {
            let clients = Arc::new(Semaphore::new(MAX_CLIENTS));
            let mut tick = tokio::time::interval(BEAT_INTERVAL);
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = tick.tick() => ctx.heartbeat.beat(),
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            counters.connections.fetch_add(1, Ordering::Relaxed);
                            let Ok(permit) = clients.clone().try_acquire_owned() else {
                                counters.busy.fetch_add(1, Ordering::Relaxed);
                                tokio::spawn(turn_away(stream));
                                continue;
                            };
                            let (queries, counters) = (queries.clone(), counters.clone());
                            tokio::spawn(async move {
                                counters.active.fetch_add(1, Ordering::Relaxed);
                                serve(stream, queries, &counters).await;
                                counters.active.fetch_sub(1, Ordering::Relaxed);
                                drop(permit);
                            });
                        }
                        Err(e) => {
                            log::warn!("control: accept: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                }
            }
        }));
        log::info!("control: listening on {}", self.path.display());
        Ok(())
    }

    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(running) = self.running.take() {
                running.stop().await;
                let _ = fs::remove_file(&self.path);
            }
        })
    }

    fn health(&self) -> Health {
        match &self.running {
            Some(r) if !r.is_finished() => Health::Healthy,
            Some(_) => Health::Unavailable("accept loop ended".into()),
            None => Health::Unavailable("not started".into()),
        }
    }

    fn stats(&self) -> Stats {
        let c = &self.counters;
        ControlStats {
            socket: self.path.display().to_string(),
            connections: c.connections.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            bad_requests: c.bad_requests.load(Ordering::Relaxed),
            active_clients: c.active.load(Ordering::Relaxed),
            busy_refusals: c.busy.load(Ordering::Relaxed),
        }
        .to_stats()
    }
}

/// Tells a client over the limit why it is closed, without waiting on it.
async fn turn_away(stream: UnixStream) {
    let (_, mut write) = stream.into_split();
    let busy = Response::error(format!(
        "busy: {MAX_CLIENTS} clients are connected; try again"
    ));
    let _ = tokio::time::timeout(Duration::from_secs(1), reply(&mut write, &busy)).await;
}

/// Answers one client's requests until it disconnects, idles or misbehaves.
async fn serve(stream: UnixStream, queries: mpsc::Sender<Query>, counters: &Counters) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut lines).take(MAX_REQUEST_BYTES as u64 + 1);
        let read = limited.read_until(b'\n', &mut line);
        let n = match tokio::time::timeout(IDLE_TIMEOUT, read).await {
            Ok(Ok(0)) | Err(_) => return,
            Ok(Ok(n)) => n,
            Ok(Err(_)) => return,
        };
        if n > MAX_REQUEST_BYTES {
            counters.bad_requests.fetch_add(1, Ordering::Relaxed);
            let msg = format!("request longer than {MAX_REQUEST_BYTES} bytes");
            let _ = reply(&mut write, &Response::error(msg)).await;
            return;
        }
        let response = match serde_json::from_slice::<Request>(&line) {
            Ok(request) => {
                counters.requests.fetch_add(1, Ordering::Relaxed);
                ask(&queries, request).await
            }
            Err(e) => {
                counters.bad_requests.fetch_add(1, Ordering::Relaxed);
                Response::error(format!("bad request: {e}"))
            }
        };
        if reply(&mut write, &response).await.is_err() {
            return;
        }
    }
}

async fn ask(queries: &mpsc::Sender<Query>, request: Request) -> Response {
    let (tx, rx) = oneshot::channel();
    if queries.send(Query { request, reply: tx }).await.is_err() {
        return Response::error("daemon is shutting down");
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Response::error("daemon dropped the request"),
        Err(_) => Response::error("daemon did not answer within 5 s"),
    }
}

async fn reply(write: &mut tokio::net::unix::OwnedWriteHalf, r: &Response) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(r).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    bytes.push(b'\n');
    write.write_all(&bytes).await
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};

    use super::*;
    use crate::supervisor::Heartbeat;

    /// More idle clients than the socket serves must not stall its loop:
    /// it keeps beating, turns the extra one away at once, and stops.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_clients_never_stall_the_accept_loop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let (queries, _rx) = mpsc::channel(8);
        let mut server = ControlServer::new(path.clone(), queries);
        let heartbeat = Heartbeat::new();
        server
            .start(ComponentContext {
                heartbeat: heartbeat.clone(),
                kernel: Default::default(),
            })
            .unwrap();
        let idle: Vec<_> = (0..MAX_CLIENTS + 8)
            .map(|_| StdUnixStream::connect(&path).unwrap())
            .collect();
        tokio::time::sleep(BEAT_INTERVAL * 3).await;
        assert!(
            heartbeat.age() < BEAT_INTERVAL * 2,
            "the loop beats ({:?} since the last beat)",
            heartbeat.age()
        );
        // A client beyond the limit hears why at once.
        let answer = tokio::task::spawn_blocking(move || {
            let c = StdUnixStream::connect(&path).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut line = String::new();
            BufReader::new(c).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        assert!(answer.contains("busy"), "{answer}");
        assert!(server.counters.busy.load(Ordering::Relaxed) >= 8);
        tokio::time::timeout(Duration::from_secs(2), server.stop())
            .await
            .expect("stops with idle clients connected");
        drop(idle);
    }
}
