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
    /// nodus's runtime directory (tmpfs, `/run/nodus`): the socket's
    /// directory. State that must outlive a crash but not the boot lives here.
    pub fn run_dir(&self) -> PathBuf {
        self.socket
            .parent()
            .unwrap_or(std::path::Path::new("/run"))
            .to_owned()
    }

    /// Checks: `(key, reason)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !self.socket.is_absolute() {
            return Err(("control.socket".into(), "must be an absolute path".into()));
        }
        Ok(())
    }
}
