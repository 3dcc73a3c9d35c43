//! `[control]`: where the control socket listens.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[control]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// Path of the control socket.
    pub socket: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from("/run/nodus/control.sock"),
        }
    }
}

impl ControlConfig {
    /// Checks: `(key, reason)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !self.socket.is_absolute() {
            return Err(("control.socket".into(), "must be an absolute path".into()));
        }
        Ok(())
    }
}
