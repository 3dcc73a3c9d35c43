//! Which node each process belongs on, from the board profile: nodus itself
//! where `[placement.runtime]` puts it, a process that opened one of the
//! profile's accelerators on that device's node, a layer's tasks on the
//! node holding all of its CPUs.
//!
//! A process whose CPU affinity lies within one node (taskset, `numactl
//! --cpunodebind`, a cpuset) belongs on that node: it cannot run anywhere
//! else, so its memory should be there, whatever its layer prefers.
//! Otherwise a task joins the first layer with a matching rule, as in the
//! scheduler; a layer spanning nodes (or an open layer) gives its tasks no
//! home.

use std::{collections::HashMap, path::PathBuf};

use crate::{
    board::Topology,
    profile::{DeviceKind, LayerMatch, LayerPolicy, Profile, Rule, placement_cpus},
    workload::Class,
};

use super::procs::{self, Proc};

/// One layer as the locality component sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerHome {
    /// The layer's name.
    pub name: String,
    /// The node holding all of its CPUs, if one does.
    pub node: Option<u32>,
    /// Its rules, in profile order.
    pub rules: Vec<Rule>,
}

/// Every node's CPUs and who belongs where.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Homes {
    /// Each node's number and CPUs, ascending.
    pub nodes: Vec<(u32, Vec<u32>)>,
    /// nodus's own node, from `[placement.runtime]`.
    pub nodus: Option<u32>,
    /// The profile's layers, in order.
    pub layers: Vec<LayerHome>,
    /// The profile's accelerators with a device node and a NUMA node.
    pub devices: Vec<DeviceHome>,
}

/// An accelerator (NPU, GPU) whose users belong on its node.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceHome {
    /// The profile's name for it.
    pub name: String,
    /// Its character device node.
    pub dev: PathBuf,
    /// The node it is attached to: the profile's, or the kernel's.
    pub node: u32,
}

/// Processes that opened an accelerator: pid to (start time, index in
/// `Homes::devices`).
pub type DeviceUsers = HashMap<u32, (u64, usize)>;

/// Why a process has a home.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// It is nodus, placed by `[placement.runtime]`.
    Placement,
    /// Its layer's CPUs are on the node.
    Layer(String),
    /// It opened the accelerator of this name, attached to the node.
    Device(String),
    /// It may only run on the node's CPUs.
    Affinity,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Placement => f.write_str("placement"),
            Reason::Layer(l) => write!(f, "layer {l}"),
            Reason::Device(d) => write!(f, "device {d}"),
            Reason::Affinity => f.write_str("affinity"),
        }
    }
}

impl Homes {
    /// The homes `profile` gives on `topo`.
    pub fn resolve(profile: &Profile, topo: &Topology) -> Homes {
        let homes = Homes {
            nodes: topo
                .nodes
                .iter()
                .map(|n| (n.id, n.cpus.cpus().collect()))
                .collect(),
            ..Homes::default()
        };
        let node_of = |cpus: &[u32]| homes.node_holding(cpus);
        let nodus = profile
            .placement
            .runtime
            .as_ref()
            .and_then(|w| placement_cpus(w, profile, topo))
            .and_then(|c| node_of(&c.cpus().collect::<Vec<_>>()));
        let layers = profile
            .layers
            .iter()
            .map(|l| {
                let cpus: Vec<u32> = l
                    .cpu_list(profile)
                    .map(|c| c.cpus().collect())
                    .unwrap_or_default();
                LayerHome {
                    name: l.name.clone(),
                    node: (l.policy != LayerPolicy::Open)
                        .then(|| node_of(&cpus))
                        .flatten(),
                    rules: l.matches.iter().filter_map(LayerMatch::rule).collect(),
                }
            })
            .collect();
        let devices = profile
            .devices
            .iter()
            .filter(|d| {
                matches!(
                    d.kind,
                    DeviceKind::Npu | DeviceKind::Gpu | DeviceKind::Accelerator
                )
            })
            .filter_map(|d| {
                let dev = d.dev.as_ref()?;
                let node = d.node.or_else(|| kernel_node(d))?;
                Some(DeviceHome {
                    name: d.name.clone(),
                    dev: PathBuf::from(dev),
                    node,
                })
            })
            .collect();
        Homes {
            nodus,
            layers,
            devices,
            ..homes
        }
    }

    /// Whether the board has more than one node (otherwise nothing is
    /// ever misplaced).
    pub fn numa(&self) -> bool {
        self.nodes.len() > 1
    }

    /// The position of node `id` in `nodes`.
    pub fn index_of(&self, id: u32) -> Option<usize> {
        self.nodes.iter().position(|(n, _)| *n == id)
    }

    /// The node whose CPUs include all of `cpus`, if one does.
    pub fn node_holding(&self, cpus: &[u32]) -> Option<u32> {
        let first = self.node_of_cpu(*cpus.first()?)?;
        cpus.iter()
            .all(|&c| self.node_of_cpu(c) == Some(first))
            .then_some(first)
    }

