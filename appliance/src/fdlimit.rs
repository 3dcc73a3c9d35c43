//! File descriptors: the limit nodus runs under, and a spare one to answer
//! with when it runs out.
//!
//! The kernel's default soft limit (1024) is far below what a file server
//! with thousands of connections and an open-file cache needs, while the
//! hard limit systemd and most init systems give is much higher. Like nginx's
//! `worker_rlimit_nofile` or systemd's own `LimitNOFILE=` split, nodus raises
//! its soft limit to the hard one at start, and components check their
//! configured budget against the result instead of failing at the ten-
//! thousandth connection.

use std::{io, os::fd::OwnedFd};

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// The open-file limit before and after [`raise_soft_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Soft limit found at start.
    pub before: u64,
    /// Soft limit now.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (inherited by every
/// thread, and by nothing nodus does not start itself).
pub fn raise_soft_limit() -> io::Result<Limit> {
    let (before, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if before < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(Limit {
        before,
        soft: before.max(hard),
        hard,
    })
}

/// The soft limit now (`u64::MAX` if it cannot be read: nothing to check).
pub fn soft_limit() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE).map_or(u64::MAX, |(soft, _)| soft)
}

/// Whether `e` means this process (EMFILE) or the system (ENFILE) has no
/// file descriptor left.
pub fn exhausted(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// One descriptor held in reserve. When an accept fails for lack of
/// descriptors, the connection waits in the backlog with no way to answer
/// it; releasing the spare lets the server accept it, say 503 and close it,
/// then take the spare back.
#[derive(Debug)]
pub struct Spare(Option<OwnedFd>);

impl Spare {
    /// Reserves one descriptor (on `/dev/null`).
    pub fn new() -> Spare {
        let mut s = Spare(None);
        s.restore();
        s
    }

    /// Gives the descriptor back to the process.
    pub fn release(&mut self) {
        self.0 = None;
    }

    /// Takes a descriptor back into reserve, if one is free.
    pub fn restore(&mut self) {
        if self.0.is_none() {
            self.0 = std::fs::File::open("/dev/null").ok().map(OwnedFd::from);
        }
    }

    /// Whether a descriptor is in reserve.
    pub fn held(&self) -> bool {
        self.0.is_some()
    }
}

impl Default for Spare {
    fn default() -> Self {
        Spare::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let l = raise_soft_limit().unwrap();
        assert_eq!(l.soft, l.hard);
        assert!(l.before <= l.soft);
        assert_eq!(soft_limit(), l.soft);
    }

    #[test]
    fn a_spare_is_released_and_taken_back() {
        let mut s = Spare::new();
        assert!(s.held());
        s.release();
        assert!(!s.held());
        s.restore();
        assert!(s.held());
        assert!(exhausted(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(!exhausted(&io::Error::from_raw_os_error(libc::ENOENT)));
    }
}
