//! Page-cache hits and misses: pages asked of the cache and pages inserted
//! into it, per file, process and cgroup, from the filemap tracepoints
//! (attached raw: no perf_event_open).
//!
//! What each tracepoint counts is in `nodus_common::pagecache`. Every
//! counter is per CPU (several CPUs read the same file; the eBPF target has
//! no atomic add in Rust's `core`), summed by userspace; the maps are LRU
//! maps, so a board reading millions of files keeps the busiest ones and
//! its memory stays bounded. A full ring buffer (only used
//! while `nodus cache trace` runs) is counted in `PC_DROPS`, never silent.
#![no_std]
#![no_main]
// aya-ebpf's attribute macros expand to `pub fn(ctx: *mut ...)` entry points
// that hand the pointer to the context type; the kernel owns that pointer.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use core::ptr::read_volatile;

use aya_ebpf::{
    bindings::{BPF_EXIST, BPF_NOEXIST},
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_ktime_get_boot_ns,
    },
    macros::{fentry, fexit, map, raw_tracepoint},
    maps::{LruHashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
    programs::{FEntryContext, FExitContext, RawTracePointContext},
};
use nodus_common::pagecache::{
    BLOCK_DEVICE_INO, COMM_LEN, CacheEvent, CallState, Counts, EMIT_ALL, EMIT_MISSES, EVENT_ACCESS,
    EVENT_MISS, FileKey, FileLayout, MODE_FENTRY, ReadState,
};

use nodus_ebpf::read_kernel as read;

nodus_ebpf::abi_stamp!();

/// `S_IFMT` and `S_IFBLK` of `inode::i_mode` (the same on every architecture).
const S_IFMT: u32 = 0o170000;
const S_IFBLK: u32 = 0o060000;

/// Field offsets of this kernel, written by userspace before load.
#[unsafe(no_mangle)]
static FILE_LAYOUT: FileLayout = FileLayout {
    filled: 0,
    mapping_host: 0,
    inode_ino: 0,
    inode_sb: 0,
    inode_size: 0,
    inode_mode: 0,
    inode_rdev: 0,
    sb_dev: 0,
    folio_flags: 0,
    folio_mapping: 0,
    folio_index: 0,
    folio_nr_pages: 0,
    head_bit: 0,
    page_shift: 0,
    kiocb_filp: 0,
    kiocb_pos: 0,
    file_mapping: 0,
    iter_count: 0,
};

/// `MODE_TRACEPOINTS` or `MODE_FENTRY`, written by userspace before load.
#[unsafe(no_mangle)]
static COUNT_MODE: u32 = 0;

/// `EMIT_NONE`, `EMIT_MISSES` or `EMIT_ALL`, written by userspace before load.
#[unsafe(no_mangle)]
static EMIT_EVENTS: u32 = 0;

/// Everything, summed over all files: slot 0.
#[map]
static PC_TOTALS: PerCpuArray<Counts> = PerCpuArray::with_max_entries(1, 0);

/// Per file. Userspace sizes it from the config at load.
#[map]
static PC_FILES: LruPerCpuHashMap<FileKey, Counts> = LruPerCpuHashMap::with_max_entries(4096, 0);

/// Per process (tgid).
#[map]
static PC_PROCESSES: LruPerCpuHashMap<u32, Counts> = LruPerCpuHashMap::with_max_entries(1024, 0);

/// The name of each counted process: set when it is first counted, renewed
/// at each exec (a process counted before its exec would otherwise keep
/// the name of the shell that forked it). Same size as `PC_PROCESSES`.
#[map]
static PC_NAMES: LruHashMap<u32, [u8; COMM_LEN]> = LruHashMap::with_max_entries(1024, 0);

/// Per cgroup v2 id.
#[map]
static PC_CGROUPS: LruPerCpuHashMap<u64, Counts> = LruPerCpuHashMap::with_max_entries(256, 0);

/// Each thread's read or fault in flight (fentry mode; key: pid_tgid).
#[map]
static PC_CALLS: LruHashMap<u64, CallState> = LruHashMap::with_max_entries(1024, 0);

