//! Parsing, every check rule (one bad profile each), includes and selection.

use std::{fs, path::Path};

use super::*;
use crate::{
    board::{CpuList, Topology},
    tomlfile,
};

const BASE: &str = r#"
[board]
name = "t"
[[node]]
id = 0
cpus = "0-1"
[[node]]
id = 1
cpus = "2-3"
[[cluster]]
name = "a"
cpus = "0-1"
[[cluster]]
name = "b"
cpus = "2-3"
[[device]]
name = "nic0"
kind = "nic"
interface = "eth0"
"#;

fn parse(extra: &str) -> Result<Profile, String> {
    tomlfile::parse_str(&format!("{BASE}{extra}"), "t.toml").map_err(|e| e.to_string())
}

/// Asserts the profile `BASE + extra` has a problem at `key` mentioning `why`.
fn bad(extra: &str, key: &str, why: &str) {
    let p = parse(extra).expect("parses");
    let problems = check_structure(&p);
    assert!(
        problems
            .iter()
            .any(|x| x.key == key && x.reason.contains(why)),
        "expected {key}: {why}; got {problems:?}"
    );
}

#[test]
fn the_base_profile_is_clean() {
    assert_eq!(check_structure(&parse("").unwrap()), vec![]);
}

#[test]
fn unknown_keys_are_errors_with_their_location() {
    let e = parse("[placement.runtime]\ncpu = \"1\"\n").unwrap_err();
    assert!(
        e.contains("placement.runtime.cpu") && e.contains("unknown field"),
        "{e}"
    );
    let e = parse("[[node]]\nid = 2\ncpus = \"4\"\nmemory = 1\n").unwrap_err();
    assert!(e.contains("node[2].memory"), "{e}");
}

#[test]
fn bad_cpulists_are_errors_with_their_location() {
    let e = parse("[[layer]]\nname = \"x\"\ncpus = \"3-1\"\npolicy = \"open\"\n").unwrap_err();
    assert!(
        e.contains("layer[0].cpus") && e.contains("range runs backwards"),
        "{e}"
    );
}

