//! The proxy's XDP guard in the kernel, on the loopback of a network
//! namespace the test makes (so the machine's own interfaces are never
//! touched): real TCP connects from different source addresses, each
//! either answered or silently dropped, and the guard's counters.

mod common;

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    process::Command,
    time::{Duration, Instant},
};

use nix::sched::{CloneFlags, unshare};
use nodus::proxy::guard::{Guard, GuardSettings};
use socket2::{Domain, Socket, Type};

/// Whether a TCP connect from `source` to `to` is answered within `wait`.
fn answered(source: [u8; 4], to: SocketAddr, wait: Duration) -> bool {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from((Ipv4Addr::from(source), 0)).into())
        .unwrap();
    sock.connect_timeout(&to.into(), wait).is_ok()
}

/// A blocklisted source's SYNs are dropped, a source over its rate has the
/// rest of its second dropped (and is answered again in the next), other
/// sources are untouched; every outcome is counted.
#[test]
fn the_guard_drops_blocklisted_sources_and_syn_floods_and_counts_them() {
    require_root!();
    // Namespaces belong to the thread that unshares: a thread of its own.
    std::thread::spawn(|| {
        unshare(CloneFlags::CLONE_NEWNET).expect("a network namespace");
        let up = Command::new(common::tool("ip"))
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(up.success());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                drop(conn);
            }
        });
        let guard = Guard::attach(
            addr.port(),
            &GuardSettings {
                interfaces: vec!["lo".into()],
                syn_per_second: 5,
                blocklist: vec!["127.0.0.2/32".into(), "10.0.0.0/8".into()],
            },
        )
        .unwrap_or_else(|e| panic!("the guard: {}", nodus::ebpf::error_chain(&e)));
        assert_eq!(guard.attached(), "lo (generic)");
        let quick = Duration::from_millis(150);
        assert!(answered([127, 0, 0, 1], addr, quick), "a plain client");
        assert!(!answered([127, 0, 0, 2], addr, quick), "a blocklisted one");
        // A flood from one source: its first 5 SYNs of the second pass,
        // the rest are dropped; well inside one second (5 answers take
        // microseconds, 4 drops 150 ms each).
        let started = Instant::now();
        let flood: Vec<bool> = (0..9)
            .map(|_| answered([127, 0, 0, 3], addr, quick))
            .collect();
        assert!(started.elapsed() < Duration::from_millis(900));
        assert_eq!(
            flood,
            [true, true, true, true, true, false, false, false, false]
        );
        // Others are not held back by it.
        assert!(answered([127, 0, 0, 4], addr, quick), "another source");
        let counts = guard.counts();
        assert_eq!(counts.blocked, 1, "{counts:?}");
        assert_eq!(counts.rate_limited, 4, "{counts:?}");
        assert_eq!(counts.passed, 7, "{counts:?}");
        // The next second, the flooding source is answered again.
        std::thread::sleep(Duration::from_millis(1100));
        assert!(answered([127, 0, 0, 3], addr, quick), "the next second");
        // Gone with the guard: the blocklisted source is answered.
        drop(guard);
        assert!(answered([127, 0, 0, 2], addr, quick), "after the guard");
    })
    .join()
    .unwrap();
}

/// An interface that does not exist is refused with its name; nothing is
/// left attached.
#[test]
fn an_unknown_interface_is_refused_by_name() {
    require_root!();
    let settings = GuardSettings {
        interfaces: vec!["nodus-none0".into()],
        ..GuardSettings::default()
    };
    let Err(e) = Guard::attach(1, &settings) else {
        panic!("attached to an interface that does not exist");
    };
    let why = nodus::ebpf::error_chain(&e);
    assert!(why.contains("attaching to nodus-none0"), "{why}");
}
