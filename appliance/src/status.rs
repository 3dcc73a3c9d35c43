//! The daemon's status as one typed value, and the in-process channel that
//! asks for it.
//!
//! The control socket turns a [`StatusReport`] into JSON for `nodus status`;
//! components that need the whole picture (the fleet link's telemetry and
//! birth message) ask through a [`StatusSource`] and get the typed value.

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::{probe::ProbeReport, supervisor::ComponentStatus};

/// What `nodus status` shows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusReport {
    /// nodus version.
    pub version: String,
    /// Daemon pid.
    pub pid: u32,
    /// Milliseconds since the process started.
    pub uptime_ms: u64,
    /// Milliseconds from process start to READY=1.
    pub ready_ms: Option<u64>,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// Log lines dropped since start because syslog did not read them.
    #[serde(default)]
    pub log_lines_dropped: u64,
    /// The config file in use, or `<embedded defaults>`.
    pub config: String,
    /// The kernel probe taken at start.
    pub kernel: ProbeReport,
    /// Every component, in start order.
    pub components: Vec<ComponentStatus>,
}

/// A question for the daemon: where its status goes.
pub struct StatusRequest {
    /// Where the report goes.
    pub reply: oneshot::Sender<StatusReport>,
}

/// Asks the daemon for its status; cheap to clone.
#[derive(Clone)]
pub struct StatusSource {
    requests: mpsc::Sender<StatusRequest>,
}

impl StatusSource {
    /// A source and the receiver the daemon answers from.
    pub fn channel() -> (StatusSource, mpsc::Receiver<StatusRequest>) {
        let (requests, rx) = mpsc::channel(16);
        (StatusSource { requests }, rx)
    }

    /// The daemon's status, or `None` once the daemon no longer answers.
    pub async fn get(&self) -> Option<StatusReport> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(StatusRequest { reply }).await.ok()?;
        answer.await.ok()
    }
}
