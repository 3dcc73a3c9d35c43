//! The libbpf side of the scheduler (cargo feature `sched`): the one object
//! nodus loads with libbpf
//! (aya cannot load struct_ops, aya-rs/aya#220). Opens the embedded object,
//! sets the watchdog and mode in its `sched_ext_ops`, loads it, writes the
//! plan into its maps and registers it; reads its counters and how it ended.
//!
//! Everything libbpf is in this file; the component above sees typed values.

use std::{collections::HashMap, os::unix::ffi::OsStrExt};

use libbpf_rs::{
    Link, MapCore, MapFlags, Object, ObjectBuilder, OpenObject,
    btf::{Btf, types::Struct},
};
use nodus_common::{
    objects::sched::{self as object, maps, programs},
    sched as abi,
};

use super::{
    kernel::{Ended, LayerCounts, Mode},
    membership::Members,
    plan::Plan,
};
use crate::ebpf::{pod_bytes, read_record};

/// Why the scheduler could not be loaded, registered or read.
#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    /// libbpf refused the embedded object.
    #[error("opening the scheduler object")]
    Open(#[source] libbpf_rs::Error),
    /// The object lacks what the loader needs.
    #[error("the scheduler object has no {0}")]
    Missing(String),
    /// The kernel refused a program or map.
    #[error("loading the scheduler into the kernel")]
    Load(#[source] libbpf_rs::Error),
    /// A map write failed.
    #[error("writing {map}")]
    Map {
        /// The map.
        map: &'static str,
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// Registering the sched_ext ops failed.
    #[error("registering the scheduler (sched_ext ops)")]
    Attach(#[source] libbpf_rs::Error),
    /// A syscall program (the CPU set refresh, the match test) could not
    /// run.
    #[error("running a scheduler syscall program")]
    TestRun(#[source] libbpf_rs::Error),
    /// The CPU set refresh failed in BPF (a negative errno).
    #[error("rebuilding the scheduler's CPU sets: errno {}", -.0)]
    Refresh(i32),
}

/// A loaded object, its maps written: what the scheduler and the matcher
/// share (see [`Scheduler::maps`], [`Matcher::maps`]).
pub struct Loaded {
    object: Object,
}

/// The scheduler, registered: every task (or, switch-partial, every
/// SCHED_EXT task) is scheduled by it until it is dropped or the kernel
/// ends it.
pub struct Scheduler {
    loaded: Loaded,
    // Dropped first: unregisters before the maps go.
    link: Option<Link>,
}

/// The match rules alone, on any kernel: the test program run on facts.
pub struct Matcher {
    loaded: Loaded,
}

/// libbpf's messages go to nodus's log, not to stderr: warnings as
/// warnings, its chatter (sections it skips) at debug level.
fn route_libbpf_messages() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        fn print(level: libbpf_rs::PrintLevel, msg: String) {
            let msg = msg.trim_end();
            if let Some(cost) = verifier_cost(msg) {
                log::info!("sched: verifier: {cost}");
                return;
            }
            match level {
                libbpf_rs::PrintLevel::Warn => log::warn!("sched: libbpf: {msg}"),
                _ => log::debug!("sched: libbpf: {msg}"),
            }
        }
        libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Debug, print)));
    });
}

/// The verifier's cost of one program, from the stats libbpf prints after
/// loading it with log level 4 (`BPF_LOG_STATS`): "prog 'NAME': processed
/// N insns, verification time T usec". Loading takes seconds on a slow
/// board; this says which callback costs them.
fn verifier_cost(msg: &str) -> Option<String> {
    let msg = msg.strip_prefix("libbpf: ").unwrap_or(msg);
    let name = msg.strip_prefix("prog '")?.split('\'').next()?;
    let number_after = |key: &str| {
        let at = msg.find(key)? + key.len();
        msg[at..].split(|c: char| !c.is_ascii_digit()).next()
    };
    let insns = number_after("processed ")?;
    let usec = number_after("verification time ").unwrap_or("?");
    Some(format!(
        "prog '{name}': processed {insns} insns, verification time {usec} usec"
    ))
}

