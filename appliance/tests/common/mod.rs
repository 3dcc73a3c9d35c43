//! Helpers for nodus's integration tests: a temporary daemon, network
//! namespaces joined by veth, and a mosquitto broker on loopback.
//!
//! Tests that load eBPF or create namespaces run as root (as `make test` does);
//! they fail, not skip, when they are not, so a green run always means the
//! kernel paths were exercised.
#![allow(dead_code)] // each test binary uses a different subset

pub mod broker;
pub mod daemon;
pub mod fileserver;
pub mod netns;

use std::{
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

/// The `nodus` binary under test.
pub fn nodus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nodus"))
}

/// Panics with a clear message unless running as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test loads eBPF or creates namespaces: run it as root (`make test`)"
    );
}

/// A name unique to this test process and call, for namespaces and files.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh temporary directory, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("nodus-test-")
        .tempdir()
        .expect("create temp dir")
}

/// Polls `f` every 20 ms until it returns `Some`, or panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Path of a program from the machine, failing clearly when `make setup` did not install it.
pub fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = PathBuf::from(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found: run `make setup`");
}