#[test]
fn every_structure_rule_has_a_clear_error() {
    bad(
        "[[node]]\nid = 1\ncpus = \"4\"\n",
        "node[2].id",
        "listed twice",
    );
    bad(
        "[[node]]\nid = 2\ncpus = \"1\"\n",
        "node[2].cpus",
        "CPU 1 is already in another node",
    );
    bad(
        "[[node]]\nid = 2\ncpus = \"\"\n",
        "node[2].cpus",
        "at least one CPU",
    );
    bad(
        "[[cluster]]\nname = \"c\"\ncpus = \"4-5\"\n",
        "cluster[2].cpus",
        "CPUs 4-5 are in no [[node]]",
    );
    bad(
        "[[cluster]]\nname = \"a\"\ncpus = \"0\"\n",
        "cluster[2].name",
        "listed twice",
    );
    bad(
        "[[cluster]]\nname = \"c\"\ncpus = \"1-2\"\n",
        "cluster[2].cpus",
        "already in another cluster",
    );
    bad(
        "[[cache]]\nlevel = 1\ncpus = \"0\"\n",
        "cache[0].level",
        "must be 2, 3 or 4",
    );
    bad(
        "[[device]]\nname = \"npu\"\nkind = \"npu\"\n",
        "device[1]",
        "exactly one of sysfs, interface, dev or driver",
    );
    bad(
        "[[device]]\nname = \"npu\"\nkind = \"npu\"\ndev = \"accel0\"\n",
        "device[1].dev",
        "accel0 is not a device node under /dev/",
    );
    bad(
        "[[device]]\nname = \"npu\"\nkind = \"npu\"\ndriver = \"x\"\nnode = 7\n",
        "device[1].node",
        "no node 7",
    );
    bad(
        "[placement.runtime]\ncluster = \"zz\"\n",
        "placement.runtime.cluster",
        "no cluster zz",
    );
    bad(
        "[placement.runtime]\ncpus = \"0\"\nnode = 0\n",
        "placement.runtime",
        "exactly one of cpus, cluster or node",
    );
    bad(
        "[placement.proxy]\nnode = 0\nmem_nodes = [5]\n",
        "placement.proxy.mem_nodes",
        "no node 5",
    );
    bad(
        "[placement.telemetry]\ncpus = \"9\"\n",
        "placement.telemetry.cpus",
        "CPUs 9 are in no [[node]]",
    );
    bad(
        "[[layer]]\nname = \"x\"\ncluster = \"a\"\npolicy = \"open\"\n",
        "layer[0].match",
        "at least one match rule",
    );
    bad(
        "[[layer]]\nname = \"x\"\ncluster = \"q\"\npolicy = \"open\"\nmatch = [{ comm_prefix = \"a\" }]\n",
        "layer[0].cluster",
        "no cluster q",
    );
    bad(
        "[[layer]]\nname = \"x\"\ncpus = \"0\"\npolicy = \"open\"\nmatch = [{ comm_prefix = \"a\", exe = \"/b\" }]\n",
        "layer[0].match[0]",
        "exactly one of comm_prefix",
    );
    bad(
        "[[layer]]\nname = \"x\"\ncpus = \"0\"\npolicy = \"open\"\nmatch = [{ class = \"fast\" }]\n",
        "layer[0].match[0].class",
        "latency, batch or idle",
    );
    bad(
        "[[layer]]\nname = \"x\"\ncpus = \"0\"\npolicy = \"open\"\nmatch = [{ device = \"npu9\" }]\n",
        "layer[0].match[0].device",
        "no [[device]] named \"npu9\"",
    );
    bad(
        "[[layer]]\nname = \"x\"\ncpus = \"0\"\npolicy = \"open\"\nmatch = [{ nice = [5, -5] }]\n",
        "layer[0].match[0].nice",
        "low <= high",
    );
    bad(
        "[[layer]]\nname = \"x\"\ncpus = \"0\"\npolicy = \"open\"\nmatch = [{ comm_prefix = \"sixteen-bytes-xx\" }]\n",
        "layer[0].match[0].comm_prefix",
        "1 to 15 bytes",
    );
    bad(
        "[[layer]]\nname = \"x\"\ncpus = \"0\"\npolicy = \"confined\"\nmin_cpus = 1\nmatch = [{ uid = 0 }]\n",
        "layer[0].min_cpus",
        "only a grouped layer",
    );
    bad(
        "[[layer]]\nname = \"x\"\ncpus = \"0\"\npolicy = \"open\"\nslice_us = 5\nmatch = [{ uid = 0 }]\n",
        "layer[0].slice_us",
        "100 to 1000000",
    );
    bad(
        "[[irq]]\ndevice = \"nope\"\nnode = 0\n",
        "irq[0].device",
        "no device nope",
    );
    bad(
        "[[irq]]\ndevice = \"nic0\"\n",
        "irq[0]",
        "exactly one of node or cpus",
    );
    bad(
        "[[irq]]\ndevice = \"nic0\"\nnode = 3\n",
        "irq[0].node",
        "no node 3",
    );
    bad(
        "[sysctl]\n\"vm/../x\" = \"1\"\n",
        "sysctl.\"vm/../x\"",
        "not a sysctl name",
    );
    bad(
        "[sysctl]\n\"vm.swappiness\" = \"1\\n2\"\n",
        "sysctl.\"vm.swappiness\"",
        "one line",
    );
}

