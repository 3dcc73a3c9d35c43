//! Types of the page-cache programs: what they count per file, process and
//! cgroup, the events `nodus cache trace` streams, and the kernel-structure
//! layout userspace hands them at load.
//!
//! The programs hang off the filemap tracepoints, attached raw (no
//! perf_event_open, which the service's system-call filter refuses), so
//! they read `address_space`, `inode` and `folio` with
//! `bpf_probe_read_kernel` at offsets userspace found in the kernel's BTF
//! ([`FileLayout`]).
//!
//! What is counted, in pages of the kernel's page size:
//! - an *access*: the page range a `read(2)` asked the cache for
//!   (`mm_filemap_get_pages`, counted once per read even when the kernel
//!   walks it in several batches), and each page fault served from a file
//!   (`mm_filemap_fault`);
//! - a *miss*: each page inserted into the cache
//!   (`mm_filemap_add_to_page_cache`, a folio of one or more pages).
//!
//! With tracepoints alone ([`MODE_TRACEPOINTS`]), hits are accesses minus
//! misses: an estimate (pages mapped by fault-around and pages inserted by
//! a write are not told apart), labelled so wherever it is shown. Where the
//! kernel allows fentry/fexit ([`MODE_FENTRY`]), reads are counted around
//! `filemap_read` and `filemap_splice_read`, and faults around
//! `filemap_fault`: the pages each call delivered (not the range it asked
//! for), and of those, hits are counted ([`Counts::hits`]): pages inserted
//! by reads of a file (the read's own and its readahead; not writes) are
//! owed to that file, and the next pages delivered from it pay that off as
//! misses; every other page delivered is a hit.

use crate::layout::Fnv;

/// Length of `task_struct::comm`.
pub const COMM_LEN: usize = 16;

/// [`FileKey::ino`] of a block device's own page cache (no file has inode 0).
pub const BLOCK_DEVICE_INO: u64 = 0;

/// [`CacheEvent::kind`]: pages were inserted into the cache (a miss).
pub const EVENT_MISS: u32 = 1;
/// [`CacheEvent::kind`]: pages were asked of the cache (an access).
pub const EVENT_ACCESS: u32 = 2;

/// The `COUNT_MODE` global: tracepoints only, hits estimated.
pub const MODE_TRACEPOINTS: u32 = 0;
/// The `COUNT_MODE` global: fentry/fexit around the read and fault paths,
/// hits counted.
pub const MODE_FENTRY: u32 = 1;

/// The `EMIT_EVENTS` global: count only, no events (the daemon).
pub const EMIT_NONE: u32 = 0;
/// The `EMIT_EVENTS` global: an event per miss (`nodus cache trace`).
pub const EMIT_MISSES: u32 = 1;
/// The `EMIT_EVENTS` global: an event per miss and per access (recording
/// an access trace for the simulator).
pub const EMIT_ALL: u32 = 2;

/// A file, as the kernel names it: the device of its superblock (kernel
/// encoding, `major << 20 | minor`) and its inode number. A block device's
/// own cache (where file systems keep their metadata) is the device itself
/// with inode [`BLOCK_DEVICE_INO`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// `super_block::s_dev`, kernel encoding.
    pub dev: u32,
    /// Keeps `ino` 8-byte aligned; always zero.
    pub reserved: u32,
    /// `inode::i_ino`.
    pub ino: u64,
}

/// Pages asked of the cache and pages inserted into it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Pages accessed (reads and file faults).
    pub accesses: u64,
    /// Pages inserted into the cache (misses).
    pub misses: u64,
    /// Pages delivered by a read or fault that were already cached: counted
    /// with [`MODE_FENTRY`] only (zero with tracepoints).
    pub hits: u64,
}

/// Where the last read of a thread stood, so that the batches of one
/// `read(2)` count once: the kernel reports each batch with the read's
/// whole remaining range.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadState {
    /// The `address_space` read from.
    pub mapping: u64,
    /// First page of the last batch.
    pub index: u64,
    /// Last page of the read (inclusive).
    pub last: u64,
}

