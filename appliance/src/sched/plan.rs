//! The scheduler's typed model: the profile's `[[layer]]` tables resolved on
//! this board (a layer's CPUs from its cpulist or cluster, scheduling
//! domains from the NUMA nodes), and their encoding for the BPF policy.
//!
//! Resolved once, when the profile is applied; the component only reads it.

use nodus_common::sched as abi;

pub use crate::profile::Rule;
use crate::{
    board::Topology,
    profile::{LayerMatch, LayerPolicy, Profile},
};

/// One layer, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Its name in the profile.
    pub name: String,
    /// How it shares CPUs.
    pub policy: LayerPolicy,
    /// Its CPUs (ascending; a grouped layer owns a prefix of them, an open
    /// layer owns none).
    pub cpus: Vec<u32>,
    /// The fewest CPUs a grouped layer is shrunk to.
    pub min_cpus: u32,
    /// Whether its wakeups preempt.
    pub preempt: bool,
    /// Its time slice, ns (0: the kernel's default).
    pub slice_ns: u64,
    /// Its rules, in profile order.
    pub rules: Vec<Rule>,
}

/// What the scheduler is asked to do on this board.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The profile's layers, in order (a task joins the first that matches;
    /// the default open layer, `default`, takes the rest).
    pub layers: Vec<Layer>,
    /// Each possible CPU's scheduling domain (its NUMA node's index), by CPU.
    pub cpu_dom: Vec<u32>,
    /// Scheduling domains.
    pub nr_doms: u32,
}

/// The name status gives the layer of tasks no rule matches.
pub const DEFAULT_LAYER: &str = "default";

impl Plan {
    /// The plan for `profile` on `topo`, or `None` when the profile has no
    /// layers (nothing to schedule).
    pub fn resolve(profile: &Profile, topo: &Topology) -> Option<Plan> {
        if profile.layers.is_empty() {
            return None;
        }
        let max_cpu = topo.online_cpus.cpus().max().unwrap_or(0);
        let nr_cpus = (max_cpu + 1).min(abi::MAX_CPUS);
        let mut cpu_dom = vec![0; nr_cpus as usize];
        for (dom, node) in topo.nodes.iter().enumerate().take(abi::MAX_DOMS as usize) {
            for cpu in node.cpus.cpus().filter(|&c| c < nr_cpus) {
                cpu_dom[cpu as usize] = dom as u32;
            }
        }
        let nr_doms = topo.nodes.len().clamp(1, abi::MAX_DOMS as usize) as u32;
        let layers = profile
            .layers
            .iter()
            .map(|l| {
                let cpus: Vec<u32> = l
                    .cpu_list(profile)
                    .map(|c| c.cpus().filter(|&c| c < nr_cpus).collect())
                    .unwrap_or_default();
                Layer {
                    name: l.name.clone(),
                    policy: l.policy,
                    min_cpus: l.min_cpus.unwrap_or(1).min(cpus.len() as u32),
                    cpus,
                    preempt: l.preempt,
                    slice_ns: l.slice_us.unwrap_or(0) * 1000,
                    rules: l.matches.iter().filter_map(LayerMatch::rule).collect(),
                }
            })
            .collect();
        Some(Plan {
            layers,
            cpu_dom,
            nr_doms,
        })
    }

    /// CPUs the scheduler describes to the kernel.
    pub fn nr_cpus(&self) -> u32 {
        self.cpu_dom.len() as u32
    }

    /// Layer `i`'s name, `default` for the default layer.
    pub fn layer_name(&self, i: usize) -> &str {
        self.layers
            .get(i)
            .map_or(DEFAULT_LAYER, |l| l.name.as_str())
    }
}

/// A comm prefix as the BPF compares it: the bytes as two little-endian
/// words and a mask of the bytes that count.
pub fn comm_words(prefix: &str) -> ([u64; 2], [u64; 2]) {
    let mut bytes = [0u8; 16];
    let mut mask = [0u8; 16];
    for (i, b) in prefix.bytes().take(15).enumerate() {
        bytes[i] = b;
        mask[i] = 0xff;
    }
    let word = |b: &[u8; 16], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    };
    (
        [word(&bytes, 0), word(&bytes, 1)],
        [word(&mask, 0), word(&mask, 1)],
    )
}

/// `comm` as the kernel keeps it (15 bytes and a NUL), as two words.
pub fn comm_of(name: &str) -> [u64; 2] {
    comm_words(name).0
}

