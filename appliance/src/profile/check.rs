//! The rules a profile must satisfy: on its own (`nodus profile check`), and
//! against the machine it is about to be applied to (at boot). Each problem
//! names the key and says exactly what differs.

use std::{collections::BTreeSet, fmt, path::Path};

use nodus_common::sched::{MAX_LAYERS, MAX_RULES};

use super::{Device, LayerPolicy, Profile, WorkPlacement};
use crate::board::{CpuList, Topology};

/// One thing wrong with a profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The key, `node[1].cpus`.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {}: {}", self.key, self.reason)
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            reason: reason.into(),
        });
    }
}

fn is_subset(a: &CpuList, b: &BTreeSet<u32>) -> Vec<u32> {
    a.cpus().filter(|c| !b.contains(c)).collect()
}

fn list(cpus: &[u32]) -> String {
    cpus.iter().copied().collect::<CpuList>().to_string()
}

/// Internal consistency: references resolve, every CPU is in exactly one node,
/// each rule names exactly one target.
pub fn check_structure(p: &Profile) -> Vec<Problem> {
    let mut out = Problems(Vec::new());
    if p.board.name.trim().is_empty() {
        out.add("board.name", "must not be empty");
    }
    let mut node_cpus = BTreeSet::new();
    let mut node_ids = BTreeSet::new();
    for (i, n) in p.nodes.iter().enumerate() {
        if !node_ids.insert(n.id) {
            out.add(
                format!("node[{i}].id"),
                format!("node {} is listed twice", n.id),
            );
        }
        if n.cpus.is_empty() {
            out.add(format!("node[{i}].cpus"), "a node needs at least one CPU");
        }
        for c in n.cpus.cpus() {
            if !node_cpus.insert(c) {
                out.add(
                    format!("node[{i}].cpus"),
                    format!("CPU {c} is already in another node"),
                );
            }
        }
    }
    let have_nodes = !p.nodes.is_empty();
    // A reference to node `n` at `key` (only checkable when nodes are declared).
    let node_ref = |key: String, n: Option<u32>, out: &mut Problems| {
        if let Some(n) = n
            && have_nodes
            && !node_ids.contains(&n)
        {
            out.add(key, format!("there is no node {n}"));
        }
    };
    let in_nodes = |key: String, cpus: &CpuList, out: &mut Problems| {
        let stray = is_subset(cpus, &node_cpus);
        if have_nodes && !stray.is_empty() {
            out.add(key, format!("CPUs {} are in no [[node]]", list(&stray)));
        }
    };
    let mut cluster_names = BTreeSet::new();
    let mut clustered = BTreeSet::new();
    for (i, c) in p.clusters.iter().enumerate() {
        if !cluster_names.insert(c.name.as_str()) {
            out.add(
                format!("cluster[{i}].name"),
                format!("cluster {} is listed twice", c.name),
            );
        }
        in_nodes(format!("cluster[{i}].cpus"), &c.cpus, &mut out);
        for cpu in c.cpus.cpus() {
            if !clustered.insert(cpu) {
                out.add(
                    format!("cluster[{i}].cpus"),
                    format!("CPU {cpu} is already in another cluster"),
                );
            }
        }
    }
    for (i, c) in p.caches.iter().enumerate() {
        if !(2..=4).contains(&c.level) {
            out.add(
                format!("cache[{i}].level"),
                "must be 2, 3 or 4 (L1 is per core)",
            );
        }
        in_nodes(format!("cache[{i}].cpus"), &c.cpus, &mut out);
    }
    let mut device_names = BTreeSet::new();
    for (i, d) in p.devices.iter().enumerate() {
        if !device_names.insert(d.name.as_str()) {
            out.add(
                format!("device[{i}].name"),
                format!("device {} is listed twice", d.name),
            );
        }
        let locators = [
            d.sysfs.is_some(),
            d.interface.is_some(),
            d.dev.is_some(),
            d.driver.is_some(),
        ];
        if locators.iter().filter(|&&x| x).count() != 1 {
            out.add(
                format!("device[{i}]"),
                "give exactly one of sysfs, interface, dev or driver",
            );
        }
        if let Some(dev) = &d.dev
            && !dev.starts_with("/dev/")
        {
            out.add(
                format!("device[{i}].dev"),
                format!("{dev} is not a device node under /dev/"),
            );
        }
        node_ref(format!("device[{i}].node"), d.node, &mut out);
    }
    let target_ok = |key: &str,
                     cpus: Option<&CpuList>,
                     cluster: Option<&String>,
                     node: Option<u32>,
                     out: &mut Problems| {
        let given = [cpus.is_some(), cluster.is_some(), node.is_some()];
        if given.iter().filter(|&&x| x).count() != 1 {
            out.add(key, "give exactly one of cpus, cluster or node");
        }
        if let Some(c) = cluster
            && !cluster_names.contains(c.as_str())
        {
            out.add(format!("{key}.cluster"), format!("there is no cluster {c}"));
        }
        node_ref(format!("{key}.node"), node, out);
    };
    let placements: [(&str, &Option<WorkPlacement>); 5] = [
        ("runtime", &p.placement.runtime),
        ("fileserver", &p.placement.fileserver),
        ("proxy", &p.placement.proxy),
        ("telemetry", &p.placement.telemetry),
        ("ebpf_events", &p.placement.ebpf_events),
    ];
    for (name, w) in placements {
        let Some(w) = w else { continue };
        let key = format!("placement.{name}");
        target_ok(&key, w.cpus.as_ref(), w.cluster.as_ref(), w.node, &mut out);
        if let Some(c) = &w.cpus {
            in_nodes(format!("{key}.cpus"), c, &mut out);
        }
        for &n in &w.mem_nodes {
            node_ref(format!("{key}.mem_nodes"), Some(n), &mut out);
        }
    }
    if p.layers.len() > MAX_LAYERS as usize {
        out.add("layer", format!("at most {MAX_LAYERS} layers"));
    }
    let mut layer_names = BTreeSet::new();
    for (i, l) in p.layers.iter().enumerate() {
        let key = format!("layer[{i}]");
        if !layer_names.insert(l.name.as_str()) {
            out.add(
                format!("{key}.name"),
                format!("layer {} is listed twice", l.name),
            );
        }
        target_ok(&key, l.cpus.as_ref(), l.cluster.as_ref(), None, &mut out);
        if let Some(c) = &l.cpus {
            in_nodes(format!("{key}.cpus"), c, &mut out);
        }
        if l.matches.is_empty() {
            out.add(
                format!("{key}.match"),
                "a layer needs at least one match rule",
            );
        }
        for (j, m) in l.matches.iter().enumerate() {
            let n = [
                m.comm_prefix.is_some(),
                m.cgroup_prefix.is_some(),
                m.exe.is_some(),
                m.nice.is_some(),
                m.uid.is_some(),
                m.class.is_some(),
                m.device.is_some(),
            ];
            if n.iter().filter(|&&x| x).count() != 1 {
                out.add(
                    format!("{key}.match[{j}]"),
                    "give exactly one of comm_prefix, cgroup_prefix, exe, nice, uid, class or device",
                );
            }
            if let Some(c) = &m.class
                && crate::workload::Class::parse(c).is_none()
            {
                out.add(
                    format!("{key}.match[{j}].class"),
                    "a class is latency, batch or idle",
                );
            }
            if let Some(d) = &m.device
                && !p.devices.iter().any(|dev| &dev.name == d)
            {
                out.add(
                    format!("{key}.match[{j}].device"),
                    format!("no [[device]] named {d:?} in this profile"),
                );
            }
            if let Some(prefix) = &m.comm_prefix
                && (prefix.is_empty() || prefix.len() > 15)
            {
                out.add(
                    format!("{key}.match[{j}].comm_prefix"),
                    "a comm prefix is 1 to 15 bytes (the kernel keeps 15)",
                );
            }
            if let Some([low, high]) = m.nice
                && !(-20 <= low && low <= high && high <= 19)
            {
                out.add(
                    format!("{key}.match[{j}].nice"),
                    "a nice range is [low, high] with -20 <= low <= high <= 19",
                );
            }
        }
        if l.matches.len() > MAX_RULES {
            out.add(
                format!("{key}.match"),
                format!("at most {MAX_RULES} match rules per layer"),
            );
        }
        if l.slice_us.is_some_and(|s| !(100..=1_000_000).contains(&s)) {
            out.add(
                format!("{key}.slice_us"),
                "a slice is 100 to 1000000 microseconds",
            );
        }
        if l.min_cpus.is_some() && l.policy != LayerPolicy::Grouped {
            out.add(format!("{key}.min_cpus"), "only a grouped layer is resized");
        }
    }
    for (i, q) in p.irqs.iter().enumerate() {
        let key = format!("irq[{i}]");
        if !device_names.contains(q.device.as_str()) {
            out.add(
                format!("{key}.device"),
                format!("there is no device {}", q.device),
            );
        }
        if q.node.is_some() == q.cpus.is_some() {
            out.add(&key, "give exactly one of node or cpus");
        }
        node_ref(format!("{key}.node"), q.node, &mut out);
        if let Some(c) = &q.cpus {
            in_nodes(format!("{key}.cpus"), c, &mut out);
        }
    }
    for (name, value) in &p.sysctl {
        let valid = !name.is_empty()
            && name.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
        if !valid {
            out.add(
                format!("sysctl.{name:?}"),
                "not a sysctl name (dotted, like vm.swappiness)",
            );
        }
        if value.contains('\n') {
            out.add(format!("sysctl.{name:?}"), "value must be one line");
        }
    }
    out.0
}

