//! The list of components nodus runs, and how each is built from the config.
//!
//! Adding a component is one entry here: its name, the config section it owns
//! (so SIGHUP restarts it only when that section changed) and a constructor.

use tokio::sync::mpsc;

use crate::{
    change::Proposals,
    config::Config,
    control::{ControlServer, ControlStats, Query},
    fileserver::{Fileserver, stats::FileserverStats},
    fleet::{Fleet, FleetShared, component::FleetStats},
    numa::{Homes, Numa, NumaStats, ViewSlot},
    pagecache::{PageCache, PageCacheStats},
    proccache::{ProcCache, ProcCacheStats, ProcessTable},
    profile::{ProfileStats, ThreadPlacement},
    proxy::{Proxy, ProxyStats},
    sched::{Plan, Sched, SchedStats},
    status::StatusSource,
    supervisor::{Component, StatField, StatSet},
    workload::WorkloadTable,
};

/// What constructors may need besides the config.
pub struct Shared {
    /// Where the control server sends the queries it receives.
    pub queries: mpsc::Sender<Query>,
    /// The process table, filled by the proccache component and read by
    /// `nodus ps` and any component that classifies processes.
    pub processes: ProcessTable,
    /// Where the board profile puts each kind of nodus thread.
    pub placement: ThreadPlacement,
    /// Where fleet documents go to be applied (the daemon's change path).
    pub proposals: Proposals,
    /// Asks the daemon for its whole status, typed.
    pub status: StatusSource,
    /// The telemetry outbox and the fleet documents in effect, kept across
    /// restarts of the fleet component.
    pub fleet: FleetShared,
    /// The scheduler's layers, resolved from the board profile (`None`:
    /// it declares none).
    pub sched_plan: Option<std::sync::Arc<Plan>>,
    /// Which node each process belongs on, from the board profile.
    pub numa_homes: std::sync::Arc<Homes>,
    /// The numa component's last look, for `nodus top`.
    pub numa_view: ViewSlot,
    /// Each process's class and accelerator: numa writes, sched reads.
    pub workloads: WorkloadTable,
}

/// One component kind.
pub struct Registration {
    /// The component's name (its `Component::name`).
    pub name: &'static str,
    /// The component's config section, compared across reloads.
    pub section: fn(&Config) -> serde_json::Value,
    /// Builds the component, or `None` when the config disables it.
    pub build: fn(&Config, &Shared) -> Option<Box<dyn Component>>,
    /// Every stat the component reports, described.
    pub stats: &'static [StatField],
}

/// Every component's stats, described, in start order (the board profile
/// first): what `nodus status --describe` and `docs/stats.md` show.
pub fn stat_tables() -> Vec<(&'static str, &'static [StatField])> {
    std::iter::once(("profile", ProfileStats::FIELDS))
        .chain(REGISTRY.iter().map(|r| (r.name, r.stats)))
        .collect()
}

fn section<T: serde::Serialize>(t: &T) -> serde_json::Value {
    serde_json::to_value(t).unwrap_or(serde_json::Value::Null)
}

/// The file server's docroot, when it serves one.
fn docroot(c: &Config) -> Option<std::path::PathBuf> {
    c.fileserver.enabled.then(|| c.fileserver.docroot.clone())
}

/// Every component, in start order (stop order is the reverse).
pub const REGISTRY: &[Registration] = &[
    Registration {
        name: "control",
        section: |c| section(&c.control),
        stats: ControlStats::FIELDS,
        build: |c, s| {
            Some(Box::new(ControlServer::new(
                c.control.socket.clone(),
                s.queries.clone(),
            )))
        },
    },
    Registration {
        name: "proccache",
        section: |c| section(&c.proccache),
        stats: ProcCacheStats::FIELDS,
        build: |c, s| {
            c.proccache.enabled.then(|| {
                Box::new(ProcCache::new(
                    c.proccache.clone(),
                    s.processes.clone(),
                    s.placement.ebpf_events.clone(),
                )) as Box<dyn Component>
            })
        },
    },
    Registration {
        name: "fileserver",
        section: |c| section(&c.fileserver),
        stats: FileserverStats::FIELDS,
        build: |c, s| {
            c.fileserver.enabled.then(|| {
                Box::new(Fileserver::new(
                    c.fileserver.clone(),
                    s.placement.fileserver.clone(),
                )) as Box<dyn Component>
            })
        },
    },
    Registration {
        name: "pagecache",
        // The docroot is watched too: a new docroot restarts the component.
        section: |c| {
            serde_json::json!({
                "pagecache": section(&c.pagecache),
                "docroot": docroot(c),
            })
        },
        stats: PageCacheStats::FIELDS,
        build: |c, _| {
            c.pagecache.enabled.then(|| {
                Box::new(PageCache::new(c.pagecache.clone(), docroot(c))) as Box<dyn Component>
            })
        },
    },
    Registration {
        name: "proxy",
        section: |c| section(&c.proxy),
        stats: ProxyStats::FIELDS,
        build: |c, _| {
            c.proxy
                .enabled
                .then(|| Box::new(Proxy::new(c.proxy.clone())) as Box<dyn Component>)
        },
    },
    Registration {
        name: "sched",
        section: |c| section(&c.sched),
        stats: SchedStats::FIELDS,
        build: |c, s| {
            c.sched.enabled.then(|| {
                Box::new(Sched::new(
                    c.sched.clone(),
                    s.sched_plan.clone(),
                    s.workloads.clone(),
                )) as Box<dyn Component>
            })
        },
    },
    Registration {
        name: "numa",
        section: |c| section(&c.numa),
        stats: NumaStats::FIELDS,
        build: |c, s| {
            c.numa.enabled.then(|| {
                Box::new(Numa::new(
                    c.numa.clone(),
                    s.numa_homes.clone(),
                    s.numa_view.clone(),
                    s.workloads.clone(),
                )) as Box<dyn Component>
            })
        },
    },
    Registration {
        name: "fleet",
        section: |c| section(&c.fleet),
        stats: FleetStats::FIELDS,
        build: |c, s| {
            c.fleet.enabled.then(|| {
                Box::new(Fleet::new(
                    c.fleet.clone(),
                    s.fleet.clone(),
                    s.status.clone(),
                    s.proposals.clone(),
                )) as Box<dyn Component>
            })
        },
    },
];
