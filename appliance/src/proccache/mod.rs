//! The process cache: an exact, bounded, queryable picture of every process
//! on the board, including the ones that lived a millisecond.
//!
//! The kernel side (`ebpf/programs/src/bin/proccache.rs`) reports each
//! process fork, exec and exit from the scheduler tracepoints into a ring
//! buffer. Here, [`cache`] keeps them within a fixed capacity, [`procfs`]
//! seeds the table at start and reconciles it periodically (repairing what a
//! full ring buffer lost), and [`ProcessTable`] is how the control socket
//! (`nodus ps`) and other components query it. When the kernel refuses the
//! programs, the component says so and polls /proc instead.

pub mod cache;
mod component;
pub mod config;
mod consumer;
pub mod event;
mod kernel;
mod measures;
pub mod process;
pub mod procfs;
pub mod render;
mod table;

pub use component::{ProcCache, ProcCacheStats};
pub use config::ProcCacheConfig;
pub use process::{Exit, Origin, Process};
pub use table::{ProcessTable, PsQuery, PsReport};
