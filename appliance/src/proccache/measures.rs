//! What the process cache measures about itself: written by the event
//! consumer and the component's loop, read by `stats()` and `health()`.

use std::{
    sync::{Mutex, atomic::AtomicU64},
    time::Instant,
};

use crate::histogram::AtomicHistogram;

/// How processes are being learnt of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Starting,
    /// Kernel events, with /proc reconciliation.
    Events,
    /// /proc polling, because the kernel refused the programs (the reason).
    Polling(String),
}

/// What the loop measures, shared with `stats()` and `health()`.
pub(super) struct Measures {
    pub(super) mode: Mutex<Mode>,
    pub(super) events: AtomicU64,
    pub(super) events_per_s: AtomicU64,
    pub(super) drops: AtomicU64,
    pub(super) last_drop: Mutex<Option<Instant>>,
    pub(super) undecodable: AtomicU64,
    pub(super) reconciliations: AtomicU64,
    pub(super) latency_ns: AtomicHistogram,
    /// How the consumer thread is scheduled (`fifo:1`, or why not).
    pub(super) scheduling: Mutex<String>,
}

impl Default for Measures {
    fn default() -> Self {
        Measures {
            mode: Mutex::new(Mode::Starting),
            events: AtomicU64::default(),
            events_per_s: AtomicU64::default(),
            drops: AtomicU64::default(),
            last_drop: Mutex::default(),
            undecodable: AtomicU64::default(),
            reconciliations: AtomicU64::default(),
            latency_ns: AtomicHistogram::default(),
            scheduling: Mutex::default(),
        }
    }
}
