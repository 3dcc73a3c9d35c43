//! Types of the file server's eBPF programs: the sk_reuseport steering program
//! and the TC ingress request classifier.
//!
//! The classifier counts requests in a per-CPU array indexed by
//! `method * PATH_CLASSES + path_class`, so nodus reads request counters
//! without touching the data path, and both sides agree on the index here.

use crate::layout::Fnv;

/// Request methods the classifier tells apart.
pub const METHOD_GET: u32 = 0;
/// `HEAD`.
pub const METHOD_HEAD: u32 = 1;
/// Any other first word (405s, garbage, and TLS sent to the plain port).
pub const METHOD_OTHER: u32 = 2;
/// Number of method slots.
pub const METHODS: u32 = 3;

/// `/` or a path ending in `/` (an index file).
pub const PATH_INDEX: u32 = 0;
/// `.html` / `.htm`.
pub const PATH_HTML: u32 = 1;
/// `.css`, `.js`, `.mjs`, `.json`, `.svg`, `.woff2`: page assets.
pub const PATH_ASSET: u32 = 2;
/// `.png`, `.jpg`, `.gif`, `.webp`, `.ico`, `.avif`: images.
pub const PATH_IMAGE: u32 = 3;
/// Anything else (downloads, unknown extensions, no extension).
pub const PATH_OTHER: u32 = 4;
/// A path containing `..` or `%`: traversal attempts and encoded paths, counted
/// apart because an operator wants to see them.
pub const PATH_SUSPICIOUS: u32 = 5;
/// Number of path classes.
pub const PATH_CLASSES: u32 = 6;

/// Entries of the request counter array.
pub const REQUEST_COUNTERS: u32 = METHODS * PATH_CLASSES;

/// Slots of the reuseport counter array: handed to the worker on the
/// receiving CPU.
pub const REUSEPORT_STEERED: u32 = 0;
/// The receiving NUMA node had no worker (or the helper refused): the
/// kernel's hash chose.
pub const REUSEPORT_FALLBACK: u32 = 1;
/// The receiving CPU had no worker; one on the same NUMA node got it.
pub const REUSEPORT_SAME_NODE: u32 = 2;
/// Number of reuseport counters.
pub const REUSEPORT_COUNTERS: u32 = 3;

/// Set in a CPU -> worker table entry when the worker runs on another CPU
/// of the same node (so the program counts it as [`REUSEPORT_SAME_NODE`]).
pub const SLOT_SAME_NODE: u32 = 1 << 31;

/// Largest CPU number the steering table covers.
pub const MAX_CPUS: u32 = 1024;

/// What the TC classifier needs to know about the server, written once by
/// userspace into slot 0 of an array map before the program is attached.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcConfig {
    /// The serving TCP port, in host byte order.
    pub port: u32,
    /// Non-zero once userspace has written the config (0 = count nothing).
    pub enabled: u32,
}

#[cfg(feature = "user")]
// SAFETY: TcConfig is repr(C), Copy, and has no padding (4 + 4 bytes).
unsafe impl aya::Pod for TcConfig {}

pub(crate) const fn layout(h: Fnv) -> Fnv {
    crate::layout_of!(h, TcConfig { port, enabled })
}
