//! `[profile]`: which board profile to apply (takes effect at start).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[profile]`: which board profile to apply (takes effect at start).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileConfig {
    /// `auto`, or a profile name.
    pub name: String,
    /// Directory of extra profiles.
    pub dir: PathBuf,
    /// One profile file, bypassing matching.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Seconds between drift checks; 0 disables them.
    pub verify_interval_s: u64,
}

impl Default for ProfileConfig {
    fn default() -> Self {
        ProfileConfig {
            name: "auto".into(),
            dir: PathBuf::from("/etc/nodus/board-profiles"),
            path: None,
            verify_interval_s: 30,
        }
    }
}
