//! Page-cache hits and misses counted in the kernel, against ground truth:
//! a file dropped from the cache and read twice is all misses, then all
//! hits, page for page; the same through `nodus cache hits`, `nodus cache
//! trace` (and its recorded trace), and the daemon's `pagecache` component
//! watching the file server's docroot.

mod common;

use std::{
    collections::BTreeSet,
    fs::File,
    io::{Read, Write},
    os::unix::fs::MetadataExt,
    path::Path,
    process::Command,
    time::Duration,
};

use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
use nodus::pagecache::{
    kernel::{Emit, HitCounter},
    live::{CLI_TABLES, page_id},
    residency::page_size,
};
use nodus_common::pagecache::FileKey;

/// A directory on a disk file system (tmpfs pages are never inserted the
/// way a disk file's are, and cannot be dropped).
fn disk_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// Writes a file of `pages` pages plus `tail` bytes, syncs it and drops it
/// from the page cache.
fn uncached_file(path: &Path, pages: u64, tail: usize) {
    let mut f = File::create(path).unwrap();
    let mut bytes = vec![0u8; (pages * page_size()) as usize + tail];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    f.write_all(&bytes).unwrap();
    f.sync_all().unwrap();
    drop_cached(path);
}

fn drop_cached(path: &Path) {
    let f = File::open(path).unwrap();
    posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
}

/// The kernel's key for `path`.
fn key_of(path: &Path) -> FileKey {
    let m = std::fs::metadata(path).unwrap();
    let dev = m.dev();
    FileKey {
        dev: (nix::sys::stat::major(dev) as u32) << 20 | nix::sys::stat::minor(dev) as u32,
        reserved: 0,
        ino: m.ino(),
    }
}

/// Reads `path` to its end with a buffer of `buffer` bytes.
fn read_through(path: &Path, buffer: usize) {
    let mut f = File::open(path).unwrap();
    let mut buf = vec![0u8; buffer];
    while f.read(&mut buf).unwrap() > 0 {}
}

#[test]
fn a_dropped_file_read_twice_is_all_misses_then_all_hits() {
    require_root!();
    let dir = disk_dir();
    let path = dir.path().join("twice.dat");
    // A partial last page, so a buffer reaching past the end of the file
    // must not count pages that do not exist.
    let pages = 300;
    uncached_file(&path, pages - 1, 100);
    let counter = HitCounter::attach(CLI_TABLES, Emit::Nothing, 4096, None).unwrap();
    let exact = counter.counting.exact();
    // One large read (the kernel walks it in several batches, each reported
    // with the read's whole remaining range), then many small ones.
    read_through(&path, 4 << 20);
    let key = key_of(&path);
    let after_first = counter.snapshot().unwrap();
    let first = after_first
        .files
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, c)| *c)
        .expect("the file was counted");
    assert_eq!(
        (first.accesses, first.misses),
        (pages, pages),
        "first read: every page accessed and missed"
    );
    if exact {
        assert_eq!(first.hits, 0, "first read: no hits");
    }
    read_through(&path, 4096);
    let snap = counter.snapshot().unwrap();
    let both = snap
        .files
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, c)| *c)
        .unwrap();
    assert_eq!(
        (both.accesses, both.misses),
        (2 * pages, pages),
        "second read: every page accessed, none missed"
    );
    if exact {
        assert_eq!(both.hits, pages, "second read: every page hit");
    }
    let me = std::process::id();
    let mine = snap
        .processes
        .iter()
        .find(|p| p.pid == me)
        .expect("this process was counted");
    assert!(mine.counts.accesses >= 2 * pages && mine.counts.misses >= pages);
    assert!(snap.totals.accesses >= 2 * pages && snap.totals.misses >= pages);
    assert!(
        snap.cgroups
            .iter()
            .any(|(_, c)| c.accesses >= 2 * pages && c.misses >= pages),
        "this process's cgroup was counted: {:?}",
        snap.cgroups
    );
}

/// Runs `nodus ARGS` and, once it says it is counting, a reader of `path`
/// (dd, twice, from a shell); returns its stdout once it exits.
fn with_reader(args: &[&str], path: &Path) -> String {
    let mut child = common::nodus()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("nodus: counting") && !said.contains("nodus: tracing") {
        let n = std::io::BufRead::read_line(&mut stderr, &mut said).unwrap();
        assert!(n > 0, "nodus never started counting: {said}");
    }
    // Forked by a shell: each dd is counted before its exec (the kernel
    // reads the program's header under the shell's name), so naming it dd
    // needs the name renewed at exec.
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dd if='{0}' of=/dev/null bs=64k status=none && dd if='{0}' of=/dev/null bs=64k status=none",
            path.display()
        ))
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    std::io::Read::read_to_string(&mut stderr, &mut said).unwrap();
    assert!(out.status.success(), "{said}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cache_hits_names_the_file_and_counts_its_pages() {
    require_root!();
    let dir = disk_dir();
    let path = dir.path().join("hits.dat");
    let pages = 256;
    uncached_file(&path, pages, 0);
    let out = with_reader(
        &[
            "cache",
            "hits",
            "--json",
            "--seconds",
            "3",
            "-n",
            "1000",
            "--path",
            dir.path().to_str().unwrap(),
        ],
        &path,
    );
    let hits: serde_json::Value = serde_json::from_str(&out).unwrap();
    // This host refuses fentry: tracepoints, hits estimated, and why.
    assert_eq!(hits["method"], "tracepoints");
    assert_eq!(hits["hits_exact"], false);
    assert!(
        hits["fentry_unavailable"]
            .as_str()
            .is_some_and(|why| why.contains("filemap_read")),
        "{}",
        hits["fentry_unavailable"]
    );
    let row = hits["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"].as_str() == path.to_str())
        .unwrap_or_else(|| panic!("{} not among {}", path.display(), hits["files"]))
        .clone();
    assert_eq!(row["accesses"].as_u64(), Some(2 * pages), "{row}");
    assert_eq!(row["misses"].as_u64(), Some(pages), "{row}");
    assert_eq!(row["hits"].as_u64(), Some(pages), "{row}");
    assert_eq!(row["hit_ratio_pct"].as_f64(), Some(50.0), "{row}");
    assert!(
        hits["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"].as_str().is_some_and(|n| n.ends_with(" dd"))),
        "the reader is named: {}",
        hits["processes"]
    );
}

