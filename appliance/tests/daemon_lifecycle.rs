//! The daemon as systemd and an operator see it: READY, status, watchdog
//! keep-alives, SIGHUP reload with rollback, and a clean SIGTERM stop.

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::{fs::PermissionsExt, net::UnixStream},
    time::{Duration, Instant},
};

use common::{
    daemon::{TempDaemon, component},
    nodus, wait_for,
};

#[test]
fn ready_status_and_clean_stop() {
    require_root!();
    let mut d = TempDaemon::start("", &[]);
    let mode = std::fs::metadata(&d.socket)
        .expect("socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "control socket mode");

    let s = d.status_json();
    assert_eq!(s["pid"].as_i64(), Some(i64::from(d.pid())));
    assert!(s["uptime_ms"].as_u64().is_some());
    let ready = s["ready_ms"].as_u64().expect("ready_ms");
    assert!(ready > 0 && ready < 10_000, "ready_ms {ready}");
    assert!(s["rss_bytes"].as_u64().expect("rss") > 1 << 20);
    assert_eq!(s["config"].as_str(), Some(&*d.config.display().to_string()));
    let control = &component(&s, "control");
    assert_eq!(control["name"], "control");
    assert_eq!(control["health"]["state"], "healthy");
    assert!(control["stats"]["requests"].as_u64().expect("requests") >= 1);
    assert_eq!(s["kernel"]["features"]["tracepoint"]["available"], true);

    let text = nodus()
        .args(["status", "--socket"])
        .arg(&d.socket)
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("control      healthy"), "{text}");
    assert!(text.contains("ready in"), "{text}");

    let t0 = Instant::now();
    let status = d.stop(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "exit status");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "stopped in {:?}",
        t0.elapsed()
    );
    assert!(!d.socket.exists(), "socket removed on stop");
}

#[test]
fn sigint_also_stops_cleanly() {
    require_root!();
    let mut d = TempDaemon::start("", &[]);
    d.signal(libc::SIGINT);
    let status = wait_for("exit after SIGINT", Duration::from_secs(3), || {
        d.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    });
    assert_eq!(status.code(), Some(0));
}

#[test]
fn watchdog_keepalives_are_sent_while_healthy() {
    require_root!();
    // 400 ms watchdog: keep-alives every 200 ms.
    let mut d = TempDaemon::start("", &[("WATCHDOG_USEC", "400000")]);
    for _ in 0..3 {
        d.wait_notify("WATCHDOG=1", Duration::from_secs(2));
    }
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    require_root!();
    let d = TempDaemon::start("", &[]);
    let second = nodus()
        .args(["run", "--config"])
        .arg(&d.config)
        .output()
        .expect("second nodus");
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another nodus is already running"),
        "{stderr}"
    );
    let s = d.status_json();
    assert_eq!(
        s["pid"].as_i64(),
        Some(i64::from(d.pid())),
        "first daemon still owns the socket"
    );
}

#[test]
fn malformed_control_requests_get_errors_and_the_daemon_keeps_serving() {
    require_root!();
    let d = TempDaemon::start("", &[]);
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for bad in [
        "not json\n",
        "{\"cmd\":\"reboot\"}\n",
        "{\"cmd\":\"status\",\"x\":1}\n",
    ] {
        s.write_all(bad.as_bytes()).unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON error reply");
        assert_eq!(v["ok"], false, "{bad:?} -> {line}");
        assert!(
            v["error"].as_str().unwrap().starts_with("bad request"),
            "{line}"
        );
    }
    // Same connection still works.
    s.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.contains("\"ok\":true"), "{line}");
    // An over-long line is refused and the connection closed; the daemon lives.
    let mut s2 = UnixStream::connect(&d.socket).expect("connect");
    let _ = s2.write_all(&vec![b'x'; 70 * 1024]);
    let mut reply = String::new();
    s2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = BufReader::new(&s2).read_line(&mut reply);
    assert!(reply.contains("longer than"), "{reply}");
    let status = d.status_json();
    assert!(
        component(&status, "control")["stats"]["bad_requests"]
            .as_u64()
            .unwrap()
            >= 4
    );
}

