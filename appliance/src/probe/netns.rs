//! Runs a closure in a private, throw-away network namespace, so that probing
//! TC and XDP attaches to a `lo` nobody else uses and the host's interfaces
//! are never touched, not even for a moment.

use std::{io, thread};

/// Runs `f` on a new thread that has unshared its network namespace. The
/// namespace disappears when the thread exits.
pub fn in_private_netns<T: Send>(f: impl FnOnce() -> T + Send) -> io::Result<T> {
    thread::scope(|s| {
        thread::Builder::new()
            .name("nodus-probe-netns".into())
            .spawn_scoped(s, move || {
                // Only this thread's network namespace changes.
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
                Ok(f())
            })?
            .join()
            .map_err(|_| io::Error::other("probe thread panicked"))?
    })
}