/// The profile against the machine: identity, nodes, clusters, caches and
/// devices must be what the profile says, or it is the wrong profile.
pub fn check_against(p: &Profile, topo: &Topology, root: &Path) -> Vec<Problem> {
    let mut out = Problems(Vec::new());
    let m = &p.board.matches;
    let id = &topo.identity;
    if !m.compatible.is_empty() && !m.compatible.iter().any(|c| id.compatible.contains(c)) {
        out.add(
            "board.match.compatible",
            format!(
                "profile wants one of {:?}, this board is {:?}",
                m.compatible, id.compatible
            ),
        );
    }
    if !m.dmi_product.is_empty()
        && !id
            .dmi_product
            .as_ref()
            .is_some_and(|d| m.dmi_product.contains(d))
    {
        out.add(
            "board.match.dmi_product",
            format!(
                "profile wants one of {:?}, this board is {:?}",
                m.dmi_product, id.dmi_product
            ),
        );
    }
    if !m.cpu_parts.is_empty() {
        let wanted: Vec<String> = m.cpu_parts.iter().map(|s| s.to_lowercase()).collect();
        let foreign: Vec<&String> = id
            .cpu_parts
            .iter()
            .filter(|p| !wanted.contains(p))
            .collect();
        if id.cpu_parts.is_empty() || !foreign.is_empty() {
            out.add(
                "board.match.cpu_parts",
                format!(
                    "profile wants CPU parts {:?}, this board has {:?}",
                    m.cpu_parts, id.cpu_parts
                ),
            );
        }
    }
    if let Some(n) = m.cpus
        && n != topo.online_cpus.len()
    {
        out.add(
            "board.match.cpus",
            format!(
                "profile says {n} CPUs, this board has {} online",
                topo.online_cpus.len()
            ),
        );
    }
    if !p.nodes.is_empty() && p.nodes.len() != topo.nodes.len() {
        out.add(
            "node",
            format!(
                "profile has {} nodes, this board has {} ({})",
                p.nodes.len(),
                topo.nodes.len(),
                topo.summary()
            ),
        );
    }
    for (i, n) in p.nodes.iter().enumerate() {
        let Some(found) = topo.nodes.iter().find(|t| t.id == n.id) else {
            out.add(
                format!("node[{i}].id"),
                format!("this board has no node {}", n.id),
            );
            continue;
        };
        if found.cpus != n.cpus {
            out.add(
                format!("node[{i}].cpus"),
                format!("profile says {}, this board has {}", n.cpus, found.cpus),
            );
        }
        if let Some(want) = n.memory_mib {
            let have = found.memory_mib;
            let ok = if want == 0 {
                have == 0
            } else {
                have.abs_diff(want) * 100 <= want * 15
            };
            if !ok {
                out.add(
                    format!("node[{i}].memory_mib"),
                    format!("profile says {want} MiB, this board has {have} MiB"),
                );
            }
        }
    }
    // A profile's cluster may split a hardware cluster (big and LITTLE cores
    // behind one DSU) but never span two; with `part`, every CPU in it must be
    // that core type.
    for (i, c) in p.clusters.iter().enumerate() {
        let fits = topo.clusters.is_empty()
            || topo
                .clusters
                .iter()
                .any(|g| c.cpus.cpus().all(|cpu| g.cpus.cpus().any(|x| x == cpu)));
        if !fits {
            let have: Vec<String> = topo.clusters.iter().map(|g| g.cpus.to_string()).collect();
            out.add(
                format!("cluster[{i}].cpus"),
                format!(
                    "{} spans hardware clusters; this board's are {}",
                    c.cpus,
                    have.join(" ")
                ),
            );
        }
        if let Some(want) = &c.part {
            let want = want.to_lowercase();
            for cpu in c.cpus.cpus() {
                match topo.identity.part_of_cpu.get(&cpu) {
                    Some(have) if *have == want => {}
                    Some(have) => {
                        out.add(
                            format!("cluster[{i}].part"),
                            format!("CPU {cpu} is part {have}, profile says {want}"),
                        );
                        break;
                    }
                    None => {
                        out.add(
                            format!("cluster[{i}].part"),
                            format!("CPU {cpu}'s MIDR is not readable, cannot confirm part {want}"),
                        );
                        break;
                    }
                }
            }
        }
    }
    for (i, c) in p.caches.iter().enumerate() {
        let same_level: Vec<&CpuList> = topo
            .caches
            .iter()
            .filter(|g| g.level == c.level)
            .map(|g| &g.cpus)
            .collect();
        if !same_level.is_empty() && !same_level.contains(&&c.cpus) {
            let have: Vec<String> = same_level.iter().map(|c| c.to_string()).collect();
            out.add(
                format!("cache[{i}].cpus"),
                format!(
                    "no L{} is shared by {} here; L{} domains are {}",
                    c.level,
                    c.cpus,
                    c.level,
                    have.join(" ")
                ),
            );
        }
    }
    for (i, d) in p.devices.iter().enumerate() {
        match d.locator().sysfs_dir(root) {
            None if !d.optional => out.add(
                format!("device[{i}]"),
                format!("{} not found ({})", d.name, locator(d)),
            ),
            None => {}
            Some(dir) => {
                let node = std::fs::read_to_string(dir.join("numa_node"))
                    .or_else(|_| std::fs::read_to_string(dir.join("device/numa_node")))
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok());
                if let (Some(want), Some(have)) = (d.node, node)
                    && have >= 0
                    && have != i64::from(want)
                {
                    out.add(
                        format!("device[{i}].node"),
                        format!("profile says node {want}, the kernel says node {have}"),
                    );
                }
            }
        }
    }
    out.0
}

fn locator(d: &Device) -> String {
    match (&d.sysfs, &d.interface, &d.dev, &d.driver) {
        (Some(s), _, _, _) => format!("sysfs {s}"),
        (_, Some(i), _, _) => format!("interface {i}"),
        (_, _, Some(dev), _) => format!("device node {dev}"),
        (_, _, _, Some(dr)) => format!("driver {dr}"),
        _ => "no locator".into(),
    }
}