fn open(plan: &Plan, scheduler: Option<Mode>) -> Result<Loaded, SchedError> {
    route_libbpf_messages();
    let bytes = crate::ebpf::bytes(&object::OBJECT);
    let mut open: OpenObject = ObjectBuilder::default()
        .open_memory(bytes)
        .map_err(SchedError::Open)?;
    match scheduler {
        Some(mode) => {
            let (timeout_at, flags_at) = ops_offsets(bytes)?;
            let mut ops = open
                .maps_mut()
                .find(|m| m.name().as_bytes() == maps::nodus_ops.as_bytes())
                .ok_or_else(|| SchedError::Missing(maps::nodus_ops.into()))?;
            let data = ops
                .initial_value_mut()
                .ok_or_else(|| SchedError::Missing("initial value of nodus_ops".into()))?;
            let put = |data: &mut [u8], at: usize, v: &[u8]| -> Result<(), SchedError> {
                data.get_mut(at..at + v.len())
                    .ok_or_else(|| SchedError::Missing("room for sched_ext_ops fields".into()))?
                    .copy_from_slice(v);
                Ok(())
            };
            put(data, timeout_at, &mode.watchdog_ms.to_le_bytes())?;
            // SCX_OPS_SWITCH_PARTIAL
            let flags: u64 = if mode.switch_partial { 8 } else { 0 };
            put(data, flags_at, &flags.to_le_bytes())?;
            for mut p in open.progs_mut() {
                if p.name().as_bytes() == programs::nodus_match_test.as_bytes() {
                    p.set_autoload(false);
                } else {
                    // BPF_LOG_STATS: the verifier's cost, see verifier_cost
                    p.set_log_level(4);
                }
            }
        }
        None => {
            // The matcher: no sched_ext needed (nor wanted).
            for mut m in open.maps_mut() {
                if m.name().as_bytes() == maps::nodus_ops.as_bytes() {
                    m.set_autocreate(false).map_err(SchedError::Load)?;
                }
            }
            for mut p in open.progs_mut() {
                if p.name().as_bytes() != programs::nodus_match_test.as_bytes() {
                    p.set_autoload(false);
                }
            }
        }
    }
    let object = open.load().map_err(SchedError::Load)?;
    let loaded = Loaded { object };
    loaded.write_plan(plan)?;
    Ok(loaded)
}

/// Byte offsets of `timeout_ms` and `flags` in the object's own
/// `struct sched_ext_ops` (libbpf maps it onto the kernel's by name).
fn ops_offsets(bytes: &[u8]) -> Result<(usize, usize), SchedError> {
    let btf = Btf::from_raw("sched", bytes)
        .map_err(SchedError::Open)?
        .ok_or_else(|| SchedError::Missing("BTF".into()))?;
    let ops: Struct<'_> = btf
        .type_by_name("sched_ext_ops")
        .ok_or_else(|| SchedError::Missing("struct sched_ext_ops in its BTF".into()))?;
    let offset = |name: &str| {
        ops.iter()
            .find(|m| m.name.is_some_and(|n| n.as_bytes() == name.as_bytes()))
            .and_then(|m| match m.attr {
                libbpf_rs::btf::types::MemberAttr::Normal { offset } => Some(offset as usize / 8),
                libbpf_rs::btf::types::MemberAttr::BitField { .. } => None,
            })
            .ok_or_else(|| SchedError::Missing(format!("sched_ext_ops.{name}")))
    };
    Ok((offset("timeout_ms")?, offset("flags")?))
}

