//! `[fileserver]`: the static file server's configuration. Every key is
//! documented, with its default, in `config/defaults.toml`.

use std::{net::SocketAddr, path::PathBuf};

use serde::{Deserialize, Serialize};

/// `[fileserver]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileserverConfig {
    /// Whether the file server runs at all.
    pub enabled: bool,
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// The document root; nothing outside it is ever served.
    pub docroot: PathBuf,
    /// When `docroot` does not exist, serve the embedded demo site instead
    /// (written to a private directory under /run/nodus), so a fresh board or
    /// `make run` answers at once.
    pub demo_when_missing: bool,
    /// Files tried, in order, for a request naming a directory.
    pub index: Vec<String>,
    /// Follow symlinks that point outside the document root.
    pub symlinks_outside: bool,
    /// Worker threads; 0 = one per CPU of the profile's `placement.fileserver`
    /// (or of the CPUs nodus may run on).
    pub workers: usize,
    /// Pin each worker to one CPU (what connection steering needs).
    pub pin_workers: bool,
    /// Open connections beyond which new ones get 503 and are closed.
    pub max_connections: usize,
    /// Longest request line in bytes (414 beyond).
    pub max_request_line: usize,
    /// Largest header section in bytes (431 beyond).
    pub max_header_bytes: usize,
    /// Most header fields in one request (431 beyond).
    pub max_headers: usize,
    /// Time to receive a whole request head once it has started (408 beyond).
    pub header_timeout_ms: u64,
    /// Time a kept-alive connection may sit without a new request.
    pub idle_timeout_ms: u64,
    /// Files up to this size, when hot, are answered from memory with one
    /// writev; larger ones always go out with sendfile.
    pub small_file_max: u64,
    /// Memory budget for hot files kept resident (bytes).
    pub hot_bytes: u64,
    /// The hot set's replacement policy: `auto` (chosen by replaying the
    /// served requests through each), or `lru`, `arc`, `s3fifo`, `sieve`.
    pub hot_policy: String,
    /// Requests served between two reviews of the hot set's policy (each
    /// replays the last two windows: one warms, one is counted).
    pub hot_review_requests: usize,
    /// Most files kept open with their metadata.
    pub open_files: usize,
    /// Listen backlog of each worker's socket.
    pub backlog: u32,
    /// Steer each connection to the worker on the CPU that received it (sk_reuseport).
    pub reuseport_steering: bool,
    /// Interfaces the TC request classifier attaches to (ingress).
    pub tc_interfaces: Vec<String>,
}

impl Default for FileserverConfig {
    fn default() -> Self {
        FileserverConfig {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 8480)),
            docroot: PathBuf::from("/usr/share/nodus/www"),
            demo_when_missing: true,
            index: vec!["index.html".into()],
            symlinks_outside: false,
            workers: 0,
            pin_workers: true,
            max_connections: 10_000,
            max_request_line: 8192,
            max_header_bytes: 16_384,
            max_headers: 64,
            header_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            small_file_max: 256 * 1024,
            hot_bytes: 128 * 1024 * 1024,
            hot_policy: "auto".into(),
            hot_review_requests: 50_000,
            open_files: 4096,
            backlog: 1024,
            reuseport_steering: true,
            tc_interfaces: vec!["lo".into()],
        }
    }
}

impl FileserverConfig {
    /// Range checks serde cannot express: `(key, reason)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let key = |k: &str| format!("fileserver.{k}");
        if !self.docroot.is_absolute() {
            return Err((key("docroot"), "must be an absolute path".into()));
        }
        if self.index.iter().any(|i| i.is_empty() || i.contains('/')) {
            return Err((
                key("index"),
                "names must be non-empty and contain no '/'".into(),
            ));
        }
        if crate::fileserver::hotset::Choice::parse(&self.hot_policy).is_none() {
            return Err((
                key("hot_policy"),
                "must be auto, lru, arc, s3fifo or sieve".into(),
            ));
        }
        let ranges: [(&str, u64, u64, u64); 9] = [
            ("workers", self.workers as u64, 0, 1024),
            ("max_connections", self.max_connections as u64, 1, 1_000_000),
            (
                "max_request_line",
                self.max_request_line as u64,
                64,
                1 << 20,
            ),
            (
                "max_header_bytes",
                self.max_header_bytes as u64,
                256,
                1 << 20,
            ),
            ("max_headers", self.max_headers as u64, 1, 1024),
            ("header_timeout_ms", self.header_timeout_ms, 100, 3_600_000),
            ("idle_timeout_ms", self.idle_timeout_ms, 100, 3_600_000),
            ("open_files", self.open_files as u64, 1, 1_000_000),
            (
                "hot_review_requests",
                self.hot_review_requests as u64,
                100,
                10_000_000,
            ),
        ];
        for (name, v, lo, hi) in ranges {
            if v < lo || v > hi {
                return Err((key(name), format!("must be between {lo} and {hi}")));
            }
        }
        if self.backlog == 0 {
            return Err((key("backlog"), "must be at least 1".into()));
        }
        Ok(())
    }
}