#[test]
fn the_qemu_profile_fits_the_qemu_board_and_not_another() {
    let p = builtin("qemu-virt-numa").expect("built-in");
    let t = tempfile::tempdir().unwrap();
    board(
        t.path(),
        &[("0-1", 980), ("2-3", 1000)],
        "linux,dummy-virt",
        |_| 0,
    );
    let topo = Topology::discover_at(t.path()).unwrap();
    assert_eq!(check_against(&p, &topo, t.path()), vec![]);

    let t2 = tempfile::tempdir().unwrap();
    board(
        t2.path(),
        &[("0-2", 980), ("3", 1000)],
        "linux,dummy-virt",
        |_| 0,
    );
    let topo2 = Topology::discover_at(t2.path()).unwrap();
    let problems = check_against(&p, &topo2, t2.path());
    assert!(
        problems.contains(&Problem {
            key: "node[0].cpus".into(),
            reason: "profile says 0-1, this board has 0-2".into()
        }),
        "{problems:?}"
    );
}

#[test]
fn auto_selection_picks_the_matching_profile_or_falls_back_with_the_difference() {
    let cfg = ProfileConfig {
        dir: "/nonexistent".into(),
        ..ProfileConfig::default()
    };
    let t = tempfile::tempdir().unwrap();
    board(
        t.path(),
        &[("0-1", 1024), ("2-3", 1024)],
        "linux,dummy-virt",
        |_| 0,
    );
    let topo = Topology::discover_at(t.path()).unwrap();
    let chosen = choose(&cfg, &topo, t.path());
    assert_eq!(chosen.profile.board.name, "qemu-virt-numa");
    assert!(chosen.fallback.is_none(), "{:?}", chosen.fallback);

    // Same identity, wrong memory size: recognised, but never applied.
    let t2 = tempfile::tempdir().unwrap();
    board(
        t2.path(),
        &[("0-1", 4096), ("2-3", 1024)],
        "linux,dummy-virt",
        |_| 0,
    );
    let topo2 = Topology::discover_at(t2.path()).unwrap();
    let chosen = choose(&cfg, &topo2, t2.path());
    assert_eq!(chosen.profile.board.name, "generic");
    let why = chosen.fallback.expect("a reason");
    assert!(
        why.contains("node[0].memory_mib: profile says 1024 MiB, this board has 4096 MiB"),
        "{why}"
    );

    // Another board entirely: generic, and nothing to complain about.
    let t3 = tempfile::tempdir().unwrap();
    board(t3.path(), &[("0-7", 8192)], "acme,board", |_| 0);
    let topo3 = Topology::discover_at(t3.path()).unwrap();
    let chosen = choose(&cfg, &topo3, t3.path());
    assert_eq!(chosen.profile.board.name, "generic");
    assert!(chosen.fallback.is_none());
}