/// Pages inserted by reads of each file (key: its `address_space`) that no
/// read delivered yet (fentry mode).
#[map]
static PC_FRESH: LruHashMap<u64, u64> = LruHashMap::with_max_entries(4096, 0);

/// Where each thread's last read stood (key: the kernel's pid_tgid).
#[map]
static PC_READS: LruHashMap<u64, ReadState> = LruHashMap::with_max_entries(1024, 0);

/// Events for `nodus cache trace`; empty unless `EMIT_EVENTS` asks.
#[map]
static PC_EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Events lost to a full ring buffer: slot 0.
#[map]
static PC_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn layout() -> Option<FileLayout> {
    // SAFETY: a plain read of our own read-only global; volatile so that the
    // compiler does not fold in the zeros it was compiled with.
    let l = unsafe { read_volatile(&FILE_LAYOUT) };
    (l.filled != 0).then_some(l)
}

#[inline(always)]
fn emit_level() -> u32 {
    // SAFETY: as in `layout`.
    unsafe { read_volatile(&EMIT_EVENTS) }
}

#[inline(always)]
fn fentry_mode() -> bool {
    // SAFETY: as in `layout`.
    unsafe { read_volatile(&COUNT_MODE) == MODE_FENTRY }
}

/// The file an `address_space` belongs to, and its size in bytes.
#[inline(always)]
fn file_of(mapping: *const u8, l: &FileLayout) -> Option<(FileKey, i64)> {
    let inode: *const u8 = read(mapping, l.mapping_host)?;
    let ino: u64 = read(inode, l.inode_ino)?;
    let size: i64 = read(inode, l.inode_size)?;
    let mode: u16 = read(inode, l.inode_mode)?;
    let key = if u32::from(mode) & S_IFMT == S_IFBLK {
        // A block device's cache (file-system metadata): named by the
        // device, not by its inode on the kernel's internal bdev file system.
        FileKey {
            dev: read(inode, l.inode_rdev)?,
            reserved: 0,
            ino: BLOCK_DEVICE_INO,
        }
    } else {
        let sb: *const u8 = read(inode, l.inode_sb)?;
        FileKey {
            dev: read(sb, l.sb_dev)?,
            reserved: 0,
            ino,
        }
    };
    Some((key, size))
}

#[inline(always)]
fn add_counts(counts: *mut Counts, add: &Counts) {
    // SAFETY: `counts` is this CPU's slot of a live per-CPU map value, and
    // programs run with preemption off: no other writer.
    unsafe {
        (*counts).accesses += add.accesses;
        (*counts).misses += add.misses;
        (*counts).hits += add.hits;
    }
}

/// Adds to every table: the totals, the file, the process, the cgroup.
#[inline(always)]
fn count(file: &FileKey, new: &Counts, tgid: u32, cgroup: u64) {
    if let Some(totals) = PC_TOTALS.get_ptr_mut(0) {
        add_counts(totals, new);
    }
    match PC_FILES.get_ptr_mut(file) {
        Some(c) => add_counts(c, new),
        None => {
            let _ = PC_FILES.insert(file, new, 0);
        }
    }
    match PC_CGROUPS.get_ptr_mut(&cgroup) {
        Some(c) => add_counts(c, new),
        None => {
            let _ = PC_CGROUPS.insert(&cgroup, new, 0);
        }
    }
    match PC_PROCESSES.get_ptr_mut(&tgid) {
        Some(p) => add_counts(p, new),
        None => {
            let _ = PC_PROCESSES.insert(&tgid, new, 0);
            // Named here and at exec only: copying the name on every event
            // would cost a helper call on the hottest path.
            let comm = bpf_get_current_comm().unwrap_or_default();
            let _ = PC_NAMES.insert(&tgid, &comm, u64::from(BPF_NOEXIST));
        }
    }
}

