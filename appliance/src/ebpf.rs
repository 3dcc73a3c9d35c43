//! The eBPF objects embedded in the binary: those `nodus_common::objects`
//! lists, one per program binary of `ebpf/programs`. `build.rs` either
//! compiled them or took them, checked, from a prebuilt directory
//! (`NODUS_EBPF_DIR`).

use nodus_common::objects::Object;

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// The bytes of `object`, one of `nodus_common::objects::ALL` (all of which
/// the build embedded and checked).
pub fn bytes(object: &Object) -> &'static [u8] {
    EMBEDDED
        .iter()
        .find(|(name, _)| *name == object.name)
        .map_or(&[], |(_, b)| *b)
}

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
