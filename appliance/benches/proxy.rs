//! The TLS SNI proxy against a direct connection and HAProxy (Debian's,
//! `req.ssl_sni` routing, `option splice-auto`), in one run on one machine
//! (issue targets: bulk >= 0.9x direct and >= 1.0x HAProxy; connections/s
//! >= 1.0x HAProxy; RSS per 1,000 idle connections compared).
//!
//! Every connection starts with a real ClientHello (captured from
//! `openssl s_client -servername`), followed by an 8-byte request: how many
//! bytes the backend should send back. The backend (in this process) reads
//! both, sends that many bytes and closes; 0 means hold the connection
//! idle. The paths compared, with the same client and backend:
//! `direct` (client to backend), `sockhash` and `splice` (nodus, one route
//! per data path), `haproxy`. Each round runs every path back to back; each
//! figure is the median over rounds with the range of per-round ratios.
//! Crypto is the endpoints' cost, not the proxy's, so the backend does not
//! terminate TLS: connections/s measures accept, hello, route, connect,
//! relay and close. Run with `make bench`.

mod common;
#[path = "../tests/common/hello.rs"]
mod hello;

use std::{
    fs,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use common::{BenchDaemon, free_port, median, range, release_binary, wait_listening};

const ROUNDS: usize = 5;
/// Bytes one stream downloads in the one-stream case.
const ONE_STREAM: u64 = 1 << 30;
/// Streams, and bytes each downloads, in the many-streams case.
const STREAMS: usize = 16;
const PER_STREAM: u64 = 64 << 20;
/// Seconds of each connections/s run, and its concurrent clients.
const CONN_SECONDS: f64 = 3.0;
const CONN_CLIENTS: usize = 16;
/// Idle connections held for the memory figure.
const IDLE: usize = 2000;

/// A ClientHello for `name`, as `openssl s_client` sends it.
fn capture_hello(name: &str) -> Vec<u8> {
    hello::capture(Path::new("openssl"), name)
}

/// The backend: reads a hello (one record) and an 8-byte request, sends
/// that many bytes and closes, or holds the connection while the request
/// is 0.
struct Backend {
    port: u16,
    held: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Backend {
    fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("backend");
        let port = listener.local_addr().expect("addr").port();
        let held = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (held.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let h = h.clone();
                std::thread::spawn(move || serve(conn, &h));
            }
        });
        Backend { port, held, stop }
    }

    fn release_idle(&self) {
        self.held.lock().expect("held").clear();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(mut conn: TcpStream, held: &Mutex<Vec<TcpStream>>) {
    let mut header = [0u8; 5];
    if conn.read_exact(&mut header).is_err() {
        return;
    }
    let hello_len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let mut rest = vec![0u8; hello_len + 8];
    if conn.read_exact(&mut rest).is_err() {
        return;
    }
    let mut want = [0u8; 8];
    want.copy_from_slice(&rest[hello_len..]);
    let mut left = u64::from_le_bytes(want);
    if left == 0 {
        held.lock().expect("held").push(conn);
        return;
    }
    let chunk = vec![0x5au8; 256 << 10];
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if conn.write_all(&chunk[..n]).is_err() {
            return;
        }
        left -= n as u64;
    }
}

/// One path to the backend: its name and the port a client connects to.
struct Via {
    name: &'static str,
    port: u16,
}

/// Connects through `port`, asks for `bytes`, reads them all; the bytes read.
fn fetch(port: u16, hello: &[u8], bytes: u64) -> u64 {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let _ = conn.set_nodelay(true);
    let mut req = hello.to_vec();
    req.extend_from_slice(&bytes.to_le_bytes());
    conn.write_all(&req).expect("request");
    let mut buf = vec![0u8; 256 << 10];
    let mut got = 0u64;
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got += n as u64,
        }
    }
}

/// MiB/s of `streams` concurrent downloads of `each` bytes through `port`.
fn bulk(port: u16, hello: &[u8], streams: usize, each: u64) -> f64 {
    let started = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..streams)
            .map(|_| s.spawn(|| fetch(port, hello, each)))
            .collect();
        handles.into_iter().map(|h| h.join().expect("stream")).sum()
    });
    assert_eq!(total, each * streams as u64, "a stream came back short");
    total as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64()
}