#[inline(always)]
fn emit(kind: u32, file: FileKey, index: u64, pages: u64, pid: u32, cgroup_id: u64) {
    let wanted = match kind {
        EVENT_MISS => emit_level() >= EMIT_MISSES,
        _ => emit_level() >= EMIT_ALL,
    };
    if !wanted {
        return;
    }
    let event = CacheEvent {
        kind,
        pid,
        // SAFETY: takes no pointers.
        time_ns: unsafe { bpf_ktime_get_boot_ns() },
        cgroup_id,
        file,
        index,
        pages,
        comm: bpf_get_current_comm().unwrap_or_default(),
    };
    match PC_EVENTS.reserve::<CacheEvent>(0) {
        Some(mut entry) => {
            entry.write(event);
            entry.submit(0);
        }
        None => {
            if let Some(n) = PC_DROPS.get_ptr_mut(0) {
                // SAFETY: a per-CPU slot only this CPU writes.
                unsafe { *n += 1 };
            }
        }
    }
}

/// Counts `pages` from `index` of `file` as accessed (of which `hits` were
/// cached) or missed, and emits the event if asked.
#[inline(always)]
fn record(kind: u32, file: FileKey, index: u64, pages: u64, hits: u64) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: takes no pointers.
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    let counts = match kind {
        EVENT_MISS => Counts {
            accesses: 0,
            misses: pages,
            hits: 0,
        },
        _ => Counts {
            accesses: pages,
            misses: 0,
            hits,
        },
    };
    count(&file, &counts, tgid, cgroup);
    emit(kind, file, index, pages, tgid, cgroup);
}

/// fentry mode: a read or fault of `len` bytes at `pos` of `mapping`
/// begins on this thread.
#[inline(always)]
fn begin_call(mapping: *const u8, pos: i64, len: u64, l: &FileLayout) {
    if mapping.is_null() || pos < 0 || len == 0 {
        return;
    }
    let shift = l.page_shift & 63;
    let pos = pos as u64;
    let state = CallState {
        mapping: mapping as u64,
        pos,
        first: pos >> shift,
        last: (pos + len - 1) >> shift,
    };
    let _ = PC_CALLS.insert(&bpf_get_current_pid_tgid(), &state, 0);
}

/// fentry mode: the thread's call delivered `delivered` bytes (or failed):
/// those pages were accessed; the first of them pay off what reads of the
/// file inserted and nobody read yet (misses), the rest were hits.
#[inline(always)]
fn end_call(delivered: i64, l: &FileLayout) -> Option<()> {
    let thread = bpf_get_current_pid_tgid();
    // SAFETY: a copy out of a live map value this thread's programs write.
    let state = unsafe { *PC_CALLS.get(&thread)? };
    let _ = PC_CALLS.remove(&thread);
    if delivered <= 0 {
        return None;
    }
    let shift = l.page_shift & 63;
    let end = (state.pos + delivered as u64 - 1) >> shift;
    let last = if end < state.last { end } else { state.last };
    if last < state.first {
        return None;
    }
    let pages = last - state.first + 1;
    let missed = match PC_FRESH.get_ptr_mut(&state.mapping) {
        Some(fresh) => {
            // SAFETY: a live map value; another CPU reading the same file at
            // the same instant may lose an update (no atomics here).
            let fresh = unsafe { &mut *fresh };
            let missed = if *fresh < pages { *fresh } else { pages };
            *fresh -= missed;
            missed
        }
        None => 0,
    };
    let (file, _) = file_of(state.mapping as *const u8, l)?;
    record(EVENT_ACCESS, file, state.first, pages, pages - missed);
    Some(())
}

/// fentry mode: `pages` of `mapping` were inserted. Inside a read or fault
/// of that file (its own pages or readahead), they are owed to the file's
/// next reads; a write's are not (nothing was missed).
#[inline(always)]
fn note_inserted(mapping: *const u8, pages: u64) {
    let Some(call) = PC_CALLS.get_ptr(&bpf_get_current_pid_tgid()) else {
        return;
    };
    // SAFETY: a live map value only this thread's programs write.
    if unsafe { (*call).mapping } != mapping as u64 {
        return;
    }
    let key = mapping as u64;
    match PC_FRESH.get_ptr_mut(&key) {
        // SAFETY: a live map value (see `end_call` on concurrent updates).
        Some(fresh) => unsafe { *fresh += pages },
        None => {
            let _ = PC_FRESH.insert(&key, &pages, 0);
        }
    }
}

