//! Footprint of the release binary, as docs/design.md's targets state it: binary
//! size, start-to-READY time and idle RSS. There is no peer for these; each is
//! printed beside its target. Run with `make bench` (it builds
//! target/release/nodus first, the binary measured here).

mod common;

use std::{fs, path::Path, time::Duration};

use common::{BenchDaemon, release_binary};

const RUNS: usize = 10;
const SIZE_TARGET_MIB: f64 = 10.0;
const RSS_TARGET_MIB: f64 = 24.0;
const READY_TARGET_MS: f64 = 300.0;

struct Sample {
    ready: Duration,
    rss_kib: u64,
}

fn one_run(bin: &Path, measure_rss: bool) -> Sample {
    let daemon = BenchDaemon::start(bin, "");
    let ready = daemon.ready;
    let mut rss_kib = 0;
    if measure_rss {
        std::thread::sleep(Duration::from_secs(3));
        rss_kib = daemon.rss_kib();
    }
    let status = daemon.stop();
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
