//! The userspace half of the policy: which layer owns which CPU, and how
//! many CPUs each grouped layer gets from its utilisation.
//!
//! Confined layers own all their CPUs. A grouped layer owns the first `n` of
//! its CPUs, `n` following its load: grown at once to what its utilisation
//! needs at the target utilisation, shrunk one CPU per interval (a burst
//! should not leave it short, a lull should not strip it bare), never under
//! `min_cpus`. CPUs nobody owns run the open layers. Pure functions: the
//! component measures and applies.

use nodus_common::sched::NONE;

use super::plan::Plan;
use crate::profile::LayerPolicy;

/// The utilisation a grouped layer's CPUs are sized for (busy share of each
/// owned CPU): below it the layer has spare room, above it wakeups queue.
pub const TARGET_UTIL: f64 = 0.8;

/// Each CPU's owner (a layer index, or [`NONE`]) when grouped layer `i` owns
/// `sizes[i]` of its CPUs. A CPU two layers list goes to the first.
pub fn owners(plan: &Plan, sizes: &[u32]) -> Vec<u32> {
    let mut out = vec![NONE; plan.cpu_dom.len()];
    for (i, l) in plan.layers.iter().enumerate() {
        let take = match l.policy {
            LayerPolicy::Confined => l.cpus.len(),
            LayerPolicy::Grouped => sizes.get(i).copied().unwrap_or(0) as usize,
            LayerPolicy::Open => 0,
        };
        let mut taken = 0;
        for &cpu in &l.cpus {
            if taken == take {
                break;
            }
            if let Some(slot) = out.get_mut(cpu as usize)
                && *slot == NONE
            {
                *slot = i as u32;
                taken += 1;
            }
        }
    }
    out
}

/// Grouped layers start with all their CPUs; the others' sizes are unused.
pub fn initial_sizes(plan: &Plan) -> Vec<u32> {
    plan.layers.iter().map(|l| l.cpus.len() as u32).collect()
}

/// A grouped layer's next size: `busy_cpus` is how many CPUs' worth of time
/// its tasks ran over the last interval (1.5 = one and a half CPUs busy).
pub fn resize(current: u32, busy_cpus: f64, min: u32, max: u32) -> u32 {
    let need = (busy_cpus / TARGET_UTIL).ceil().max(0.0) as u32;
    let want = need.clamp(min.min(max), max);
    if want >= current {
        want
    } else {
        (current - 1).max(want)
    }
}

/// Every layer's next size from its busy CPUs over the last interval.
pub fn next_sizes(plan: &Plan, sizes: &[u32], busy_cpus: &[f64]) -> Vec<u32> {
    plan.layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let current = sizes.get(i).copied().unwrap_or(0);
            match l.policy {
                LayerPolicy::Grouped => resize(
                    current,
                    busy_cpus.get(i).copied().unwrap_or(0.0),
                    l.min_cpus,
                    l.cpus.len() as u32,
                ),
                _ => current,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::plan::Layer;

    fn layer(policy: LayerPolicy, cpus: &[u32], min: u32) -> Layer {
        Layer {
            name: "l".into(),
            policy,
            cpus: cpus.to_vec(),
            min_cpus: min,
            preempt: false,
            slice_ns: 0,
            rules: vec![],
        }
    }

    fn plan(layers: Vec<Layer>) -> Plan {
        Plan {
            layers,
            cpu_dom: vec![0; 8],
            nr_doms: 1,
        }
    }

    #[test]
    fn grows_at_once_to_what_the_load_needs() {
        // 2.5 CPUs busy at 80% target needs 4 CPUs.
        assert_eq!(resize(1, 2.5, 1, 6), 4);
        // Never beyond its CPUs.
        assert_eq!(resize(1, 20.0, 1, 6), 6);
    }

    #[test]
    fn shrinks_one_cpu_per_interval_down_to_min() {
        assert_eq!(resize(6, 0.1, 2, 6), 5);
        assert_eq!(resize(3, 0.0, 2, 6), 2);
        assert_eq!(resize(2, 0.0, 2, 6), 2);
        // A load that still needs the CPUs keeps them.
        assert_eq!(resize(4, 3.1, 1, 6), 4);
    }

    #[test]
    fn confined_own_all_grouped_own_a_prefix_open_own_none() {
        let p = plan(vec![
            layer(LayerPolicy::Confined, &[6, 7], 0),
            layer(LayerPolicy::Grouped, &[2, 3, 4, 5], 1),
            layer(LayerPolicy::Open, &[0, 1], 0),
        ]);
        let o = owners(&p, &[2, 2, 2]);
        assert_eq!(o, vec![NONE, NONE, 1, 1, NONE, NONE, 0, 0]);
        // Grown: the next CPUs of its list.
        let o = owners(&p, &[2, 4, 2]);
        assert_eq!(&o[2..6], &[1, 1, 1, 1]);
    }

    #[test]
    fn a_cpu_two_layers_list_goes_to_the_first() {
        let p = plan(vec![
            layer(LayerPolicy::Confined, &[3], 0),
            layer(LayerPolicy::Grouped, &[3, 4], 1),
        ]);
        let o = owners(&p, &initial_sizes(&p));
        assert_eq!(o[3], 0);
        assert_eq!(o[4], 1);
    }

    #[test]
    fn only_grouped_layers_are_resized() {
        let p = plan(vec![
            layer(LayerPolicy::Confined, &[0, 1], 0),
            layer(LayerPolicy::Grouped, &[2, 3, 4, 5], 1),
        ]);
        let sizes = initial_sizes(&p);
        assert_eq!(sizes, vec![2, 4]);
        assert_eq!(next_sizes(&p, &sizes, &[0.0, 0.0]), vec![2, 3]);
    }
}
