//! `[daemon]`: the async runtime and the supervisor's deadlines. The section
//! keeps its user-facing name; it lives here because the supervisor is what
//! reads it (the daemon only sizes its runtime from `worker_threads`).

use serde::{Deserialize, Serialize};

/// `[daemon]`: process-wide settings that need a restart to change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// Async runtime threads; 0 means one per online CPU.
    pub worker_threads: usize,
    /// Upper bound on a clean stop, in milliseconds.
    pub stop_timeout_ms: u64,
    /// Heartbeat age after which a component counts as wedged, in milliseconds.
    pub wedge_timeout_ms: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            worker_threads: 0,
            stop_timeout_ms: 2000,
            wedge_timeout_ms: 5000,
        }
    }
}

impl DaemonConfig {
    /// Range checks: `(key, reason)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.stop_timeout_ms == 0 || self.stop_timeout_ms > 60_000 {
            return Err((
                "daemon.stop_timeout_ms".into(),
                "must be between 1 and 60000".into(),
            ));
        }
        if self.wedge_timeout_ms < 1000 {
            return Err((
                "daemon.wedge_timeout_ms".into(),
                "must be at least 1000 (components beat once a second)".into(),
            ));
        }
        if self.worker_threads > 1024 {
            return Err((
                "daemon.worker_threads".into(),
                "must be at most 1024".into(),
            ));
        }
        Ok(())
    }
}
