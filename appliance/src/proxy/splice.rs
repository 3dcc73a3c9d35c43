//! Moving a routed connection's bytes in the kernel with `splice(2)`:
//! socket to pipe, pipe to socket, never through userspace. The default
//! data path (it measured faster than the sockhash, docs/proxy.md), and the
//! one where a sockhash is refused.
//!
//! One pump per direction, each with its own pipe. A pump fills its pipe
//! only when the pipe is empty and drains it before reading again, so a
//! peer that stops reading holds at most one pipe (64 KiB) per direction
//! and the other side simply stops being read (TCP flow control does the
//! rest): nothing is dropped, nothing grows. End of input (FIN) is passed
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
};

use nix::{
    fcntl::{OFlag, SpliceFFlags, splice},
    unistd::pipe2,
};
use tokio::{io::Interest, net::TcpStream};

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

/// Bytes moved each way by [`relay`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// From the client to the backend.
    pub to_backend: u64,
    /// From the backend to the client.
    pub to_client: u64,
}

/// Relays between `client` and `backend` until both directions have ended
/// (each with a FIN passed on) or either socket fails, adding each chunk
/// to `tally` as it moves.
pub async fn relay(client: &TcpStream, backend: &TcpStream, tally: &Tally) -> io::Result<Moved> {
    let (to_backend, to_client) = tokio::try_join!(
        pump(client, backend, &tally.to_backend),
        pump(backend, client, &tally.to_client)
    )?;
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

/// Empty pipes kept for the next connections. Making and closing a
/// connection's two pipes is six syscalls, a cost per connection HAProxy
/// avoids the same way. A pipe goes back only from a pump that drained it,
/// so no byte of one connection can reach another.
static SPARE_PIPES: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());
/// Pipes kept at most (each an empty pipe: no buffer pages, two fds).
const SPARE_MAX: usize = 64;

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
/// passes on; the bytes moved.
async fn pump(from: &TcpStream, to: &TcpStream, tally: &AtomicU64) -> io::Result<u64> {
    let pipe = take_pipe()?;
    let (pipe_out, pipe_in) = (&pipe.out, &pipe.into);
    let mut moved = 0u64;
    loop {
        let filled = from
            .async_io(Interest::READABLE, || {
                splice(from.as_fd(), None, pipe_in.as_fd(), None, CHUNK, flags())
                    .map_err(io::Error::from)
            })
            .await?;
        if filled == 0 {
            // The peer's FIN: pass it on; the other direction goes on.
            // The pipe is empty: every chunk was drained below.
            give_back(pipe);
            match socket2::SockRef::from(to).shutdown(Shutdown::Write) {
                Err(e) if e.kind() != io::ErrorKind::NotConnected => return Err(e),
                _ => return Ok(moved),
            }
        }
        let mut left = filled;
        while left > 0 {
            let n = to
                .async_io(Interest::WRITABLE, || {
                    splice(pipe_out.as_fd(), None, to.as_fd(), None, left, flags())
                        .map_err(io::Error::from)
                })
                .await?;
            left -= n;
            moved += n as u64;
            tally.fetch_add(n as u64, Relaxed);
        }
    }
}
