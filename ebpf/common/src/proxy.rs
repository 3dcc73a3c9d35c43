//! Types of the proxy's eBPF: the sockhash data path (the sk_skb verdict
//! program that redirects each relayed socket's bytes to its peer, and the
//! counters it keeps) and the XDP guard (per-source SYN rate and a CIDR
//! blocklist on the listening interface).
//!
//! Userspace puts both sockets of a routed connection into a SOCKHASH keyed
//! by their socket cookies and, for each, a [`Peer`] entry (keyed by the same
//! cookie) naming the other. The verdict program looks up the receiving
//! socket's entry, redirects the bytes to the peer's socket and counts them
//! there (per connection, for the drain before a FIN is passed on) and per
//! route and direction (live byte counters in `nodus status`).

use crate::layout::Fnv;

/// One relayed socket, keyed by its socket cookie in the peer map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    /// The other socket's cookie: its key in the sockhash.
    pub peer: u64,
    /// Bytes this socket received that were redirected to the peer.
    pub bytes: u64,
    /// Its slot in the per-route byte counters ([`byte_slot`]).
    pub slot: u32,
    /// Zero.
    pub pad: u32,
}

#[cfg(feature = "user")]
// SAFETY: Peer is repr(C), Copy, and has no padding (8 + 8 + 4 + 4 bytes).
unsafe impl aya::Pod for Peer {}

/// Routes with their own byte counters; the config allows no more.
pub const MAX_ROUTES: u32 = 64;
/// Direction of bytes from the client to the backend.
pub const UP: u32 = 0;
/// Direction of bytes from the backend to the client.
pub const DOWN: u32 = 1;
/// Entries of the per-route byte counter array.
pub const BYTE_SLOTS: u32 = MAX_ROUTES * 2;

/// The byte counter slot of `route` in `direction` ([`UP`] or [`DOWN`]).
pub const fn byte_slot(route: u32, direction: u32) -> u32 {
    route * 2 + direction
}

/// Verdict counter: bytes redirected to the peer.
pub const VERDICT_REDIRECTED: u32 = 0;
/// Verdict counter: a socket with no peer entry (left to the socket).
pub const VERDICT_UNPAIRED: u32 = 1;
/// Verdict counter: the peer's socket was gone (bytes dropped; the
/// connection is ending).
pub const VERDICT_PEER_GONE: u32 = 2;
/// Entries of the verdict counter array.
pub const VERDICTS: u32 = 3;

/// The XDP guard's settings: slot 0 of its config array, written by
/// userspace before it attaches the program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardConfig {
    /// The proxy's listening port (host order): only SYNs to it are judged.
    pub port: u32,
    /// SYNs one source may send per second before the rest of that second
    /// are dropped; 0: no rate limit.
    pub syn_per_second: u32,
}

#[cfg(feature = "user")]
// SAFETY: GuardConfig is repr(C), Copy, and has no padding (4 + 4 bytes).
unsafe impl aya::Pod for GuardConfig {}

/// One source's SYNs in the current one-second window, in the guard's LRU
/// map keyed by the source address (IPv4 as IPv4-mapped IPv6).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynWindow {
    /// When the window began (`bpf_ktime_get_ns`).
    pub start_ns: u64,
    /// SYNs seen in it.
    pub count: u32,
    /// Zero.
    pub pad: u32,
}

#[cfg(feature = "user")]
// SAFETY: SynWindow is repr(C), Copy, and has no padding (8 + 4 + 4 bytes).
unsafe impl aya::Pod for SynWindow {}

/// Guard counter: SYNs to the port let through.
pub const GUARD_PASSED: u32 = 0;
/// Guard counter: SYNs dropped because the source is in the blocklist.
pub const GUARD_BLOCKED: u32 = 1;
/// Guard counter: SYNs dropped over the per-source rate.
pub const GUARD_RATE_LIMITED: u32 = 2;
/// Entries of the guard counter array.
pub const GUARD_COUNTERS: u32 = 3;
/// Sources the rate limiter remembers (least recently seen go first).
pub const GUARD_MAX_SOURCES: u32 = 65_536;
/// Blocklist prefixes the trie holds.
pub const GUARD_MAX_PREFIXES: u32 = 4096;

/// `addr` as the guard keys it: IPv6 bytes, IPv4 mapped (`::ffff:a.b.c.d`);
/// an IPv4 prefix length is then 96 more.
pub const fn mapped_v4(v4: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4[0], v4[1], v4[2], v4[3],
    ]
}

pub(crate) const fn layout(h: Fnv) -> Fnv {
    let h = crate::layout_of!(
        h,
        Peer {
            peer,
            bytes,
            slot,
            pad
        }
    );
    let h = crate::layout_of!(
        h,
        GuardConfig {
            port,
            syn_per_second
        }
    );
    crate::layout_of!(
        h,
        SynWindow {
            start_ns,
            count,
            pad
        }
    )
}
