//! `nodus top` against a running daemon: the figures for scripts
//! (`--json`), one frame as text (`--once`), and the live view in a real
//! terminal (tmux): drawn, sorted by a key, and left with `q`.

mod common;

use std::{process::Command, time::Duration};

use common::{daemon::TempDaemon, nodus, wait_for};

/// A daemon looking at the board twice a second.
fn daemon() -> TempDaemon {
    TempDaemon::start("[numa]\ninterval_ms = 500\n", &[])
}

fn top(d: &TempDaemon, args: &[&str]) -> std::process::Output {
    nodus()
        .arg("top")
        .args(args)
        .arg("--socket")
        .arg(&d.socket)
        .output()
        .expect("run nodus top")
}

#[test]
fn json_and_once_show_the_nodes_and_the_processes() {
    require_root!();
    let d = daemon();
    let json = wait_for(
        "a numa look in nodus top --json",
        Duration::from_secs(15),
        || {
            let out = top(&d, &["--json"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
            (!v["numa"].is_null()).then_some(v)
        },
    );
    assert_eq!(json["status"]["pid"].as_i64(), Some(i64::from(d.pid())));
    let numa = &json["numa"];
    let node = &numa["nodes"][0];
    assert!(node["total_mib"].as_u64().unwrap_or(0) > 0, "{node}");
    assert!(node["used_mib"].as_u64().unwrap_or(0) > 0, "{node}");
    assert!(numa["processes_seen"].as_u64().unwrap_or(0) > 0, "{numa}");
    // Where the kernel has no hardware counters (this host), it is said.
    let counters = json["status"]["kernel"]["features"]["hardware_counters"]["available"]
        .as_bool()
        .expect("the probe reports hardware counters");
    let said = numa["missing"]
        .as_array()
        .expect("missing")
        .iter()
        .filter_map(|m| m.as_str())
        .find(|m| m.starts_with("hardware counters: "))
        .expect("the hardware counters are accounted for")
        .to_owned();
    assert_eq!(
        said.starts_with("hardware counters: none: "),
        !counters,
        "{said}"
    );

    let out = top(&d, &["--once", "--sort", "cpu"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "node0",
        "cpu [",
        "mem [",
        "PID",
        "COMMAND",
        "CLASS",
        "profile ",
        "sort (cpu)",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(text.contains("hardware counters: "), "{text}");
}

#[test]
fn without_a_daemon_or_a_terminal_it_says_why() {
    let out = nodus()
        .args(["top", "--once", "--socket", "/nonexistent/control.sock"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach nodus"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = nodus()
        .args(["top", "--socket", "/nonexistent/control.sock"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs a terminal"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = nodus()
        .args(["top", "--sort", "size"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

/// Ends the tmux session however the test ends.
struct KilledOnDrop(String);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = tmux(&["kill-session", "-t", &self.0]);
    }
}

fn tmux(args: &[&str]) -> std::process::Output {
    Command::new("tmux").args(args).output().expect("run tmux")
}

#[test]
fn the_live_view_draws_sorts_and_quits_in_a_real_terminal() {
    require_root!();
    let d = daemon();
    let session = common::unique("nodus-top");
    let command = format!(
        "{} top --interval 0.5 --socket {}",
        nodus().get_program().to_string_lossy(),
        d.socket.display()
    );
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "40",
        &command,
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let _gone = KilledOnDrop(session.clone());
    let screen = || {
        let out = tmux(&["capture-pane", "-p", "-t", &session]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let drawn = wait_for(
        "the view drawn with a node",
        Duration::from_secs(15),
        || {
            let s = screen();
            (s.contains("node0") && s.contains("COMMAND") && s.contains("sort (memory)"))
                .then_some(s)
        },
    );
    assert!(drawn.contains("mem ["), "{drawn}");
    tmux(&["send-keys", "-t", &session, "s"]);
    wait_for("sorted by cpu after s", Duration::from_secs(5), || {
        screen().contains("sort (cpu)").then_some(())
    });
    tmux(&["send-keys", "-t", &session, "q"]);
    wait_for("nodus top to end on q", Duration::from_secs(5), || {
        (!tmux(&["has-session", "-t", &session]).status.success()).then_some(())
    });
}
