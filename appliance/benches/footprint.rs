//! Footprint of the release binary, as DESIGN.md's targets state it: binary
//! size, start-to-READY time and idle RSS. There is no peer for these; each is
//! printed beside its target. Run with `make bench` (it builds
//! target/release/nodus first, the binary measured here).

use std::{
    fs,
    os::unix::net::UnixDatagram,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const RUNS: usize = 10;
const SIZE_TARGET_MIB: f64 = 10.0;
const RSS_TARGET_MIB: f64 = 24.0;
const READY_TARGET_MS: f64 = 300.0;

fn release_binary() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().unwrap_or(&manifest);
    let bin = root.join("target/release/nodus");
    assert!(bin.exists(), "{} missing: run `make bench`", bin.display());
    bin
}

struct Sample {
    ready: Duration,
    rss_kib: u64,
}

fn one_run(bin: &PathBuf, measure_rss: bool) -> Sample {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("nodus.toml");
    fs::write(
        &config,
        format!(
            "[log]\ntarget = \"stderr\"\nlevel = \"warn\"\n[control]\nsocket = \"{}\"\n",
            dir.path().join("control.sock").display()
        ),
    )
    .expect("config");
    let notify = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let t0 = Instant::now();
    let mut child = Command::new(bin)
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
    let mut rss_kib = 0;
    if measure_rss {
        std::thread::sleep(Duration::from_secs(3));
        let status = fs::read_to_string(format!("/proc/{}/status", child.id())).expect("status");
        rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS");
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert!(status.success(), "nodus exited {status}");
    Sample { ready, rss_kib }
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments.
    let bin = release_binary();
    let size = fs::metadata(&bin).expect("binary").len() as f64 / (1024.0 * 1024.0);
    let mut readies: Vec<f64> = Vec::new();
    let mut rss = 0.0;
    for i in 0..RUNS {
        let s = one_run(&bin, i == RUNS - 1);
        readies.push(s.ready.as_secs_f64() * 1000.0);
        if s.rss_kib > 0 {
            rss = s.rss_kib as f64 / 1024.0;
        }
    }
    readies.sort_by(|a, b| a.total_cmp(b));
    let median = readies[readies.len() / 2];
    let worst = readies[readies.len() - 1];
    let verdict = |ok: bool| if ok { "ok" } else { "OVER TARGET" };
    println!("footprint ({}; {RUNS} starts)", bin.display());
    println!(
        "  binary size (x86_64, stripped)  {size:>7.2} MiB   target <= {SIZE_TARGET_MIB} MiB   {}",
        verdict(size <= SIZE_TARGET_MIB)
    );
    println!(
        "  start to READY=1, median        {median:>7.1} ms    target <= {READY_TARGET_MS} ms    {}",
        verdict(median <= READY_TARGET_MS)
    );
    println!("  start to READY=1, worst         {worst:>7.1} ms");
    println!(
        "  idle RSS after 3 s              {rss:>7.2} MiB   target <= {RSS_TARGET_MIB} MiB   {}",
        verdict(rss <= RSS_TARGET_MIB)
    );
}
