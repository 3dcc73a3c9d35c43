//! Logging to syslog (`/dev/log` unless configured) with a stderr fallback.
//!
//! On a board the syslog daemon (busybox syslogd, journald) owns rotation and
//! forwarding; nodus only has to hand it RFC 3164 datagrams, which the
//! `syslog` crate formats and sends (facility daemon, `nodus[pid]`). Where
//! there is no `/dev/log` (a container, a test, early boot) stderr is the
//! honest fallback, and a syslog that goes away while running falls back to
//! it too.
//!
//! A syslog that is slow to read must never stall the daemon: a datagram
//! socket's queue holds only `net.unix.max_dgram_qlen` (10) unread lines,
//! and a blocking send behind a full queue would hold every thread that
//! logs, shutdown included. Sends do not block: a line that finds the queue
//! full is dropped and counted, and the next line that gets through is
//! preceded by how many were lost (what journald does with
//! "Suppressed N messages").

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use syslog::{Facility, Formatter3164, LoggerBackend};

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

enum Sink {
    Syslog(syslog::Logger<LoggerBackend, Formatter3164>),
    Stderr,
}

struct Logger {
    sink: Mutex<Sink>,
    /// Lines dropped since the last one syslog took.
    unsaid: AtomicU64,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Lines dropped since start because syslog's queue was full.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// How long a line may wait for a stream-socket syslog (journald's
/// `/dev/log` is a stream on some systems) before it is dropped.
const STREAM_WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// How many log lines were dropped since start because syslog did not take
/// them in time (`nodus status`).
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Installs the logger (once) and applies `config`; later calls (SIGHUP) only
/// change the level and the destination.
pub fn init(config: &LogConfig) {
    let sink = open_sink(config.target, &config.syslog_socket);
    let logger = LOGGER.get_or_init(|| Logger {
        sink: Mutex::new(Sink::Stderr),
        unsaid: AtomicU64::new(0),
    });
    *crate::sync::lock(&logger.sink) = sink;
    let _ = log::set_logger(logger);
    log::set_max_level(config.level.filter());
}

fn open_sink(target: LogTarget, socket: &Path) -> Sink {
    if target == LogTarget::Stderr {
        return Sink::Stderr;
    }
    let formatter = Formatter3164 {
        facility: Facility::LOG_DAEMON,
        hostname: None,
        process: "nodus".into(),
        pid: std::process::id(),
    };
    let made_nonblocking = |s: &syslog::Logger<LoggerBackend, Formatter3164>| match &s.backend {
        LoggerBackend::Unix(d) => d.set_nonblocking(true),
        LoggerBackend::UnixStream(w) => w.get_ref().set_write_timeout(Some(STREAM_WRITE_TIMEOUT)),
        _ => Ok(()),
    };
    match syslog::unix_custom(formatter, socket) {
        Ok(s) => match made_nonblocking(&s) {
            Ok(()) => Sink::Syslog(s),
            Err(e) => {
                eprintln!("nodus: syslog socket options ({e}); logging to stderr");
                Sink::Stderr
            }
        },
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
        if let Sink::Syslog(syslog) = &mut *sink {
            let unsaid = self.unsaid.load(Ordering::Relaxed);
            if unsaid > 0 {
                let said = syslog.warning(format!(
                    "syslog was not reading: {unsaid} log lines dropped"
                ));
                if said.is_ok() {
                    self.unsaid.fetch_sub(unsaid, Ordering::Relaxed);
                }
            }
            let sent = match record.level() {
                log::Level::Error => syslog.err(&msg),
                log::Level::Warn => syslog.warning(&msg),
                log::Level::Info => syslog.info(&msg),
                log::Level::Debug | log::Level::Trace => syslog.debug(&msg),
            };
            match sent {
                Ok(()) => return,
                Err(e) if queue_full(&e) => {
                    self.unsaid.fetch_add(1, Ordering::Relaxed);
                    DROPPED.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                // syslogd went away (restart, read-only root): keep
                // logging somewhere.
                Err(_) => *sink = Sink::Stderr,
            }
        }
        let _ = writeln!(
            std::io::stderr().lock(),
            "nodus: {}: {msg}",
            record.level().as_str().to_lowercase()
        );
    }

    fn flush(&self) {}
}

/// Whether a failed send found syslog's queue full (or timed out behind
/// it) rather than syslog gone.
fn queue_full(e: &syslog::Error) -> bool {
    let io = match e {
        syslog::Error::Write(io) => io,
        syslog::Error::Io(io) => io,
        _ => return false,
    };
    matches!(
        io.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
