//! The file server's eBPF: connection steering (sk_reuseport) and kernel-side
//! request counting (TC ingress). Each is optional: when the kernel refuses
//! one, the server runs without it and the component reports why.

use std::net::TcpListener;

use aya::{
    Ebpf,
    maps::{Array, MapData, PerCpuArray, ReusePortSockArray},
    programs::{
        LinkOrder, SchedClassifier, SkReuseport, TcAttachType,
        tc::{self, NlOptions, TcAttachOptions},
    },
};
use nodus_common::fileserver::{
    MAX_CPUS, PATH_CLASSES, REUSEPORT_FALLBACK, REUSEPORT_SAME_NODE, REUSEPORT_STEERED,
    SLOT_SAME_NODE, TcConfig,
};

use nodus_common::objects::{fileserver_reuseport as steering, fileserver_tc as classifier};

use crate::ebpf::{self, error_chain, per_cpu_sum};

fn chain(e: impl std::error::Error) -> String {
    error_chain(&e)
}

fn map<'a>(obj: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map, String> {
    obj.map_mut(name)
        .ok_or_else(|| format!("map {name} missing from the object"))
}

fn take(obj: &mut Ebpf, name: &str) -> Result<aya::maps::Map, String> {
    obj.take_map(name)
        .ok_or_else(|| format!("map {name} missing from the object"))
}

/// The attached steering program and its counters.
pub struct Steering {
    _obj: Ebpf,
    stats: PerCpuArray<MapData, u64>,
}

/// How connections were handed out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteeringCounts {
    /// To the worker on the receiving CPU.
    pub same_cpu: u64,
    /// To a worker on another CPU of the receiving CPU's node.
    pub same_node: u64,
    /// Left to the kernel's hash (no worker on the receiving node).
    pub hash: u64,
}

impl Steering {
    /// Connections by outcome, since the program was attached.
    pub fn counts(&self) -> SteeringCounts {
        SteeringCounts {
            same_cpu: per_cpu_sum(&self.stats, REUSEPORT_STEERED),
            same_node: per_cpu_sum(&self.stats, REUSEPORT_SAME_NODE),
            hash: per_cpu_sum(&self.stats, REUSEPORT_FALLBACK),
        }
    }
}

/// The CPU -> worker table: each worker's own CPU maps to it; every other
/// CPU of `online` maps to a worker on its node (spread round-robin, marked
/// [`SLOT_SAME_NODE`]), or to nothing when its node has none. Values are
/// worker index + 1.
pub fn cpu_slots(
    cpus: &[Option<u32>],
    online: &[u32],
    node_of: impl Fn(u32) -> Option<u32>,
) -> Vec<(u32, u32)> {
    let mut slots: Vec<(u32, u32)> = Vec::new();
    for (i, cpu) in cpus.iter().enumerate() {
        if let Some(cpu) = *cpu
            && cpu < MAX_CPUS
            && !slots.iter().any(|(c, _)| *c == cpu)
        {
            slots.push((cpu, i as u32 + 1));
        }
    }
    let own: Vec<(u32, u32)> = slots.clone();
    for &cpu in online.iter().filter(|&&c| c < MAX_CPUS) {
        if own.iter().any(|(c, _)| *c == cpu) {
            continue;
        }
        let Some(node) = node_of(cpu) else { continue };
        let local: Vec<u32> = own
            .iter()
            .filter(|(c, _)| node_of(*c) == Some(node))
            .map(|(_, slot)| *slot)
            .collect();
        if !local.is_empty() {
            slots.push((cpu, local[cpu as usize % local.len()] | SLOT_SAME_NODE));
        }
    }
    slots
}

/// Loads the sk_reuseport program, fills the CPU -> worker table (see
/// [`cpu_slots`]) and the socket array, and attaches it to the group of
/// `listeners`.
pub fn steer(
    listeners: &[TcpListener],
    cpus: &[Option<u32>],
    online: &[u32],
    node_of: impl Fn(u32) -> Option<u32>,
) -> Result<Steering, String> {
    if cpus.iter().all(Option::is_none) {
        return Err("workers are not pinned (fileserver.pin_workers = false)".into());
    }
    let mut obj = ebpf::load(&steering::OBJECT).map_err(chain)?;
    {
        let mut table: Array<&mut MapData, u32> =
            Array::try_from(map(&mut obj, steering::maps::FS_CPU_SLOT)?).map_err(chain)?;
        for (cpu, slot) in cpu_slots(cpus, online, node_of) {
            table.set(cpu, slot, 0).map_err(chain)?;
        }
    }
    {
        let mut socks: ReusePortSockArray<&mut MapData> =
            ReusePortSockArray::try_from(map(&mut obj, steering::maps::FS_SOCKETS)?)
                .map_err(chain)?;
        for (i, l) in listeners.iter().enumerate() {
            socks.set(i as u32, l, 0).map_err(chain)?;
        }
    }
    let stats =
        PerCpuArray::try_from(take(&mut obj, steering::maps::FS_STEER_STATS)?).map_err(chain)?;
    let prog: &mut SkReuseport = obj
        .program_mut(steering::programs::fileserver_reuseport)
        .ok_or("program fileserver_reuseport missing")?
        .try_into()
        .map_err(chain)?;
    prog.load().map_err(chain)?;
    let first = listeners.first().ok_or("no listening socket")?;
    prog.attach(first).map_err(chain)?;
    Ok(Steering { _obj: obj, stats })
}

