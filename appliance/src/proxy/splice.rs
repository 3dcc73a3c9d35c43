//! Moving a routed connection's bytes in the kernel with `splice(2)`:
//! socket to pipe, pipe to socket, never through userspace. The default
//! data path (it measured faster than the sockhash, docs/proxy.md), and the
//! one where a sockhash is refused.
//!
//! One pump per direction, each taking a pipe from a spare pool while it
//! moves a chunk. A pump fills its pipe only when the pipe is empty and
//! drains it before reading again, so a peer that stops reading holds at
//! most one pipe (64 KiB) per direction and the other side simply stops
//! being read (TCP flow control does the rest): nothing is dropped, nothing
//! grows; an idle connection holds no pipe. End of input (FIN) is passed
//! on as a shutdown of the other socket's write side, so half-closed
//! connections keep working the other way; an error on either socket ends
//! both directions.

use std::{
    io,
    net::Shutdown,
    os::fd::{AsFd, OwnedFd},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use nix::{
    fcntl::{OFlag, SpliceFFlags, splice},
    unistd::pipe2,
};
use tokio::{io::Interest, net::TcpStream};

use super::relay::{Moved, within_idle};
use crate::sync::lock;

/// Bytes asked of one splice: a default pipe's capacity.
const CHUNK: usize = 64 * 1024;

/// Bytes moved each way, added as they move: a route's live counters.
#[derive(Debug, Default)]
pub struct Tally {
    /// From clients to backends.
    pub to_backend: AtomicU64,
    /// From backends to clients.
    pub to_client: AtomicU64,
}

/// Relays between `client` and `backend` until both directions have ended
/// (each with a FIN passed on), either socket fails or nothing moves for
/// `idle` (a `TimedOut` error), adding each chunk to `tally` as it moves.
pub async fn relay(
    client: &TcpStream,
    backend: &TcpStream,
    tally: &Tally,
    idle: Duration,
) -> io::Result<Moved> {
    let progress = AtomicU64::new(0);
    let both = async {
        tokio::try_join!(
            pump(client, backend, &tally.to_backend, &progress),
            pump(backend, client, &tally.to_client, &progress)
        )
    };
    let (to_backend, to_client) = within_idle(both, || progress.load(Relaxed), idle).await?;
    Ok(Moved {
        to_backend,
        to_client,
    })
}

/// A pipe's two ends.
struct Pipe {
    out: OwnedFd,
    into: OwnedFd,
}

/// Empty pipes kept for the next chunks. Making and closing a pipe is three
/// syscalls, a cost per connection HAProxy avoids the same way. A pipe goes
/// back only from a pump that drained it, so no byte of one connection can
/// reach another; a pipe whose drain failed is closed.
static SPARE_PIPES: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());
/// Pipes kept at most (each an empty pipe: no buffer pages, two fds).
const SPARE_MAX: usize = 256;

fn take_pipe() -> io::Result<Pipe> {
    if let Some(p) = lock(&SPARE_PIPES).pop() {
        return Ok(p);
    }
    let (out, into) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
    Ok(Pipe { out, into })
}

fn give_back(pipe: Pipe) {
    let mut spare = lock(&SPARE_PIPES);
    if spare.len() < SPARE_MAX {
        spare.push(pipe);
    }
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE
}

/// Moves `from`'s bytes to `to` until `from`'s end of input, which it
/// passes on; the bytes moved. A pipe is held only while bytes are in
/// flight: between chunks (an idle connection) it is back in the spare
/// pool, so 10,000 idle connections hold no pipes.
async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    tally: &AtomicU64,
    progress: &AtomicU64,
) -> io::Result<u64> {
    let mut moved = 0u64;
    loop {
        from.readable().await?;
        let pipe = take_pipe()?;
        let filled = match from.try_io(Interest::READABLE, || {
            splice(from.as_fd(), None, pipe.into.as_fd(), None, CHUNK, flags())
                .map_err(io::Error::from)
        }) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                give_back(pipe);
                continue;
            }
            Err(e) => return Err(e),
        };
        if filled == 0 {
            give_back(pipe);
            // The peer's FIN: pass it on; the other direction goes on.
            match socket2::SockRef::from(to).shutdown(Shutdown::Write) {
                Err(e) if e.kind() != io::ErrorKind::NotConnected => return Err(e),
                _ => return Ok(moved),
            }
        }
        let mut left = filled;
        while left > 0 {
            let n = to
                .async_io(Interest::WRITABLE, || {
                    splice(pipe.out.as_fd(), None, to.as_fd(), None, left, flags())
                        .map_err(io::Error::from)
                })
                .await?;
            left -= n;
            moved += n as u64;
            tally.fetch_add(n as u64, Relaxed);
            progress.fetch_add(n as u64, Relaxed);
        }
        // Drained: no byte of this connection stays in it.
        give_back(pipe);
    }
}
