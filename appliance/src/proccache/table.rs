//! [`ProcessTable`]: how the rest of nodus asks about processes.
//!
//! One table exists for the daemon's whole life and is handed to every
//! component that wants it (the scheduler classifies tasks by it, telemetry
//! reports from it); the proccache component fills it while it runs. Queries
//! copy out what they need, so no caller ever holds the cache's lock.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{Process, cache::Cache, process::Entry};

/// Exec notifications buffered per subscriber before it lags.
const EXEC_BACKLOG: usize = 1024;

/// What `nodus ps` asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsQuery {
    /// Include exited processes still retained.
    pub exited: bool,
    /// Only this pid (live, and with `exited` every earlier holder of it).
    pub pid: Option<u32>,
    /// Only processes whose command name starts with this.
    pub comm: Option<String>,
}

/// What `nodus ps` gets back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PsReport {
    /// The matching processes, oldest first.
    pub processes: Vec<Process>,
    /// Live processes held.
    pub live: usize,
    /// Exited processes held.
    pub exited: usize,
    /// The cache's capacity.
    pub capacity: usize,
}

struct Inner {
    cache: Mutex<Option<Cache>>,
    execs: broadcast::Sender<Arc<Process>>,
}

/// A cheap-to-clone handle on the process table.
#[derive(Clone)]
pub struct ProcessTable {
    inner: Arc<Inner>,
}

impl Default for ProcessTable {
    fn default() -> Self {
        ProcessTable {
            inner: Arc::new(Inner {
                cache: Mutex::new(None),
                execs: broadcast::channel(EXEC_BACKLOG).0,
            }),
        }
    }
}

impl ProcessTable {
    /// An empty table; queries fail until the proccache component runs.
    pub fn new() -> ProcessTable {
        ProcessTable::default()
    }

    fn lock(&self) -> MutexGuard<'_, Option<Cache>> {
        crate::sync::lock(&self.inner.cache)
    }

    /// Starts serving `cache`.
    pub(crate) fn install(&self, cache: Cache) {
        *self.lock() = Some(cache);
    }

    /// Stops serving: queries fail again.
    pub(crate) fn clear(&self) {
        *self.lock() = None;
    }

    /// Runs `f` on the cache, if one is installed.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Cache) -> R) -> Option<R> {
        self.lock().as_mut().map(f)
    }

    /// Tells exec subscribers about `entry`; free when there are none.
    pub(crate) fn publish_exec(&self, entry: &Entry) {
        if self.inner.execs.receiver_count() > 0 {
            let _ = self.inner.execs.send(Arc::new(entry.to_process()));
        }
    }

    /// The live process with this pid.
    pub fn get(&self, pid: u32) -> Option<Process> {
        self.with(|c| c.get(pid).map(Entry::to_process)).flatten()
    }

    /// Live processes in the cgroup with this id.
    pub fn in_cgroup(&self, cgroup_id: u64) -> Vec<Process> {
        self.with(|c| c.select(false, |e| e.cgroup_id == cgroup_id))
            .unwrap_or_default()
    }

    /// Live children of `pid`.
    pub fn children(&self, pid: u32) -> Vec<Process> {
        self.with(|c| c.select(false, |e| e.ppid == pid))
            .unwrap_or_default()
    }

    /// Every successful exec from now on, as the cache records it. A
    /// subscriber that falls more than a thousand behind gets `Lagged`.
    pub fn subscribe_exec(&self) -> broadcast::Receiver<Arc<Process>> {
        self.inner.execs.subscribe()
    }

    /// Answers `nodus ps`.
    pub fn ps(&self, q: &PsQuery) -> Result<PsReport, String> {
        self.with(|c| PsReport {
            processes: c.select(q.exited, |e| {
                q.pid.is_none_or(|p| e.pid == p)
                    && q.comm.as_deref().is_none_or(|p| e.comm.starts_with(p))
            }),
            live: c.live_len(),
            exited: c.exited_len(),
            capacity: c.capacity(),
        })
        .ok_or_else(|| {
            "the process cache is not running (disabled in [proccache], or failed: see `nodus status`)"
                .to_owned()
        })
    }
}
