//! Process-cache capture benchmark, side by side with the /proc poller a
//! user would otherwise run (docs/design.md: proccache targets).
//!
//! Spawns N short-lived `/bin/true` processes with distinct argv as fast as
//! the machine allows (one spawner per CPU) while nodus runs and, in the same
//! run, two peers watch: a 100 ms /proc poller, and the kernel's process
//! connector (netlink cn_proc) with a /proc read on each exec, as process
//! agents do. Reports the fraction each captured with exec, argv and exit
//! code, nodus's exec-to-queryable latency and the CPU time nodus spent. Run
//! with `make bench` (root: it loads eBPF).

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

/// What a cn_proc listener saw: argv (read from /proc at the exec event)
/// and exit code by pid, and how often the socket overflowed.
#[derive(Default)]
struct ConnectorSeen {
    argv: HashMap<u32, String>,
    exit_code: HashMap<u32, u32>,
    overflows: u64,
}

/// The kernel's process connector (netlink, NETLINK_CONNECTOR / CN_IDX_PROC):
/// exec and exit events pushed by the kernel; argv read from /proc on exec
/// (the event carries none), as process-monitoring agents do. The receive
/// buffer is raised to 8 MiB (SO_RCVBUFFORCE) so the peer is not starved.
fn connector(marker: String, stop: Arc<AtomicBool>, ready: Arc<AtomicBool>) -> ConnectorSeen {
    const NETLINK_CONNECTOR: i32 = 11;
    const CN_IDX_PROC: u32 = 1;
    const CN_VAL_PROC: u32 = 1;
    const PROC_CN_MCAST_LISTEN: u32 = 1;
    const PROC_EVENT_EXEC: u32 = 0x2;
    const PROC_EVENT_EXIT: u32 = 0x8000_0000;
    let mut seen = ConnectorSeen::default();
    // SAFETY (this whole block): plain netlink socket calls on a descriptor
    // this function owns and closes; every buffer is sized for its call.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_CONNECTOR,
        );
        assert!(
            fd >= 0,
            "cn_proc socket: {}",
            std::io::Error::last_os_error()
        );
        let size: libc::c_int = 8 << 20;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            4,
        );
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as u32,
        );
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_pid = 0;
        addr.nl_groups = CN_IDX_PROC;
        assert_eq!(
            libc::bind(
                fd,
                (&addr as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as u32
            ),
            0,
            "cn_proc bind: {}",
            std::io::Error::last_os_error()
        );
        // nlmsghdr (16) + cn_msg (20) + the operation (4).
        let mut msg = Vec::with_capacity(40);
        msg.extend_from_slice(&40u32.to_ne_bytes());
        msg.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&std::process::id().to_ne_bytes());
        for v in [CN_IDX_PROC, CN_VAL_PROC, 0, 0] {
            msg.extend_from_slice(&v.to_ne_bytes());
        }
        msg.extend_from_slice(&4u16.to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
        assert_eq!(
            libc::send(fd, msg.as_ptr().cast(), msg.len(), 0),
            40,
            "cn_proc listen"
        );
        ready.store(true, Ordering::Relaxed);
        let mut buf = vec![0u8; 64 * 1024];
        let word =
            |b: &[u8], at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        while !stop.load(Ordering::Relaxed) {
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS) {
                    seen.overflows += 1;
                }
                continue;
            }
            let n = n as usize;
            let mut at = 0;
            while at + 16 <= n {
                let len = word(&buf, at) as usize;
                if len < 16 || at + len > n {
                    break;
                }
                // proc_event after nlmsghdr (16) and cn_msg (20).
                let ev = at + 36;
                if ev + 24 <= at + len {
                    let what = word(&buf, ev);
                    let pid = word(&buf, ev + 16);
                    if what == PROC_EVENT_EXEC {
                        if let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline"))
                            && let Some(arg) = cmd
                                .split(|&b| b == 0)
                                .find(|a| a.starts_with(marker.as_bytes()))
                        {
                            seen.argv
                                .insert(pid, String::from_utf8_lossy(arg).into_owned());
                        }
                    } else if what == PROC_EVENT_EXIT && ev + 32 <= at + len {
                        let tgid = word(&buf, ev + 20);
                        if tgid == pid {
                            seen.exit_code.insert(pid, word(&buf, ev + 24));
                        }
                    }
                }
                at += (len + 3) & !3;
            }
        }
        libc::close(fd);
    }
    seen
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
    let cn_ready = Arc::new(AtomicBool::new(false));
    let cn = {
        let (m, s, r) = (marker.clone(), stop.clone(), cn_ready.clone());
        std::thread::spawn(move || connector(m, s, r))
    };
    while !cn_ready.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(5));
    }
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
    // Let the last events land, then read everything each one kept.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let _ = poll.join();
    let cn = cn.join().expect("cn_proc listener");
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
    let connector_full = spawned
        .iter()
        .filter(|(pid, arg)| cn.argv.get(pid) == Some(arg) && cn.exit_code.get(pid) == Some(&0))
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
        "  cn_proc + /proc read on exec:   {connector_full:>6} / {PROCESSES} = {:6.2}%   (exec+argv+exit code; socket overflows {})",
        percent(connector_full, PROCESSES),
        cn.overflows
    );
    println!(
        "  ratio nodus / cn_proc (exec+argv+exit code): {}",
        if connector_full == 0 {
            "cn_proc caught none".to_owned()
        } else {
            format!("{:.2}x", nodus_full as f64 / connector_full as f64)
        }
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
