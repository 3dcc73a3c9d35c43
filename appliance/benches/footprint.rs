//! Footprint of the release binary, as docs/design.md's targets state it: binary
//! size, start-to-READY time and idle RSS. There is no peer for these; each is
//! printed beside its target. Run with `make bench` (it builds
//! target/release/nodus first, the binary measured here).
//!
//! It also measures why nodus keeps its own BTF reader next to aya's: both
//! parse the running kernel's BTF, each in a child process of its own so the
//! peak memory growth is the parser's alone.

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

/// Child mode: parse the kernel's BTF with `which` (aya or nodus) five
/// times and print "median ms, peak RSS growth KiB".
fn btf_child(which: &str) {
    let hwm = || {
        fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    let before = hwm();
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = std::time::Instant::now();
        match which {
            "aya" => {
                let btf = aya_obj::btf::Btf::from_sys_fs().expect("aya: vmlinux BTF");
                btf.id_by_type_name_kind("task_struct", aya_obj::btf::BtfKind::Struct)
                    .expect("task_struct");
            }
            _ => {
                let btf = nodus::btf::Btf::kernel().expect("nodus: vmlinux BTF");
                btf.field_offset("task_struct", "pid")
                    .expect("task_struct.pid");
            }
        }
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!("{:.1} {}", times[2], hwm().saturating_sub(before));
}

/// Runs [`btf_child`] for `which` in a fresh process: (median ms, KiB).
fn btf_parse(which: &str) -> (f64, u64) {
    let out = std::process::Command::new(std::env::current_exe().expect("bench binary"))
        .env("NODUS_BENCH_BTF", which)
        .output()
        .expect("btf child");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = text.split_whitespace();
    let ms = f.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
    let kib = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    (ms, kib)
}

fn main() {
    if let Ok(which) = std::env::var("NODUS_BENCH_BTF") {
        return btf_child(&which);
    }
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
    let (aya_ms, aya_kib) = btf_parse("aya");
    let (own_ms, own_kib) = btf_parse("nodus");
    println!("  kernel BTF parse (median of 5; peak memory growth), aya-obj vs nodus::btf:");
    println!(
        "    aya-obj {aya_ms:>7.1} ms {:>7.2} MiB   nodus {own_ms:>7.1} ms {:>7.2} MiB   ratio {:.2}x time, {:.2}x memory",
        aya_kib as f64 / 1024.0,
        own_kib as f64 / 1024.0,
        aya_ms / own_ms,
        aya_kib as f64 / own_kib.max(1) as f64
    );
}
