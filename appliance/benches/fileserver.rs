//! The file server against nginx, tuned, on the same machine in the same run
//! (docs/design.md: at least 1.1x nginx requests/s on a 4 KiB file with p99 no
//! worse; at least 1.0x MiB/s on a 64 MiB file). Both serve the same directory on
//! loopback; wrk, with the same threads and connections, alternates between
//! them; each figure is the median over rounds, and the spread of the
//! per-round ratios is printed. Both send a file with one sendfile call per
//! writable socket (nginx `sendfile_max_chunk 0`, nodus up to 1 GiB per
//! call), so the large-file case compares servers, not chunk sizes. Run
//! with `make bench`.

mod common;

use std::{
    fs,
    path::Path,
    process::{Child, Command, Stdio},
};

use common::{BenchDaemon, free_port, median, release_binary, wait_listening};

const ROUNDS_SMALL: usize = 5;
const ROUNDS_LARGE: usize = 5;
const SECONDS: u32 = 5;

/// Either server, stopped on drop.
struct Server {
    name: &'static str,
    port: u16,
    nginx: Option<Child>,
    _nodus: Option<BenchDaemon>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.nginx {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

fn start_nodus(docroot: &Path) -> Server {
    let port = free_port();
    let nodus = BenchDaemon::start(
        &release_binary(),
        &format!(
            "[fileserver]\nlisten = \"127.0.0.1:{port}\"\ndocroot = \"{}\"\n",
            docroot.display()
        ),
    );
    wait_listening(port, "nodus");
    Server {
        name: "nodus",
        port,
        nginx: None,
        _nodus: Some(nodus),
    }
}

/// nginx as its documentation tunes it for static files.
fn nginx_conf(dir: &Path, docroot: &Path, port: u16, workers: usize) -> String {
    format!(
        "user root;\n\
         worker_processes {workers};\n\
         worker_cpu_affinity auto;\n\
         pid {pid};\n\
         error_log stderr warn;\n\
         events {{ worker_connections 4096; use epoll; multi_accept on; }}\n\
         http {{\n\
           access_log off;\n\
           sendfile on;\n\
           sendfile_max_chunk 0;\n\
           tcp_nopush on;\n\
           tcp_nodelay on;\n\
           keepalive_timeout 65;\n\
           keepalive_requests 1000000;\n\
           open_file_cache max=10000 inactive=60s;\n\
           open_file_cache_valid 60s;\n\
           open_file_cache_min_uses 1;\n\
           open_file_cache_errors on;\n\
           types {{ application/octet-stream bin; }}\n\
           client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
           server {{\n\
             listen 127.0.0.1:{port} reuseport backlog=1024;\n\
             root {root};\n\
           }}\n\
         }}\n",
        pid = dir.join("nginx.pid").display(),
        d = dir.display(),
        root = docroot.display(),
    )
}

