//! Page-cache insight: what of which file is cached (`nodus cache files`),
//! measured the way the kernel counts it.
//!
//! `residency` measures one file (cachestat, else mincore, in the kernel's
//! pages); `scan` walks paths and sums; `render` prints a scan for people.

pub mod render;
pub mod residency;
pub mod scan;

pub use residency::{Method, Residency};
pub use scan::{Scan, scan};
