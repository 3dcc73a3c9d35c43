//! `nodus probe --json` must say what loading actually does on this kernel.
//! The reference is bpftool, an independent loader (libbpf) that probes by
//! loading its own tiny programs, plus the kernel's own sched_ext interface.

mod common;

use std::{path::Path, process::Command};

use common::{nodus, tool};

fn nodus_probe() -> serde_json::Value {
    let out = nodus()
        .args(["probe", "--json"])
        .output()
        .expect("run nodus probe");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("probe JSON")
}

fn bpftool_probe() -> serde_json::Value {
    let out = Command::new(tool("bpftool"))
        .args(["-j", "feature", "probe", "kernel"])
        .output()
        .expect("run bpftool");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("bpftool JSON")
}

#[test]
fn probe_agrees_with_bpftool_and_the_kernel() {
    require_root!();
    let ours = nodus_probe();
    let theirs = bpftool_probe();
    let feat = |name: &str| -> bool {
        ours["features"][name]["available"]
            .as_bool()
            .unwrap_or_else(|| panic!("feature {name} missing from {ours}"))
    };
    let prog = |t: &str| theirs["program_types"][format!("have_{t}_prog_type")] == true;
    let map = |t: &str| theirs["map_types"][format!("have_{t}_map_type")] == true;

    assert_eq!(feat("tracepoint"), prog("tracepoint"), "tracepoint");
    assert_eq!(feat("tc"), prog("sched_cls"), "tc");
    assert_eq!(feat("xdp"), prog("xdp"), "xdp");
    assert_eq!(
        feat("sk_skb_sockhash"),
        prog("sk_skb") && map("sockhash"),
        "sk_skb+sockhash"
    );
    assert_eq!(feat("sk_reuseport"), prog("sk_reuseport"), "sk_reuseport");
    assert_eq!(feat("ringbuf"), map("ringbuf"), "ringbuf");
    assert_eq!(feat("fentry"), prog("tracing"), "fentry (tracing programs)");
    assert_eq!(feat("struct_ops"), prog("struct_ops"), "struct_ops");
    assert_eq!(
        feat("btf"),
        Path::new("/sys/kernel/btf/vmlinux").exists(),
        "btf"
    );

    let sched_ext_sysfs = Path::new("/sys/kernel/sched_ext/state").exists();
    assert_eq!(feat("sched_ext"), sched_ext_sysfs, "sched_ext");
    if sched_ext_sysfs {
        let state = std::fs::read_to_string("/sys/kernel/sched_ext/state").unwrap();
        let ours_state = ours["features"]["sched_ext"]["state"]
            .as_str()
            .unwrap_or_default();
        assert!(
            ours_state.starts_with(state.trim()),
            "{ours_state} vs {state}"
        );
    }

    // Whatever is missing carries the kernel's reason, not a guess.
    for (name, f) in ours["features"].as_object().unwrap() {
        if f["available"] == false {
            let reason = f["reason"].as_str().unwrap_or_default();
            assert!(!reason.is_empty(), "{name} unavailable without a reason");
        }
    }
    if !feat("fentry") {
        let reason = ours["features"]["fentry"]["reason"].as_str().unwrap();
        assert!(
            reason.contains("os error"),
            "fentry reason carries the errno: {reason}"
        );
    }
}

#[test]
fn probe_table_lists_every_feature() {
    require_root!();
    let out = nodus().arg("probe").output().expect("run nodus probe");
    let text = String::from_utf8_lossy(&out.stdout);
    for f in [
        "btf",
        "tracepoint",
        "ringbuf",
        "tc",
        "xdp",
        "sk_skb_sockhash",
        "sk_reuseport",
        "fentry",
        "struct_ops",
        "sched_ext",
    ] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(f)),
            "{f} in:\n{text}"
        );
    }
}

#[test]
fn probing_leaves_no_programs_or_links_behind() {
    require_root!();
    let count = |what: &str| -> usize {
        let out = Command::new(tool("bpftool"))
            .args(["-j", what, "show"])
            .output()
            .expect("bpftool show");
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or(0)
    };
    let (progs, links) = (count("prog"), count("link"));
    nodus_probe();
    // Other tests may load programs concurrently; ours must all be gone, so
    // nothing named probe_* may remain.
    let out = Command::new(tool("bpftool"))
        .args(["-j", "prog", "show"])
        .output()
        .unwrap();
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let leaked: Vec<_> = all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("probe_")))
        .collect();
    assert!(
        leaked.is_empty(),
        "leaked: {leaked:?} (before: {progs} progs, {links} links)"
    );
}