fn start_nginx(dir: &Path, docroot: &Path, workers: usize) -> Server {
    let port = free_port();
    let conf = dir.join("nginx.conf");
    fs::write(&conf, nginx_conf(dir, docroot, port, workers)).expect("nginx.conf");
    let child = Command::new("/usr/sbin/nginx")
        .args(["-e", "stderr", "-g", "daemon off;", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn nginx (apt-get install nginx-light)");
    wait_listening(port, "nginx");
    Server {
        name: "nginx",
        port,
        nginx: Some(child),
        _nodus: None,
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Run {
    rps: f64,
    mib_s: f64,
    p99_ms: f64,
}

/// "1.23ms" / "456.00us" / "1.02s" in milliseconds.
fn ms(v: &str) -> Option<f64> {
    let (num, mult) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else {
        (v.strip_suffix('s')?, 1000.0)
    };
    num.parse::<f64>().ok().map(|x| x * mult)
}

/// "324.53MB" in MiB (wrk's units are powers of 1024).
fn mib(v: &str) -> Option<f64> {
    for (suffix, mult) in [
        ("GB", 1024.0),
        ("MB", 1.0),
        ("KB", 1.0 / 1024.0),
        ("B", 1.0 / 1048576.0),
    ] {
        if let Some(n) = v.strip_suffix(suffix) {
            return n.parse::<f64>().ok().map(|x| x * mult);
        }
    }
    None
}

fn wrk(port: u16, path: &str, threads: usize, conns: usize, secs: u32) -> Run {
    let out = Command::new("wrk")
        .args([
            &format!("-t{threads}"),
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
            &format!("http://127.0.0.1:{port}{path}"),
        ])
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "wrk saw errors:\n{text}"
    );
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {key} in wrk output:\n{text}"))
    };
    Run {
        rps: field("Requests/sec:").parse().expect("requests/s"),
        mib_s: mib(&field("Transfer/sec:")).expect("transfer/s"),
        p99_ms: ms(&field("99%")).expect("p99"),
    }
}

struct Case {
    path: &'static str,
    label: &'static str,
    conns: usize,
    rounds: usize,
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let docroot = dir.path().join("www");
    fs::create_dir(&docroot).expect("docroot");
    fs::write(docroot.join("4k.bin"), vec![b'x'; 4096]).expect("4k");
    fs::write(docroot.join("64m.bin"), vec![b'y'; 64 << 20]).expect("64m");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cpus;
    let xdir = dir.path().join("nginx");
    fs::create_dir(&xdir).expect("dir");
    let nodus = start_nodus(&docroot);
    let nginx = start_nginx(&xdir, &docroot, cpus);
    let servers = [&nodus, &nginx];
    println!(
        "fileserver bench: {cpus} CPUs, wrk -t{threads}, {SECONDS} s per run, alternating, median of rounds"
    );
    let cases = [
        Case {
            path: "/4k.bin",
            label: "4 KiB",
            conns: 64,
            rounds: ROUNDS_SMALL,
        },
        Case {
            path: "/64m.bin",
            label: "64 MiB",
            conns: 4,
            rounds: ROUNDS_LARGE,
        },
    ];
    for case in &cases {
        for s in servers {
            // Warm: open-file caches, hot sets, page cache.
            wrk(s.port, case.path, threads, case.conns, 2);
        }
        let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..case.rounds {
            for (i, s) in servers.iter().enumerate() {
                runs[i].push(wrk(s.port, case.path, threads, case.conns, SECONDS));
            }
        }
        let med = |i: usize, f: fn(&Run) -> f64| median(runs[i].iter().map(f).collect());
        println!(
            "\n{} (wrk -t{threads} -c{} -d{SECONDS}s --latency, {} rounds):",
            case.label, case.conns, case.rounds
        );
        println!(
            "  {:<6} {:>12} {:>10} {:>9}",
            "server", "requests/s", "MiB/s", "p99 ms"
        );
        for (i, s) in servers.iter().enumerate() {
            println!(
                "  {:<6} {:>12.0} {:>10.1} {:>9.2}",
                s.name,
                med(i, |r| r.rps),
                med(i, |r| r.mib_s),
                med(i, |r| r.p99_ms)
            );
        }
        // Each round ran nodus then nginx back to back: their ratio per
        // round, and the range of those ratios.
        let spread = |f: fn(&Run) -> f64| {
            let mut r: Vec<f64> = runs[0]
                .iter()
                .zip(&runs[1])
                .map(|(a, b)| f(a) / f(b))
                .collect();
            r.sort_by(|a, b| a.total_cmp(b));
            format!("{:.2}-{:.2}", r[0], r[r.len() - 1])
        };
        println!(
            "  ratio nodus/nginx: requests/s {:.2}x (rounds {}), MiB/s {:.2}x (rounds {}), p99 {:.2}x (rounds {}; lower is better)",
            med(0, |r| r.rps) / med(1, |r| r.rps),
            spread(|r| r.rps),
            med(0, |r| r.mib_s) / med(1, |r| r.mib_s),
            spread(|r| r.mib_s),
            med(0, |r| r.p99_ms) / med(1, |r| r.p99_ms),
            spread(|r| r.p99_ms)
        );
        for (i, s) in servers.iter().enumerate() {
            let all: Vec<String> = runs[i]
                .iter()
                .map(|r| format!("{:.0} rps/{:.2} ms", r.rps, r.p99_ms))
                .collect();
            println!("    {} rounds: {}", s.name, all.join(", "));
        }
    }
}
