//! Hits and misses as the kernel sees them, on the command line:
//! `nodus cache hits` (counts over a window, per file, process and cgroup)
//! and `nodus cache trace` (misses as they happen, and optionally the
//! access trace saved for `nodus cache simulate`).
//!
//! Both load their own copy of the counting programs, so they work with or
//! without the daemon running (as BCC's cachestat and cachetop do).

use std::{
    collections::HashMap,
    io::{self, Write},
    os::fd::AsFd,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use nix::{
    poll::{PollFd, PollFlags, PollTimeout, poll},
    sys::{
        signal::{SigSet, Signal},
        signalfd::{SfdFlags, SignalFd},
    },
};
use nodus_common::pagecache::{CacheEvent, Counts, EVENT_ACCESS, EVENT_MISS, FileKey};

use super::{
    kernel::{self, Counting, Emit, HitCounter, KernelError, TableSizes},
    names,
    residency::page_size,
};
use crate::cachesim::trace::OracleWriter;

/// Table sizes of a command-line run (the daemon's come from its config).
pub const CLI_TABLES: TableSizes = TableSizes {
    files: 16384,
    processes: 4096,
    cgroups: 1024,
};

/// Accesses, misses and hits.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Tally {
    /// Pages asked of the cache.
    pub accesses: u64,
    /// Pages inserted into the cache.
    pub misses: u64,
    /// Pages found cached: counted with fentry, else `accesses - misses`
    /// (an estimate; [`Hits::hits_exact`] says which).
    pub hits: u64,
    /// Hits per access, percent; absent without accesses.
    pub hit_ratio_pct: Option<f64>,
}

impl Tally {
    /// The tally of `c`, counted as `counting` counts.
    pub fn new(c: Counts, counting: &Counting) -> Tally {
        let hits = if counting.exact() {
            c.hits
        } else {
            c.accesses.saturating_sub(c.misses)
        };
        Tally {
            accesses: c.accesses,
            misses: c.misses,
            hits,
            hit_ratio_pct: (c.accesses > 0).then(|| 100.0 * hits as f64 / c.accesses as f64),
        }
    }
}

/// One named row of a table.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Row {
    /// A path, `dev M:m ino N`, `PID comm` or a cgroup path.
    pub name: String,
    /// Its counts.
    #[serde(flatten)]
    pub tally: Tally,
}

/// What `nodus cache hits` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Hits {
    /// How the counts were taken: `fentry` or `tracepoints`.
    pub method: &'static str,
    /// Hits were counted (fentry), not estimated (tracepoints).
    pub hits_exact: bool,
    /// Why fentry was not used, when it was not.
    pub fentry_unavailable: Option<String>,
    /// Seconds counted.
    pub seconds: f64,
    /// The kernel's page size in bytes (every count is in pages).
    pub page_size: u64,
    /// Everything.
    pub total: Tally,
    /// Busiest files first.
    pub files: Vec<Row>,
    /// Busiest processes first.
    pub processes: Vec<Row>,
    /// Busiest cgroups first.
    pub cgroups: Vec<Row>,
}

/// The `limit` busiest of `entries` (by pages accessed and missed).
fn busiest<K: Copy>(entries: &[(K, Counts)], limit: usize) -> Vec<(K, Counts)> {
    let mut v = entries.to_vec();
    v.sort_by_key(|(_, c)| std::cmp::Reverse(c.accesses + c.misses));
    v.truncate(limit);
    v
}

/// Names the busiest entries of a snapshot.
pub fn rank(
    snap: &kernel::Snapshot,
    counting: &Counting,
    limit: usize,
    docroot: Option<&Path>,
    named: &[PathBuf],
) -> (Vec<Row>, Vec<Row>, Vec<Row>) {
    let files = busiest(&snap.files, limit);
    let keys: Vec<FileKey> = files.iter().map(|(k, _)| *k).collect();
    let paths = names::files(&keys, docroot, named);
    let files = files
        .into_iter()
        .map(|(k, c)| Row {
            name: paths
                .get(&k)
                .map_or_else(|| names::unnamed(&k), |p| p.display().to_string()),
            tally: Tally::new(c, counting),
        })
        .collect();
    let procs: Vec<(usize, Counts)> = snap
        .processes
        .iter()
        .enumerate()
        .map(|(i, p)| (i, p.counts))
        .collect();
    let processes = busiest(&procs, limit)
        .into_iter()
        .map(|(i, c)| Row {
            name: format!("{} {}", snap.processes[i].pid, snap.processes[i].comm),
            tally: Tally::new(c, counting),
        })
        .collect();
    let cgroups = busiest(&snap.cgroups, limit);
    let ids: Vec<u64> = cgroups.iter().map(|(id, _)| *id).collect();
    let paths = names::cgroups(&ids);
    let cgroups = cgroups
        .into_iter()
        .map(|(id, c)| Row {
            name: paths
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("cgroup id {id}")),
            tally: Tally::new(c, counting),
        })
        .collect();
    (files, processes, cgroups)
}

