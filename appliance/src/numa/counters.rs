//! The CPU's hardware counters (retired instructions, cycles, cache
//! misses), opened once on every CPU and handed to the numa programs,
//! which read them at each context switch and add what the outgoing
//! process spent to its counts: every process is covered with a fixed
//! number of counters (events x CPUs), where `perf stat -p` would open one
//! per thread.
//!
//! Opening needs `perf_event_open`, which the shipped service unit's
//! system-call filter denies (it is in `@debug`): under that unit the
//! counters are refused and said to be, like on a machine without a PMU.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

use nodus_common::numa::{PMU_CACHE_MISSES, PMU_CYCLES, PMU_INSTRUCTIONS};
use perf_event_open_sys::bindings as perf;

/// The events, in `PMU_*` order: the bit in `NumaLayout::pmu`, the map
/// the programs read, the kernel's generic hardware event, and a name.
pub const EVENTS: [(u32, &str, u32, &str); 3] = [
    (
        PMU_INSTRUCTIONS,
        nodus_common::objects::numa::maps::NUMA_PMU_INSTRUCTIONS,
        perf::PERF_COUNT_HW_INSTRUCTIONS,
        "instructions",
    ),
    (
        PMU_CYCLES,
        nodus_common::objects::numa::maps::NUMA_PMU_CYCLES,
        perf::PERF_COUNT_HW_CPU_CYCLES,
        "cycles",
    ),
    (
        PMU_CACHE_MISSES,
        nodus_common::objects::numa::maps::NUMA_PMU_CACHE_MISSES,
        perf::PERF_COUNT_HW_CACHE_MISSES,
        "cache misses",
    ),
];

/// The counters that opened on every online CPU, and why the others did
/// not. Holds them open for as long as it lives.
#[derive(Debug, Default)]
pub struct HardwareCounters {
    /// Per event that opened everywhere: its `PMU_*` index and, per CPU,
    /// the counter.
    pub opened: Vec<(u32, Vec<(u32, OwnedFd)>)>,
    /// Events that did not open, with the kernel's answer.
    pub refused: Vec<(&'static str, String)>,
}

impl HardwareCounters {
    /// Opens every event on each of `cpus`, counting whatever runs there
    /// (user and kernel). An event refused on any CPU is dropped whole: a
    /// count covering some CPUs only would mislead.
    pub fn open(cpus: &[u32]) -> HardwareCounters {
        let mut out = HardwareCounters::default();
        for (index, _, config, name) in EVENTS {
            let fds: io::Result<Vec<(u32, OwnedFd)>> = cpus
                .iter()
                .map(|&cpu| open_counter(config, cpu).map(|fd| (cpu, fd)))
                .collect();
            match fds {
                Ok(fds) => out.opened.push((index, fds)),
                Err(e) => out.refused.push((name, refusal(&e))),
            }
        }
        out
    }

    /// The `NumaLayout::pmu` bits of the events that opened.
    pub fn mask(&self) -> u32 {
        self.opened.iter().fold(0, |m, (i, _)| m | (1 << i))
    }

    /// The names of the events that opened, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.opened
            .iter()
            .filter_map(|(i, _)| EVENTS.iter().find(|e| e.0 == *i).map(|e| e.3))
            .collect()
    }
}

/// The kernel's answer in words: ENOENT and EOPNOTSUPP mean this PMU has
/// no such event (a TCG CPU counts no cache misses), EPERM or EACCES
/// that it was not allowed (a system-call filter, perf_event_paranoid).
fn refusal(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) => {
            format!("the CPU's PMU has no such event ({e})")
        }
        Some(libc::EPERM) | Some(libc::EACCES) => format!("not allowed ({e})"),
        _ => e.to_string(),
    }
}