#[test]
fn includes_merge_tables_and_replace_arrays_and_refuse_cycles() {
    let t = tempfile::tempdir().unwrap();
    fs::write(
        t.path().join("base.toml"),
        format!("{BASE}\n[sysctl]\n\"vm.swappiness\" = \"10\"\n[limits]\nopen_files = 1024\n"),
    )
    .unwrap();
    fs::write(
        t.path().join("child.toml"),
        "include = \"base\"\n[board]\nname = \"child\"\n[sysctl]\n\"kernel.numa_balancing\" = \"0\"\n[[node]]\nid = 0\ncpus = \"0-3\"\n",
    )
    .unwrap();
    let p = load(&Origin::File(t.path().join("child.toml"))).expect("loads");
    assert_eq!(p.board.name, "child");
    assert_eq!(p.sysctl.len(), 2, "tables merge");
    assert_eq!(p.nodes.len(), 1, "arrays replace");
    assert_eq!(p.limits.open_files, Some(1024));
    assert_eq!(p.devices.len(), 1);

    fs::write(
        t.path().join("a.toml"),
        "include = \"b\"\n[board]\nname = \"a\"\n",
    )
    .unwrap();
    fs::write(
        t.path().join("b.toml"),
        "include = \"a\"\n[board]\nname = \"b\"\n",
    )
    .unwrap();
    let e = load(&Origin::File(t.path().join("a.toml")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("include cycle"), "{e}");

    fs::write(
        t.path().join("c.toml"),
        "include = \"generic\"\n[board]\nname = \"c\"\n",
    )
    .unwrap();
    assert_eq!(
        load(&Origin::File(t.path().join("c.toml")))
            .unwrap()
            .board
            .name,
        "c"
    );
}

#[test]
fn every_built_in_profile_loads_and_is_consistent() {
    for (name, _) in BUILTIN {
        let p = builtin(name).unwrap_or_else(|| panic!("{name} loads"));
        assert_eq!(&p.board.name, name);
        assert_eq!(check_structure(&p), vec![], "{name}");
    }
}

#[test]
fn clusters_are_checked_cpu_by_cpu_against_core_types() {
    let t = tempfile::tempdir().unwrap();
    // DT numbering: cpu0-1 little (A520), cpu2-3 big (A720), one DSU cluster.
    board(t.path(), &[("0-3", 1024)], "acme,bl", |cpu| {
        if cpu < 2 { 0xd80 } else { 0xd81 }
    });
    for cpu in 0..4 {
        let list = t.path().join(format!(
            "sys/devices/system/cpu/cpu{cpu}/topology/cluster_cpus_list"
        ));
        fs::create_dir_all(list.parent().unwrap()).unwrap();
        fs::write(list, "0-3").unwrap();
    }
    let topo = Topology::discover_at(t.path()).unwrap();
    let profile = |little: &str, big: &str| {
        tomlfile::parse_str::<Profile>(
            &format!(
                "[board]\nname = \"bl\"\n[[node]]\nid = 0\ncpus = \"0-3\"\n\
                 [[cluster]]\nname = \"little\"\ncpus = \"{little}\"\npart = \"0xd80\"\n\
                 [[cluster]]\nname = \"big\"\ncpus = \"{big}\"\npart = \"0xD81\"\n"
            ),
            "bl.toml",
        )
        .unwrap()
    };
    assert_eq!(
        check_against(&profile("0-1", "2-3"), &topo, t.path()),
        vec![]
    );
    // Firmware that numbers the cores the other way round is caught.
    let problems = check_against(&profile("2-3", "0-1"), &topo, t.path());
    assert!(
        problems.contains(&Problem {
            key: "cluster[0].part".into(),
            reason: "CPU 2 is part 0xd81, profile says 0xd80".into()
        }),
        "{problems:?}"
    );
}

/// A synthetic sysfs/procfs of a board: NUMA nodes (CPUs, MiB of memory; 0
/// for none), DT compatible (none if empty) and a MIDR part number per CPU.
fn board(root: &Path, nodes: &[(&str, u64)], compatible: &str, part: impl Fn(u32) -> u32) {
    let w = |rel: &str, text: &str| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    };
    let all: CpuList = nodes
        .iter()
        .flat_map(|(n, _)| n.parse::<CpuList>().unwrap().cpus().collect::<Vec<_>>())
        .collect();
    w("sys/devices/system/cpu/online", &all.to_string());
    for (i, (cpus, mib)) in nodes.iter().enumerate() {
        let d = format!("sys/devices/system/node/node{i}");
        w(&format!("{d}/cpulist"), cpus);
        if *mib > 0 {
            w(
                &format!("{d}/meminfo"),
                &format!("Node {i} MemTotal: {} kB\n", mib * 1024),
            );
        }
        let dist: Vec<&str> = (0..nodes.len())
            .map(|j| if j == i { "10" } else { "20" })
            .collect();
        w(&format!("{d}/distance"), &dist.join(" "));
    }
    if !compatible.is_empty() {
        w(
            "sys/firmware/devicetree/base/compatible",
            &format!("{compatible}\0"),
        );
    }
    w("sys/class/net/eth0/device/numa_node", "-1");
    let mut cpuinfo = String::new();
    for cpu in all.cpus() {
        let midr = format!("0x00000000410f{:03x}1", part(cpu));
        w(
            &format!("sys/devices/system/cpu/cpu{cpu}/regs/identification/midr_el1"),
            &midr,
        );
        cpuinfo.push_str(&format!(
            "processor\t: {cpu}\nCPU part\t: 0x{:03x}\n\n",
            part(cpu)
        ));
    }
    w("proc/cpuinfo", &cpuinfo);
}