/// `filemap_read(iocb, iter, already_read)`: read(2) and friends on a
/// cached file (fentry mode).
#[fentry(function = "filemap_read")]
pub fn pagecache_read_entry(ctx: FEntryContext) -> i32 {
    let _ = on_read_entry(&ctx);
    0
}

#[inline(always)]
fn on_read_entry(ctx: &FEntryContext) -> Option<()> {
    let l = layout()?;
    let iocb: *const u8 = ctx.arg(0);
    let iter: *const u8 = ctx.arg(1);
    let file: *const u8 = read(iocb, l.kiocb_filp)?;
    let mapping: *const u8 = read(file, l.file_mapping)?;
    let pos: i64 = read(iocb, l.kiocb_pos)?;
    let len: u64 = read(iter, l.iter_count)?;
    begin_call(mapping, pos, len, &l);
    Some(())
}

/// `filemap_read` returned the bytes read, counting `already_read`.
#[fexit(function = "filemap_read")]
pub fn pagecache_read_exit(ctx: FExitContext) -> i32 {
    let _ = on_read_exit(&ctx);
    0
}

#[inline(always)]
fn on_read_exit(ctx: &FExitContext) -> Option<()> {
    let l = layout()?;
    let already: i64 = ctx.arg(2);
    let ret: i64 = ctx.arg(3);
    end_call(ret - already, &l)
}

/// `filemap_splice_read(in, ppos, pipe, len, flags)`: sendfile(2) and
/// splice(2) from a cached file (fentry mode).
#[fentry(function = "filemap_splice_read")]
pub fn pagecache_splice_entry(ctx: FEntryContext) -> i32 {
    let _ = on_splice_entry(&ctx);
    0
}

#[inline(always)]
fn on_splice_entry(ctx: &FEntryContext) -> Option<()> {
    let l = layout()?;
    let file: *const u8 = ctx.arg(0);
    let ppos: *const u8 = ctx.arg(1);
    let len: u64 = ctx.arg(3);
    let mapping: *const u8 = read(file, l.file_mapping)?;
    let pos: i64 = read(ppos, 0)?;
    begin_call(mapping, pos, len, &l);
    Some(())
}

/// `filemap_splice_read` returned the bytes spliced.
#[fexit(function = "filemap_splice_read")]
pub fn pagecache_splice_exit(ctx: FExitContext) -> i32 {
    if let Some(l) = layout() {
        let ret: i64 = ctx.arg(5);
        let _ = end_call(ret, &l);
    }
    0
}

/// `VM_FAULT_ERROR` and `VM_FAULT_RETRY` of a `vm_fault_t`: the fault
/// delivered no page (yet; a retried fault comes back).
const FAULT_NO_PAGE: u32 = 0x0873 | 0x0400;

/// `filemap_fault(vmf)` returned: the fault the `mm_filemap_fault`
/// tracepoint began delivered its page, or not (fentry mode).
#[fexit(function = "filemap_fault")]
pub fn pagecache_fault_exit(ctx: FExitContext) -> i32 {
    if let Some(l) = layout() {
        let ret: u32 = ctx.arg(1);
        let delivered = if ret & FAULT_NO_PAGE == 0 {
            1i64 << (l.page_shift & 63)
        } else {
            0
        };
        let _ = end_call(delivered, &l);
    }
    0
}

/// `sched_process_exec(task, old_pid, bprm)`: a counted process has a new
/// name.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn pagecache_exec(_ctx: RawTracePointContext) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if PC_NAMES.get_ptr(&tgid).is_some() {
        let comm = bpf_get_current_comm().unwrap_or_default();
        let _ = PC_NAMES.insert(&tgid, &comm, u64::from(BPF_EXIST));
    }
    0
}

