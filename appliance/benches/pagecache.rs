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
//!
//! Each figure is the median of ROUNDS rounds; each ratio is printed with
//! the range of the per-round ratios. Needs no root:
//! `cargo bench -p nodus --bench pagecache` after `make build`.

mod common;

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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

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

fn main() {
    let nodus = common::release_binary();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-pagecache");
    std::fs::create_dir_all(&dir).unwrap();
    scan_bench(&nodus, &dir);
    simulate_bench(&nodus, &dir);
}
