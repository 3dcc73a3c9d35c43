//! WATCHDOG=1 stops while a component is wedged and resumes when it recovers,
//! so systemd restarts a daemon whose component hung, not a healthy one.

mod common;

use std::{
    os::unix::net::UnixDatagram,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use nodus::{
    config::Config,
    daemon::{self, Notifier, RunOptions},
    supervisor::{BoxFuture, Component, ComponentContext, Health, StartError, Stats},
};

/// A component whose loop stops beating while `wedged` is set, the way a
/// component blocked in a syscall or a deadlock would.
struct Wedgeable {
    wedged: Arc<AtomicBool>,
}

impl Component for Wedgeable {
    fn name(&self) -> &'static str {
        "wedgeable"
    }
    fn start(&mut self, ctx: ComponentContext) -> Result<(), StartError> {
        let wedged = self.wedged.clone();
        std::thread::spawn(move || {
            loop {
                if !wedged.load(Ordering::Relaxed) {
                    ctx.heartbeat.beat();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Ok(())
    }
    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn health(&self) -> Health {
        Health::Healthy
    }
    fn stats(&self) -> Stats {
        Stats::new()
    }
}

/// Every datagram received in `window`, one per line.
fn received(sock: &UnixDatagram, window: Duration) -> String {
    let end = Instant::now() + window;
    let mut all = String::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        if let Ok(len) = sock.recv(&mut buf) {
            all.push_str(&String::from_utf8_lossy(&buf[..len]));
            all.push('\n');
        }
    }
    all
}

fn keepalives(text: &str) -> usize {
    text.matches("WATCHDOG=1").count()
}

/// Takes the datagrams already queued (sent before the period of interest).
fn drain(sock: &UnixDatagram) -> String {
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let mut all = String::new();
    while let Ok(n) = sock.recv(&mut buf) {
        all.push_str(&String::from_utf8_lossy(&buf[..n]));
        all.push('\n');
    }
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    all
}

#[test]
fn watchdog_is_withheld_while_a_component_is_wedged() {
    require_root!();
    assert_eq!(unsafe { libc::geteuid() }, 0, "run as root (`make test`)");
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();

    // SAFETY: the only test in this binary, and no other thread of it reads
    // the environment yet; sd_notify reads NOTIFY_SOCKET on every send.
    unsafe { std::env::set_var("NOTIFY_SOCKET", &notify_path) };
    let mut config = Config::default();
    config.control.socket = dir.path().join("control.sock");
    config.daemon.wedge_timeout_ms = 1000;
    // Not under test here, and its default port may be taken.
    config.fileserver.enabled = false;
    config.fleet.enabled = false;
    let wedged = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let opts = RunOptions {
        config,
        source: nodus::config::Source::Embedded,
        notifier: Notifier::with_watchdog(Some(Duration::from_millis(200))),
        started: Instant::now(),
        extra: vec![Box::new(Wedgeable {
            wedged: wedged.clone(),
        })],
        stop: Some(stop_rx),
    };
    let daemon = std::thread::spawn(move || daemon::run(opts));

    // Start-up (probe, eBPF loads) takes a variable time on a loaded CI
    // machine: count keep-alives only once the daemon said READY=1.
    let mut startup = String::new();
    let ready_by = Instant::now() + Duration::from_secs(20);
    while !startup.contains("READY=1") && Instant::now() < ready_by {
        startup.push_str(&received(&sock, Duration::from_millis(100)));
    }
    assert!(startup.contains("READY=1"), "never ready: {startup}");
    let healthy = received(&sock, Duration::from_millis(800));
    assert!(
        keepalives(&healthy) >= 2,
        "keep-alives while healthy: {healthy}"
    );
    wedged.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(1300)); // past wedge_timeout_ms
    let mut while_wedged = drain(&sock);
    let later = received(&sock, Duration::from_millis(1200));
    assert_eq!(keepalives(&later), 0, "none while wedged: {later}");
    while_wedged.push_str(&later);
    // (Other components may be unavailable on this machine, the scheduler
    // where the kernel has no sched_ext: only the wedged one is asserted.)
    assert!(
        while_wedged.lines().any(|l| l.starts_with("STATUS=")
            && l.contains("components healthy;")
            && l.contains("wedgeable: unavailable (wedged")),
        "the STATUS line says which component is wedged: {while_wedged}"
    );
    wedged.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200));
    let recovered = received(&sock, Duration::from_millis(800));
    assert!(
        keepalives(&recovered) >= 2,
        "resumed after recovery: {recovered}"
    );

    stop_tx.send(true).unwrap();
    daemon.join().unwrap().expect("daemon stops cleanly");
}
