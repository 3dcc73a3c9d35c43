//! What a component says about itself: its health and its counters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A component's health, as status, telemetry and the watchdog see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "reason", rename_all = "lowercase")]
pub enum Health {
    /// Doing everything it was configured to do.
    Healthy,
    /// Running, but without something it wanted (a kernel feature, a device).
    Degraded(String),
    /// Not running; the reason says why.
    Unavailable(String),
}

impl Health {
    /// `healthy`, `degraded` or `unavailable`.
    pub fn state(&self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded(_) => "degraded",
            Health::Unavailable(_) => "unavailable",
        }
    }

    /// The reason, if not healthy.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Health::Healthy => None,
            Health::Degraded(r) | Health::Unavailable(r) => Some(r),
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason() {
            None => f.write_str(self.state()),
            Some(r) => write!(f, "{} ({r})", self.state()),
        }
    }
}

/// One statistic. Counters only grow; gauges go both ways.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stat {
    /// A monotonically increasing count.
    Counter(u64),
    /// A current value.
    Gauge(i64),
    /// A measured quantity that is not whole (rates, latencies).
    Float(f64),
    /// A short label (a mode, an interface name).
    Text(String),
}

/// A component's statistics by name, sorted so output is stable.
pub type Stats = BTreeMap<String, Stat>;