/// A read or fault in flight on one thread ([`MODE_FENTRY`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallState {
    /// The `address_space` read from.
    pub mapping: u64,
    /// Byte position the call started at.
    pub pos: u64,
    /// First page it asked for.
    pub first: u64,
    /// Last page it asked for (inclusive).
    pub last: u64,
}

/// One miss or access, for `nodus cache trace`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheEvent {
    /// [`EVENT_MISS`] or [`EVENT_ACCESS`].
    pub kind: u32,
    /// The process (the kernel's tgid).
    pub pid: u32,
    /// When, ns since boot.
    pub time_ns: u64,
    /// The cgroup v2 id of the task.
    pub cgroup_id: u64,
    /// The file.
    pub file: FileKey,
    /// First page.
    pub index: u64,
    /// Pages from `index` on.
    pub pages: u64,
    /// The task's command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
}

/// Byte offsets of the kernel-structure fields the programs read, resolved
/// from the running kernel's BTF. Zero is a valid offset, so
/// [`FileLayout::filled`] says whether userspace filled them in; until then
/// the programs do nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileLayout {
    /// Non-zero once userspace filled in the offsets.
    pub filled: u32,
    /// `address_space::host`.
    pub mapping_host: u32,
    /// `inode::i_ino`.
    pub inode_ino: u32,
    /// `inode::i_sb`.
    pub inode_sb: u32,
    /// `inode::i_size`.
    pub inode_size: u32,
    /// `inode::i_mode`.
    pub inode_mode: u32,
    /// `inode::i_rdev`.
    pub inode_rdev: u32,
    /// `super_block::s_dev`.
    pub sb_dev: u32,
    /// `folio::flags`.
    pub folio_flags: u32,
    /// `folio::mapping`.
    pub folio_mapping: u32,
    /// `folio::index`.
    pub folio_index: u32,
    /// `folio::_nr_pages` (pages of a large folio).
    pub folio_nr_pages: u32,
    /// The bit of `PG_head` in the folio's flags: set on large folios.
    pub head_bit: u32,
    /// log2 of the kernel's page size.
    pub page_shift: u32,
    /// `kiocb::ki_filp` (fentry mode).
    pub kiocb_filp: u32,
    /// `kiocb::ki_pos` (fentry mode).
    pub kiocb_pos: u32,
    /// `file::f_mapping` (fentry mode).
    pub file_mapping: u32,
    /// `iov_iter::count` (fentry mode).
    pub iter_count: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are repr(C), Copy, and laid out without padding (checked
    // by the size assertions below).
    unsafe impl aya::Pod for super::FileKey {}
    unsafe impl aya::Pod for super::Counts {}
    unsafe impl aya::Pod for super::ReadState {}
    unsafe impl aya::Pod for super::CallState {}
    unsafe impl aya::Pod for super::CacheEvent {}
    unsafe impl aya::Pod for super::FileLayout {}
}

const _: () = assert!(core::mem::size_of::<FileKey>() == 16);
const _: () = assert!(core::mem::size_of::<CacheEvent>() == 8 + 16 + 16 + 16 + COMM_LEN);
const _: () = assert!(core::mem::size_of::<FileLayout>() == 18 * 4);

pub(crate) const fn layout(h: Fnv) -> Fnv {
    let h = crate::layout_of!(h, FileKey { dev, reserved, ino });
    let h = crate::layout_of!(
        h,
        Counts {
            accesses,
            misses,
            hits
        }
    );
    let h = crate::layout_of!(
        h,
        CallState {
            mapping,
            pos,
            first,
            last
        }
    );
    let h = crate::layout_of!(
        h,
        ReadState {
            mapping,
            index,
            last
        }
    );
    let h = crate::layout_of!(
        h,
        CacheEvent {
            kind,
            pid,
            time_ns,
            cgroup_id,
            file,
            index,
            pages,
            comm
        }
    );
    crate::layout_of!(
        h,
        FileLayout {
            filled,
            mapping_host,
            inode_ino,
            inode_sb,
            inode_size,
            inode_mode,
            inode_rdev,
            sb_dev,
            folio_flags,
            folio_mapping,
            folio_index,
            folio_nr_pages,
            head_bit,
            page_shift,
            kiocb_filp,
            kiocb_pos,
            file_mapping,
            iter_count
        }
    )
}
