//! Moving a routed connection's bytes with a sockhash: both sockets go into
//! a SOCKHASH whose sk_skb verdict program (`ebpf/programs/src/bin/
//! proxy_sockhash.rs`) redirects every byte one receives to the other's
//! send side. After the hello, no byte and no wakeup reaches userspace;
//! the connection's task sleeps until a FIN or an error.
//!
//! The known pitfalls, and how each is met (each has a test):
//! - *Bytes that arrived before the socket entered the map* (the hello,
//!   early data): the hello is only peeked, so every byte the client sent
//!   is still in its receive queue; after both sockets are in the map,
//!   setting `SO_RCVLOWAT` makes TCP signal "data ready" again, and the
//!   verdict program takes the queue from its first byte, in order.
//! - *Half-close*: the kernel does not pass a FIN on. Each socket is
//!   watched for `EPOLLRDHUP` alone (an epoll of the connection's own, so
//!   data arrivals wake nothing); on a FIN the task waits until the
//!   verdict has taken every byte received before it (TCP wakes the FIN's
//!   watchers before it signals the data that came with it) and every byte
//!   redirected that way is in the peer's send queue, then shuts the
//!   peer's write side. The other direction goes on. TCP's state is also
//!   checked (after 1 s, then at doubling periods up to 64 s), so that a
//!   FIN whose wakeup never came is still passed on (the CI saw one such
//!   FIN, under load, go missing for 20 s; the cause not found, the check
//!   logs each one it catches).
//! - *A full send buffer*: the kernel queues redirected bytes on the peer
//!   and sends them as it drains (nothing is dropped; the drain before a
//!   FIN waits for them).
//! - *Entries leave the map*: a guard removes both sockets and both peer
//!   entries when the relay ends, however it ends (the kernel also drops a
//!   closed socket from the sockhash).
//! - *Kernel commit 929e30f93125* (6.6.128+, 6.12.75+, 6.18.14+; this
//!   host's 6.18 has it) loses data-ready wakeups of sockets in a sockhash
//!   *without* a verdict program. Here every socket in the map has one, and
//!   nothing waits for data-ready at all: only for a FIN or an error, which
//!   TCP signals through the socket's state change, outside the path the
//!   commit touched.
//!
//! A server-first backend (one that speaks before the client) would lose
//! bytes it sends in the instant before the client's socket is in the map;
//! TLS is client-first, and such a route can take `data_path = "splice"`.

use std::{
    io,
    net::Shutdown,
    os::fd::{AsFd, AsRawFd},
    sync::Mutex,
    time::Duration,
};

use aya::{
    Ebpf,
    maps::{HashMap, MapData, MapError, PerCpuArray, SockHash},
    programs::{ProgramError, SkSkb},
};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nodus_common::{
    objects::proxy_sockhash::{OBJECT, maps, programs},
    proxy::{DOWN, Peer, UP, VERDICT_PEER_GONE, VERDICT_REDIRECTED, VERDICT_UNPAIRED, byte_slot},
};
use tokio::{
    io::{Interest, unix::AsyncFd},
    net::TcpStream,
};

use super::{
    relay::{Moved, within_idle},
    tcp,
};
use crate::{ebpf, sync::lock};

