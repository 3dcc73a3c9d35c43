//! The sched_ext layered scheduler: the board profile's `[[layer]]` tables
//! made real.
//!
//! `plan` is the typed model (layers resolved on this board, their BPF
//! encoding); `membership` turns cgroup-prefix and executable rules into
//! the ids the BPF policy compares; `tuning` decides which layer owns which
//! CPU and resizes grouped layers by their load; `kernel` is the kernel
//! side as the component sees it, `loader` its libbpf half (cargo feature
//! `sched`; `loader_absent` without it); `component` is the supervised
//! loop that ties them together and reports. The BPF policy itself is C:
//! `ebpf/sched/nodus_sched.bpf.c`.

pub mod component;
pub mod config;
pub mod kernel;
#[cfg(feature = "sched")]
pub mod loader;
#[cfg(not(feature = "sched"))]
#[path = "loader_absent.rs"]
pub mod loader;
pub mod membership;
pub mod plan;
pub mod tuning;

pub use component::{Sched, SchedStats};
pub use config::SchedConfig;
pub use plan::Plan;