fn auto_pick(root: &Path) -> Chosen {
    let cfg = ProfileConfig {
        dir: "/nonexistent".into(),
        ..ProfileConfig::default()
    };
    choose(&cfg, &Topology::discover_at(root).unwrap(), root)
}

#[test]
fn each_real_board_profile_is_picked_on_the_board_it_describes() {
    let t = tempfile::tempdir().unwrap();
    board(t.path(), &[("0-71", 0), ("72-143", 0)], "", |_| 0xd4f);
    let c = auto_pick(t.path());
    assert_eq!(
        (c.profile.board.name.as_str(), c.fallback),
        ("nvidia-grace-superchip", None)
    );

    let t = tempfile::tempdir().unwrap();
    board(
        t.path(),
        &[("0-11", 0)],
        "radxa,orion-o6\0cix,sky1",
        |cpu| {
            if cpu < 4 { 0xd80 } else { 0xd81 }
        },
    );
    let c = auto_pick(t.path());
    assert_eq!(
        (c.profile.board.name.as_str(), c.fallback),
        ("radxa-orion-o6", None)
    );

    let t = tempfile::tempdir().unwrap();
    board(
        t.path(),
        &[("0-13", 0)],
        "nvidia,p3834-0008\0nvidia,tegra264",
        |_| 0xd83,
    );
    let c = auto_pick(t.path());
    assert_eq!(
        (c.profile.board.name.as_str(), c.fallback),
        ("nvidia-jetson-agx-thor", None)
    );
}

#[test]
fn an_orion_o6_numbered_differently_runs_generic_and_says_why() {
    // ACPI-style numbering: CPUs 0-1 are A720s. Same identity, wrong clusters.
    let t = tempfile::tempdir().unwrap();
    board(t.path(), &[("0-11", 0)], "radxa,orion-o6", |cpu| {
        if (2..6).contains(&cpu) { 0xd80 } else { 0xd81 }
    });
    let c = auto_pick(t.path());
    assert_eq!(c.profile.board.name, "generic");
    let why = c.fallback.expect("reason");
    assert!(
        why.contains("key cluster[0].part: CPU 0 is part 0xd81, profile says 0xd80"),
        "{why}"
    );
}
#[test]
fn every_file_in_board_profiles_is_built_in() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../board-profiles");
    let mut files: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".toml")
                .map(str::to_owned)
        })
        .collect();
    files.sort();
    let mut built_in: Vec<String> = BUILTIN.iter().map(|(n, _)| (*n).to_owned()).collect();
    built_in.sort();
    assert_eq!(files, built_in);
}