#[test]
fn cache_trace_streams_each_missed_page_and_records_every_access() {
    require_root!();
    let dir = disk_dir();
    let path = dir.path().join("trace.dat");
    let record = dir.path().join("accesses.oracleGeneral");
    let pages = 128;
    uncached_file(&path, pages, 0);
    let out = with_reader(
        &[
            "cache",
            "trace",
            "--json",
            "--seconds",
            "3",
            "--path",
            dir.path().to_str().unwrap(),
            "--record",
            record.to_str().unwrap(),
        ],
        &path,
    );
    let mut missed = BTreeSet::new();
    for line in out.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        if e["file"].as_str() != path.to_str() {
            continue;
        }
        assert_eq!(e["comm"], "dd", "{e}");
        let first = e["offset"].as_u64().unwrap() / page_size();
        for p in first..first + e["pages"].as_u64().unwrap() {
            assert!(missed.insert(p), "page {p} missed twice: {e}");
        }
    }
    assert_eq!(missed, (0..pages).collect(), "every page missed once");
    // The recorded trace holds both reads of every page, and replays.
    let bytes = std::fs::read(&record).unwrap();
    assert_eq!(bytes.len() % 24, 0);
    let key = key_of(&path);
    let ids: BTreeSet<u64> = (0..pages).map(|p| page_id(&key, p)).collect();
    let requests = bytes
        .chunks(24)
        .filter(|r| ids.contains(&u64::from_le_bytes(r[4..12].try_into().unwrap())))
        .count();
    assert_eq!(requests as u64, 2 * pages);
    let sim = common::nodus()
        .args(["cache", "simulate", "--json", "--policies", "lru"])
        .arg(&record)
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
}

#[test]
fn the_daemon_reports_the_docroots_hits_and_misses() {
    require_root!();
    let pages = 256;
    // No hot set: every request goes through the page cache (sendfile).
    let fs = common::fileserver::FsDaemon::start(
        |root| uncached_file(&root.join("big.bin"), pages, 0),
        "hot_bytes = 0\n[pagecache]\ndocroot_interval_s = 1\n",
    );
    drop_cached(&fs.file("big.bin"));
    let pc = || common::daemon::component(&fs.daemon.status_json(), "pagecache");
    // The programs load after READY (off the start path).
    let stats = common::wait_for("the programs loaded", Duration::from_secs(10), || {
        let s = pc()["stats"].clone();
        (s["counting"] != "starting").then_some(s)
    });
    assert_eq!(stats["counting"], "tracepoints", "{stats}");
    for _ in 0..2 {
        let got = fs.get("/big.bin", &[]);
        assert_eq!(got.status, 200);
        assert_eq!(got.body.len() as u64, pages * page_size());
    }
    let stats = common::wait_for("docroot counts", Duration::from_secs(10), || {
        let s = pc()["stats"].clone();
        // The totals and the docroot's counts are taken at different ticks.
        (s["docroot_accesses"].as_u64() >= Some(2 * pages)
            && s["accesses"].as_u64() >= Some(2 * pages))
        .then_some(s)
    });
    assert_eq!(
        stats["docroot_accesses"].as_u64(),
        Some(2 * pages),
        "{stats}"
    );
    assert_eq!(stats["docroot_misses"].as_u64(), Some(pages), "{stats}");
    assert_eq!(
        stats["docroot_hit_ratio_pct"].as_f64(),
        Some(50.0),
        "{stats}"
    );
    assert_eq!(stats["docroot_pages"].as_u64(), Some(pages), "{stats}");
    // Every page was read, so every page is cached, unless a busy host
    // evicted some since (CI saw 255 of 256 once): the daemon's figure must
    // be what fincore says of the file at the same time, and near all.
    let file = fs.file("big.bin");
    let (ours, theirs) =
        common::wait_for("cached pages as fincore", Duration::from_secs(10), || {
            let ours = pc()["stats"]["docroot_cached_pages"].as_u64();
            let theirs = common::fincore::cached_pages(std::slice::from_ref(&file))[&file];
            (ours == Some(theirs)).then_some((ours, theirs))
        });
    assert!(theirs >= pages * 9 / 10, "{ours:?} of {pages} cached");
    assert_eq!(pc()["health"]["state"], "healthy");
}
