//! Helpers for nodus's integration tests: a temporary daemon, network
//! namespaces joined by veth, and a mosquitto broker on loopback.
//!
//! Tests that load eBPF, create namespaces or run the daemon need root. Under
//! a plain `cargo test` as another user they say `SKIPPED <test>: needs root`
//! and pass; `make test` sets `NODUS_REQUIRE_ROOT`, so there a missing root
//! fails them, and a green `make test` always means the kernel paths ran.
#![allow(dead_code)] // each test binary uses a different subset

pub mod broker;
pub mod daemon;
pub mod fileserver;
pub mod fincore;
pub mod hello;
pub mod netns;

use std::{
    io::Write as _,
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

/// The `nodus` binary under test.
pub fn nodus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nodus"))
}

/// Panics with a clear message unless running as root: for helpers that
/// cannot go on without it. Tests start with [`require_root!`] instead.
pub fn require_root() {
    assert!(
        is_root(),
        "this test loads eBPF or creates namespaces: run it as root (`make test`)"
    );
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True when running as root. Otherwise says on stderr that the calling test
/// was skipped and why, and returns false; unless `NODUS_REQUIRE_ROOT` is
/// set (as `make test` does), where running without root is a failure.
pub fn root_or_skip() -> bool {
    if is_root() {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    assert!(
        std::env::var_os("NODUS_REQUIRE_ROOT").is_none(),
        "{test} needs root (it loads eBPF, creates namespaces or runs the daemon): run `make test` as root"
    );
    // Straight to stderr, past the test harness's capture, so a plain
    // `cargo test` shows what it did not run.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs root (eBPF, namespaces or the daemon); `make test` runs it as root"
    );
    false
}

/// Returns from the calling test, skipped, unless running as root (see
/// [`root_or_skip`]).
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::root_or_skip() {
            return;
        }
    };
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

/// A TLS ClientHello for `server_name` as `openssl s_client` sends it.
pub fn captured_hello(server_name: &str) -> Vec<u8> {
    hello::capture(&tool("openssl"), server_name)
}

/// This process's hard open-file limit (what it and its children can raise
/// their soft limit to).
pub fn nofile_hard_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit};
    getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(_, hard)| hard)
}

/// A child process killed (and reaped) when dropped: a failed assertion
/// must not leave it running.
pub struct Killed(pub std::process::Child);

impl Killed {
    /// Its pid.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