#[test]
fn every_board_rule_names_the_exact_difference() {
    let t = tempfile::tempdir().unwrap();
    board(
        t.path(),
        &[("0-1", 1024), ("2-3", 1024)],
        "acme,one",
        |_| 0xd81,
    );
    for cpu in 0..4 {
        let d = t.path().join(format!("sys/devices/system/cpu/cpu{cpu}"));
        let pair = if cpu < 2 { "0-1" } else { "2-3" };
        for (rel, text) in [
            ("topology/cluster_cpus_list", pair),
            ("cache/index0/level", "3"),
            ("cache/index0/type", "Unified"),
            ("cache/index0/shared_cpu_list", pair),
        ] {
            fs::create_dir_all(d.join(rel).parent().unwrap()).unwrap();
            fs::write(d.join(rel), text).unwrap();
        }
    }
    fs::create_dir_all(t.path().join("sys/class/dmi/id")).unwrap();
    fs::write(t.path().join("sys/class/dmi/id/product_name"), "One\n").unwrap();
    let topo = Topology::discover_at(t.path()).unwrap();
    let against = |extra: &str| {
        let p: Profile =
            tomlfile::parse_str(&format!("[board]\nname = \"x\"\n{extra}"), "x.toml").unwrap();
        check_against(&p, &topo, t.path())
    };
    let expect = |extra: &str, key: &str, reason: &str| {
        let problems = against(extra);
        assert!(
            problems.iter().any(|p| p.key == key && p.reason == reason),
            "expected {key}: {reason}; got {problems:?}"
        );
    };
    assert_eq!(
        against(
            "[board.match]\ncompatible = [\"acme,one\"]\ndmi_product = [\"One\"]\ncpu_parts = [\"0xd81\"]\ncpus = 4\n"
        ),
        vec![]
    );
    expect(
        "[board.match]\ncompatible = [\"acme,two\"]\n",
        "board.match.compatible",
        "profile wants one of [\"acme,two\"], this board is [\"acme,one\"]",
    );
    expect(
        "[board.match]\ndmi_product = [\"Two\"]\n",
        "board.match.dmi_product",
        "profile wants one of [\"Two\"], this board is Some(\"One\")",
    );
    expect(
        "[board.match]\ncpu_parts = [\"0xd80\"]\n",
        "board.match.cpu_parts",
        "profile wants CPU parts [\"0xd80\"], this board has [\"0xd81\"]",
    );
    expect(
        "[board.match]\ncpus = 8\n",
        "board.match.cpus",
        "profile says 8 CPUs, this board has 4 online",
    );
    expect(
        "[[node]]\nid = 0\ncpus = \"0-3\"\n",
        "node",
        "profile has 1 nodes, this board has 2 (2 nodes: node0 cpus 0-1 (1024 MiB), node1 cpus 2-3 (1024 MiB))",
    );
    expect(
        "[[node]]\nid = 0\ncpus = \"0-1\"\n[[node]]\nid = 5\ncpus = \"2-3\"\n",
        "node[1].id",
        "this board has no node 5",
    );
    expect(
        "[[cluster]]\nname = \"c\"\ncpus = \"1-2\"\n",
        "cluster[0].cpus",
        "1-2 spans hardware clusters; this board's are 0-1 2-3",
    );
    expect(
        "[[cache]]\nlevel = 3\ncpus = \"0-3\"\n",
        "cache[0].cpus",
        "no L3 is shared by 0-3 here; L3 domains are 0-1 2-3",
    );
    expect(
        "[[device]]\nname = \"npu0\"\nkind = \"npu\"\ndriver = \"nonexistent-npu\"\n",
        "device[0]",
        "npu0 not found (driver nonexistent-npu)",
    );
    assert_eq!(
        against(
            "[[device]]\nname = \"npu0\"\nkind = \"npu\"\ndriver = \"nonexistent-npu\"\noptional = true\n"
        ),
        vec![],
        "optional devices may be absent"
    );
    fs::write(t.path().join("sys/class/net/eth0/device/numa_node"), "1").unwrap();
    expect(
        "[[device]]\nname = \"nic0\"\nkind = \"nic\"\ninterface = \"eth0\"\nnode = 0\n",
        "device[0].node",
        "profile says node 0, the kernel says node 1",
    );
}

