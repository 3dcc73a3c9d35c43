//! Page-cache insight, side by side with the tools a user would run:
//!
//! 1. Residency scan of 100,000 files: `nodus cache files` against
//!    util-linux `fincore`, both handed the same file list by the same
//!    `xargs -0` (so both pay the same process starts; fincore is spared
//!    the directory walk), and `nodus cache files DIR` walking the tree
//!    itself. Target: well under a second, at least fincore's speed.
//! 2. Simulator replay: requests per second on a 10-million-request Zipf
//!    trace (alpha 1.0, 1 million objects, oracleGeneral), one cache of 10%
//!    of the objects, one thread each: `nodus cache simulate` (wall time,
//!    trace reading included) against libCacheSim 0.3.5's `process_trace`
//!    (timed inside Python, trace reading included). Target: at least
//!    libCacheSim's speed per core.
//! 3. Hit-counting overhead: reading a cached 256 MiB file four times, 4 KiB
//!    at a time (65,536 reads a pass, each one page-cache lookup the
//!    programs count) and 128 KiB at a time (cat's size), with
//!    and without the counting programs attached (`nodus cache hits`
//!    running, which attaches what the daemon's component attaches), and
//!    4 KiB random reads through a mapping (page faults, also counted).
//!    BCC's cachestat, the tool a user would reach for, needs kprobes,
//!    which this kernel lacks, so the peer is no counting at all. Needs root.
//!
//! Each figure is the median of ROUNDS rounds; each ratio is printed with
//! the range of the per-round ratios. 1 and 2 need no root:
//! `cargo bench -p nodus --bench pagecache` after `make build`.

mod common;

use common::{median, range};

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

const ROUNDS: usize = 5;
const FILES: usize = 100_000;
const REQUESTS: usize = 10_000_000;
const OBJECTS: u64 = 1_000_000;
const LIBCACHESIM_PYTHON: &str = "/opt/nodus-tools/libcachesim/bin/python";

/// Wall seconds of `sh -c script`, which must succeed.
fn timed(script: &str) -> f64 {
    let started = Instant::now();
    let status = Command::new("sh")
        .args(["-c", script])
        .stdout(Stdio::null())
        .status()
        .expect("sh");
    let secs = started.elapsed().as_secs_f64();
    assert!(status.success(), "{script}");
    secs
}

fn scan_bench(nodus: &Path, dir: &Path) {
    // 100 directories of 1,000 files of 1 to 64 KiB, some cached.
    let tree = dir.join("tree");
    if !tree.join("99/999").exists() {
        for d in 0..100 {
            std::fs::create_dir_all(tree.join(d.to_string())).unwrap();
            for f in 0..1000 {
                let len = 1 + (d * 1000 + f) % 64 * 1024;
                std::fs::write(tree.join(format!("{d}/{f}")), vec![b'x'; len]).unwrap();
            }
        }
    }
    let list = dir.join("files.list");
    let mut out = std::fs::File::create(&list).unwrap();
    for d in 0..100 {
        for f in 0..1000 {
            write!(out, "{}/{d}/{f}\0", tree.display()).unwrap();
        }
    }
    drop(out);
    let (list, tree, nodus) = (list.display(), tree.display(), nodus.display());
    let ours = format!("xargs -0 {nodus} cache files <{list}");
    let walk = format!("{nodus} cache files {tree}");
    let theirs = format!("xargs -0 fincore <{list}");
    // Warm the dentry and inode caches for both.
    timed(&ours);
    timed(&theirs);
    let (mut n, mut w, mut f, mut ratios) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let (a, b, c) = (timed(&ours), timed(&walk), timed(&theirs));
        n.push(a);
        w.push(b);
        f.push(c);
        ratios.push(c / a);
    }
    let (lo, hi) = range(&ratios);
    println!("residency scan of {FILES} files ({ROUNDS} rounds, median):");
    println!("  nodus cache files (xargs)   {:.3} s", median(n.clone()));
    println!("  nodus cache files DIR       {:.3} s", median(w));
    println!("  fincore (xargs)             {:.3} s", median(f.clone()));
    println!(
        "  ratio nodus / fincore (speed): {:.2}x (rounds {lo:.2}-{hi:.2})",
        median(f) / median(n)
    );
}

/// A Zipf(1.0) trace over OBJECTS objects in oracleGeneral, seeded:
/// inverse-CDF sampling with a xorshift generator.
fn zipf_trace(path: &Path) {
    if path.exists() {
        return;
    }
    let mut cdf = Vec::with_capacity(OBJECTS as usize);
    let mut sum = 0.0;
    for k in 1..=OBJECTS {
        sum += 1.0 / k as f64;
        cdf.push(sum);
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for t in 0..REQUESTS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let u = (state >> 11) as f64 / (1u64 << 53) as f64 * sum;
        let id = cdf.partition_point(|c| *c < u) as u64;
        out.write_all(&(t as u32).to_le_bytes()).unwrap();
        out.write_all(&id.to_le_bytes()).unwrap();
        out.write_all(&4096u32.to_le_bytes()).unwrap();
        out.write_all(&(-1i64).to_le_bytes()).unwrap();
    }
    out.flush().unwrap();
}

