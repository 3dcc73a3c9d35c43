//! Page-cache insight: what of which file is cached (`nodus cache files`),
//! measured the way the kernel counts it, what hits and misses
//! (`nodus cache hits`, `nodus cache trace`, the `pagecache` component),
//! and what a different cache would have done (`nodus cache simulate`).
//!
//! `residency` measures one file (cachestat, else mincore, in the kernel's
//! pages); `scan` walks paths and sums; `top` ranks the files the board
//! uses (`nodus cache top`); `kernel` loads the hit/miss programs and reads
//! their counts; `names` turns devices, inodes and cgroup ids into paths;
//! `live` is the command-line side of the counts; `render` prints for
//! people. The policies `nodus cache simulate` replays are in
//! [`crate::cachesim`], which the file server's hot set uses too.

pub mod component;
pub mod config;
pub mod kernel;
pub mod live;
pub mod names;
pub mod render;
pub mod residency;
pub mod scan;
pub mod top;

pub use component::{PageCache, PageCacheStats};
pub use config::PageCacheConfig;
pub use residency::{Method, Residency};
pub use scan::{Scan, scan};