/// A counter of generic hardware event `config` on `cpu`, for every task.
fn open_counter(config: u32, cpu: u32) -> io::Result<OwnedFd> {
    let mut attr = perf::perf_event_attr {
        type_: perf::PERF_TYPE_HARDWARE,
        size: std::mem::size_of::<perf::perf_event_attr>() as u32,
        config: u64::from(config),
        ..Default::default()
    };
    // SAFETY: `attr` is a valid, fully initialised attribute struct that
    // outlives the call; pid -1 with a CPU counts every task on that CPU.
    let fd = unsafe {
        perf_event_open_sys::perf_event_open(
            &mut attr,
            -1,
            cpu as i32,
            -1,
            perf::PERF_FLAG_FD_CLOEXEC as libc::c_ulong,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Puts `counter` at index `cpu` of the perf-event-array map `map` (aya
/// has no call for a counter opened elsewhere).
pub fn put(map: BorrowedFd<'_>, cpu: u32, counter: BorrowedFd<'_>) -> io::Result<()> {
    /// `union bpf_attr` for `BPF_MAP_UPDATE_ELEM`.
    #[repr(C)]
    struct MapUpdate {
        map_fd: u32,
        pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
    let value: u32 = counter.as_raw_fd() as u32;
    let attr = MapUpdate {
        map_fd: map.as_raw_fd() as u32,
        pad: 0,
        key: &cpu as *const u32 as u64,
        value: &value as *const u32 as u64,
        flags: 0,
    };
    // SAFETY: `attr` and the key and value it points to live across the
    // call; the size passed is the struct's.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_UPDATE_ELEM,
            &attr as *const MapUpdate,
            std::mem::size_of::<MapUpdate>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What the `hardware_counters` stat says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Counting {
    /// Not known yet (the programs are loading).
    #[default]
    NotYet,
    /// The probe found no CPU PMU (why).
    NoPmu(String),
    /// The PMU is there, but no event could be read (why).
    NotRead(String),
    /// These events are counted per process; those refused, with why.
    Counted {
        /// Counted events' names.
        events: Vec<&'static str>,
        /// Refused events: name and the kernel's answer.
        refused: Vec<(&'static str, String)>,
        /// CPUs counted on.
        cpus: usize,
    },
}

impl Counting {
    /// What the counters that opened (and those refused) give.
    pub fn of(counters: &HardwareCounters) -> Counting {
        if counters.opened.is_empty() {
            let why: Vec<String> = counters
                .refused
                .iter()
                .map(|(name, why)| format!("{name}: {why}"))
                .collect();
            return Counting::NotRead(if why.is_empty() {
                "no counter was opened".into()
            } else {
                why.join("; ")
            });
        }
        Counting::Counted {
            events: counters.names(),
            refused: counters.refused.clone(),
            cpus: counters.opened.first().map_or(0, |(_, fds)| fds.len()),
        }
    }

    /// Whether something the kernel could give is not given (said in the
    /// view's missing list).
    pub fn is_missing(&self) -> bool {
        !matches!(self, Counting::Counted { refused, .. } if refused.is_empty())
    }
}

impl std::fmt::Display for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Counting::NotYet => f.write_str("not known yet"),
            Counting::NoPmu(why) => write!(f, "none: {why}"),
            Counting::NotRead(why) => write!(f, "not read: {why}"),
            Counting::Counted {
                events,
                refused,
                cpus,
            } => {
                write!(
                    f,
                    "{} counted per process on {cpus} cpus",
                    events.join(", ")
                )?;
                for (name, why) in refused {
                    write!(f, "; {name} refused: {why}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filtered_perf_event_open_and_a_missing_event_are_said_in_words() {
        let denied = io::Error::from_raw_os_error(libc::EPERM);
        let absent = io::Error::from_raw_os_error(libc::ENOENT);
        let none_opened = HardwareCounters {
            opened: Vec::new(),
            refused: vec![
                ("instructions", refusal(&denied)),
                ("cycles", refusal(&denied)),
            ],
        };
        let said = Counting::of(&none_opened);
        assert!(said.is_missing());
        assert_eq!(
            said.to_string(),
            "not read: instructions: not allowed (Operation not permitted (os error 1)); \
             cycles: not allowed (Operation not permitted (os error 1))"
        );
        let some = Counting::Counted {
            events: vec!["instructions", "cycles"],
            refused: vec![("cache misses", refusal(&absent))],
            cpus: 4,
        };
        assert!(some.is_missing());
        assert_eq!(
            some.to_string(),
            "instructions, cycles counted per process on 4 cpus; cache misses refused: \
             the CPU's PMU has no such event (No such file or directory (os error 2))"
        );
        let all = Counting::Counted {
            events: vec!["instructions", "cycles", "cache misses"],
            refused: Vec::new(),
            cpus: 2,
        };
        assert!(!all.is_missing());
        assert_eq!(Counting::NoPmu("no PMU".into()).to_string(), "none: no PMU");
    }
}
