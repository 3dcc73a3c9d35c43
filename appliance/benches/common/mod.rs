//! What every benchmark needs: the release binary `make bench` built, and a
//! daemon started on it with a private config, stopped when dropped.
#![allow(dead_code)] // each benchmark uses a different subset

use std::{
    fs,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

/// `target/release/nodus`, which `make bench` builds first.
pub fn release_binary() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().unwrap_or(&manifest);
    let bin = root.join("target/release/nodus");
    assert!(bin.exists(), "{} missing: run `make bench`", bin.display());
    bin
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `nodus run`.
pub struct BenchDaemon {
    child: Option<Child>,
    bin: PathBuf,
    /// Its control socket.
    pub socket: PathBuf,
    /// From spawn() to the READY=1 datagram.
    pub ready: Duration,
    _dir: tempfile::TempDir,
}

impl BenchDaemon {
    /// Starts `bin` with a private control socket plus `extra` TOML, logging
    /// warnings only, and waits for READY=1. Unless `extra` configures it,
    /// the file server listens on a free loopback port.
    pub fn start(bin: &Path, extra: &str) -> BenchDaemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("control.sock");
        let config = dir.path().join("nodus.toml");
        let fileserver = if extra.contains("[fileserver]") {
            String::new()
        } else {
            format!("[fileserver]\nlisten = \"127.0.0.1:{}\"\n", free_port())
        };
        fs::write(
            &config,
            format!(
                "[log]\ntarget = \"stderr\"\nlevel = \"warn\"\n[control]\nsocket = \"{}\"\n{fileserver}{extra}\n",
                socket.display()
            ),
        )
        .expect("config");
        let notify = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&notify).expect("notify socket");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let t0 = Instant::now();
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(&config)
            .env("NOTIFY_SOCKET", &notify)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nodus");
        let mut buf = [0u8; 4096];
        let ready = loop {
            let n = sock.recv(&mut buf).expect("READY=1 within 10 s");
            if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
                break t0.elapsed();
            }
        };
        BenchDaemon {
            child: Some(child),
            bin: bin.to_owned(),
            socket,
            ready,
            _dir: dir,
        }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `nodus ARGS --json --socket SOCKET`, parsed.
    pub fn query(&self, args: &[&str]) -> serde_json::Value {
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--json")
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .expect("nodus CLI");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON reply")
    }

    /// Component `name`'s stats from `nodus status`.
    pub fn component_stats(&self, name: &str) -> serde_json::Value {
        let status = self.query(&["status"]);
        status["components"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .map(|c| c["stats"].clone())
            .unwrap_or_else(|| panic!("{name} missing from status"))
    }

    /// /proc/PID/status's VmRSS, KiB.
    pub fn rss_kib(&self) -> u64 {
        fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .expect("VmRSS")
    }

    /// CPU time the daemon used so far (utime + stime), seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<u64> = after
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        // Fields 14 and 15 (utime, stime) are the 11th and 12th numbers
        // after the comm (the state letter is not a number).
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        (fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0)) as f64 / hz
    }

    /// SIGTERM and the exit status.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().expect("wait")
    }
}

impl Drop for BenchDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The smallest and largest of `v`: the spread printed beside a median.
pub fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

/// Waits up to 10 s for something to accept on 127.0.0.1:`port`.
pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} does not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
