//! Board profiles: what the board is and how nodus uses it. A profile is
//! checked on its own and against the discovered topology before anything is
//! applied; a profile that does not fit is never applied (generic is).

mod apply;
mod check;
mod component;
mod cpulist;
mod load;
mod schema;
mod select;
mod topology;

pub use apply::{Applied, Change, ThreadPlacement, apply, placement_cpus, thread_affinities};
pub use component::ProfileComponent;
pub use select::{Chosen, choose};

pub use check::{Problem, check_against, check_structure, device_dir};
pub use cpulist::{CpuList, CpuListError};
pub use load::{BUILTIN, LoadError, Origin, builtin, load};
pub use schema::*;
pub use topology::{CpuGroup, Identity, NumaNode, Topology, TopologyError};

#[cfg(test)]
mod tests;
