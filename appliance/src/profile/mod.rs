//! Board profiles: what the board is and how nodus uses it. Today: discovering
//! the topology the kernel reports, which every profile is checked against.

mod cpulist;
mod topology;

pub use cpulist::{CpuList, CpuListError};
pub use topology::{NumaNode, Topology, TopologyError};
