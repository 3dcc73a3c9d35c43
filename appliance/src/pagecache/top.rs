//! The files of this board with the most pages in the page cache, among
//! those the board uses: what the file server serves (its docroot), what
//! every process maps or holds open (from /proc, so a file read through a
//! descriptor counts as much as a mapped library, unlike a top view built
//! on mappings alone), and any paths the caller adds.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use crate::pagecache::{
    residency::Residency,
    scan::{self, FileResidency, ScanError},
};

/// Why a file is a candidate.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Users {
    /// Under the file server's docroot.
    pub docroot: bool,
    /// Under a path the caller named.
    pub named: bool,
    /// Processes mapping it or holding it open: (pid, comm), at most
    /// [`USERS_KEPT`] of them.
    pub processes: Vec<(u32, String)>,
    /// How many processes use it in all.
    pub process_count: usize,
}

/// Processes kept per file (the count is exact).
pub const USERS_KEPT: usize = 4;

/// One file of the top list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TopFile {
    /// The file.
    pub path: PathBuf,
    /// What is cached of it.
    #[serde(flatten)]
    pub residency: Residency,
    /// Who uses it.
    pub users: Users,
}

/// The top list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Top {
    /// The kernel's page size, in bytes.
    pub page_size: u64,
    /// Candidate files measured.
    pub candidates: usize,
    /// Cached pages over every candidate.
    pub cached_total: u64,
    /// The `limit` files with the most cached pages, most first.
    pub files: Vec<TopFile>,
    /// Candidates that could not be measured.
    pub errors: Vec<ScanError>,
}

/// Every regular file process `pid` maps or holds open.
pub(super) fn files_of_process(pid: u32) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) {
        // address perms offset dev inode path: the path starts at the
        // first '/' after the inode column.
        for line in maps.lines() {
            if let Some(at) = line.find(" /") {
                let path = &line[at + 1..];
                if !path.ends_with(" (deleted)") {
                    out.push(PathBuf::from(path));
                }
            }
        }
    }
    if let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = fs::read_link(fd.path()) {
                if target.is_absolute() && !target.to_string_lossy().ends_with(" (deleted)") {
                    out.push(target);
                }
            }
        }
    }
    out
}

/// Every candidate file and who uses it.
pub(super) fn candidates(docroot: Option<&Path>, named: &[PathBuf]) -> BTreeMap<PathBuf, Users> {
    let mut files: BTreeMap<PathBuf, Users> = BTreeMap::new();
    let mut walk = |root: &Path, docroot: bool| {
        for e in walkdir::WalkDir::new(root).into_iter().flatten() {
            if e.file_type().is_file() || (e.depth() == 0 && !e.file_type().is_dir()) {
                let u = files.entry(e.path().to_owned()).or_default();
                if docroot {
                    u.docroot = true;
                } else {
                    u.named = true;
                }
            }
        }
    };
    if let Some(d) = docroot {
        walk(d, true);
    }
    for n in named {
        walk(n, false);
    }
    let pids = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
    for pid in pids {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim_end().to_owned())
            .unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        for path in files_of_process(pid) {
            if !seen.insert(path.clone()) {
                continue;
            }
            let u = files.entry(path).or_default();
            u.process_count += 1;
            if u.processes.len() < USERS_KEPT {
                u.processes.push((pid, comm.clone()));
            }
        }
    }
    files
}

/// The `limit` candidate files with the most cached pages.
pub fn top(docroot: Option<&Path>, named: &[PathBuf], limit: usize) -> Top {
    let mut users = candidates(docroot, named);
    let paths: Vec<PathBuf> = users.keys().cloned().collect();
    // Only regular files are measured (a process's sockets, pipes and
    // devices are not files in the page cache).
    let paths: Vec<PathBuf> = paths
        .into_iter()
        .filter(|p| fs::metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    let measured = scan::scan(&paths);
    let cached_total = measured.totals.cached;
    let candidates = measured.files.len();
    let mut files: Vec<FileResidency> = measured.files;
    files.sort_by(|a, b| {
        b.residency
            .cached
            .cmp(&a.residency.cached)
            .then_with(|| a.path.cmp(&b.path))
    });
    files.truncate(limit);
    Top {
        page_size: measured.page_size,
        candidates,
        cached_total,
        files: files
            .into_iter()
            .map(|f| TopFile {
                users: users.remove(&f.path).unwrap_or_default(),
                path: f.path,
                residency: f.residency,
            })
            .collect(),
        errors: measured.errors,
    }
}