#[test]
fn a_driver_is_found_by_its_bound_devices_not_its_module_link() {
    let t = tempfile::tempdir().unwrap();
    let drv = t.path().join("sys/bus/platform/drivers/armchina");
    fs::create_dir_all(&drv).unwrap();
    let module = t.path().join("sys/module/aipu");
    fs::create_dir_all(&module).unwrap();
    fs::write(module.join("uevent"), "").unwrap();
    std::os::unix::fs::symlink(&module, drv.join("module")).unwrap();
    fs::write(drv.join("uevent"), "").unwrap();
    let npu: Device =
        toml::from_str("name = \"npu0\"\nkind = \"npu\"\ndriver = \"armchina\"\n").unwrap();
    assert_eq!(
        npu.locator().sysfs_dir(t.path()),
        None,
        "loaded driver, no device bound"
    );
    let dev = t.path().join("sys/devices/platform/14260000.aipu");
    fs::create_dir_all(&dev).unwrap();
    std::os::unix::fs::symlink(&dev, drv.join("14260000.aipu")).unwrap();
    assert_eq!(
        npu.locator().sysfs_dir(t.path()),
        Some(drv.join("14260000.aipu"))
    );
}

#[test]
fn a_device_node_is_found_by_its_number_in_sysfs() {
    let full: Device =
        toml::from_str("name = \"npu0\"\nkind = \"npu\"\ndev = \"/dev/full\"\n").unwrap();
    assert_eq!(
        full.locator().sysfs_dir(std::path::Path::new("/")),
        Some(std::path::PathBuf::from("/sys/dev/char/1:7"))
    );
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("dev")).unwrap();
    fs::write(t.path().join("dev/accel0"), "").unwrap();
    let file: Device =
        toml::from_str("name = \"npu0\"\nkind = \"npu\"\ndev = \"/dev/accel0\"\n").unwrap();
    assert_eq!(file.locator().sysfs_dir(t.path()), None, "a regular file");
    let absent: Device =
        toml::from_str("name = \"npu0\"\nkind = \"npu\"\ndev = \"/dev/accel1\"\n").unwrap();
    assert_eq!(absent.locator().sysfs_dir(t.path()), None, "absent");
}

/// A run that crashed (no restore) left the sysctls modified: the next run
/// takes the originals from the journal, puts back what its own profile no
/// longer sets, and its clean stop restores the true originals.
#[test]
fn originals_survive_a_crash_through_the_journal() {
    let t = tempfile::tempdir().unwrap();
    board(t.path(), &[("0-1", 1000)], "", |_| 0);
    let root = t.path();
    let sysctl = |name: &str| root.join("proc/sys/vm").join(name);
    fs::create_dir_all(sysctl("x").parent().unwrap()).unwrap();
    fs::write(sysctl("stat_interval"), "1\n").unwrap();
    fs::write(sysctl("swappiness"), "60\n").unwrap();
    let read = |name: &str| fs::read_to_string(sysctl(name)).unwrap().trim().to_owned();
    let topo = Topology::discover_at(root).unwrap();
    let journal_path = root.join("run/profile-originals.json");

    let both =
        parse("[sysctl]\n\"vm.stat_interval\" = \"7\"\n\"vm.swappiness\" = \"10\"\n").unwrap();
    let (journal, problem) = journal::Journal::open(&journal_path);
    assert_eq!(problem, None);
    let first = apply(&both, &topo, root, journal);
    assert_eq!(
        (read("stat_interval"), read("swappiness")),
        ("7".into(), "10".into())
    );
    assert!(
        journal_path.exists(),
        "originals journaled before the writes"
    );
    drop(first); // killed: nothing restored

    // The next run's profile sets only one of them.
    let one = parse("[sysctl]\n\"vm.stat_interval\" = \"7\"\n").unwrap();
    let (journal, _) = journal::Journal::open(&journal_path);
    let mut second = apply(&one, &topo, root, journal);
    assert_eq!(
        read("swappiness"),
        "60",
        "put back: this profile does not set it"
    );
    assert_eq!(read("stat_interval"), "7");
    assert_eq!(second.changes.len(), 1);
    assert_eq!(second.changes[0].original, "1", "the true original, not 7");
    assert!(second.restore().is_empty());
    assert_eq!(read("stat_interval"), "1");
    assert!(!journal_path.exists(), "a clean stop leaves no journal");
}
