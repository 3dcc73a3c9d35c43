//! The eBPF objects embedded in the binary, one per program binary of
//! `ebpf/programs`. `build.rs` either compiled them or took them, checked,
//! from a prebuilt directory (`NODUS_EBPF_DIR`).

/// Tiny map-less programs of each type `nodus probe` checks.
pub static PROBE: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ebpf/probe"));

/// Ring-buffer probe: a RINGBUF map and a program writing to it.
pub static PROBE_RINGBUF: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ebpf/probe_ringbuf"));

/// Socket-map probe: a SOCKHASH map and an sk_skb stream verdict program.
pub static PROBE_SOCKHASH: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ebpf/probe_sockhash"));

/// Process cache: fork/exec/exit raw tracepoints feeding a ring buffer.
pub static PROCCACHE: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ebpf/proccache"));
/// File-server connection steering: an sk_reuseport program choosing the
/// listening socket of the worker on the CPU that received the connection.
pub static FILESERVER_REUSEPORT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ebpf/fileserver_reuseport"));

/// File-server request classifier: a TC ingress program counting requests by
/// method and path class.
pub static FILESERVER_TC: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ebpf/fileserver_tc"));

/// Renders an error with its whole `source()` chain on one line, because aya's
/// top-level errors ("the BPF_PROG_LOAD syscall failed") hide the kernel's
/// actual answer ("Operation not permitted") one level down.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let msg = inner.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = inner.source();
    }
    // aya appends the verifier log even when the kernel wrote none.
    let trimmed = s.trim_end();
    let trimmed = trimmed.strip_suffix("Verifier output:").unwrap_or(trimmed);
    trimmed.trim_end().trim_end_matches('.').to_owned()
}