impl Layer {
    /// The layer as the BPF policy reads it. Cgroup and executable rules
    /// only name their kind here: which cgroups and executables carry the
    /// layer's bit is in maps the component keeps current.
    pub fn encode(&self) -> abi::Layer {
        let mut out = abi::Layer {
            kind: match self.policy {
                LayerPolicy::Confined => abi::LAYER_CONFINED,
                LayerPolicy::Grouped => abi::LAYER_GROUPED,
                LayerPolicy::Open => abi::LAYER_OPEN,
            },
            preempt: u32::from(self.preempt),
            slice_ns: self.slice_ns,
            ..abi::Layer::default()
        };
        for (slot, rule) in out.rules.iter_mut().zip(&self.rules) {
            *slot = match rule {
                Rule::CommPrefix(p) => {
                    let (comm, mask) = comm_words(p);
                    abi::Rule {
                        kind: abi::RULE_COMM,
                        comm,
                        mask,
                        ..abi::Rule::default()
                    }
                }
                Rule::Nice(lo, hi) => abi::Rule {
                    kind: abi::RULE_NICE,
                    lo: *lo,
                    hi: *hi,
                    ..abi::Rule::default()
                },
                Rule::Uid(uid) => abi::Rule {
                    kind: abi::RULE_UID,
                    lo: *uid as i32,
                    ..abi::Rule::default()
                },
                Rule::CgroupPrefix(_) => abi::Rule {
                    kind: abi::RULE_CGROUP,
                    ..abi::Rule::default()
                },
                Rule::Exe(_) => abi::Rule {
                    kind: abi::RULE_EXE,
                    ..abi::Rule::default()
                },
                Rule::Class(_) | Rule::Device(_) => abi::Rule {
                    kind: abi::RULE_PROCESS,
                    ..abi::Rule::default()
                },
            };
        }
        out.nr_rules = self.rules.len().min(abi::MAX_RULES) as u32;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(text: &str) -> Profile {
        toml::from_str(text).expect("profile")
    }

    fn two_nodes() -> Topology {
        Topology::two_nodes()
    }

    #[test]
    fn comm_prefix_words_mask_only_its_bytes() {
        let (words, mask) = comm_words("crit");
        assert_eq!(words, [u64::from_le_bytes(*b"crit\0\0\0\0"), 0]);
        assert_eq!(mask, [0xffff_ffff, 0]);
        // The prefix matches a longer comm under the mask, not another one.
        let comm = comm_of("critical-loop");
        assert_eq!(comm[0] & mask[0], words[0]);
        assert_eq!(comm[1] & mask[1], words[1]);
        let other = comm_of("cron");
        assert_ne!(other[0] & mask[0], words[0]);
        // Fifteen bytes reach into the second word; the kernel keeps 15.
        let (w, m) = comm_words("abcdefghijklmnopq");
        assert_eq!(m[1], 0x00ff_ffff_ffff_ffff);
        assert_eq!(w[1] & 0xff, u64::from(b'i'));
    }

    #[test]
    fn resolves_cpus_clusters_domains_and_rules() {
        let p = profile(
            r#"
            [board]
            name = "t"
            [[cluster]]
            name = "big"
            cpus = "2-3"
            [[layer]]
            name = "critical"
            match = [{ comm_prefix = "crit" }, { nice = [-20, -10] }, { uid = 1000 }]
            cpus = "3"
            policy = "confined"
            preempt = true
            slice_us = 500
            [[layer]]
            name = "work"
            match = [{ cgroup_prefix = "/work" }, { exe = "/usr/bin/w" }]
            cluster = "big"
            policy = "grouped"
            min_cpus = 1
            "#,
        );
        let plan = Plan::resolve(&p, &two_nodes()).expect("a plan");
        assert_eq!(plan.cpu_dom, vec![0, 0, 1, 1]);
        assert_eq!(plan.nr_doms, 2);
        let crit = &plan.layers[0];
        assert_eq!(crit.cpus, vec![3]);
        assert!(crit.preempt);
        assert_eq!(crit.slice_ns, 500_000);
        assert_eq!(
            crit.rules,
            vec![
                Rule::CommPrefix("crit".into()),
                Rule::Nice(-20, -10),
                Rule::Uid(1000)
            ]
        );
        assert_eq!(plan.layers[1].cpus, vec![2, 3]);
        assert_eq!(plan.layer_name(2), DEFAULT_LAYER);

        let enc = crit.encode();
        assert_eq!(enc.kind, abi::LAYER_CONFINED);
        assert_eq!(enc.nr_rules, 3);
        assert_eq!(enc.rules[0].kind, abi::RULE_COMM);
        assert_eq!((enc.rules[1].lo, enc.rules[1].hi), (-20, -10));
        assert_eq!(enc.rules[2].lo, 1000);
        let work = plan.layers[1].encode();
        assert_eq!(work.kind, abi::LAYER_GROUPED);
        assert_eq!(work.rules[0].kind, abi::RULE_CGROUP);
        assert_eq!(work.rules[1].kind, abi::RULE_EXE);
    }

    #[test]
    fn no_layers_no_plan() {
        let p = profile("[board]\nname = \"t\"\n");
        assert!(Plan::resolve(&p, &two_nodes()).is_none());
    }
}
