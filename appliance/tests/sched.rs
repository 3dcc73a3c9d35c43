//! The layered scheduler on this host, which has struct_ops but no
//! sched_ext: the scheduler's own match rules run in the kernel (its test
//! program, BPF_PROG_TEST_RUN) on facts of the test's choosing, and the
//! daemon says the scheduler is unavailable and why while everything else
//! runs. Loading, placement and exit handling are for the QEMU board
//! (hil-tests/scenarios/74-sched.sh).

mod common;

use std::time::Duration;

use common::daemon::{TempDaemon, component};

/// The policy's match rules in the kernel: they need the loader, which
/// `make test` builds (`--features nodus/sched`).
#[cfg(feature = "sched")]
mod matcher {
    use std::{collections::HashMap, os::unix::fs::MetadataExt};

    use nodus::{
        board::Topology,
        profile::Profile,
        sched::{
            Plan,
            loader::Matcher,
            membership::{self, exe_of},
            plan::comm_of,
        },
        workload::{Class, Work, Workloads},
    };
    use nodus_common::sched::Facts;

    fn plan(layers: &str) -> Plan {
        let profile: Profile =
            toml::from_str(&format!("[board]\nname = \"t\"\n{layers}")).expect("profile");
        let topo = Topology::discover().expect("topology");
        Plan::resolve(&profile, &topo).expect("a plan")
    }

    fn facts(comm: &str) -> Facts {
        Facts {
            comm: comm_of(comm),
            uid: 0,
            ..Facts::default()
        }
    }

    /// Comm prefix, nice range and uid rules, the first matching layer
    /// winning and the default layer (index = layers) taking the rest: as the
    /// scheduler's BPF decides them.
    #[test]
    fn the_kernel_puts_tasks_in_the_first_layer_with_a_matching_rule() {
        crate::require_root!();
        let plan = plan(
            r#"
        [[layer]]
        name = "critical"
        match = [{ comm_prefix = "crit" }, { nice = [-20, -15] }]
        cpus = "0"
        policy = "confined"
        [[layer]]
        name = "service"
        match = [{ uid = 1000 }, { comm_prefix = "c" }]
        cpus = "0"
        policy = "grouped"
        "#,
        );
        let m = Matcher::load(&plan)
            .unwrap_or_else(|e| panic!("the matcher: {}", nodus::ebpf::error_chain(&e)));
        let layer = |f: Facts| m.layer_of(&f).expect("test run");
        assert_eq!(layer(facts("critical-loop")), 0);
        assert_eq!(layer(facts("crit")), 0, "the whole prefix is enough");
        assert_eq!(
            layer(facts("cri")),
            1,
            "a shorter comm is not the prefix; `c` is"
        );
        assert_eq!(layer(facts("cron")), 1);
        assert_eq!(layer(facts("bash")), 2, "no rule: the default layer");
        let niced = Facts {
            nice: -16,
            ..facts("bash")
        };
        assert_eq!(layer(niced), 0);
        let edge = Facts {
            nice: -14,
            ..facts("bash")
        };
        assert_eq!(layer(edge), 2, "nice -14 is outside [-20, -15]");
        let user = Facts {
            uid: 1000,
            ..facts("bash")
        };
        assert_eq!(layer(user), 1);
        // Layer order beats rule order: critical's comm rule wins over
        // service's uid rule.
        let both = Facts {
            uid: 1000,
            ..facts("critical")
        };
        assert_eq!(layer(both), 0);
    }

