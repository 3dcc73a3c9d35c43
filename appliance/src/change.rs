//! A configuration change, as every source of one describes it.
//!
//! The running configuration is layered: the board's own file (or the
//! embedded defaults), then the fleet's group document, then its device
//! document. A change replaces one of those layers. SIGHUP replaces the
//! base; the fleet proposes an overlay for its scope and learns the
//! [`Outcome`]. The daemon owns the one path every change takes (validate,
//! apply, verify for a grace period, commit or roll back); this module is
//! the vocabulary they share, so neither side imports the other.

use std::fmt;

use tokio::sync::{mpsc, oneshot};

/// Which overlay layer a change replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every board of a group; below the device's layer.
    Group,
    /// One board; its keys win.
    Device,
}

impl Scope {
    /// Every scope, lowest layer first.
    pub const ALL: [Scope; 2] = [Scope::Group, Scope::Device];
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Group => "group",
            Scope::Device => "device",
        })
    }
}

/// An overlay layer: config sections that replace the ones below, key by key.
#[derive(Clone, Debug, PartialEq)]
pub struct Overlay {
    /// `group v3`, `device v7`: how errors and logs name it.
    pub label: String,
    /// The config sections it sets.
    pub table: toml::Table,
}

/// What a change replaces: one scope's overlay (`None` removes it).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Whose overlay.
    pub scope: Scope,
    /// The new overlay.
    pub overlay: Option<Overlay>,
}

/// A change sent to the daemon's change path, with where its outcome goes.
pub struct Proposal {
    /// The change.
    pub change: Change,
    /// How logs and reports name it (`device v7`).
    pub label: String,
    /// Where the outcome goes, once known.
    pub reply: oneshot::Sender<Outcome>,
}

/// Where proposals go: the daemon's change path.
pub type Proposals = mpsc::Sender<Proposal>;

/// How a change ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied, healthy for the grace period, now the running config.
    Committed,
    /// The merged config equals the running one; nothing was restarted.
    Unchanged,
    /// Not applied: the merged config does not validate.
    Refused(String),
    /// Applied, then undone: a component failed to start or became less
    /// healthy during the grace period.
    RolledBack(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Committed => f.write_str("committed"),
            Outcome::Unchanged => f.write_str("unchanged"),
            Outcome::Refused(r) => write!(f, "refused: {r}"),
            Outcome::RolledBack(r) => write!(f, "rolled back: {r}"),
        }
    }
}
