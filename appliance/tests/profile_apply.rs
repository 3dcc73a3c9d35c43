//! A board profile applied to nodus itself on this machine: thread affinity,
//! memory policy and a sysctl are set at start, drift is noticed, and every
//! original value is back after stop. A profile for another board is never
//! applied.

mod common;

use std::{fs, time::Duration};

use common::{
    daemon::{TempDaemon, component},
    nodus, wait_for,
};

fn online_cpus() -> String {
    fs::read_to_string("/sys/devices/system/cpu/online")
        .unwrap()
        .trim()
        .to_owned()
}

fn last_cpu() -> u32 {
    let online = online_cpus();
    let last = online.rsplit([',', '-']).next().unwrap();
    last.parse().unwrap()
}

fn sysctl(name: &str) -> String {
    fs::read_to_string(format!("/proc/sys/{}", name.replace('.', "/")))
        .unwrap()
        .trim()
        .to_owned()
}

fn profile_component(status: &serde_json::Value) -> serde_json::Value {
    component(status, "profile")
}

#[test]
fn profile_is_applied_verified_and_restored() {
    require_root!();
    let dir = common::tempdir();
    let original = sysctl("vm.stat_interval");
    let desired = (original.parse::<u32>().unwrap() + 6).to_string();
    let cpu = last_cpu();
    let path = dir.path().join("host.toml");
    fs::write(
        &path,
        format!(
            "[board]\nname = \"host-test\"\n[[node]]\nid = 0\ncpus = \"{}\"\n\
             [placement.runtime]\ncpus = \"{cpu}\"\nmempolicy = \"bind\"\nmem_nodes = [0]\n\
             [sysctl]\n\"vm.stat_interval\" = \"{desired}\"\n",
            online_cpus()
        ),
    )
    .unwrap();
    let mut d = TempDaemon::start(
        &format!(
            "[profile]\npath = \"{}\"\nverify_interval_s = 1\n",
            path.display()
        ),
        &[],
    );

    let p = profile_component(&d.status_json());
    assert_eq!(p["health"]["state"], "healthy", "{p}");
    assert_eq!(p["stats"]["profile"], "host-test");
    assert_eq!(p["stats"]["runtime_cpus"], cpu.to_string());
    assert_eq!(sysctl("vm.stat_interval"), desired, "sysctl applied");

    // Every thread of nodus is pinned, and its memory policy is bind:0.
    let tasks = fs::read_dir(format!("/proc/{}/task", d.pid())).unwrap();
    for t in tasks.flatten() {
        let status = fs::read_to_string(t.path().join("status")).unwrap();
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap();
        assert_eq!(
            allowed.trim(),
            cpu.to_string(),
            "thread {:?}",
            t.file_name()
        );
    }
    let numa_maps = fs::read_to_string(format!("/proc/{}/numa_maps", d.pid())).unwrap();
    assert!(
        numa_maps.contains(" bind:0 "),
        "memory policy bind:0 in numa_maps"
    );

    // Someone changes the sysctl behind nodus's back: status says so.
    fs::write("/proc/sys/vm/stat_interval", "9").unwrap();
    let reason = wait_for("drift in status", Duration::from_secs(10), || {
        let p = profile_component(&d.status_json());
        (p["health"]["state"] == "degraded")
            .then(|| p["health"]["reason"].as_str().unwrap().to_owned())
    });
    assert!(
        reason.contains(&format!(
            "drift: sysctl vm.stat_interval is 9, profile says {desired}"
        )),
        "{reason}"
    );

    assert_eq!(d.stop(Duration::from_secs(5)).code(), Some(0));
    assert_eq!(
        sysctl("vm.stat_interval"),
        original,
        "original value restored on stop"
    );
}

/// nodus killed with SIGKILL (an OOM kill, a watchdog kill) leaves the
/// sysctl modified; the next start must still know the true original and
/// restore it on its clean stop.
#[test]
fn originals_survive_a_kill_9_and_are_restored_by_the_next_run() {
    require_root!();
    let dir = common::tempdir();
    let original = sysctl("vm.dirty_expire_centisecs");
    let desired = (original.parse::<u32>().unwrap() + 7).to_string();
    let path = dir.path().join("host.toml");
    fs::write(
        &path,
        format!(
            "[board]\nname = \"host-test\"\n[[node]]\nid = 0\ncpus = \"{}\"\n\
             [sysctl]\n\"vm.dirty_expire_centisecs\" = \"{desired}\"\n",
            online_cpus()
        ),
    )
    .unwrap();
    let mut d = TempDaemon::start(&format!("[profile]\npath = \"{}\"\n", path.display()), &[]);
    assert_eq!(sysctl("vm.dirty_expire_centisecs"), desired);
    d.signal(libc::SIGKILL);
    d.child.take().map(|mut c| c.wait());
    assert_eq!(
        sysctl("vm.dirty_expire_centisecs"),
        desired,
        "nobody restored it"
    );
    d.restart();
    assert_eq!(d.stop(Duration::from_secs(5)).code(), Some(0));
    assert_eq!(
        sysctl("vm.dirty_expire_centisecs"),
        original,
        "the original from before the killed run is back"
    );
}

#[test]
fn a_profile_for_another_board_is_never_applied() {
    require_root!();
    let dir = common::tempdir();
    let before = sysctl("vm.dirty_writeback_centisecs");
    let path = dir.path().join("other.toml");
    fs::write(
        &path,
        "[board]\nname = \"other\"\n[[node]]\nid = 0\ncpus = \"0-63\"\n\
         [sysctl]\n\"vm.dirty_writeback_centisecs\" = \"1234\"\n",
    )
    .unwrap();
    let d = TempDaemon::start(&format!("[profile]\npath = \"{}\"\n", path.display()), &[]);
    let p = profile_component(&d.status_json());
    assert_eq!(p["health"]["state"], "degraded");
    let reason = p["health"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "key node[0].cpus: profile says 0-63, this board has {}",
            online_cpus()
        )),
        "{reason}"
    );
    assert!(reason.contains("running generic"), "{reason}");
    assert_eq!(p["stats"]["profile"], "generic");
    assert_eq!(
        sysctl("vm.dirty_writeback_centisecs"),
        before,
        "nothing applied"
    );
}

#[test]
fn shipped_profiles_pass_profile_check_and_bad_ones_fail_with_the_key() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../board-profiles");
    let mut paths: Vec<_> = fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    paths.sort();
    assert!(paths.len() >= 2);
    let out = nodus()
        .args(["profile", "check"])
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = common::tempdir();
    let bad = dir.path().join("bad.toml");
    fs::write(&bad, "[board]\nname = \"b\"\n[[node]]\nid = 0\ncpus = \"0-1\"\n[[irq]]\ndevice = \"nic9\"\nnode = 0\n").unwrap();
    let out = nodus()
        .args(["profile", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("key irq[0].device: there is no device nic9"),
        "{err}"
    );
}
