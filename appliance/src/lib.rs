//! nodus: a lean appliance daemon for ARMv9 NUMA boards.
//!
//! The binary (`src/main.rs`) is a thin command-line front end; everything it
//! does lives in these modules, one job each, so tests and embedders can
//! drive the same code.

#![deny(missing_docs)]

pub mod board;
pub mod btf;
pub mod cachesim;
pub mod change;
pub mod config;
pub mod control;
pub mod daemon;
pub mod durable;
pub mod ebpf;
pub mod fdlimit;
pub mod fileserver;
pub mod fleet;
pub mod histogram;
pub mod logging;
pub mod numa;
pub mod pagecache;
pub mod privileges;
pub mod probe;
pub mod proccache;
pub mod profile;
pub mod proxy;
pub mod ratelimit;
pub mod sched;
pub mod status;
pub mod supervisor;
pub mod sync;
pub mod telemetry;
pub mod terminal;
pub mod tomlfile;
pub mod top;
pub mod workload;