    /// Every CPU with its node, for the kernel's CPU-to-node map.
    pub fn cpu_nodes(&self) -> Vec<(u32, u32)> {
        self.nodes
            .iter()
            .flat_map(|(n, cpus)| cpus.iter().map(move |c| (*c, *n)))
            .collect()
    }

    /// The node a CPU belongs to.
    pub fn node_of_cpu(&self, cpu: u32) -> Option<u32> {
        self.nodes
            .iter()
            .find(|(_, cpus)| cpus.contains(&cpu))
            .map(|(n, _)| *n)
    }
}

/// The node the kernel says a device is attached to.
fn kernel_node(d: &crate::profile::Device) -> Option<u32> {
    let dir = d.locator().sysfs_dir(std::path::Path::new("/"))?;
    let text = std::fs::read_to_string(dir.join("numa_node"))
        .or_else(|_| std::fs::read_to_string(dir.join("device/numa_node")))
        .ok()?;
    text.trim().parse::<u32>().ok()
}

/// Decides homes for one look: the executables the rules name are looked
/// up once per look (a file replaced since is seen).
pub struct Matcher<'a> {
    homes: &'a Homes,
    exes: HashMap<&'a std::path::Path, Option<(u64, u64)>>,
    me: u32,
    users: Option<&'a DeviceUsers>,
    classes: Option<&'a HashMap<u32, Class>>,
}

