//! What one refresh of `nodus top` shows: the daemon's status and the numa
//! component's last look, asked over the control socket.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{
    control::{self, protocol::Request},
    numa::NumaView,
    status::StatusReport,
    supervisor::Stat,
};

/// One refresh's answers (`nodus top --json` prints this).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// `nodus status`.
    pub status: StatusReport,
    /// The numa component's last look; absent with the component off or
    /// before its first look.
    pub numa: Option<NumaView>,
}

impl Snapshot {
    /// Asks the daemon at `socket`.
    pub fn fetch(socket: &Path) -> Result<Snapshot, String> {
        let status = control::request(socket, &Request::Status {})?;
        let status =
            serde_json::from_value(status).map_err(|e| format!("unexpected status reply: {e}"))?;
        let numa = control::request(socket, &Request::Numa {})?;
        let numa =
            serde_json::from_value(numa).map_err(|e| format!("unexpected numa reply: {e}"))?;
        Ok(Snapshot { status, numa })
    }

    /// Component `name`'s stat `key` as text, if it reports it.
    pub fn stat(&self, name: &str, key: &str) -> Option<String> {
        let c = self.status.components.iter().find(|c| c.name == name)?;
        Some(match c.stats.get(key)? {
            Stat::Text(t) => t.clone(),
            Stat::Counter(n) => n.to_string(),
            Stat::Gauge(n) => n.to_string(),
            Stat::Float(f) => format!("{f:.1}"),
        })
    }
}
