//! What is known about each process's work that more than one component
//! acts on: its workload class (the numa component measures it from the
//! scheduler tracepoints) and the accelerator it opened (the numa component
//! sees the open in the kernel). The scheduler's `class` and `device` layer
//! rules read it.
//!
//! It sits below both components and reaches them through the daemon's
//! `Shared`, so neither imports the other: numa replaces the table after
//! each look, the scheduler reads it at each tuning interval and turns it
//! into a per-process table in the kernel.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// A process's class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Short runs ending in sleeps: it waits for events and wants a CPU the
    /// moment one arrives.
    Latency,
    /// Long runs, preempted: it wants throughput.
    Batch,
    /// Hardly runs.
    Idle,
}

impl Class {
    /// Every class, in the order status counts them.
    pub const ALL: [Class; 3] = [Class::Latency, Class::Batch, Class::Idle];

    /// Its name in status, in `nodus top` and in a layer rule.
    pub fn name(self) -> &'static str {
        match self {
            Class::Latency => "latency",
            Class::Batch => "batch",
            Class::Idle => "idle",
        }
    }

    /// The class named `name`.
    pub fn parse(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// One process's work, as far as it is known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Its class at the last look (absent without the scheduler
    /// tracepoints).
    pub class: Option<Class>,
    /// The profile device it opened (a `[[device]]` name), if any.
    pub device: Option<String>,
}

/// Every process's work, by pid, with a version that moves when it changes.
#[derive(Debug, Default)]
pub struct Workloads {
    by_pid: HashMap<u32, Work>,
    version: u64,
}

impl Workloads {
    /// Replaces the table (a new look); the version moves only if anything
    /// changed, so a reader can skip an unchanged table.
    pub fn replace(&mut self, by_pid: HashMap<u32, Work>) {
        if by_pid != self.by_pid {
            self.by_pid = by_pid;
            self.version += 1;
        }
    }

    /// What is known of `pid`.
    pub fn get(&self, pid: u32) -> Option<&Work> {
        self.by_pid.get(&pid)
    }

    /// Every process known.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Work)> {
        self.by_pid.iter().map(|(p, w)| (*p, w))
    }

    /// Moves each time the table changes.
    pub fn version(&self) -> u64 {
        self.version
    }
}

/// The table as the daemon shares it.
pub type WorkloadTable = Arc<Mutex<Workloads>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_moves_only_on_a_change() {
        let mut w = Workloads::default();
        let table: HashMap<u32, Work> = [(
            7,
            Work {
                class: Some(Class::Latency),
                device: None,
            },
        )]
        .into();
        w.replace(table.clone());
        assert_eq!(w.version(), 1);
        w.replace(table);
        assert_eq!(w.version(), 1);
        assert_eq!(w.get(7).and_then(|w| w.class), Some(Class::Latency));
        w.replace(HashMap::new());
        assert_eq!(w.version(), 2);
        assert_eq!(Class::parse("batch"), Some(Class::Batch));
        assert_eq!(Class::parse("fast"), None);
    }
}
