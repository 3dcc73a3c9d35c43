//! Facts about the board nodus runs on, as the kernel reports them: NUMA
//! nodes and their distances, CPU clusters and caches, CPU lists, and where
//! devices live in sysfs.
//!
//! This sits below every component: the profile checks itself against these
//! facts, and the file server, the process cache (and later the scheduler)
//! read them without importing another component.

mod cpulist;
mod device;
mod topology;

pub use cpulist::{CpuList, CpuListError};
pub use device::{DeviceLocator, char_device_number};
pub use topology::{CpuGroup, Identity, NumaNode, Topology, TopologyError};
