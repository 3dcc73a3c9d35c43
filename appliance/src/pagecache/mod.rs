//! Page-cache insight: what of which file is cached (`nodus cache files`),
//! measured the way the kernel counts it, and what a different cache would
//! have done (`nodus cache simulate`).
//!
//! `residency` measures one file (cachestat, else mincore, in the kernel's
//! pages); `scan` walks paths and sums; `top` ranks the files the board
//! uses (`nodus cache top`); `render` prints for people; `sim` replays
//! access traces through LRU, ARC, S3-FIFO and SIEVE.

pub mod render;
pub mod residency;
pub mod scan;
pub mod sim;
pub mod top;

pub use residency::{Method, Residency};
pub use scan::{Scan, scan};