/// libCacheSim's requests per second for `policy` at `size`, timed in Python.
fn libcachesim_rps(trace: &Path, policy: &str, size: u64) -> f64 {
    let class = match policy {
        "lru" => "LRU",
        "arc" => "ARC",
        "s3fifo" => "S3FIFO",
        _ => "Sieve",
    };
    let script = format!(
        "import time, libcachesim as lcs\n\
         p = lcs.ReaderInitParam(ignore_obj_size=True)\n\
         t = time.perf_counter()\n\
         r = lcs.TraceReader('{}', lcs.TraceType.ORACLE_GENERAL_TRACE, p)\n\
         lcs.{class}({size}).process_trace(r)\n\
         print({REQUESTS} / (time.perf_counter() - t))\n",
        trace.display()
    );
    let out = Command::new(LIBCACHESIM_PYTHON)
        .args(["-c", &script])
        .output()
        .expect("libcachesim python: run make setup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn simulate_bench(nodus: &Path, dir: &Path) {
    let trace = dir.join("zipf-10M.oracleGeneral.bin");
    zipf_trace(&trace);
    let size = OBJECTS / 10;
    println!(
        "simulator replay, {REQUESTS} requests, Zipf 1.0 over {OBJECTS} objects, cache {size} objects, one thread ({ROUNDS} rounds, median M requests/s):"
    );
    for policy in ["lru", "arc", "s3fifo", "sieve"] {
        let (mut ours, mut theirs, mut ratios) = (vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let secs = timed(&format!(
                "{} cache simulate {} --sizes {size} --policies {policy} --json",
                nodus.display(),
                trace.display()
            ));
            let a = REQUESTS as f64 / secs;
            let b = libcachesim_rps(&trace, policy, size);
            ours.push(a / 1e6);
            theirs.push(b / 1e6);
            ratios.push(a / b);
        }
        let (lo, hi) = range(&ratios);
        println!(
            "  {policy:<6} nodus {:>6.2}  libCacheSim {:>6.2}  ratio {:.2}x (rounds {lo:.2}-{hi:.2})",
            median(ours.clone()),
            median(theirs.clone()),
            median(ours) / median(theirs)
        );
    }
}

/// Seconds of `script`, with the counting programs attached by a
/// `nodus cache hits` running alongside when `counting`.
fn timed_counting(nodus: &Path, script: &str, counting: bool) -> f64 {
    if !counting {
        return timed(script);
    }
    let mut hits = Command::new(nodus)
        .args(["cache", "hits", "--seconds", "60", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nodus cache hits");
    let mut said = String::new();
    let mut err = std::io::BufReader::new(hits.stderr.take().unwrap());
    while !said.contains("nodus: counting") {
        let n = std::io::BufRead::read_line(&mut err, &mut said).unwrap();
        assert!(n > 0, "nodus cache hits: {said}");
    }
    let secs = timed(script);
    let _ = hits.kill();
    let _ = hits.wait();
    secs
}

fn hits_overhead_bench(nodus: &Path, dir: &Path) {
    if !nix::unistd::geteuid().is_root() {
        println!("hit-counting overhead: skipped (needs root to load eBPF)");
        return;
    }
    let file = dir.join("cached-256M.bin");
    if std::fs::metadata(&file).map_or(0, |m| m.len()) != 256 << 20 {
        std::fs::write(&file, vec![7u8; 256 << 20]).unwrap();
    }
    let f = file.display();
    timed(&format!("cat {f} >/dev/null"));
    let workloads = [
        (
            "sequential read(2), 4 KiB",
            format!("for i in 1 2 3 4; do dd if={f} of=/dev/null bs=4k status=none; done"),
        ),
        (
            "sequential read(2), 128 KiB",
            format!("for i in 1 2 3 4; do dd if={f} of=/dev/null bs=128k status=none; done"),
        ),
        (
            "random 4 KiB mmap faults",
            // Each page touched once through a fresh mapping: one fault per page.
            format!(
                "{} -c \"import mmap,random;f=open('{f}','rb');m=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ);m.madvise(mmap.MADV_RANDOM);p=list(range(0,len(m),4096));random.seed(1);random.shuffle(p);s=sum(m[i] for i in p)\"",
                "/usr/bin/python3"
            ),
        ),
    ];
    println!("hit-counting overhead, 256 MiB cached file ({ROUNDS} rounds, median s):");
    for (name, script) in workloads {
        let (mut off, mut on, mut ratios) = (vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let a = timed_counting(nodus, &script, false);
            let b = timed_counting(nodus, &script, true);
            off.push(a);
            on.push(b);
            ratios.push(b / a);
        }
        let (lo, hi) = range(&ratios);
        println!(
            "  {name:<28} off {:.3}  counting {:.3}  time ratio {:.3}x (rounds {lo:.3}-{hi:.3})",
            median(off.clone()),
            median(on.clone()),
            median(on) / median(off)
        );
    }
}

fn main() {
    let nodus = common::release_binary();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-pagecache");
    std::fs::create_dir_all(&dir).unwrap();
    // `cargo bench --bench pagecache -- hits` runs only the named parts
    // (scan, simulate, hits); cargo adds `--bench` itself.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if wanted("scan") {
        scan_bench(&nodus, &dir);
    }
    if wanted("simulate") {
        simulate_bench(&nodus, &dir);
    }
    if wanted("hits") {
        hits_overhead_bench(&nodus, &dir);
    }
}