/// Why the sockhash data path could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The kernel refused the object (no sk_skb, no sockhash, the verifier).
    #[error("loading {}", OBJECT.name)]
    Load(#[source] aya::EbpfError),
    /// A map is missing from the object or not of the type expected.
    #[error(transparent)]
    Map(#[from] ebpf::TakeMapError),
    /// The verdict program did not load or attach.
    #[error("program {}", programs::proxy_verdict)]
    Program(#[source] ProgramError),
}

/// Why a relay ended without its two directions ending in a FIN each.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The sockets could not enter the map (it is full, or the kernel
    /// refused): nothing was moved, and the streams are given back so the
    /// connection can take the splice path.
    #[error("entering the sockhash: {error}")]
    NotEntered {
        /// The client, unchanged.
        client: TcpStream,
        /// The backend, unchanged.
        backend: TcpStream,
        /// What refused.
        #[source]
        error: io::Error,
    },
    /// A socket failed (a reset, a timeout) while relaying.
    #[error("relaying: {0}")]
    Io(#[from] io::Error),
}

/// How the verdict program's runs ended, since it was loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdicts {
    /// Bytes redirected to the peer (runs).
    pub redirected: u64,
    /// Runs on a socket not yet paired (its bytes stayed in the socket).
    pub unpaired: u64,
    /// Runs whose peer had gone (the connection was ending; dropped).
    pub peer_gone: u64,
}

struct Maps {
    socks: SockHash<MapData, u64>,
    peers: HashMap<MapData, u64, Peer>,
}

/// The loaded, attached verdict program and its maps.
pub struct Sockhash {
    maps: Mutex<Maps>,
    bytes: PerCpuArray<MapData, u64>,
    verdicts: PerCpuArray<MapData, u64>,
    // Holds the program, attached to the sockhash while this lives.
    _obj: Ebpf,
}

impl Sockhash {
    /// Loads the verdict program and attaches it to a sockhash sized for
    /// `max_connections` connections (two sockets each).
    pub fn load(max_connections: usize) -> Result<Sockhash, LoadError> {
        let sockets = u32::try_from(max_connections.saturating_mul(2))
            .unwrap_or(u32::MAX)
            .max(2);
        let mut obj = ebpf::load_with(&OBJECT, |l| {
            l.map_max_entries(maps::PROXY_SOCKS, sockets);
            l.map_max_entries(maps::PROXY_PEERS, sockets);
        })
        .map_err(LoadError::Load)?;
        let socks: SockHash<MapData, u64> = ebpf::take_map(&mut obj, maps::PROXY_SOCKS)?;
        let peers = ebpf::take_map(&mut obj, maps::PROXY_PEERS)?;
        let bytes = ebpf::take_map(&mut obj, maps::PROXY_BYTES)?;
        let verdicts = ebpf::take_map(&mut obj, maps::PROXY_VERDICTS)?;
        let program: &mut SkSkb = obj
            .program_mut(programs::proxy_verdict)
            .ok_or(LoadError::Program(ProgramError::NotLoaded))?
            .try_into()
            .map_err(LoadError::Program)?;
        program.load().map_err(LoadError::Program)?;
        program.attach(socks.fd()).map_err(LoadError::Program)?;
        Ok(Sockhash {
            maps: Mutex::new(Maps { socks, peers }),
            bytes,
            verdicts,
            _obj: obj,
        })
    }

    /// Bytes the kernel moved for `route` so far: (to the backend, to the
    /// client). Live: connections still open count too.
    pub fn route_bytes(&self, route: u32) -> (u64, u64) {
        (
            ebpf::per_cpu_sum(&self.bytes, byte_slot(route, UP)),
            ebpf::per_cpu_sum(&self.bytes, byte_slot(route, DOWN)),
        )
    }

    /// The verdict program's runs by outcome.
    pub fn verdicts(&self) -> Verdicts {
        Verdicts {
            redirected: ebpf::per_cpu_sum(&self.verdicts, VERDICT_REDIRECTED),
            unpaired: ebpf::per_cpu_sum(&self.verdicts, VERDICT_UNPAIRED),
            peer_gone: ebpf::per_cpu_sum(&self.verdicts, VERDICT_PEER_GONE),
        }
    }

    /// Sockets in the map now (two per connection relayed).
    pub fn sockets(&self) -> usize {
        let m = lock(&self.maps);
        m.socks.keys().filter(Result::is_ok).count()
    }

    /// Peer entries now (two per connection relayed).
    pub fn peers(&self) -> usize {
        let m = lock(&self.maps);
        m.peers.keys().filter(Result::is_ok).count()
    }

    fn peer_bytes(&self, cookie: u64) -> u64 {
        lock(&self.maps)
            .peers
            .get(&cookie, 0)
            .map_or(0, |p| p.bytes)
    }

    /// Relays between `client` and `backend` in the kernel until both
    /// directions have ended (each with a FIN passed on), a socket fails or
    /// nothing moves for `idle` (a `TimedOut` error). Bytes still in either
    /// receive queue (a peeked hello, early data) are relayed first; neither
    /// socket may have been read from before (peeking is fine), since the
    /// drain before a FIN counts every byte a socket received.
    /// `route` indexes the byte counters.
    pub async fn relay(
        &self,
        client: TcpStream,
        backend: TcpStream,
        route: u32,
        idle: Duration,
    ) -> Result<Moved, RelayError> {
        let client = client.into_std()?;
        let backend = backend.into_std()?;
        // The kernel takes only established TCP sockets into a sockhash
        // (EOPNOTSUPP otherwise): one whose peer already sent its FIN (a
        // client that half-closed right after its hello, a backend that
        // closed its side at once) is given back to be spliced. Checked
        // first for a clear reason, and again after a refusal, since a FIN
        // can come in between.
        let entered = not_established(&client, &backend)
            .map_or_else(|| self.enter(&client, &backend, route), Err)
            .map_err(|error| not_established(&client, &backend).unwrap_or(error));
        let entry = match entered {
            Ok(entry) => entry,
            Err(error) => {
                return Err(RelayError::NotEntered {
                    client: TcpStream::from_std(client)?,
                    backend: TcpStream::from_std(backend)?,
                    error,
                });
            }
        };
        let progress = || self.peer_bytes(entry.client) + self.peer_bytes(entry.backend);
        within_idle(self.watch(&client, &backend, &entry), progress, idle).await?;
        Ok(Moved {
            to_backend: self.peer_bytes(entry.client),
            to_client: self.peer_bytes(entry.backend),
        })
    }

    /// Waits for each direction's FIN and passes it on after the bytes
    /// before it; returns when both have ended, or on a socket's error.
    async fn watch(
        &self,
        client: &std::net::TcpStream,
        backend: &std::net::TcpStream,
        entry: &Entry<'_>,
    ) -> io::Result<()> {
        let sent_up = queued(backend)?;
        let sent_down = queued(client)?;
        // Bytes already queued (the peeked hello) are taken now, not at
        // the next segment (which a client waiting for the server's hello
        // would never send).
        tcp::set_recv_low_water(client, 1)?;
        tcp::set_recv_low_water(backend, 1)?;
        let watch = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io::Error::from)?;
        let only_end = EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLET;
        watch
            .add(client.as_fd(), EpollEvent::new(only_end, 0))
            .map_err(io::Error::from)?;
        watch
            .add(backend.as_fd(), EpollEvent::new(only_end, 1))
            .map_err(io::Error::from)?;
        // SAFETY: `Watch` owns the epoll descriptor, which stays open, and
        // is the one as_raw_fd returns, for as long as the AsyncFd exists.
        let watch = unsafe { AsyncFd::register_with_interest(Watch(watch), Interest::READABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        let (mut up_done, mut down_done) = (false, false);
        let mut check = FIN_CHECK_FIRST;
        while !(up_done && down_done) {
            // Which side's end came: by its wakeup, or, should a wakeup be
            // lost, by TCP's state at the next check.
            let mut ended = [false; 2];
            tokio::select! {
                ready = watch.readable() => {
                    let mut ready = ready?;
                    let mut events = [EpollEvent::empty(); 2];
                    let n = ready
                        .get_inner()
                        .0
                        .wait(&mut events, EpollTimeout::ZERO)
                        .map_err(io::Error::from)?;
                    if n == 0 {
                        ready.clear_ready();
                        continue;
                    }
                    for e in &events[..n] {
                        let flags = e.events();
                        let side = usize::from(e.data() != 0);
                        if flags.contains(EpollFlags::EPOLLERR) {
                            return Err(socket_error([client, backend][side]));
                        }
                        ended[side] |= flags.intersects(EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP);
                    }
                }
                () = tokio::time::sleep(check) => {
                    check = (check * 2).min(FIN_CHECK_LAST);
                    ended = [!up_done && tcp::fin_came(client), !down_done && tcp::fin_came(backend)];
                    if ended.contains(&true) {
                        log::warn!("proxy: a FIN found by the state check, its wakeup lost; passed on now");
                    }
                }
            }
            if ended[0] && !up_done {
                self.drain(entry.client, client, backend, sent_up).await?;
                shut_write(backend)?;
                up_done = true;
            }
            if ended[1] && !down_done {
                self.drain(entry.backend, backend, client, sent_down)
                    .await?;
                shut_write(client)?;
                down_done = true;
            }
        }
        Ok(())
    }

    /// Puts both sockets and their peer entries in the maps; the guard
    /// takes them out.
    fn enter(
        &self,
        client: &std::net::TcpStream,
        backend: &std::net::TcpStream,
        route: u32,
    ) -> io::Result<Entry<'_>> {
        let entry = Entry {
            path: self,
            client: tcp::cookie(client)?,
            backend: tcp::cookie(backend)?,
        };
        let peer = |peer, direction| Peer {
            peer,
            bytes: 0,
            slot: byte_slot(route, direction),
            pad: 0,
        };
        let mut m = lock(&self.maps);
        let map_err = |what: &'static str| {
            move |e: MapError| io::Error::other(format!("{what}: {}", ebpf::error_chain(&e)))
        };
        m.peers
            .insert(entry.client, peer(entry.backend, UP), 0)
            .map_err(map_err("peer entry"))?;
        m.peers
            .insert(entry.backend, peer(entry.client, DOWN), 0)
            .map_err(map_err("peer entry"))?;
        // The backend first: the client's bytes (the hello) need it there.
        m.socks
            .insert(entry.backend, backend.as_raw_fd(), 0)
            .map_err(map_err("the backend socket"))?;
        m.socks
            .insert(entry.client, client.as_raw_fd(), 0)
            .map_err(map_err("the client socket"))?;
        drop(m);
        Ok(entry)
    }

    /// After `from`'s FIN, waits until the verdict program has taken every
    /// byte `from` received before it, and every byte it redirected is in
    /// `to`'s send queue (`sent_before`: what was queued on `to` before
    /// relaying began), so that a FIN passed on to `to` comes after them.
    ///
    /// Both halves matter: TCP wakes the FIN's watchers (state change)
    /// before it signals the data that came with or just before the FIN,
    /// so on a busy machine the verdict may not have run yet when the FIN
    /// is seen; passing it on then sent the FIN first and lost the bytes.
    async fn drain(
        &self,
        from_cookie: u64,
        from: &std::net::TcpStream,
        to: &std::net::TcpStream,
        sent_before: u64,
    ) -> io::Result<()> {
        let mut pause = Duration::from_micros(200);
        let began = std::time::Instant::now();
        let mut said = false;
        loop {
            let redirected = self.peer_bytes(from_cookie);
            // The FIN takes one place in the sequence space; nothing of
            // `from` was read by userspace (the hello is only peeked), so
            // every other byte it received goes through the verdict.
            let received = tcp::counters(from)?.bytes_received.saturating_sub(1);
            if redirected >= received && queued(to)? >= sent_before + redirected {
                return Ok(());
            }
            // Normally microseconds; say what it waits for when it is not.
            if !said && began.elapsed() >= DRAIN_SLOW {
                said = true;
                log::warn!(
                    "proxy: a FIN held back for {} ms: {redirected} of {received} bytes received taken by the verdict, {} of {} in the peer's send queue",
                    began.elapsed().as_millis(),
                    queued(to)?.saturating_sub(sent_before),
                    redirected
                );
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// When a relay first asks TCP whether a side's FIN came: a FIN whose
/// wakeup was lost would otherwise never be passed on, and both peers
/// would wait until the idle timeout. The period then doubles up to
/// [`FIN_CHECK_LAST`], so that thousands of long, quiet connections cost
/// one `getsockopt` per socket a minute, not a second.
const FIN_CHECK_FIRST: Duration = Duration::from_secs(1);
/// The longest period between two such checks.
const FIN_CHECK_LAST: Duration = Duration::from_secs(64);

/// A drain before a FIN taking this long is logged with what it waits for.
const DRAIN_SLOW: Duration = Duration::from_secs(2);

/// A connection's own epoll, watching its two sockets for their end only.
struct Watch(Epoll);

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.0.as_raw_fd()
    }
}

/// A connection's sockets and peer entries in the maps.
struct Entry<'a> {
    path: &'a Sockhash,
    client: u64,
    backend: u64,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        let mut m = lock(&self.path.maps);
        for cookie in [self.client, self.backend] {
            // Absent already (never entered, or closed): nothing to undo.
            let _ = m.socks.remove(&cookie);
            let _ = m.peers.remove(&cookie);
        }
    }
}