    /// Cgroup-prefix and executable rules, through the sets userspace keeps:
    /// a real cgroup directory and a real file, by their ids.
    #[test]
    fn cgroup_and_executable_rules_match_through_their_ids() {
        crate::require_root!();
        let dir = tempfile::tempdir().expect("tempdir");
        let tool = dir.path().join("tool");
        std::fs::write(&tool, b"#!/bin/sh\n").expect("write");
        let cgroups = dir.path().join("cg");
        std::fs::create_dir_all(cgroups.join("app/worker")).expect("mkdir");
        let plan = plan(&format!(
            r#"
        [[layer]]
        name = "tools"
        match = [{{ exe = "{}" }}]
        cpus = "0"
        policy = "grouped"
        [[layer]]
        name = "app"
        match = [{{ cgroup_prefix = "/app" }}]
        cpus = "0"
        policy = "grouped"
        "#,
            tool.display()
        ));
        let members = membership::scan(Some(&cgroups), &plan.layers, &Workloads::default());
        let m = Matcher::load(&plan).expect("the matcher");
        m.maps().set_members(&members).expect("the sets");
        let worker = std::fs::metadata(cgroups.join("app/worker"))
            .expect("stat")
            .ino();
        let in_app = Facts {
            cgroup_id: worker,
            ..facts("anything")
        };
        assert_eq!(m.layer_of(&in_app).expect("run"), 1);
        let elsewhere = Facts {
            cgroup_id: worker + 1_000_000,
            ..facts("anything")
        };
        assert_eq!(m.layer_of(&elsewhere).expect("run"), 2);
        let running_tool = Facts {
            exe: exe_of(&std::fs::metadata(&tool).expect("stat")),
            cgroup_id: worker,
            ..facts("anything")
        };
        assert_eq!(
            m.layer_of(&running_tool).expect("run"),
            0,
            "the exe layer comes first"
        );
        // Sets replaced: the executable is no longer a member.
        let without_exe = membership::Members {
            exes: HashMap::new(),
            ..members
        };
        m.maps().set_members(&without_exe).expect("the sets");
        assert_eq!(m.layer_of(&running_tool).expect("run"), 1);
    }

    /// Class and device rules: what the numa component measured and saw
    /// (the shared workload table) decides, per process, in the kernel.
    #[test]
    fn class_and_device_rules_match_the_processes_the_workload_table_names() {
        crate::require_root!();
        let plan = plan(
            r#"
        [[device]]
        name = "npu0"
        kind = "npu"
        dev = "/dev/null"
        [[layer]]
        name = "npu-users"
        match = [{ device = "npu0" }]
        cpus = "0"
        policy = "grouped"
        [[layer]]
        name = "interactive"
        match = [{ class = "latency" }]
        cpus = "0"
        policy = "grouped"
        "#,
        );
        let mut workloads = Workloads::default();
        let work = |class, device: Option<&str>| Work {
            class: Some(class),
            device: device.map(str::to_owned),
        };
        workloads.replace(
            [
                (100, work(Class::Latency, None)),
                (200, work(Class::Batch, Some("npu0"))),
                (300, work(Class::Batch, None)),
            ]
            .into(),
        );
        let members = membership::scan(None, &plan.layers, &workloads);
        let m = Matcher::load(&plan).expect("the matcher");
        m.maps().set_members(&members).expect("the sets");
        let of = |tgid| {
            let f = Facts {
                tgid,
                ..facts("anything")
            };
            m.layer_of(&f).expect("run")
        };
        assert_eq!(of(200), 0, "the accelerator's user");
        assert_eq!(of(100), 1, "latency class");
        assert_eq!(of(300), 2, "batch: the default layer");
        assert_eq!(of(999), 2, "unknown process: the default layer");
        // The next look finds pid 100 batch now: it leaves the layer.
        workloads.replace([(100, work(Class::Batch, None))].into());
        let members = membership::scan(None, &plan.layers, &workloads);
        m.maps().set_members(&members).expect("the sets");
        assert_eq!(of(100), 2);
        assert_eq!(of(200), 2, "no longer in the table");
    }
}

/// This host's kernel has no sched_ext: the component is unavailable with
/// the probe's reason, and the daemon runs everything else.
#[test]
fn without_sched_ext_the_scheduler_is_unavailable_and_says_why() {
    require_root!();
    if std::path::Path::new("/sys/kernel/sched_ext").exists() {
        eprintln!("skipped: this kernel has sched_ext (the board's scenario covers it)");
        return;
    }
    let d = TempDaemon::start("[fleet]\nenabled = false\n", &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let sched = loop {
        let status = d.status_json();
        let sched = component(&status, "sched");
        if sched["stats"]["state"] == "unavailable" || std::time::Instant::now() > deadline {
            break (status, sched);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (status, sched) = sched;
    assert_eq!(sched["health"]["state"], "unavailable", "{sched}");
    let reason = sched["health"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("sched_ext"), "{reason}");
    for other in ["proccache", "fileserver", "proxy", "control"] {
        let c = component(&status, other);
        assert_ne!(c["health"]["state"], "unavailable", "{other}: {c}");
    }
}
