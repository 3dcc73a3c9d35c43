//! How much of one file is in the page cache.
//!
//! `cachestat(2)` (Linux 6.5) answers in one call, without mapping the file,
//! and also counts dirty, writeback and evicted pages. Where the kernel
//! lacks it (ENOSYS), `mincore(2)` over a read-only mapping answers the
//! cached count alone. Pages are the kernel's pages
//! (`sysconf(PAGE_SIZE)`: 4 KiB, 16 KiB or 64 KiB on arm64), never an
//! assumed 4096.

use std::{fs::File, io, os::fd::AsRawFd, sync::OnceLock};

/// How a residency was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// `cachestat(2)`: cached, dirty, writeback, evicted and recently evicted.
    Cachestat,
    /// `mincore(2)` over a mapping: cached pages only.
    Mincore,
}

/// One file's page-cache residency, in the kernel's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Residency {
    /// The file's size in bytes.
    pub size: u64,
    /// Pages the file spans (its size rounded up to whole pages).
    pub pages: u64,
    /// Pages in the page cache.
    pub cached: u64,
    /// Cached pages not yet written back (cachestat only).
    pub dirty: Option<u64>,
    /// Pages being written back (cachestat only).
    pub writeback: Option<u64>,
    /// Pages evicted from the cache since the file was opened by anyone
    /// (its shadow entries; cachestat only).
    pub evicted: Option<u64>,
    /// Evicted pages that would still be cached had the cache been
    /// somewhat larger: the workingset's refaults-to-be (cachestat only).
    pub recently_evicted: Option<u64>,
    /// How it was measured.
    pub method: Method,
}

/// The kernel's page size in bytes.
pub fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|p| u64::try_from(p).ok())
            .filter(|p| *p > 0)
            .unwrap_or(4096)
    })
}

/// Pages spanned by `size` bytes.
pub fn pages_of(size: u64) -> u64 {
    size.div_ceil(page_size())
}

/// Measures `file`, whose size is `size`: cachestat first, mincore where
/// the kernel has no cachestat.
///
/// Both calls answer only for files the caller owns or may write (the
/// kernel's rule since CVE-2025-21691 for cachestat, and since Linux 5.0 for
/// mincore, which otherwise reports only pages mapped by the caller: a
/// silent zero). Such a file is an error saying so, never a false zero.
///
/// EPERM from cachestat for a caller the kernel's rule admits (root, the
/// owner, a writer) is not that rule: a system-call filter refused the call
/// (systemd before v255 does not know cachestat, so a unit's
/// `SystemCallFilter` allow-list drops it), and mincore answers instead.
pub fn of_file(file: &File, size: u64) -> io::Result<Residency> {
    match cachestat(file, size) {
        Ok(r) => Ok(r),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOSYS)) => {
            if may_write_or_owns(file)? {
                mincore(file, size)
            } else {
                Err(not_permitted())
            }
        }
        Err(e) => Err(e),
    }
}

fn not_permitted() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "the kernel reports page-cache residency only to the file's owner or a writer (run as root)",
    )
}

/// The kernel's test for residency queries: owner, a writer, or root.
fn may_write_or_owns(file: &File) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    let (euid, egid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    Ok(euid == 0
        || meta.uid() == euid
        || meta.mode() & 0o002 != 0
        || (meta.mode() & 0o020 != 0 && meta.gid() == egid))
}

/// `cachestat(2)`'s syscall number: new syscalls share one number on every
/// architecture (and the libc crate does not define this one for ours).
const SYS_CACHESTAT: libc::c_long = 451;

/// `struct cachestat_range` (include/uapi/linux/mman.h).
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` (include/uapi/linux/mman.h).
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// The whole file through `cachestat(2)`.
pub fn cachestat(file: &File, size: u64) -> io::Result<Residency> {
    // len 0 means "to the end of the file".
    let range = CachestatRange { off: 0, len: 0 };
    let mut stat = Cachestat::default();
    // nix has no wrapper for cachestat.
    // SAFETY: both pointers are to live, properly sized #[repr(C)] values
    // for the duration of the call; the fd is open (borrowed from `file`);
    // flags must be 0.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Residency {
        size,
        pages: pages_of(size),
        cached: stat.nr_cache,
        dirty: Some(stat.nr_dirty),
        writeback: Some(stat.nr_writeback),
        evicted: Some(stat.nr_evicted),
        recently_evicted: Some(stat.nr_recently_evicted),
        method: Method::Cachestat,
    })
}

/// The whole file through `mincore(2)` over a read-only shared mapping
/// (mapping does not read the file: no page is brought in).
pub fn mincore(file: &File, size: u64) -> io::Result<Residency> {
    let pages = pages_of(size);
    let mut cached = 0u64;
    if size > 0 {
        let len =
            usize::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a read-only shared mapping that nodus never dereferences
        // (mincore only asks the kernel about it), so a truncation of the
        // file meanwhile cannot fault this process.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(file) }?;
        let mut vec = vec![0u8; usize::try_from(pages).unwrap_or(usize::MAX)];
        // nix has no wrapper for mincore.
        // SAFETY: `map` is a live mapping of `len` bytes, page aligned;
        // `vec` has one byte per page of it, as mincore writes.
        let rc = unsafe { libc::mincore(map.as_ptr() as *mut libc::c_void, len, vec.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        cached = vec.iter().filter(|b| **b & 1 == 1).count() as u64;
    }
    Ok(Residency {
        size,
        pages,
        cached,
        dirty: None,
        writeback: None,
        evicted: None,
        recently_evicted: None,
        method: Method::Mincore,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn pages_round_up_to_the_kernels_page() {
        let p = page_size();
        assert!(p.is_power_of_two() && p >= 4096);
        assert_eq!(pages_of(0), 0);
        assert_eq!(pages_of(1), 1);
        assert_eq!(pages_of(p), 1);
        assert_eq!(pages_of(p + 1), 2);
    }

    /// Both methods agree on a file just written (all of it cached).
    #[test]
    fn cachestat_and_mincore_agree_on_a_fresh_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![7u8; 10 * page_size() as usize + 1])
            .unwrap();
        let f = File::open(&path).unwrap();
        let size = f.metadata().unwrap().len();
        let by_mincore = mincore(&f, size).unwrap();
        assert_eq!(by_mincore.pages, 11);
        assert_eq!(by_mincore.cached, 11);
        match cachestat(&f, size) {
            Ok(r) => {
                assert_eq!(r.cached, by_mincore.cached);
                assert_eq!(r.method, Method::Cachestat);
            }
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOSYS), "{e}"),
        }
    }
}