/// `mm_filemap_get_pages(mapping, index, last_index)`: a read found (or
/// made) the pages `index..=last_index` in the cache. One read of many
/// pages reports each batch with the read's whole remaining range, so a
/// batch continuing the thread's last read adds nothing: the first batch
/// counted the whole range.
#[raw_tracepoint(tracepoint = "mm_filemap_get_pages")]
pub fn pagecache_get_pages(ctx: RawTracePointContext) -> i32 {
    let _ = on_get_pages(&ctx);
    0
}

#[inline(always)]
fn on_get_pages(ctx: &RawTracePointContext) -> Option<()> {
    let l = layout()?;
    let mapping: *const u8 = ctx.arg(0);
    let index: u64 = ctx.arg(1);
    let asked_last: u64 = ctx.arg(2);
    if asked_last < index {
        return None;
    }
    let (file, size) = file_of(mapping, &l)?;
    if size <= 0 {
        return None;
    }
    // The range is what the reader's buffer could take; a buffer larger than
    // what is left of the file asks for pages past its end.
    let end = ((size - 1) as u64) >> (l.page_shift & 63);
    let last = if asked_last < end { asked_last } else { end };
    if last < index {
        return None;
    }
    let thread = bpf_get_current_pid_tgid();
    let now = ReadState {
        mapping: mapping as u64,
        index,
        last: asked_last,
    };
    if let Some(before) = PC_READS.get_ptr_mut(&thread) {
        // SAFETY: a live map value only this thread's programs write.
        let before = unsafe { &mut *before };
        let continues =
            before.mapping == now.mapping && before.last == now.last && index > before.index;
        *before = now;
        if continues {
            return None;
        }
    } else {
        let _ = PC_READS.insert(&thread, &now, 0);
    }
    record(EVENT_ACCESS, file, index, last - index + 1, 0);
    Some(())
}

/// `mm_filemap_fault(mapping, index)`: a page fault on a file mapping, one
/// page asked of the cache.
#[raw_tracepoint(tracepoint = "mm_filemap_fault")]
pub fn pagecache_fault(ctx: RawTracePointContext) -> i32 {
    let _ = on_fault(&ctx);
    0
}

#[inline(always)]
fn on_fault(ctx: &RawTracePointContext) -> Option<()> {
    let l = layout()?;
    let mapping: *const u8 = ctx.arg(0);
    let index: u64 = ctx.arg(1);
    if fentry_mode() {
        // Counted when filemap_fault returns (pagecache_fault_exit).
        let shift = l.page_shift & 63;
        begin_call(mapping, (index << shift) as i64, 1 << shift, &l);
        return Some(());
    }
    record(EVENT_ACCESS, file_of(mapping, &l)?.0, index, 1, 0);
    Some(())
}

/// `mm_filemap_add_to_page_cache(folio)`: a folio (one page, or a large
/// folio of `_nr_pages`) was inserted into a file's cache: a miss.
#[raw_tracepoint(tracepoint = "mm_filemap_add_to_page_cache")]
pub fn pagecache_add(ctx: RawTracePointContext) -> i32 {
    let _ = on_add(&ctx);
    0
}

#[inline(always)]
fn on_add(ctx: &RawTracePointContext) -> Option<()> {
    let l = layout()?;
    let folio: *const u8 = ctx.arg(0);
    let mapping: *const u8 = read(folio, l.folio_mapping)?;
    let index: u64 = read(folio, l.folio_index)?;
    let flags: u64 = read(folio, l.folio_flags)?;
    let pages = if (flags >> (l.head_bit & 63)) & 1 == 1 {
        read::<u32>(folio, l.folio_nr_pages)? as u64
    } else {
        1
    };
    if fentry_mode() {
        note_inserted(mapping, pages);
    }
    record(EVENT_MISS, file_of(mapping, &l)?.0, index, pages, 0);
    Some(())
}
