//! Logging to syslog (`/dev/log` unless configured) with a stderr fallback.
//!
//! On a board the syslog daemon (busybox syslogd, journald) owns rotation and
//! forwarding; nodus only has to hand it RFC 3164 datagrams. Where there is no
//! `/dev/log` (a container, a test, early boot) stderr is the honest fallback.

use std::{
    io::Write,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use serde::{Deserialize, Serialize};

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

/// LOG_DAEMON facility.
const FACILITY: u8 = 3;

enum Sink {
    Syslog(UnixDatagram),
    Stderr,
}

struct Logger {
    sink: Mutex<Sink>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Installs the logger (once) and applies `config`; later calls (SIGHUP) only
/// change the level and the destination.
pub fn init(config: &LogConfig) {
    let sink = open_sink(config.target, &config.syslog_socket);
    let logger = LOGGER.get_or_init(|| Logger {
        sink: Mutex::new(Sink::Stderr),
    });
    *crate::sync::lock(&logger.sink) = sink;
    let _ = log::set_logger(logger);
    log::set_max_level(config.level.filter());
}

fn open_sink(target: LogTarget, socket: &Path) -> Sink {
    if target == LogTarget::Stderr {
        return Sink::Stderr;
    }
    let sock = UnixDatagram::unbound().and_then(|s| s.connect(socket).map(|()| s));
    match sock {
        Ok(s) => Sink::Syslog(s),
        Err(e) => {
            if target == LogTarget::Syslog {
                eprintln!(
                    "nodus: syslog at {} unavailable ({e}); logging to stderr",
                    socket.display()
                );
            }
            Sink::Stderr
        }
    }
}

fn severity(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut sink = crate::sync::lock(&self.sink);
        let msg = record.args().to_string();
        if let Sink::Syslog(sock) = &*sink {
            let line = format!(
                "<{}>nodus[{}]: {msg}",
                FACILITY * 8 + severity(record.level()),
                std::process::id()
            );
            if sock.send(line.as_bytes()).is_ok() {
                return;
            }
            // syslogd went away (restart, read-only root): keep logging somewhere.
            *sink = Sink::Stderr;
        }
        let _ = writeln!(
            std::io::stderr().lock(),
            "nodus: {}: {msg}",
            record.level().as_str().to_lowercase()
        );
    }

    fn flush(&self) {}
}
