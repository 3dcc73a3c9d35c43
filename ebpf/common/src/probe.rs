//! Types of the kernel-feature probe programs (`nodus probe`).

use crate::layout::Fnv;

/// Written by the ring-buffer probe program; its presence proves that the
/// kernel accepted a program that reserves and submits ring-buffer records.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeRecord {
    /// Always [`PROBE_MAGIC`].
    pub magic: u32,
    /// The tgid of the task that triggered the program.
    pub tgid: u32,
    /// `bpf_ktime_get_ns()` when the record was written.
    pub ktime_ns: u64,
}

/// Marker that identifies a [`ProbeRecord`].
pub const PROBE_MAGIC: u32 = 0x6e6f_6475; // "nodu"

#[cfg(feature = "user")]
// SAFETY: ProbeRecord is repr(C), Copy, and has no padding (4 + 4 + 8 bytes).
unsafe impl aya::Pod for ProbeRecord {}

pub(crate) const fn layout(h: Fnv) -> Fnv {
    crate::layout_of!(
        h,
        ProbeRecord {
            magic,
            tgid,
            ktime_ns
        }
    )
}