/// Connections per second: `CONN_CLIENTS` clients each connecting, sending
/// the hello and a 64-byte request, reading the answer, closing.
fn connections(port: u16, hello: &[u8]) -> f64 {
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(CONN_SECONDS);
    std::thread::scope(|s| {
        for _ in 0..CONN_CLIENTS {
            s.spawn(|| {
                while Instant::now() < until {
                    if fetch(port, hello, 64) == 64 {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Opens `IDLE` connections through `port` (each routed, its backend
/// holding it) and returns them.
fn open_idle(port: u16, hello: &[u8], backend: &Backend) -> Vec<TcpStream> {
    let mut req = hello.to_vec();
    req.extend_from_slice(&0u64.to_le_bytes());
    let conns: Vec<TcpStream> = (0..IDLE)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            c.write_all(&req).expect("request");
            c
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while backend.held.lock().expect("held").len() < IDLE {
        assert!(Instant::now() < deadline, "idle connections not all routed");
        std::thread::sleep(Duration::from_millis(20));
    }
    conns
}

fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn haproxy_conf(port: u16, backend: u16, threads: usize) -> String {
    format!(
        "global\n  maxconn 5000\n  nbthread {threads}\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 300s\n  timeout server 300s\n  option splice-auto\n\
         frontend sni\n  bind 127.0.0.1:{port}\n  tcp-request inspect-delay 5s\n\
         \x20 tcp-request content accept if {{ req.ssl_hello_type 1 }}\n\
         \x20 use_backend bench if {{ req.ssl_sni -i bench.test }}\n\
         backend bench\n  server b1 127.0.0.1:{backend}\n"
    )
}

struct Haproxy {
    child: Child,
    port: u16,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn start_haproxy(dir: &Path, backend: u16, threads: usize) -> Haproxy {
    let port = free_port();
    let conf = dir.join("haproxy.cfg");
    fs::write(&conf, haproxy_conf(port, backend, threads)).expect("haproxy.cfg");
    let child = Command::new("/usr/sbin/haproxy")
        .args(["-db", "-f"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn haproxy (apt-get install haproxy)");
    wait_listening(port, "haproxy");
    Haproxy { child, port }
}

/// Raises this process's open-file limit to its hard limit: the idle case
/// holds two sockets per connection here.
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Median of each path's figures and the range of its per-round ratio to
/// `against` (an index into `paths`).
fn report(paths: &[Via], runs: &[Vec<f64>], unit: &str, against: &[usize]) {
    for (i, p) in paths.iter().enumerate() {
        let rounds: Vec<String> = runs[i].iter().map(|v| format!("{v:.0}")).collect();
        println!(
            "  {:<9} {:>10.0} {unit}   (rounds {})",
            p.name,
            median(runs[i].clone()),
            rounds.join(", ")
        );
    }
    for &a in against {
        for (i, p) in paths.iter().enumerate() {
            if !p.name.starts_with("sockhash") && !p.name.starts_with("splice") {
                continue;
            }
            let ratios: Vec<f64> = runs[i].iter().zip(&runs[a]).map(|(x, y)| x / y).collect();
            let (lo, hi) = range(&ratios);
            println!(
                "  ratio {}/{}: {:.2}x (rounds {lo:.2}-{hi:.2})",
                p.name,
                paths[a].name,
                median(runs[i].clone()) / median(runs[a].clone()),
            );
        }
    }
}

fn main() {
    raise_nofile();
    let dir = tempfile::tempdir().expect("tempdir");
    let hello = capture_hello("bench.test");
    let splice_hello = capture_hello("splice.test");
    let backend = Backend::start();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // One daemon, a route per data path, both to the same backend.
    let start_nodus = |port: u16| {
        BenchDaemon::start(
            &release_binary(),
            &format!(
                "[proxy]\nlisten = \"127.0.0.1:{port}\"\nmax_connections = 20000\nmax_per_source = 20000\ncheck_interval_ms = 0\n\
                 [[proxy.route]]\nname = \"sockhash\"\nserver_names = [\"bench.test\"]\ndata_path = \"sockhash\"\nbackends = [\"127.0.0.1:{b}\"]\n\
                 [[proxy.route]]\nname = \"splice\"\nserver_names = [\"splice.test\"]\ndata_path = \"splice\"\nbackends = [\"127.0.0.1:{b}\"]\n",
                b = backend.port
            ),
        )
    };
    let port = free_port();
    let nodus = start_nodus(port);
    let stats = nodus.component_stats("proxy");
    assert_eq!(stats["sockhash"], "attached", "{stats}");
    let haproxy = start_haproxy(dir.path(), backend.port, cpus);
    let paths = [
        Via {
            name: "direct",
            port: backend.port,
        },
        Via {
            name: "sockhash",
            port,
        },
        Via {
            name: "splice",
            port,
        },
        Via {
            name: "haproxy",
            port: haproxy.port,
        },
    ];
    let hello_of = |p: &Via| {
        if p.name == "splice" {
            splice_hello.as_slice()
        } else {
            hello.as_slice()
        }
    };
    println!(
        "proxy bench: {cpus} CPUs, {} (nbthread {cpus}), client and backend in this process, {ROUNDS} rounds, paths alternating",
        String::from_utf8_lossy(
            &Command::new("/usr/sbin/haproxy")
                .arg("-v")
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default()
        )
        .lines()
        .next()
        .unwrap_or("haproxy")
    );
    for p in &paths {
        bulk(p.port, hello_of(p), 1, 64 << 20); // warm
    }
    let (direct, haproxy_at) = (0, 3);
    for (label, streams, each) in [
        ("bulk, 1 stream of 1 GiB", 1, ONE_STREAM),
        ("bulk, 16 streams of 64 MiB", STREAMS, PER_STREAM),
    ] {
        let mut runs = vec![Vec::new(); paths.len()];
        for _ in 0..ROUNDS {
            for (i, p) in paths.iter().enumerate() {
                runs[i].push(bulk(p.port, hello_of(p), streams, each));
            }
        }
        println!("\n{label} (backend to client):");
        report(&paths, &runs, "MiB/s", &[direct, haproxy_at]);
    }
    let mut runs = vec![Vec::new(); paths.len()];
    for _ in 0..ROUNDS {
        for (i, p) in paths.iter().enumerate() {
            runs[i].push(connections(p.port, hello_of(p)));
        }
    }
    println!(
        "\nnew connections routed by SNI ({CONN_CLIENTS} clients, hello + 64-byte answer, {CONN_SECONDS} s):"
    );
    report(&paths, &runs, "conns/s", &[haproxy_at]);
    println!(
        "\nRSS per 1,000 idle routed connections ({IDLE} held, hello sent, backend connected):"
    );
    // Each data path on a daemon of its own (freed memory the allocator
    // keeps would make the second one look cheaper).
    drop(nodus);
    let mut per_k = Vec::new();
    for (name, i) in [("sockhash", 1), ("splice", 2), ("haproxy", 3)] {
        let fresh = (i != 3).then(|| start_nodus(paths[i].port));
        let pid = fresh.as_ref().map_or(haproxy.child.id(), BenchDaemon::pid);
        let p = &paths[i];
        std::thread::sleep(Duration::from_millis(300));
        let before = rss_kib(pid);
        let conns = open_idle(p.port, hello_of(p), &backend);
        std::thread::sleep(Duration::from_millis(300));
        let after = rss_kib(pid);
        let kib = after.saturating_sub(before) as f64 * 1000.0 / IDLE as f64;
        println!("  {name:<9} {kib:>8.0} KiB per 1,000 (RSS {before} -> {after} KiB)");
        per_k.push(kib);
        drop(conns);
        backend.release_idle();
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "  ratio sockhash/haproxy: {:.2}x, splice/haproxy: {:.2}x (lower is better)",
        per_k[0] / per_k[2].max(1.0),
        per_k[1] / per_k[2].max(1.0)
    );
}
