//! The NUMA locality component against the kernel's own account: a process
//! holding 64 MiB is listed with its resident size and the share of its
//! pages on each node that `/proc/PID/numa_maps` (a walk of every page)
//! gives, and every node of the machine is reported. Moving pages between
//! nodes needs two nodes: the QEMU board's scenario 76-numa covers it.

#[macro_use]
mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use common::daemon::{TempDaemon, component};

/// Pages per node by `/proc/PID/numa_maps` (`N0=12 N1=3` fields).
fn numa_maps(pid: u32) -> Vec<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/numa_maps")).unwrap();
    let mut by = std::collections::BTreeMap::new();
    for field in text.split_whitespace() {
        let Some((node, pages)) = field.strip_prefix('N').and_then(|f| f.split_once('=')) else {
            continue;
        };
        if let (Ok(n), Ok(p)) = (node.parse::<u32>(), pages.parse::<u64>()) {
            *by.entry(n).or_insert(0) += p;
        }
    }
    by.into_iter().collect()
}

fn machine_nodes() -> usize {
    std::fs::read_dir("/sys/devices/system/node")
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("node") && n[4..].parse::<u32>().is_ok()
        })
        .count()
}

#[test]
fn a_process_memory_is_where_numa_maps_says_and_every_node_is_reported() {
    require_root!();
    // 64 MiB written (not calloc'd zero pages: those are not resident).
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import time; b = b'x' * (64 << 20); print('ready', flush=True); time.sleep(120)",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let pid = holder.id();

    let d = TempDaemon::start("[numa]\ninterval_ms = 200\n", &[]);
    let numa = || component(&d.status_json(), "numa");
    let entry = common::wait_for("the holder listed", Duration::from_secs(15), || {
        let procs = numa()["stats"]["processes"].as_str()?.to_owned();
        procs
            .split("; ")
            .find(|p| p.starts_with(&format!("python3 {pid}: ")))
            .map(str::to_owned)
    });
    let stats = numa()["stats"].clone();
    assert_eq!(numa()["health"]["state"], "healthy", "{stats}");

    // Resident size: 64 MiB and the interpreter.
    let mib: u64 = entry
        .split_once(": ")
        .and_then(|(_, r)| r.split(" MiB").next()?.parse().ok())
        .unwrap_or_else(|| panic!("no size in {entry:?}"));
    assert!((64..128).contains(&mib), "{entry}");
    // Each node's share, as sampled, against every page by numa_maps.
    let theirs = numa_maps(pid);
    let total: u64 = theirs.iter().map(|(_, p)| p).sum();
    for (node, pages) in &theirs {
        let want = *pages as f64 * 100.0 / total as f64;
        let ours: f64 = entry
            .split(&format!("node{node} "))
            .nth(1)
            .and_then(|r| r.split('%').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no share for node {node} in {entry:?}"));
        assert!(
            (ours - want).abs() <= 10.0,
            "node {node}: {ours}% sampled, {want:.1}% by numa_maps: {entry}"
        );
    }

    // Every node, with its CPUs, memory and allocator counters.
    let nodes = stats["nodes"].as_str().unwrap();
    assert_eq!(nodes.split("; ").count(), machine_nodes(), "{nodes}");
    for n in nodes.split("; ") {
        assert!(
            n.contains(" MiB used, hit ") && n.contains(" busy, "),
            "{n}"
        );
    }
    if machine_nodes() == 1 {
        assert_eq!(stats["balancing"], "one node", "{stats}");
        assert_eq!(stats["pages_moved"], 0);
    }
    assert!(stats["processes_seen"].as_i64() > Some(1), "{stats}");
    assert!(stats["look_cpu_us"].as_i64().is_some(), "{stats}");
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn out_of_range_settings_are_refused_before_anything_starts() {
    let dir = common::tempdir();
    for (text, key) in [
        ("[numa]\nsamples = 1\n", "numa.samples"),
        ("[numa]\nmigrate_mib_per_s = 0\n", "numa.migrate_mib_per_s"),
        ("[numa]\nlocal_target_pct = 150\n", "numa.local_target_pct"),
    ] {
        let path = dir.path().join("nodus.toml");
        std::fs::write(&path, text).unwrap();
        let out = common::nodus()
            .args(["run", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{text}: {stderr}");
    }
}
