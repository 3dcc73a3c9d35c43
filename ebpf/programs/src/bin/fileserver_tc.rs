//! File-server request classifier: a TC ingress program on the serving
//! interface that looks at the first bytes of each TCP segment sent to the
//! serving port and, when they start an HTTP request, counts it by method and
//! path class in a per-CPU array. It never drops or changes a packet (and
//! passes each on to the next program attached), so nodus
//! gets kernel-side request counts without touching the data path.
//!
//! Only the first request of a segment is counted (a pipelined burst in one
//! segment counts once); userspace's own counters are the exact ones.
//!
//! The protocol comes from `skb->protocol` and the IP header is found where
//! the kernel says the network header is, so the same program works on
//! Ethernet interfaces and on L3 ones without a link-layer header (wwan,
//! WireGuard, tun), where a fixed 14-byte Ethernet offset would read the IP
//! header as garbage. `bpf_skb_load_bytes_relative` reads only the linear
//! part of the packet (a TCP payload is often in page fragments), so it
//! only locates the header: the offset is the candidate link-header length
//! (none, Ethernet, Ethernet + VLAN tag) whose bytes equal it, and every
//! read after that is an ordinary `bpf_skb_load_bytes`.
#![no_std]
#![no_main]
// aya-ebpf's attribute macros expand to `pub fn(ctx: *mut ...)` entry points
// that hand the pointer to the context type; the kernel owns that pointer.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use core::mem::MaybeUninit;

use aya_ebpf::{
    EbpfContext,
    bindings::{TC_ACT_UNSPEC, bpf_hdr_start_off::BPF_HDR_START_NET},
    helpers::bpf_skb_load_bytes_relative,
    macros::{classifier, map},
    maps::{Array, PerCpuArray},
    programs::TcContext,
};
use nodus_common::fileserver::{
    METHOD_GET, METHOD_HEAD, METHOD_OTHER, PATH_ASSET, PATH_CLASSES, PATH_HTML, PATH_IMAGE,
    PATH_INDEX, PATH_OTHER, PATH_SUSPICIOUS, REQUEST_COUNTERS, TcConfig,
};

use nodus_ebpf::{ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP};

nodus_ebpf::abi_stamp!();

/// Slot 0: the serving port (written by userspace before attaching).
#[map]
static FS_TC_CONFIG: Array<TcConfig> = Array::with_max_entries(1, 0);

/// Requests by `method * PATH_CLASSES + path_class`.
#[map]
static FS_REQUESTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(REQUEST_COUNTERS, 0);

/// How many 8-byte chunks of the request line are examined.
const CHUNKS: usize = 8;

/// Returns "no verdict" (TC_ACT_UNSPEC, tcx's TCX_NEXT): the packet goes on
/// to whatever else is attached on the interface (another nodus, Cilium, a
/// shaper) and then takes its default path. TC_ACT_OK would end the chain
/// here and hide the packet from every program attached after this one.
#[classifier]
pub fn fileserver_tc(ctx: TcContext) -> i32 {
    let _ = classify(&ctx);
    TC_ACT_UNSPEC
}

/// Link-header lengths to try: none (L3 devices), Ethernet, Ethernet with
/// one VLAN tag left in the packet.
const LINK_HEADERS: [usize; 3] = [0, 14, 18];

/// Where the network header starts, from the start of the packet.
fn network_offset(ctx: &TcContext) -> Option<usize> {
    let header: [u8; 16] = load_net(ctx, 0)?;
    let header = u128::from_ne_bytes(header);
    LINK_HEADERS
        .into_iter()
        .find(|&at| ctx.load::<[u8; 16]>(at).ok().map(u128::from_ne_bytes) == Some(header))
}

/// A `T` read `offset` bytes past the start of the network header, from the
/// packet's linear part.
fn load_net<T>(ctx: &TcContext, offset: usize) -> Option<T> {
    let mut data = MaybeUninit::<T>::uninit();
    // SAFETY: the helper writes at most size_of::<T>() bytes into `data`
    // and returns 0 only when it wrote all of them.
    let ret = unsafe {
        bpf_skb_load_bytes_relative(
            ctx.as_ptr(),
            offset as u32,
            data.as_mut_ptr().cast(),
            core::mem::size_of::<T>() as u32,
            BPF_HDR_START_NET,
        )
    };
    // SAFETY: fully written when the helper returned 0.
    (ret == 0).then(|| unsafe { data.assume_init() })
}

/// A `T` read `offset` bytes into the packet (fragments included).
fn load<T>(ctx: &TcContext, offset: usize) -> Option<T> {
    ctx.load(offset).ok()
}

