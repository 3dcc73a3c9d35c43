//! The typed configuration model: `/etc/nodus/nodus.toml`, one section per
//! component, every key defaulted, unknown keys refused.
//!
//! Each section's type and checks live with the component that reads it;
//! this module only composes them into [`Config`] and knows where the text
//! comes from.
//!
//! Errors name the file, the key and the reason on one line, because on a
//! fleet the only thing an operator may see of a failed boot is one log line.

use std::{
    fmt, fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

pub mod layers;
pub use layers::Layers;

use crate::tomlfile::{self, TomlError};
pub use crate::{
    control::ControlConfig,
    fileserver::FileserverConfig,
    fleet::FleetConfig,
    logging::{LogConfig, LogLevel, LogTarget},
    numa::NumaConfig,
    pagecache::PageCacheConfig,
    proccache::ProcCacheConfig,
    profile::ProfileConfig,
    proxy::ProxyConfig,
    sched::SchedConfig,
    supervisor::DaemonConfig,
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
    /// Page-cache hit and miss counting.
    pub pagecache: PageCacheConfig,
    /// `[proxy]`: the TLS SNI proxy.
    pub proxy: ProxyConfig,
    /// `[sched]`: the sched_ext layered scheduler.
    pub sched: SchedConfig,
    /// `[numa]`: NUMA locality, observed and kept.
    pub numa: NumaConfig,
    /// The fleet link: MQTT telemetry and signed fleet config.
    pub fleet: FleetConfig,
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

    /// Each section's own checks, for what serde cannot express: `(key, reason)`.
    fn validate(&self) -> Result<(), (String, String)> {
        self.daemon.validate()?;
        self.control.validate()?;
        self.proccache.validate()?;
        self.fileserver.validate()?;
        self.pagecache.validate()?;
        self.proxy.validate()?;
        self.sched.validate()?;
        self.numa.validate()?;
        self.fleet.validate()?;
        self.check_document_keys()
    }

    /// Every `fleet.document_keys` entry names a section (and key) that
    /// exists: a misspelt entry would silently allow nothing.
    fn check_document_keys(&self) -> Result<(), (String, String)> {
        let known = toml::Table::try_from(Config::default()).unwrap_or_default();
        for (i, entry) in self.fleet.document_keys.iter().enumerate() {
            let (section, key) = match entry.split_once('.') {
                Some((s, k)) => (s, Some(k)),
                None => (entry.as_str(), None),
            };
            let found = known
                .get(section)
                .and_then(toml::Value::as_table)
                .is_some_and(|t| key.is_none_or(|k| t.contains_key(k)));
            if !found {
                return Err((
                    format!("fleet.document_keys[{i}]"),
                    format!("'{entry}' names no config section or key"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