/// Counts for `window` (calling `counting` once the programs are attached),
/// then names the `limit` busiest of each kind.
pub fn hits(
    window: Duration,
    limit: usize,
    docroot: Option<&Path>,
    named: &[PathBuf],
    counting: impl FnOnce(),
) -> Result<Hits, KernelError> {
    let counter = HitCounter::attach(CLI_TABLES, Emit::Nothing, 4096, None)?;
    counting();
    let started = Instant::now();
    std::thread::sleep(window);
    let snap = counter.snapshot()?;
    let seconds = started.elapsed().as_secs_f64();
    let counting = counter.counting.clone();
    drop(counter);
    let (files, processes, cgroups) = rank(&snap, &counting, limit, docroot, named);
    Ok(Hits {
        method: counting.name(),
        hits_exact: counting.exact(),
        fentry_unavailable: match &counting {
            Counting::Tracepoints(why) => Some(why.clone()),
            Counting::Fentry => None,
        },
        seconds,
        page_size: page_size(),
        total: Tally::new(snap.totals, &counting),
        files,
        processes,
        cgroups,
    })
}

/// What `nodus cache trace` does.
#[derive(Clone, Debug, Default)]
pub struct TraceOptions {
    /// Stop after this long (else at SIGINT or SIGTERM).
    pub duration: Option<Duration>,
    /// Only this process's misses are printed.
    pub pid: Option<u32>,
    /// Save every access as an oracleGeneral trace here.
    pub record: Option<PathBuf>,
    /// Files and directories to look for names in, besides the files the
    /// event's process has open or mapped.
    pub named: Vec<PathBuf>,
    /// One JSON object per miss instead of a table.
    pub json: bool,
}

/// What a trace saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceSummary {
    /// Miss events printed.
    pub misses: u64,
    /// Requests written to the record file.
    pub recorded: u64,
    /// Events the kernel could not queue (ring buffer full).
    pub dropped: u64,
}