/// Why the pair cannot enter the sockhash, if either socket has left the
/// established state (its peer's FIN came, or it failed).
fn not_established(
    client: &std::net::TcpStream,
    backend: &std::net::TcpStream,
) -> Option<io::Error> {
    [("client", client), ("backend", backend)]
        .into_iter()
        .find_map(|(which, sock)| {
            let state = tcp::counters(sock).ok()?.state;
            (state != tcp::ESTABLISHED).then(|| {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "the {which} socket is in TCP state {} (its peer half-closed or it failed); the kernel takes only established sockets",
                        tcp::state_name(state)
                    ),
                )
            })
        })
}

/// Bytes ever written to `sock`'s send queue: those acknowledged plus
/// those still queued. Read before this side's FIN, which would count as
/// one more. An error when the socket can no longer send.
fn queued(sock: &std::net::TcpStream) -> io::Result<u64> {
    let c = tcp::counters(sock)?;
    if !matches!(c.state, tcp::ESTABLISHED | tcp::CLOSE_WAIT) {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "peer socket can no longer send",
        ));
    }
    Ok(c.bytes_acked + tcp::unsent(sock)?)
}

fn shut_write(sock: &std::net::TcpStream) -> io::Result<()> {
    match sock.shutdown(Shutdown::Write) {
        Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
        _ => Ok(()),
    }
}

fn socket_error(sock: &std::net::TcpStream) -> io::Error {
    match sock.take_error() {
        Ok(Some(e)) => e,
        Ok(None) => io::Error::new(io::ErrorKind::ConnectionReset, "socket error"),
        Err(e) => e,
    }
}