impl Loaded {
    fn map(&self, name: &'static str) -> Result<libbpf_rs::Map<'_>, SchedError> {
        self.object
            .maps()
            .find(|m| m.name().as_bytes() == name.as_bytes())
            .ok_or_else(|| SchedError::Missing(name.into()))
    }

    fn put<K: aya::Pod, V: aya::Pod>(
        &self,
        name: &'static str,
        key: &K,
        value: &V,
    ) -> Result<(), SchedError> {
        self.map(name)?
            .update(pod_bytes(key), pod_bytes(value), MapFlags::ANY)
            .map_err(|source| SchedError::Map { map: name, source })
    }

    fn global(&self) -> Result<abi::Global, SchedError> {
        let v = self
            .map(maps::NODUS_GLOBAL)?
            .lookup(pod_bytes(&0u32), MapFlags::ANY)
            .map_err(|source| SchedError::Map {
                map: maps::NODUS_GLOBAL,
                source,
            })?;
        Ok(v.and_then(|v| read_record(&v)).unwrap_or_default())
    }

    fn write_plan(&self, plan: &Plan) -> Result<(), SchedError> {
        for (i, layer) in plan.layers.iter().enumerate() {
            self.put(maps::NODUS_LAYERS, &(i as u32), &layer.encode())?;
        }
        // NODUS_CPUS (domain and owner) is the scheduler's to write, with
        // the owners (`set_owners`); the matcher reads no CPU.
        for cpu in 0..plan.nr_cpus() {
            let idle = abi::CpuState {
                layer: abi::NONE,
                ..abi::CpuState::default()
            };
            self.put(maps::NODUS_CPU_STATE, &cpu, &idle)?;
        }
        let g = abi::Global {
            nr_layers: plan.layers.len() as u32,
            nr_cpus: plan.nr_cpus(),
            nr_doms: plan.nr_doms,
            generation: 1,
        };
        self.put(maps::NODUS_GLOBAL, &0u32, &g)
    }

    /// Sets which layer owns each CPU (`abi::NONE`: none), then has the
    /// BPF side rebuild its CPU sets from them.
    pub fn set_owners(&self, plan: &Plan, owners: &[u32]) -> Result<(), SchedError> {
        for (cpu, (&dom, &owner)) in plan.cpu_dom.iter().zip(owners).enumerate() {
            self.put(maps::NODUS_CPUS, &(cpu as u32), &abi::Cpu { dom, owner })?;
        }
        let prog = self
            .object
            .progs_mut()
            .find(|p| p.name().as_bytes() == programs::nodus_refresh_masks.as_bytes())
            .ok_or_else(|| SchedError::Missing(programs::nodus_refresh_masks.into()))?;
        let out = prog
            .test_run(libbpf_rs::ProgramInput::default())
            .map_err(SchedError::TestRun)?;
        match out.return_value {
            0 => Ok(()),
            e => Err(SchedError::Refresh(e as i32)),
        }
    }

    /// Replaces the cgroup, executable and process sets and has every task
    /// matched again at its next wakeup.
    pub fn set_members(&self, members: &Members) -> Result<(), SchedError> {
        replace(
            self.map(maps::NODUS_CGROUPS)?,
            maps::NODUS_CGROUPS,
            &members.cgroups,
        )?;
        replace(self.map(maps::NODUS_EXES)?, maps::NODUS_EXES, &members.exes)?;
        replace(
            self.map(maps::NODUS_PROCS)?,
            maps::NODUS_PROCS,
            &members.procs,
        )?;
        let mut g = self.global()?;
        g.generation = g.generation.wrapping_add(1);
        self.put(maps::NODUS_GLOBAL, &0u32, &g)
    }
}

/// Makes the hash map `map` hold exactly `want`.
fn replace<K: aya::Pod + Eq + std::hash::Hash>(
    map: libbpf_rs::Map<'_>,
    name: &'static str,
    want: &HashMap<K, u32>,
) -> Result<(), SchedError> {
    let stale: Vec<Vec<u8>> = map
        .keys()
        .filter(|k| read_record::<K>(k).is_none_or(|k| !want.contains_key(&k)))
        .collect();
    for k in stale {
        let _ = map.delete(&k);
    }
    for (k, v) in want {
        map.update(pod_bytes(k), pod_bytes(v), MapFlags::ANY)
            .map_err(|source| SchedError::Map { map: name, source })?;
    }
    Ok(())
}

impl Scheduler {
    /// Loads the scheduler for `plan` and registers it: from here the
    /// kernel schedules with it.
    /// `members` are the members of the layers' cgroup, executable, class
    /// and device rules (see [`Loaded::set_members`]).
    pub fn start(
        plan: &Plan,
        mode: Mode,
        owners: &[u32],
        members: &Members,
    ) -> Result<Scheduler, SchedError> {
        let began = std::time::Instant::now();
        let mut loaded = open(plan, Some(mode))?;
        log::info!(
            "sched: the kernel verified and loaded the scheduler in {} ms",
            began.elapsed().as_millis()
        );
        loaded.set_owners(plan, owners)?;
        loaded.set_members(members)?;
        let began = std::time::Instant::now();
        let link = loaded
            .object
            .maps_mut()
            .find(|m| m.name().as_bytes() == maps::nodus_ops.as_bytes())
            .ok_or_else(|| SchedError::Missing(maps::nodus_ops.into()))?
            .attach_struct_ops()
            .map_err(SchedError::Attach)?;
        log::info!(
            "sched: registered with sched_ext in {} ms",
            began.elapsed().as_millis()
        );
        Ok(Scheduler {
            loaded,
            link: Some(link),
        })
    }

