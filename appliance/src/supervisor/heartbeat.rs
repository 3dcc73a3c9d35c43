//! Liveness: each component's tasks beat at least once a second; the supervisor
//! treats a component whose last beat is too old as wedged.
//!
//! Health is what a component *reports*; a wedged component cannot report
//! anything, which is why liveness is measured from outside it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// How often a component's main loop is expected to beat.
pub const BEAT_INTERVAL: Duration = Duration::from_secs(1);

/// A shared, lock-free "last seen alive" timestamp.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    epoch: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Heartbeat {
    /// A heartbeat that starts out fresh.
    pub fn new() -> Self {
        Heartbeat {
            epoch: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records that the owner is alive now.
    pub fn beat(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}
