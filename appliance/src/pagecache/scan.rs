//! Residency of many files: paths given on the command line, directories
//! walked recursively, with totals. One unreadable file is reported beside
//! the others, never the end of the scan.

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use crate::pagecache::residency::{self, Method, Residency};

/// One file's residency.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileResidency {
    /// The file, as reached from the paths given.
    pub path: PathBuf,
    /// What is cached of it.
    #[serde(flatten)]
    pub residency: Residency,
    /// Its device and inode (what the kernel's hit counts are keyed by),
    /// from the same `fstat`.
    #[serde(skip)]
    pub dev_ino: (u64, u64),
}

/// A path that could not be measured, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScanError {
    /// The path.
    pub path: PathBuf,
    /// What went wrong.
    pub error: String,
}

/// Sums over every file measured (the cachestat-only counts over the files
/// cachestat measured).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Files measured.
    pub files: u64,
    /// Bytes in those files.
    pub size: u64,
    /// Pages they span.
    pub pages: u64,
    /// Pages of them cached.
    pub cached: u64,
    /// Dirty pages.
    pub dirty: u64,
    /// Pages under writeback.
    pub writeback: u64,
    /// Evicted pages.
    pub evicted: u64,
    /// Recently evicted pages.
    pub recently_evicted: u64,
}

/// The result of a scan.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Scan {
    /// The kernel's page size, in bytes; every page count is in these.
    pub page_size: u64,
    /// Each regular file found, in walk order.
    pub files: Vec<FileResidency>,
    /// Sums over `files`.
    pub totals: Totals,
    /// Paths that could not be measured.
    pub errors: Vec<ScanError>,
}

impl Scan {
    fn add(&mut self, path: PathBuf, (r, dev_ino): (Residency, (u64, u64))) {
        let t = &mut self.totals;
        t.files += 1;
        t.size += r.size;
        t.pages += r.pages;
        t.cached += r.cached;
        t.dirty += r.dirty.unwrap_or(0);
        t.writeback += r.writeback.unwrap_or(0);
        t.evicted += r.evicted.unwrap_or(0);
        t.recently_evicted += r.recently_evicted.unwrap_or(0);
        self.files.push(FileResidency {
            path,
            residency: r,
            dev_ino,
        });
    }

    fn error(&mut self, path: &Path, error: impl std::fmt::Display) {
        self.errors.push(ScanError {
            path: path.to_owned(),
            error: error.to_string(),
        });
    }

    /// Whether every file was measured by `method`.
    pub fn all_by(&self, method: Method) -> bool {
        self.files.iter().all(|f| f.residency.method == method)
    }
}

/// Measures every path: a file itself (symlinks followed), a directory
/// every regular file below it (symlinks inside not followed, so a walk
/// never leaves the tree or loops).
pub fn scan(paths: &[PathBuf]) -> Scan {
    let mut out = Scan {
        page_size: residency::page_size(),
        ..Scan::default()
    };
    for path in paths {
        for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
            match entry {
                Ok(e) if e.file_type().is_file() || (e.depth() == 0 && !e.file_type().is_dir()) => {
                    match measure(e.path()) {
                        Ok(Some(r)) => out.add(e.path().to_owned(), r),
                        Ok(None) => {}
                        Err(err) => out.error(e.path(), err),
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    let at = err.path().unwrap_or(path).to_owned();
                    match err.io_error() {
                        Some(io) => out.error(&at, io),
                        None => out.error(&at, err),
                    }
                }
            }
        }
    }
    out
}

/// Opens and measures one path, with its device and inode; `None` if it
/// is not a regular file (a device or socket named on the command line).
fn measure(path: &Path) -> io::Result<Option<(Residency, (u64, u64))>> {
    use std::os::unix::fs::MetadataExt;
    let file = open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    residency::of_file(&file, meta.len()).map(|r| Some((r, (meta.dev(), meta.ino()))))
}

/// Opens without updating the access time where allowed (O_NOATIME needs
/// the file's owner or CAP_FOWNER), so a scan changes nothing it measures.
fn open(path: &Path) -> io::Result<File> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        other => other,
    }
}