    /// How the kernel ended it, once it has (then every task is back on
    /// the default scheduler, and a new `start` is needed).
    pub fn ended(&self) -> Option<Ended> {
        let v = self
            .loaded
            .map(maps::NODUS_EXIT)
            .ok()?
            .lookup(pod_bytes(&0u32), MapFlags::ANY)
            .ok()??;
        let e: abi::Exit = read_record(&v)?;
        (e.kind != 0).then(|| Ended {
            kind: e.kind,
            exit_code: e.exit_code,
            reason: c_string(&e.reason),
            msg: c_string(&e.msg),
        })
    }

    /// Each layer's counters (the default layer last).
    pub fn counts(&self, nr_layers: usize) -> Result<Vec<LayerCounts>, SchedError> {
        let stats = self.loaded.map(maps::NODUS_STATS)?;
        let tasks = self.loaded.map(maps::NODUS_TASKS)?;
        let mut out = Vec::with_capacity(nr_layers + 1);
        for layer in 0..=nr_layers as u32 {
            let mut c = LayerCounts::default();
            let per_cpu = stats
                .lookup_percpu(pod_bytes(&layer), MapFlags::ANY)
                .map_err(|source| SchedError::Map {
                    map: maps::NODUS_STATS,
                    source,
                })?
                .unwrap_or_default();
            for cpu in per_cpu {
                let Some(s) = read_record::<abi::LayerStats>(&cpu) else {
                    continue;
                };
                c.runtime_ns += s.runtime_ns;
                c.enqueued += s.enqueued;
                c.direct += s.direct;
                c.preempted += s.preempted;
                c.moved_in += s.moved_in;
                c.wait_count += s.lat_count;
                c.wait_sum_ns += s.lat_sum_ns;
                for (sum, b) in c.wait_hist.iter_mut().zip(s.lat_hist) {
                    *sum += b;
                }
            }
            c.tasks = tasks
                .lookup(pod_bytes(&layer), MapFlags::ANY)
                .ok()
                .flatten()
                .and_then(|v| read_record::<i64>(&v))
                .unwrap_or(0);
            out.push(c);
        }
        Ok(out)
    }

    /// Its maps, to change ownership and members while it runs.
    pub fn maps(&self) -> &Loaded {
        &self.loaded
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // Unregister first: the kernel moves every task back to the
        // default scheduler, then the maps may go.
        drop(self.link.take());
    }
}

impl Matcher {
    /// The rules of `plan`, loaded on their own (no sched_ext needed).
    pub fn load(plan: &Plan) -> Result<Matcher, SchedError> {
        Ok(Matcher {
            loaded: open(plan, None)?,
        })
    }

    /// Its maps, to set the cgroup and executable sets.
    pub fn maps(&self) -> &Loaded {
        &self.loaded
    }

    /// The layer the scheduler's rules give a task with these facts.
    pub fn layer_of(&self, facts: &abi::Facts) -> Result<u32, SchedError> {
        let prog = self
            .loaded
            .object
            .progs_mut()
            .find(|p| p.name().as_bytes() == programs::nodus_match_test.as_bytes())
            .ok_or_else(|| SchedError::Missing(programs::nodus_match_test.into()))?;
        let mut ctx = pod_bytes(facts).to_vec();
        let input = libbpf_rs::ProgramInput {
            context_in: Some(&mut ctx),
            ..Default::default()
        };
        prog.test_run(input).map_err(SchedError::TestRun)?;
        read_record::<abi::Facts>(&ctx)
            .map(|f| f.layer)
            .ok_or_else(|| SchedError::Missing("the test program's answer".into()))
    }
}

/// A NUL-terminated kernel string.
fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::verifier_cost;

    #[test]
    fn verifier_cost_reads_libbpfs_stats_log() {
        let msg = "libbpf: prog 'nodus_enqueue': -- BEGIN PROG LOAD LOG --\nverification time 5310 usec\nstack depth 48\nprocessed 2113 insns (limit 1000000) max_states_per_insn 3 total_states 150 peak_states 150 mark_read 40\n-- END PROG LOAD LOG --";
        assert_eq!(
            verifier_cost(msg).as_deref(),
            Some("prog 'nodus_enqueue': processed 2113 insns, verification time 5310 usec")
        );
        assert_eq!(verifier_cost("libbpf: skipping section .BTF.ext"), None);
    }
}