/// The attached classifier and its counters.
pub struct Classifier {
    _obj: Ebpf,
    requests: PerCpuArray<MapData, u64>,
    /// Interfaces it is attached to, with the attach mode.
    pub attached: Vec<String>,
}

impl Classifier {
    /// Requests counted in the kernel for `method` and path `class` (the
    /// shared `METHOD_*` and `PATH_*` numbers), since attach.
    pub fn count(&self, method: u32, class: u32) -> u64 {
        per_cpu_sum(&self.requests, method * PATH_CLASSES + class)
    }
}

/// Loads the TC classifier for `port` and attaches it to each interface's
/// ingress (tcx, or clsact on kernels before 6.6). Interfaces that refuse are
/// reported in the error list; the classifier is kept if any accepted.
pub fn classify(interfaces: &[String], port: u16) -> (Option<Classifier>, Vec<String>) {
    let mut errors = Vec::new();
    let result = (|| -> Result<Classifier, String> {
        let mut obj = ebpf::load(&classifier::OBJECT).map_err(chain)?;
        {
            let mut cfg: Array<&mut MapData, TcConfig> =
                Array::try_from(map(&mut obj, classifier::maps::FS_TC_CONFIG)?).map_err(chain)?;
            let value = TcConfig {
                port: u32::from(port),
                enabled: 1,
            };
            cfg.set(0, value, 0).map_err(chain)?;
        }
        let requests =
            PerCpuArray::try_from(take(&mut obj, classifier::maps::FS_REQUESTS)?).map_err(chain)?;
        let prog: &mut SchedClassifier = obj
            .program_mut(classifier::programs::fileserver_tc)
            .ok_or("program fileserver_tc missing")?
            .try_into()
            .map_err(chain)?;
        prog.load().map_err(chain)?;
        let mut attached = Vec::new();
        for iface in interfaces {
            match attach(prog, iface) {
                Ok(mode) => attached.push(format!("{iface} ({mode})")),
                Err(e) => errors.push(format!("tc on {iface}: {e}")),
            }
        }
        if attached.is_empty() {
            return Err("attached to no interface".into());
        }
        Ok(Classifier {
            _obj: obj,
            requests,
            attached,
        })
    })();
    match result {
        Ok(c) => (Some(c), errors),
        Err(e) => {
            errors.push(format!("tc classifier: {e}"));
            (None, errors)
        }
    }
}

fn attach(prog: &mut SchedClassifier, iface: &str) -> Result<&'static str, String> {
    let tcx = TcAttachOptions::TcxOrder(LinkOrder::default());
    let tcx_err = match prog.attach_with_options(iface, TcAttachType::Ingress, tcx) {
        Ok(_) => return Ok("tcx"),
        Err(e) => chain(e),
    };
    // Before 6.6 there is no tcx; a clsact qdisc (kept after stop, empty) works.
    if let Err(e) = tc::qdisc_add_clsact(iface)
        && !matches!(e, tc::TcError::AlreadyAttached)
    {
        return Err(format!("tcx: {tcx_err}; clsact: {e}"));
    }
    let netlink = TcAttachOptions::Netlink(NlOptions::default());
    prog.attach_with_options(iface, TcAttachType::Ingress, netlink)
        .map(|_| "clsact")
        .map_err(|e| format!("tcx: {tcx_err}; clsact: {}", chain(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_without_a_worker_go_to_a_worker_on_their_node() {
        // Node 0: CPUs 0-3, workers on 0 and 1. Node 1: CPUs 4-7, worker on 6.
        // Node 2: CPUs 8-9, no worker.
        let node_of = |c: u32| (c < 10).then_some(c / 4);
        let workers = [Some(0), Some(1), Some(6), None];
        let online: Vec<u32> = (0..10).collect();
        let mut slots = cpu_slots(&workers, &online, node_of);
        slots.sort();
        assert_eq!(
            slots,
            [
                (0, 1),
                (1, 2),
                (2, 1 | SLOT_SAME_NODE),
                (3, 2 | SLOT_SAME_NODE),
                (4, 3 | SLOT_SAME_NODE),
                (5, 3 | SLOT_SAME_NODE),
                (6, 3),
                (7, 3 | SLOT_SAME_NODE),
            ]
        );
    }

    #[test]
    fn without_topology_only_the_workers_own_cpus_are_steered() {
        let slots = cpu_slots(&[Some(3), Some(3), Some(5)], &[], |_| None);
        assert_eq!(slots, [(3, 1), (5, 3)]);
    }
}
