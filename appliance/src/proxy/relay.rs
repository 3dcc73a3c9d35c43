//! What both data paths share: the bytes a relay moved ([`Moved`]), and
//! the idle timeout: a relay that moves no byte either way for `idle` ends,
//! so a client (or backend) that goes silent cannot hold a connection, its
//! descriptors and its slot in `max_connections` for ever.

use std::{future::Future, io, time::Duration};

use tokio::time::Instant;

/// Bytes a relay moved each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// From the client to the backend.
    pub to_backend: u64,
    /// From the backend to the client.
    pub to_client: u64,
}

/// Runs `relay` until it ends, or until `progress` (bytes moved so far, both
/// ways) has not changed for `idle`: then a `TimedOut` error, and `relay` is
/// dropped (which closes nothing by itself: the caller owns the sockets).
/// Checks four times per `idle`, so a connection ends between 1 and 1.25
/// times `idle` after its last byte.
pub async fn within_idle<T>(
    relay: impl Future<Output = io::Result<T>>,
    progress: impl Fn() -> u64,
    idle: Duration,
) -> io::Result<T> {
    tokio::pin!(relay);
    let tick = (idle / 4).max(Duration::from_millis(10));
    let mut last = progress();
    let mut since = Instant::now();
    loop {
        tokio::select! {
            done = &mut relay => return done,
            () = tokio::time::sleep(tick) => {
                let now = progress();
                if now != last {
                    last = now;
                    since = Instant::now();
                } else if since.elapsed() >= idle {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no byte either way for {} ms", idle.as_millis()),
                    ));
                }
            }
        }
    }
}
