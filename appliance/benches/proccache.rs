//! Process-cache capture benchmark, side by side with the /proc poller a
//! user would otherwise run (docs/design.md: proccache targets).
//!
//! Spawns N short-lived `/bin/true` processes with distinct argv as fast as
//! the machine allows (one spawner per CPU) while nodus runs and, in the same
//! run, a 100 ms /proc poller watches. Reports the fraction each captured
//! with exec, argv and exit code, nodus's exec-to-queryable latency and the
//! CPU time nodus spent. Run with `make bench` (root: it loads eBPF).

mod common;

use std::{
    collections::HashMap,
    fs,
    path::Path,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::{BenchDaemon, release_binary};

const PROCESSES: usize = 20_000;
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const LATENCY_TARGET_US: f64 = 1000.0;

/// What a 100 ms /proc poller sees: argv by pid for processes carrying the
/// benchmark's marker. It never sees exit codes: /proc holds none.
fn poller(marker: String, stop: Arc<AtomicBool>, seen: Arc<Mutex<HashMap<u32, String>>>) {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(dir) = fs::read_dir("/proc") {
            for d in dir.flatten() {
                let Some(pid) = d.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if let Ok(cmd) = fs::read(d.path().join("cmdline"))
                    && let Some(arg) = cmd
                        .split(|&b| b == 0)
                        .find(|a| a.starts_with(marker.as_bytes()))
                    && let Ok(mut seen) = seen.lock()
                {
                    seen.insert(pid, String::from_utf8_lossy(arg).into_owned());
                }
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn percent(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

fn main() {
    let bin = release_binary();
    let true_bin = ["/usr/bin/true", "/bin/true"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("/bin/true");
    // Room and retention for every benchmark process, so the count
    // measures capture, not the (intended) eviction of old records.
    let daemon = BenchDaemon::start(
        &bin,
        &format!(
            "[proccache]\ncapacity = {}\nretain_short_lived_s = 600\nretain_exited_s = 600\n",
            PROCESSES * 2
        ),
    );
    let marker = format!("nodus-bench-{}-", std::process::id());
    let stop = Arc::new(AtomicBool::new(false));
    let polled = Arc::new(Mutex::new(HashMap::new()));
    let poll = {
        let (m, s, p) = (marker.clone(), stop.clone(), polled.clone());
        std::thread::spawn(move || poller(m, s, p))
    };
    let cpu_before = daemon.cpu_seconds();
    // Twice the CPUs: a spawner waiting for its child leaves its CPU to another.
    let spawners = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let spawned: Vec<(u32, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..spawners)
            .map(|t| {
                let marker = &marker;
                s.spawn(move || {
                    (t..PROCESSES)
                        .step_by(spawners)
                        .map(|i| {
                            let arg = format!("{marker}{i}");
                            let mut c = Command::new(true_bin)
                                .arg(&arg)
                                .spawn()
                                .expect("spawn /bin/true");
                            let pid = c.id();
                            c.wait().expect("wait /bin/true");
                            (pid, arg)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("spawner"))
            .collect()
    });
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = poll.join();
    // Let the last events land, then read everything nodus kept.
    std::thread::sleep(Duration::from_millis(200));
    let cpu = daemon.cpu_seconds() - cpu_before;
    let stats = daemon.component_stats("proccache");
    let report = daemon.query(&["ps", "--exited", "--comm", "true"]);
    let kept: HashMap<(u64, String), &serde_json::Value> = report["processes"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|p| {
                    let last = p["argv"].as_array()?.last()?.as_str()?.to_owned();
                    Some(((p["pid"].as_u64()?, last), p))
                })
                .collect()
        })
        .unwrap_or_default();
    let nodus_full = spawned
        .iter()
        .filter(|(pid, arg)| {
            kept.get(&(u64::from(*pid), arg.clone())).is_some_and(|p| {
                p["exec_ns"].is_u64() && p["exit"]["observed"] == true && p["exit"]["code"] == 0
            })
        })
        .count();
    let polled = polled.lock().map(|p| p.clone()).unwrap_or_default();
    let poller_argv = spawned
        .iter()
        .filter(|(pid, arg)| polled.get(pid) == Some(arg))
        .count();
    let rate = PROCESSES as f64 / elapsed.as_secs_f64();
    let p50 = stats["exec_latency_p50_us"].as_f64().unwrap_or(f64::NAN);
    let p99 = stats["exec_latency_p99_us"].as_f64().unwrap_or(f64::NAN);
    println!("proccache capture: {PROCESSES} x {true_bin} with distinct argv, {spawners} spawners");
    println!(
        "  spawned in {:.2} s: {rate:.0} processes/s (this machine's fork+exec+exit rate)",
        elapsed.as_secs_f64()
    );
    println!(
        "  nodus      exec+argv+exit code: {nodus_full:>6} / {PROCESSES} = {:6.2}%   (ring drops {}, mode {})",
        percent(nodus_full, PROCESSES),
        stats["drops"],
        stats["mode"]
    );
    println!(
        "  /proc poll argv seen (100 ms):  {poller_argv:>6} / {PROCESSES} = {:6.2}%   with exit code: 0.00% (/proc has none)",
        percent(poller_argv, PROCESSES)
    );
    println!(
        "  ratio nodus / poller (argv): {}",
        if poller_argv == 0 {
            "poller caught none".to_owned()
        } else {
            format!("{:.1}x", nodus_full as f64 / poller_argv as f64)
        }
    );
    println!(
        "  exec-to-queryable latency: p50 {p50:.1} us, p99 {p99:.1} us (target p99 <= {LATENCY_TARGET_US} us)"
    );
    println!(
        "  nodus CPU: {cpu:.2} s over {:.2} s = {:.1}% of one CPU ({:.1} us per process)",
        elapsed.as_secs_f64(),
        100.0 * cpu / elapsed.as_secs_f64(),
        1e6 * cpu / PROCESSES as f64
    );
}