/// Why a trace stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The programs could not run.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// Writing the output or the record file failed.
    #[error("writing {what}")]
    Write {
        /// Which output.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Signals could not be set up.
    #[error("setting up SIGINT/SIGTERM")]
    Signals(#[source] nix::Error),
}

/// Object id of one page of one file in a recorded trace: the file and the
/// page index mixed, so pages of different files never share an id.
pub fn page_id(file: &FileKey, index: u64) -> u64 {
    let f = (u64::from(file.dev) << 40 ^ file.ino).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    f ^ index.wrapping_mul(0xff51_afd7_ed55_8ccd)
}

/// Names files seen in events: the event's process's open and mapped
/// files first (while it still runs), then the named paths.
struct Namer {
    known: HashMap<FileKey, String>,
    named: HashMap<(u64, u64), PathBuf>,
}

impl Namer {
    fn name(&mut self, e: &CacheEvent) -> &str {
        self.known.entry(e.file).or_insert_with(|| {
            names::file_of_process(e.pid, &e.file)
                .or_else(|| self.named.get(&names::user_key(&e.file)).cloned())
                .map_or_else(|| names::unnamed(&e.file), |p| p.display().to_string())
        })
    }
}

/// Streams misses to `out` until the duration ends or SIGINT/SIGTERM,
/// calling `tracing` once the programs are attached.
pub fn trace(
    opts: &TraceOptions,
    out: &mut impl Write,
    tracing: impl FnOnce(),
) -> Result<TraceSummary, TraceError> {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block().map_err(TraceError::Signals)?;
    let signal_fd =
        SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK).map_err(TraceError::Signals)?;
    let emit = if opts.record.is_some() {
        Emit::Everything
    } else {
        Emit::Misses
    };
    let mut counter = HitCounter::attach(CLI_TABLES, emit, 4 << 20, None)?;
    let mut ring = counter.events()?;
    tracing();
    let mut record = match &opts.record {
        Some(path) => Some(
            std::fs::File::create(path)
                .map(|f| OracleWriter::new(io::BufWriter::with_capacity(1 << 20, f)))
                .map_err(|source| TraceError::Write {
                    what: path.display().to_string(),
                    source,
                })?,
        ),
        None => None,
    };
    let write_err = |what: &str| {
        let what = what.to_owned();
        move |source| TraceError::Write { what, source }
    };
    let page = page_size();
    let me = std::process::id();
    let started = Instant::now();
    let mut summary = TraceSummary::default();
    let mut namer = Namer {
        known: HashMap::new(),
        named: names::index(&opts.named),
    };
    if !opts.json {
        writeln!(
            out,
            "{:>12} {:>7} {:<16} {:>10} {:>6}  FILE",
            "TIME(s)", "PID", "COMM", "OFFSET", "PAGES"
        )
        .map_err(write_err("the output"))?;
    }
    loop {
        let left = opts.duration.map(|d| d.saturating_sub(started.elapsed()));
        if left == Some(Duration::ZERO) {
            break;
        }
        let wait = left.map_or(200, |l| l.as_millis().min(200) as u16);
        let mut fds = [
            PollFd::new(ring.as_fd(), PollFlags::POLLIN),
            PollFd::new(signal_fd.as_fd(), PollFlags::POLLIN),
        ];
        // EINTR is the only error poll(2) returns here; try again.
        let _ = poll(&mut fds, PollTimeout::from(wait));
        if fds[1].any().unwrap_or(false) {
            break;
        }
        while let Some(item) = ring.next() {
            let Some(e) = kernel::decode(&item) else {
                continue;
            };
            drop(item);
            let since = started.elapsed();
            // This process's own reads (naming files reads /proc) would
            // feed the trace with itself.
            if e.pid == me {
                continue;
            }
            if e.kind == EVENT_ACCESS {
                if let Some(w) = record.as_mut() {
                    for index in e.index..e.index.saturating_add(e.pages) {
                        w.request(since.as_secs() as u32, page_id(&e.file, index), page as u32)
                            .map_err(write_err("the record file"))?;
                    }
                }
                continue;
            }
            if e.kind != EVENT_MISS || opts.pid.is_some_and(|p| p != e.pid) {
                continue;
            }
            summary.misses += 1;
            let comm = kernel::comm(&e.comm);
            let file = namer.name(&e).to_owned();
            let line = if opts.json {
                serde_json::json!({
                    "time_s": since.as_secs_f64(),
                    "pid": e.pid,
                    "comm": comm,
                    "cgroup_id": e.cgroup_id,
                    "file": file,
                    "offset": e.index * page,
                    "pages": e.pages,
                })
                .to_string()
            } else {
                format!(
                    "{:>12.6} {:>7} {:<16} {:>10} {:>6}  {}",
                    since.as_secs_f64(),
                    e.pid,
                    crate::terminal::printable(&comm),
                    e.index * page,
                    e.pages,
                    crate::terminal::printable(&file)
                )
            };
            writeln!(out, "{line}").map_err(write_err("the output"))?;
        }
        out.flush().map_err(write_err("the output"))?;
    }
    summary.dropped = counter.drops()?;
    if let Some(w) = record {
        summary.recorded = w.written;
        w.finish().map_err(write_err("the record file"))?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimated_hits_are_accesses_less_misses_never_negative() {
        let estimated = Counting::Tracepoints("no fentry here".into());
        let c = |accesses, misses| Counts {
            accesses,
            misses,
            hits: 0,
        };
        let t = Tally::new(c(10, 4), &estimated);
        assert_eq!((t.hits, t.hit_ratio_pct), (6, Some(60.0)));
        let t = Tally::new(c(2, 5), &estimated);
        assert_eq!((t.hits, t.hit_ratio_pct), (0, Some(0.0)));
        assert_eq!(Tally::new(c(0, 0), &estimated).hit_ratio_pct, None);
    }

    #[test]
    fn counted_hits_are_taken_as_counted() {
        let c = Counts {
            accesses: 10,
            misses: 8,
            hits: 7,
        };
        let t = Tally::new(c, &Counting::Fentry);
        assert_eq!((t.hits, t.hit_ratio_pct), (7, Some(70.0)));
    }

    #[test]
    fn pages_of_different_files_get_different_ids() {
        let a = FileKey {
            dev: 1 << 20,
            reserved: 0,
            ino: 12,
        };
        let b = FileKey { ino: 13, ..a };
        let ids: std::collections::HashSet<u64> = (0..1000)
            .flat_map(|i| [page_id(&a, i), page_id(&b, i)])
            .collect();
        assert_eq!(ids.len(), 2000);
    }
}
