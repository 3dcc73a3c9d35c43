//! Types of the proxy's sockhash data path: the sk_skb verdict program that
//! redirects each relayed socket's bytes to its peer, and the counters it
//! keeps.
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

pub(crate) const fn layout(h: Fnv) -> Fnv {
    crate::layout_of!(
        h,
        Peer {
            peer,
            bytes,
            slot,
            pad
        }
    )
}
