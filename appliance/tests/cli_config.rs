//! A bad configuration is refused before anything starts: exit code 2 and one
//! line naming the file, the key and the reason.

mod common;

use std::{fs, process::Output};

use common::{nodus, tempdir};

fn run_with(text: &str) -> (Output, String) {
    let dir = tempdir();
    let path = dir.path().join("nodus.toml");
    fs::write(&path, text).expect("write config");
    let out = nodus()
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run nodus");
    (out, path.display().to_string())
}

fn assert_refused(out: &Output, file: &str, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "exit code: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(file), "names the file: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "mentions {n}: {stderr}");
    }
}

#[test]
fn unknown_key_is_refused_with_file_key_and_line() {
    let (out, file) = run_with("[control]\nsocket = \"/tmp/x.sock\"\nsockett = 1\n");
    assert_refused(&out, &file, &["control.sockett", "line 3", "unknown field"]);
}

#[test]
fn wrong_type_is_refused_with_key() {
    let (out, file) = run_with("[daemon]\nworker_threads = \"four\"\n");
    assert_refused(
        &out,
        &file,
        &["daemon.worker_threads", "line 2", "invalid type"],
    );
}

#[test]
fn missing_file_is_refused() {
    let out = nodus()
        .args(["run", "--config", "/nonexistent/nodus.toml"])
        .output()
        .expect("run nodus");
    assert_refused(&out, "/nonexistent/nodus.toml", &["No such file"]);
}

#[test]
fn syntax_error_is_refused_with_line() {
    let (out, file) = run_with("[log]\nlevel = \"info\"\n[daemon\n");
    assert_refused(&out, &file, &["line 3"]);
}

#[test]
fn config_check_accepts_the_embedded_defaults() {
    let defaults = nodus()
        .args(["config", "defaults"])
        .output()
        .expect("defaults");
    assert!(defaults.status.success());
    let dir = tempdir();
    let path = dir.path().join("defaults.toml");
    fs::write(&path, &defaults.stdout).expect("write");
    let check = nodus()
        .args(["config", "check"])
        .arg(&path)
        .output()
        .expect("check");
    assert!(check.status.success(), "{check:?}");
    let bad = dir.path().join("bad.toml");
    fs::write(&bad, "[log]\nlevel = \"loud\"\n").expect("write");
    let check = nodus()
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .expect("check");
    assert_eq!(check.status.code(), Some(2));
}

#[test]
fn unprivileged_run_names_the_missing_capabilities() {
    require_root!();
    let dir = tempdir();
    let path = dir.path().join("nodus.toml");
    fs::write(&path, "[control]\nsocket = \"/tmp/nodus-unpriv.sock\"\n").expect("write");
    fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(common::tool("setpriv"))
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_nodus"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run setpriv");
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for cap in ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"] {
        assert!(stderr.contains(cap), "names {cap}: {stderr}");
    }
}

/// `nodus ... | head`: the reader goes away early; the command ends quietly
/// (killed by SIGPIPE like any Unix tool), not with a panic on stderr.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = common::nodus()
        .args(["status", "--describe"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nodus status --describe");
    // Close the read end before nodus writes most of its output.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
}
