//! The shipped systemd unit (`appliance/dist/nodus.service`): its exposure
//! as `systemd-analyze security` rates it, and nodus running under its
//! capability bounding set, no_new_privs and limits, with every component
//! as healthy as without them and only system calls its filter allows.
//!
//! systemd is not PID 1 on the build machine, so the restrictions are
//! applied the way systemd would apply them to the process: `setpriv` for
//! the bounding set and no_new_privs, `prlimit` for the limits, a private
//! mount namespace, and the filter checked against every system call
//! `strace -f` saw nodus make (the groups expanded by `systemd-analyze
//! syscall-filter`, as systemd expands them).

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    process::Command,
};

use common::{daemon::TempDaemon, free_port, tempdir, tool};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/nodus.service");

/// Every value of `key=` in the unit, in order.
fn unit_values(key: &str) -> Vec<String> {
    fs::read_to_string(UNIT)
        .expect("unit file")
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
        .collect()
}

#[test]
fn the_unit_is_rated_at_most_3_0_by_systemd_analyze_security() {
    let out = Command::new(tool("systemd-analyze"))
        .args(["security", "--offline=true", UNIT])
        .output()
        .expect("systemd-analyze");
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for nodus.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(level <= 3.0, "exposure {level} (target <= 3.0):\n{text}");
}

/// The system calls `name` (a call or an @group) stands for, as systemd
/// expands it.
fn expand(name: &str, out: &mut BTreeSet<String>) {
    if !name.starts_with('@') {
        out.insert(name.to_owned());
        return;
    }
    let listed = Command::new(tool("systemd-analyze"))
        .args(["syscall-filter", name])
        .output()
        .expect("systemd-analyze syscall-filter");
    for line in String::from_utf8_lossy(&listed.stdout).lines().skip(1) {
        let item = line.trim();
        if item.is_empty() || item.starts_with('#') {
            continue;
        }
        expand(item, out);
    }
}

/// The components and their health states.
fn health(d: &TempDaemon) -> BTreeMap<String, String> {
    d.status_json()["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                c["health"]["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn nodus_runs_as_healthy_under_the_unit_and_makes_only_allowed_system_calls() {
    require_root!();
    let dir = tempdir();
    let www = dir.path().join("www");
    fs::create_dir(&www).unwrap();
    fs::write(www.join("index.html"), "hi\n").unwrap();
    let port = free_port();
    let config = format!(
        "[fileserver]\nlisten = \"127.0.0.1:{port}\"\ndocroot = \"{}\"\n\
         [fleet]\nstate_dir = \"{}\"\nbroker = \"mqtt://127.0.0.1:1\"\n",
        www.display(),
        dir.path().join("state").display()
    );
    let free = TempDaemon::start(&config, &[]);
    let expected = health(&free);
    drop(free);

    // The unit's bounding set, as setpriv spells it.
    let caps: Vec<String> = unit_values("CapabilityBoundingSet")
        .iter()
        .flat_map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let limits = |key: &str| unit_values(key).first().cloned().expect(key);
    // systemd sets the limits before it drops capabilities; this machine's
    // own hard limits cap the unit's values (root here cannot raise them).
    let hard = |row: &str| -> Option<u64> {
        let limits = fs::read_to_string("/proc/self/limits").ok()?;
        let line = limits.lines().find(|l| l.starts_with(row))?;
        line[row.len()..].split_whitespace().nth(1)?.parse().ok()
    };
    let capped = |key: &str, row: &str| -> String {
        let want = limits(key);
        let want_n = if want == "infinity" {
            u64::MAX
        } else {
            want.parse().expect(key)
        };
        match hard(row) {
            Some(h) if h < want_n => h.to_string(),
            _ if want_n == u64::MAX => "unlimited".into(),
            _ => want_n.to_string(),
        }
    };
    let nofile = capped("LimitNOFILE", "Max open files");
    let memlock = capped("LimitMEMLOCK", "Max locked memory");
    let rtprio = capped("LimitRTPRIO", "Max realtime priority");
    let trace = dir.path().join("strace.out");
    let setup = format!(
        "exec {strace} -D -f -qq -o {trace} \
         {prlimit} --nofile={nofile} --memlock={memlock} --rtprio={rtprio} \
         {setpriv} --bounding-set=-all,{caps} --no-new-privs \"$0\" \"$@\"",
        setpriv = tool("setpriv").display(),
        prlimit = tool("prlimit").display(),
        strace = tool("strace").display(),
        caps = caps.join(","),
        trace = trace.display(),
    );
    let mut d = TempDaemon::start_in_mount_ns(&config, &setup);
    assert_eq!(
        health(&d),
        expected,
        "as healthy as without the restrictions"
    );
    // Some work for every component: requests, a query, a reload, a stop.
    let url = format!("http://127.0.0.1:{port}/index.html");
    for _ in 0..3 {
        let ok = Command::new(tool("curl"))
            .args(["-sf", "-o", "/dev/null", &url])
            .status()
            .unwrap();
        assert!(ok.success());
    }
    d.ps_json(&["--exited"]);
    d.signal(libc::SIGHUP);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(health(&d), expected);
    assert_eq!(d.stop(std::time::Duration::from_secs(10)).code(), Some(0));

    let mut allowed = BTreeSet::new();
    let mut denied = BTreeSet::new();
    for line in unit_values("SystemCallFilter") {
        match line.strip_prefix('~') {
            Some(deny) => deny.split_whitespace().for_each(|n| expand(n, &mut denied)),
            None => line
                .split_whitespace()
                .for_each(|n| expand(n, &mut allowed)),
        }
    }
    let text = fs::read_to_string(&trace).expect("strace output");
    // Only what nodus made: from its own execve on (strace -D keeps nodus
    // the daemon's process, so signals reach it, and traces from the
    // grandchild; prlimit and setpriv exec first).
    let start = text.find("/nodus\", [").expect("nodus's execve");
    let used: BTreeSet<String> = text[start..]
        .lines()
        .filter_map(|l| {
            let call = l.split_once(' ')?.1.trim_start();
            let name = call.strip_prefix("<... ").unwrap_or(call);
            let name: String = name
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // strace 6.1 (Debian 12) predates cachestat, 451 on every
            // architecture, and prints its number.
            let name = if name == "syscall_0x1c3" {
                "cachestat".to_owned()
            } else {
                name
            };
            (!name.is_empty()).then_some(name)
        })
        .filter(|n| n != "exited" && n != "killed")
        .collect();
    assert!(used.len() > 30, "strace saw too little: {used:?}");
    let refused: Vec<&String> = used
        .iter()
        .filter(|n| !allowed.contains(*n) || denied.contains(*n))
        .collect();
    assert!(
        refused.is_empty(),
        "system calls nodus made that the unit's SystemCallFilter refuses: {refused:?}"
    );
}
