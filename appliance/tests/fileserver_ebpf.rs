//! The file server's eBPF in the running kernel: sk_reuseport steering and
//! the TC request classifier, seen through `nodus status`.

mod common;

use std::{fs, time::Duration};

use common::{fileserver::FsDaemon, wait_for};

/// Status once the classifier, which attaches in the background after
/// READY, is in place.
fn attached_status(d: &FsDaemon) -> serde_json::Value {
    wait_for(
        "the TC classifier to attach",
        Duration::from_secs(5),
        || {
            let s = d.status();
            s["stats"]["tc_interfaces"].is_string().then_some(s)
        },
    )
}

#[test]
fn steering_and_kernel_counters() {
    require_root!();
    let d = FsDaemon::start(
        |r| {
            fs::write(r.join("index.html"), "home\n").unwrap();
            fs::write(r.join("a.css"), "x\n").unwrap();
        },
        "workers = 2",
    );
    let s = attached_status(&d);
    assert_eq!(s["health"]["state"], "healthy", "{s}");
    assert_eq!(s["stats"]["tc_interfaces"], "lo (tcx)", "{s}");
    for _ in 0..5 {
        assert_eq!(d.get("/", &[]).status, 200);
    }
    for _ in 0..3 {
        assert_eq!(d.curl(&["-I", &d.url("/a.css")]).status, 200);
    }
    assert_eq!(d.curl(&["--path-as-is", &d.url("/../x")]).status, 400);
    assert_eq!(d.curl(&["-X", "POST", &d.url("/")]).status, 405);
    let st = &d.status()["stats"];
    assert_eq!(st["kernel_requests.get.index"], 5, "{st}");
    assert_eq!(st["kernel_requests.head.asset"], 3, "{st}");
    assert_eq!(st["kernel_requests.get.suspicious"], 1, "{st}");
    assert_eq!(st["kernel_requests.other_method"], 1, "{st}");
    // Every connection went through the steering program, on a CPU with a worker.
    let steered = st["reuseport_steered"].as_u64().unwrap();
    assert_eq!(
        steered,
        st["connections_accepted"].as_u64().unwrap(),
        "{st}"
    );
    assert_eq!(st["reuseport_fallback"], 0, "{st}");
    assert_eq!(st["requests"], 10, "{st}");
    assert!(st["latency_p99_us"].as_i64().unwrap() > 0, "{st}");
}

#[test]
fn without_pinning_steering_degrades_visibly() {
    require_root!();
    let d = FsDaemon::start(
        |r| fs::write(r.join("index.html"), "home\n").unwrap(),
        "pin_workers = false\ntc_interfaces = [\"lo\", \"nodus-no-such-if\"]",
    );
    let s = attached_status(&d);
    assert_eq!(s["health"]["state"], "degraded", "{s}");
    let reason = s["health"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("sk_reuseport steering: workers are not pinned"),
        "{reason}"
    );
    assert!(reason.contains("tc on nodus-no-such-if"), "{reason}");
    // The rest works.
    assert_eq!(d.get("/", &[]).status, 200);
    assert_eq!(s["stats"]["tc_interfaces"], "lo (tcx)");
    let out = common::nodus()
        .args(["status", "--socket"])
        .arg(&d.daemon.socket)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fileserver   degraded"), "{text}");
}
