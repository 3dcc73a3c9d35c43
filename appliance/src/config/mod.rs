//! The typed configuration model: `/etc/nodus/nodus.toml`, one section per
//! component, every key defaulted, unknown keys refused.
//!
//! Errors name the file, the key and the reason on one line, because on a
//! fleet the only thing an operator may see of a failed boot is one log line.

use std::{
    fmt, fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

pub mod layers;
pub use layers::{Layers, Overlay};

pub use crate::fileserver::FileserverConfig;
pub use crate::fleet::FleetConfig;
use crate::{
    proccache::ProcCacheConfig,
    tomlfile::{self, TomlError},
};

/// Where `nodus run` looks for its configuration when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/nodus/nodus.toml";

/// The embedded defaults, also the documentation of every key.
pub const EMBEDDED_DEFAULTS: &str = include_str!("defaults.toml");

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Process-wide settings.
    pub daemon: DaemonConfig,
    /// Logging.
    pub log: LogConfig,
    /// The control socket.
    pub control: ControlConfig,
    /// The board profile.
    pub profile: ProfileConfig,
    /// The process cache.
    pub proccache: ProcCacheConfig,
    /// The static file server.
    pub fileserver: FileserverConfig,
    /// The fleet link: MQTT telemetry and signed fleet config.
    pub fleet: FleetConfig,
}

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

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Where log lines go.
    pub target: LogTarget,
    /// The most verbose level written.
    pub level: LogLevel,
    /// Where syslog listens.
    pub syslog_socket: PathBuf,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            target: LogTarget::Auto,
            level: LogLevel::Info,
            syslog_socket: PathBuf::from("/dev/log"),
        }
    }
}

/// Log destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    /// Syslog when its socket accepts us, stderr otherwise.
    Auto,
    /// Syslog only (falls back to stderr if its socket is gone, and says so).
    Syslog,
    /// Standard error, for the journal or a terminal.
    Stderr,
}

/// Log verbosity, the `log` crate's levels by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The matching `log` filter.
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

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

/// Where a configuration came from, for status and error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A file on disk (reloadable with SIGHUP).
    File(PathBuf),
    /// The defaults compiled into the binary.
    Embedded,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Embedded => write!(f, "<embedded defaults>"),
        }
    }
}

/// A configuration that could not be used: which file, which key, why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        source: io::Error,
    },
    /// The file was read but is not a valid configuration.
    #[error("config {0}")]
    Invalid(#[from] TomlError),
}

impl Config {
    /// Parses and validates TOML text; `source` names it in errors.
    pub fn parse(text: &str, source: &Source) -> Result<Config, ConfigError> {
        let name = source.to_string();
        let config: Config = tomlfile::parse_str(text, &name)?;
        config.checked(&name)
    }

    /// `self` if it passes the checks serde cannot express; `name` names it
    /// in the error.
    pub fn checked(self, name: &str) -> Result<Config, ConfigError> {
        self.validate()
            .map_err(|(key, reason)| TomlError::at_key(name, &key, reason))?;
        Ok(self)
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &Source::File(path.to_owned()))
    }

    /// The configuration `nodus run` uses: `explicit` if given (it must exist),
    /// else [`DEFAULT_PATH`] if present, else the embedded defaults.
    pub fn resolve(explicit: Option<&Path>) -> Result<(Config, Source), ConfigError> {
        if let Some(path) = explicit {
            return Ok((Config::load(path)?, Source::File(path.to_owned())));
        }
        let default = Path::new(DEFAULT_PATH);
        if default.exists() {
            return Ok((Config::load(default)?, Source::File(default.to_owned())));
        }
        Ok((Config::embedded(), Source::Embedded))
    }

    /// The embedded defaults. They are checked by a unit test, so parsing them
    /// cannot fail in a released binary; should it anyway, the typed defaults
    /// (identical by the same test) are used.
    pub fn embedded() -> Config {
        Config::parse(EMBEDDED_DEFAULTS, &Source::Embedded).unwrap_or_default()
    }

    /// Cross-field and range checks serde cannot express: `(key, reason)`.
    fn validate(&self) -> Result<(), (String, String)> {
        if self.daemon.stop_timeout_ms == 0 || self.daemon.stop_timeout_ms > 60_000 {
            return Err((
                "daemon.stop_timeout_ms".into(),
                "must be between 1 and 60000".into(),
            ));
        }
        if self.daemon.wedge_timeout_ms < 1000 {
            return Err((
                "daemon.wedge_timeout_ms".into(),
                "must be at least 1000 (components beat once a second)".into(),
            ));
        }
        if self.daemon.worker_threads > 1024 {
            return Err((
                "daemon.worker_threads".into(),
                "must be at most 1024".into(),
            ));
        }
        if !self.control.socket.is_absolute() {
            return Err(("control.socket".into(), "must be an absolute path".into()));
        }
        self.proccache.validate()?;
        self.fileserver.validate()?;
        self.fleet.validate()
    }
}

#[cfg(test)]
mod tests;
