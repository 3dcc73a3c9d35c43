//! Workers and their listening sockets.
//!
//! Each worker is one thread, pinned to one CPU, running its own
//! single-threaded tokio runtime with its own `SO_REUSEPORT` listening
//! socket: a connection accepted by a worker lives and dies on that worker,
//! with no cross-thread wakeups or work stealing on the request path. Which
//! worker gets a new connection is the kernel's choice (a hash of the 4-tuple)
//! unless the sk_reuseport program (see `bpf.rs`) steers it to the worker on
//! the CPU that received it.

use std::{
    io,
    net::{SocketAddr, TcpListener},
    sync::{Arc, atomic::Ordering::Relaxed},
    thread::JoinHandle,
    time::Duration,
};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

use crate::{
    board::CpuList,
    fdlimit::{self, Spare},
    fileserver::conn::{self, ServerShared},
    ratelimit::RateLimit,
    supervisor::BEAT_INTERVAL,
};

/// At most one accept warning per worker per this long: a descriptor
/// shortage fails every accept, thousands a second.
const ACCEPT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Binds `n` listening sockets to `addr` in one reuseport group.
///
/// First checks that nobody else listens there (a socket without
/// SO_REUSEPORT cannot bind over a listener), so nodus never silently joins
/// another process's reuseport group.
pub fn bind(addr: SocketAddr, n: usize, backlog: u32) -> io::Result<Vec<TcpListener>> {
    let domain = Domain::for_address(addr);
    if addr.port() != 0 {
        let probe = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
        probe.set_reuse_address(true)?;
        probe.bind(&addr.into())?;
    }
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n {
        let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.bind(&addr.into())?;
        s.listen(backlog.min(i32::MAX as u32) as i32)?;
        s.set_nonblocking(true)?;
        let l: TcpListener = s.into();
        // An ephemeral port (0) is chosen by the first bind; the rest join it.
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

/// A running worker thread and what stops it.
pub struct Worker {
    /// The thread.
    pub thread: JoinHandle<()>,
    /// Set to true to stop it.
    pub stop: watch::Sender<bool>,
}

/// Starts one worker thread per listener; `cpus[i]` pins worker `i`.
/// Each has its own stop, so one can end without the others.
pub fn spawn(
    listeners: Vec<TcpListener>,
    cpus: &[Option<u32>],
    shared: Arc<ServerShared>,
) -> io::Result<Vec<Worker>> {
    let mut workers = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let cpu = cpus.get(i).copied().flatten();
        let shared = shared.clone();
        let (stop, stopped) = watch::channel(false);
        let spawned = std::thread::Builder::new()
            .name(format!("nodus-fs-{i}"))
            .spawn(move || worker(i, l, cpu, shared, stopped));
        match spawned {
            Ok(thread) => workers.push(Worker { thread, stop }),
            Err(e) => {
                for w in workers {
                    let _ = w.stop.send(true);
                }
                return Err(e);
            }
        }
    }
    Ok(workers)
}

fn worker(
    index: usize,
    listener: TcpListener,
    cpu: Option<u32>,
    shared: Arc<ServerShared>,
    mut stop: watch::Receiver<bool>,
) {
    if let Some(cpu) = cpu
        && let Err(e) = CpuList::from_iter([cpu]).pin_current_thread()
    {
        log::warn!("fileserver: worker {index}: cannot pin to CPU {cpu}: {e}");
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("fileserver: worker {index}: no runtime: {e}");
            return;
        }
    };
    rt.block_on(async {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                log::error!("fileserver: worker {index}: {e}");
                return;
            }
        };
        let mut beat = tokio::time::interval(BEAT_INTERVAL / 4);
        let mut spare = Spare::new();
        let mut warn = RateLimit::new(ACCEPT_WARNING_INTERVAL);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                // Proves this worker's runtime still turns: a worker stuck in
                // a blocking call, or gone, stops beating.
                _ = beat.tick() => shared.alive[index].beat(),
                r = listener.accept() => match r {
                    Ok((stream, _)) => {
                        spare.restore();
                        accept(stream, &shared, index);
                    }
                    Err(e) if fdlimit::exhausted(&e) => {
                        // The connection waits in the backlog and cannot be
                        // answered without a descriptor: spend the spare on
                        // a 503 so the client learns now, not at its timeout.
                        shared.conns.fd_exhausted.fetch_add(1, Relaxed);
                        spare.release();
                        let pending = tokio::time::timeout(Duration::from_millis(1), listener.accept());
                        if let Ok(Ok((stream, _))) = pending.await {
                            refuse(&stream, &shared, index);
                        }
                        spare.restore();
                        if let Some(held_back) = warn.allow() {
                            log::warn!(
                                "fileserver: worker {index}: accept: {e}; answering 503 until descriptors free up \
                                 ({held_back} more since the last warning)"
                            );
                        }
                        if !spare.held() {
                            // Not even the spare came back: wait for a close.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    Err(e) => {
                        // ENOBUFS, ECONNABORTED...: back off, never give up.
                        if let Some(held_back) = warn.allow() {
                            log::warn!(
                                "fileserver: worker {index}: accept: {e} ({held_back} more since the last warning)"
                            );
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    });
    rt.shutdown_timeout(Duration::from_millis(200));
}

fn accept(stream: tokio::net::TcpStream, shared: &Arc<ServerShared>, index: usize) {
    let open = shared.conns.open.fetch_add(1, Relaxed) + 1;
    shared.conns.accepted.fetch_add(1, Relaxed);
    if open > shared.max_connections {
        shared.conns.open.fetch_sub(1, Relaxed);
        shared.conns.refused.fetch_add(1, Relaxed);
        refuse(&stream, shared, index);
        return;
    }
    tokio::spawn(conn::serve(stream, shared.clone(), index));
}

/// Answers 503 and lets the connection close (when `stream` drops).
fn refuse(stream: &tokio::net::TcpStream, shared: &ServerShared, index: usize) {
    shared.workers[index].response(503);
    let mut msg = Vec::new();
    crate::fileserver::response::error(
        &mut msg,
        crate::fileserver::status::Status::ServiceUnavailable,
        crate::fileserver::response::Conn {
            keep_alive: false,
            http10: false,
        },
        false,
    );
    // Best effort and never blocking: the socket buffer is empty.
    let _ = stream.try_write(&msg);
}
