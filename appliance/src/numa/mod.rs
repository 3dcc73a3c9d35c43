//! NUMA locality: where each process runs and where its memory is, and
//! moving placed processes' memory to the node the board profile gives
//! them.
//!
//! `homes` decides who belongs where (from the profile); `nodes` reads the
//! per-node counters the kernel keeps; `procs` reads the process list;
//! `kernel` loads the eBPF programs counting what the scheduler does to
//! each process and seeing accelerator opens; `class` turns those counts
//! into a workload class; `place` pins an accelerator's users to its node;
//! `pages` asks and moves pages with `move_pages(2)`, bounded; `look` is
//! one look at the board; `mover` spends the bandwidth budget moving
//! misplaced pages home; `component` is the supervised loop and its stats;
//! `view` is the last look in numbers, for `nodus top`.

pub mod class;
pub mod component;
pub mod config;
pub mod counters;
pub mod homes;
pub mod kernel;
pub mod look;
pub mod mover;
pub mod nodes;
pub mod pages;
pub mod place;
pub mod procs;
pub mod view;

pub use component::{Numa, NumaStats};
pub use config::NumaConfig;
pub use homes::Homes;
pub use view::{NumaView, ViewSlot};