fn classify(ctx: &TcContext) -> Option<()> {
    let config = FS_TC_CONFIG.get(0)?;
    if config.enabled == 0 {
        return None;
    }
    let payload = tcp_payload(ctx, config.port)?;
    let first: [u8; 8] = load(ctx, payload)?;
    let (method, path_at) = match first {
        [b'G', b'E', b'T', b' ', ..] => (METHOD_GET, payload + 4),
        [b'H', b'E', b'A', b'D', b' ', ..] => (METHOD_HEAD, payload + 5),
        [c, ..] if c.is_ascii_uppercase() => (METHOD_OTHER, 0),
        _ => return None,
    };
    let class = if method == METHOD_OTHER {
        PATH_OTHER
    } else {
        path_class(ctx, path_at)
    };
    let n = FS_REQUESTS.get_ptr_mut(method * PATH_CLASSES + class)?;
    // SAFETY: a per-CPU slot, written only by this CPU.
    unsafe { *n += 1 };
    Some(())
}

/// Offset of the TCP payload of a non-empty segment to `port`.
fn tcp_payload(ctx: &TcContext, port: u32) -> Option<usize> {
    // skb->protocol holds the big-endian EtherType, whatever the link.
    let proto = u16::from_be(ctx.skb.protocol() as u16);
    if proto != ETH_P_IP && proto != ETH_P_IPV6 {
        return None;
    }
    let net = network_offset(ctx)?;
    let (l4, ip_end) = if proto == ETH_P_IP {
        let vihl: u8 = load(ctx, net)?;
        let total = u16::from_be(load::<u16>(ctx, net + 2)?) as usize;
        if load::<u8>(ctx, net + 9)? != IPPROTO_TCP {
            return None;
        }
        (net + ((vihl & 0x0f) as usize) * 4, net + total)
    } else {
        let plen = u16::from_be(load::<u16>(ctx, net + 4)?) as usize;
        if load::<u8>(ctx, net + 6)? != IPPROTO_TCP {
            return None;
        }
        (net + 40, net + 40 + plen)
    };
    let dport = u16::from_be(load::<u16>(ctx, l4 + 2)?);
    if u32::from(dport) != port {
        return None;
    }
    let doff: u8 = load(ctx, l4 + 12)?;
    let payload = l4 + ((doff >> 4) as usize) * 4;
    (payload < ip_end).then_some(payload)
}

/// Classifies the request target starting at `at` from its first 64 bytes.
fn path_class(ctx: &TcContext, at: usize) -> u32 {
    let mut ext: u64 = 0;
    let mut in_ext = false;
    let mut prev = 0u8;
    let mut last = 0u8;
    let mut suspicious = false;
    let mut i = 0;
    'scan: while i < CHUNKS {
        let Some(chunk) = load::<[u8; 8]>(ctx, at + i * 8) else {
            break;
        };
        for &c in chunk.iter() {
            if c == b' ' || c == b'?' || c == b'\r' {
                break 'scan;
            }
            if c == b'%' || (c == b'.' && prev == b'.') {
                suspicious = true;
            }
            if c == b'/' {
                in_ext = false;
                ext = 0;
            } else if c == b'.' {
                in_ext = true;
                ext = 0;
            } else if in_ext {
                ext = (ext << 8) | u64::from(c.to_ascii_lowercase());
            }
            prev = c;
            last = c;
        }
        i += 1;
    }
    if suspicious {
        return PATH_SUSPICIOUS;
    }
    if last == b'/' {
        return PATH_INDEX;
    }
    if !in_ext {
        return PATH_OTHER;
    }
    match ext {
        x if x == pack(b"html") || x == pack(b"htm") => PATH_HTML,
        x if x == pack(b"css")
            || x == pack(b"js")
            || x == pack(b"mjs")
            || x == pack(b"json")
            || x == pack(b"svg")
            || x == pack(b"woff2") =>
        {
            PATH_ASSET
        }
        x if x == pack(b"png")
            || x == pack(b"jpg")
            || x == pack(b"jpeg")
            || x == pack(b"gif")
            || x == pack(b"webp")
            || x == pack(b"ico")
            || x == pack(b"avif") =>
        {
            PATH_IMAGE
        }
        _ => PATH_OTHER,
    }
}

/// An extension packed the way [`path_class`] accumulates it.
const fn pack(s: &[u8]) -> u64 {
    let mut v = 0u64;
    let mut i = 0;
    while i < s.len() {
        v = (v << 8) | s[i] as u64;
        i += 1;
    }
    v
}