impl<'a> Matcher<'a> {
    /// A matcher for `homes`; `me` is nodus's pid.
    pub fn new(homes: &'a Homes, me: u32) -> Matcher<'a> {
        let exes = homes
            .layers
            .iter()
            .flat_map(|l| &l.rules)
            .filter_map(|r| match r {
                Rule::Exe(p) => Some((p.as_path(), procs::file_id(p))),
                _ => None,
            })
            .collect();
        Matcher {
            homes,
            exes,
            me,
            users: None,
            classes: None,
        }
    }

    /// The same, knowing each process's workload class (for `class`
    /// rules).
    pub fn with_classes(self, classes: &'a HashMap<u32, Class>) -> Matcher<'a> {
        Matcher {
            classes: Some(classes),
            ..self
        }
    }

    /// The same, knowing which processes opened an accelerator.
    pub fn with_users(self, users: &'a DeviceUsers) -> Matcher<'a> {
        Matcher {
            users: Some(users),
            ..self
        }
    }

    /// The node `p` belongs on and why, if any; `affinity`: whether to
    /// ask the kernel for its CPU affinity (a syscall per process).
    pub fn home_of(&self, p: &Proc, affinity: bool) -> Option<(u32, Reason)> {
        if p.pid == self.me {
            return self.homes.nodus.map(|n| (n, Reason::Placement));
        }
        // Before affinity: nodus itself pins accelerator users to the
        // device's node, and the reason shown should stay the device.
        if let Some(&(start, i)) = self.users.and_then(|u| u.get(&p.pid))
            && start == p.start
            && let Some(d) = self.homes.devices.get(i)
        {
            return Some((d.node, Reason::Device(d.name.clone())));
        }
        if affinity && self.homes.numa() {
            let pinned = procs::affinity_of(p.pid).and_then(|c| self.homes.node_holding(&c));
            if let Some(node) = pinned {
                return Some((node, Reason::Affinity));
            }
        }
        let layer = self
            .homes
            .layers
            .iter()
            .find(|l| l.rules.iter().any(|r| self.matches(r, p)))?;
        Some((layer.node?, Reason::Layer(layer.name.clone())))
    }

    fn matches(&self, rule: &Rule, p: &Proc) -> bool {
        match rule {
            Rule::CommPrefix(prefix) => p.comm.starts_with(prefix.as_str()),
            // Every path starts with "/": no need to read it.
            Rule::CgroupPrefix(prefix) if prefix == "/" => true,
            Rule::CgroupPrefix(prefix) => {
                procs::cgroup_of(p.pid).is_some_and(|c| c.starts_with(prefix.as_str()))
            }
            Rule::Exe(path) => match self.exes.get(path.as_path()) {
                Some(Some(id)) => procs::exe_of(p.pid) == Some(*id),
                _ => false,
            },
            Rule::Nice(lo, hi) => (*lo..=*hi).contains(&p.nice),
            Rule::Uid(uid) => procs::euid_of(p.pid) == Some(*uid),
            Rule::Class(class) => self
                .classes
                .and_then(|c| c.get(&p.pid))
                .is_some_and(|c| c == class),
            Rule::Device(name) => self
                .users
                .and_then(|u| u.get(&p.pid))
                .filter(|(start, _)| *start == p.start)
                .and_then(|(_, i)| self.homes.devices.get(*i))
                .is_some_and(|d| &d.name == name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(text: &str) -> Profile {
        toml::from_str(text).unwrap()
    }

    const PROFILE: &str = r#"
[board]
name = "t"
[placement.runtime]
cpus = "2-3"
[[layer]]
name = "critical"
match = [{ comm_prefix = "critical" }]
cpus = "2-3"
policy = "confined"
[[layer]]
name = "wide"
match = [{ comm_prefix = "wide" }]
cpus = "1-2"
policy = "grouped"
[[layer]]
name = "rest"
match = [{ nice = [0, 19] }]
cpus = "0-1"
policy = "grouped"
"#;

    fn proc(pid: u32, comm: &str, nice: i32) -> Proc {
        Proc {
            pid,
            comm: comm.into(),
            nice,
            rss_pages: 1,
            ..Proc::default()
        }
    }

    #[test]
    fn an_accelerator_user_belongs_on_the_devices_node_before_its_layer() {
        let text = format!(
            "{PROFILE}\n[[device]]\nname = \"npu0\"\nkind = \"npu\"\ndev = \"/dev/accel/accel0\"\nnode = 0\n\
             [[device]]\nname = \"nic0\"\nkind = \"nic\"\ninterface = \"eth0\"\nnode = 0\n"
        );
        let homes = Homes::resolve(&profile(&text), &Topology::two_nodes());
        assert_eq!(
            homes.devices,
            vec![DeviceHome {
                name: "npu0".into(),
                dev: "/dev/accel/accel0".into(),
                node: 0
            }],
            "accelerators with a device node only"
        );
        let users: DeviceUsers = [(7, (100, 0))].into();
        let m = Matcher::new(&homes, 42).with_users(&users);
        let mut critical = proc(7, "critical-io", 0);
        critical.start = 100;
        assert_eq!(
            m.home_of(&critical, false),
            Some((0, Reason::Device("npu0".into())))
        );
        // The same pid, another process (started later): its layer again.
        critical.start = 200;
        assert_eq!(
            m.home_of(&critical, false),
            Some((1, Reason::Layer("critical".into())))
        );
    }

    #[test]
    fn a_class_layer_on_one_node_is_the_home_of_that_class() {
        let text = PROFILE.replace(
            "match = [{ comm_prefix = \"critical\" }]",
            "match = [{ class = \"latency\" }]",
        );
        let homes = Homes::resolve(&profile(&text), &Topology::two_nodes());
        let classes: HashMap<u32, Class> = [(7, Class::Latency), (8, Class::Batch)].into();
        let m = Matcher::new(&homes, 42).with_classes(&classes);
        assert_eq!(
            m.home_of(&proc(7, "server", -5), false),
            Some((1, Reason::Layer("critical".into())))
        );
        assert_eq!(m.home_of(&proc(8, "server", -5), false), None);
        let unknown = Matcher::new(&homes, 42);
        assert_eq!(unknown.home_of(&proc(7, "server", -5), false), None);
    }

    #[test]
    fn a_layer_on_one_node_is_a_home_and_the_first_match_wins() {
        let homes = Homes::resolve(&profile(PROFILE), &Topology::two_nodes());
        assert_eq!(homes.nodus, Some(1));
        assert_eq!(homes.layers[0].node, Some(1));
        assert_eq!(homes.layers[1].node, None, "CPUs on both nodes");
        let m = Matcher::new(&homes, 42);
        assert_eq!(
            m.home_of(&proc(7, "critical-io", 0), false),
            Some((1, Reason::Layer("critical".into())))
        );
        // In a layer spanning nodes: no home, though a later layer matches.
        assert_eq!(m.home_of(&proc(8, "wide", 0), false), None);
        assert_eq!(
            m.home_of(&proc(9, "other", 5), false),
            Some((0, Reason::Layer("rest".into())))
        );
        assert_eq!(m.home_of(&proc(10, "other", -5), false), None, "no layer");
        assert_eq!(
            m.home_of(&proc(42, "nodus", 0), false),
            Some((1, Reason::Placement))
        );
    }

    #[test]
    fn a_process_allowed_on_one_node_only_belongs_there() {
        // This process's CPUs, all on "node 3" of a made-up board.
        let mine = procs::affinity_of(std::process::id()).unwrap();
        // A layer on node 4 matches it too: where it may run wins.
        let homes = Homes {
            nodes: vec![(3, mine.clone()), (4, vec![10_000])],
            layers: vec![LayerHome {
                name: "elsewhere".into(),
                node: Some(4),
                rules: vec![Rule::CommPrefix("test".into())],
            }],
            ..Homes::default()
        };
        let me = proc(std::process::id(), "test", 0);
        let m = Matcher::new(&homes, 1);
        assert_eq!(m.home_of(&me, true), Some((3, Reason::Affinity)));
        assert_eq!(
            m.home_of(&me, false),
            Some((4, Reason::Layer("elsewhere".into()))),
            "affinity not asked"
        );
        // Allowed on CPUs of both nodes: no home.
        let split = Homes {
            nodes: vec![(3, mine[..1].to_vec()), (4, mine[1..].to_vec())],
            layers: vec![],
            ..homes.clone()
        };
        if mine.len() > 1 {
            assert_eq!(Matcher::new(&split, 1).home_of(&me, true), None);
        }
    }
}