#[test]
fn sighup_applies_a_good_config_and_keeps_the_old_one_on_a_bad_one() {
    require_root!();
    let mut d = TempDaemon::start("", &[]);
    // Bad file: daemon keeps running on the old config and old socket.
    std::fs::write(&d.config, "[control]\nsockett = 1\n").unwrap();
    d.signal(libc::SIGHUP);
    wait_for("reload refusal logged", Duration::from_secs(5), || {
        d.log_text()
            .contains("keeping the running config")
            .then_some(())
    });
    assert!(d.log_text().contains("control.sockett"), "{}", d.log_text());
    assert_eq!(
        component(&d.status_json(), "control")["health"]["state"],
        "healthy"
    );

    // Good file with a new socket path: control moves there.
    let moved = d.dir.path().join("moved.sock");
    d.rewrite_config(&moved, "");
    d.signal(libc::SIGHUP);
    wait_for("socket moved", Duration::from_secs(5), || {
        moved.exists().then_some(())
    });
    assert!(!d.socket.exists(), "old socket removed");
    d.socket = moved;
    assert_eq!(
        component(&d.status_json(), "control")["health"]["state"],
        "healthy"
    );

    // A socket path that cannot be bound: rolled back to the working one.
    d.rewrite_config(std::path::Path::new("/proc/nodus/cannot.sock"), "");
    d.signal(libc::SIGHUP);
    wait_for("rollback logged", Duration::from_secs(5), || {
        d.log_text().contains("rolled back").then_some(())
    });
    assert_eq!(
        component(&d.status_json(), "control")["health"]["state"],
        "healthy"
    );
    assert_eq!(d.stop(Duration::from_secs(5)).code(), Some(0));
}

/// A syslog that stops reading (busy, stopped by a debugger, wedged) holds
/// ten lines in its socket's queue; a blocking send behind them stalled
/// every thread that logged: the daemon never became ready and never
/// stopped. Lines are dropped and counted instead, and the count is said
/// once syslog reads again.
#[test]
fn a_syslog_that_stops_reading_does_not_stall_the_daemon() {
    require_root!();
    let dir = common::tempdir();
    let log_path = dir.path().join("log.sock");
    let syslog = std::os::unix::net::UnixDatagram::bind(&log_path).expect("bind syslog socket");
    let mut d = TempDaemon::start(
        &format!(
            "[log]\ntarget = \"syslog\"\nlevel = \"debug\"\nsyslog_socket = \"{}\"\n",
            log_path.display()
        ),
        &[],
    );
    // Ready (TempDaemon waited for READY=1) and answering, with the
    // debug lines of its start dropped and counted.
    let s = d.status_json();
    let dropped = s["log_lines_dropped"].as_u64().expect("log_lines_dropped");
    assert!(dropped > 0, "nothing dropped: {s}");
    let text = nodus()
        .args(["status", "--socket"])
        .arg(&d.socket)
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("lines dropped (syslog did not read them)"),
        "{text}"
    );

    // Syslog reads again: the next line through is preceded by the count
    // (a SIGHUP makes sure there is a next line).
    let said =
        |l: &String| l.contains("syslog was not reading: ") && l.contains(" log lines dropped");
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    syslog.set_nonblocking(true).unwrap();
    while let Ok(n) = syslog.recv(&mut buf) {
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    syslog.set_nonblocking(false).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    d.signal(libc::SIGHUP);
    while !lines.iter().any(said) && lines.len() < 200 {
        let n = syslog.recv(&mut buf).expect("lines after SIGHUP");
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(lines.iter().any(said), "{lines:#?}");

    let status = d.stop(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "exit status");
    assert!(
        !d.log_text().contains("logging to stderr"),
        "a full queue is not a missing syslog: {}",
        d.log_text()
    );
}

#[test]
fn logs_go_to_syslog_as_rfc3164_datagrams() {
    require_root!();
    let dir = common::tempdir();
    let log_path = dir.path().join("log.sock");
    let syslog = std::os::unix::net::UnixDatagram::bind(&log_path).expect("bind syslog socket");
    syslog
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let socket = dir.path().join("control.sock");
    let config = dir.path().join("nodus.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\ntarget = \"syslog\"\nsyslog_socket = \"{}\"\n[control]\nsocket = \"{}\"\n",
            log_path.display(),
            socket.display()
        ),
    )
    .unwrap();
    let child = nodus()
        .args(["run", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let mut lines = Vec::new();
    let mut buf = [0u8; 2048];
    while !lines.iter().any(|l: &String| l.contains("ready in")) {
        let n = syslog
            .recv(&mut buf)
            .expect("a syslog datagram within 10 s");
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    // RFC 3164: <30> = facility daemon (3) * 8 + severity info (6), a
    // "Mmm dd hh:mm:ss" timestamp, then the tag.
    let ready = lines.iter().find(|l| l.contains("ready in")).unwrap();
    let (pri, rest) = ready.split_at(4);
    assert_eq!(pri, "<30>", "{ready}");
    assert!(
        rest.len() > 16
            && rest.as_bytes()[3] == b' '
            && rest[7..16].chars().filter(|&c| c == ':').count() == 2,
        "timestamp: {ready}"
    );
    assert!(
        rest[16..].starts_with(&format!("nodus[{pid}]: ready in ")),
        "{ready}"
    );
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "nothing on stderr while syslog works: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}
