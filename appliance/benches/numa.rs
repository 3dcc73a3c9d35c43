//! The NUMA component's cost of looking, at 500 processes (the target: the
//! CPU per second of observation), and its bounded page sample against the
//! way `numastat -p` answers "where is this process's memory": reading
//! `/proc/PID/numa_maps`, which walks every page.
//!
//! 492 sleeping processes and 8 holding 64 MiB each (written, so resident);
//! nodus's look (every node, every process's stat, the 8 large ones sampled
//! with move_pages) runs in this process through the library, timed on this
//! thread's CPU clock; the peer reads numa_maps of the same 8, and nodus's
//! sample of those 8 is timed alone too. Rounds of 20 looks each; medians
//! with their range. The look runs with the scheduler tracepoints attached,
//! as in the daemon (reading every process's counts is part of its cost).
//!
//! Then the price of those tracepoints on every context switch, which the
//! whole board pays: `perf bench sched pipe` (two processes passing a byte
//! back and forth, two switches per round trip) with the programs attached
//! and without, alternating, five rounds. Run with `make bench`.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use nodus::{
    board::Topology,
    numa::{
        Homes,
        kernel::KernelCounts,
        look::{self, Bounds, Observer},
        pages,
    },
    profile,
};

const SLEEPERS: usize = 492;
const HOLDERS: usize = 8;
const ROUNDS: usize = 5;
const LOOKS: usize = 20;

fn thread_cpu_us() -> f64 {
    look::thread_cpu_us() as f64
}

fn holder() -> Child {
    let mut c = Command::new("python3")
        .args([
            "-c",
            "import time; b = b'x' * (64 << 20); print('ready', flush=True); time.sleep(600)",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(c.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready");
    c
}

fn main() {
    let mut children: Vec<Child> = (0..SLEEPERS)
        .map(|_| Command::new("sleep").arg("600").spawn().expect("sleep"))
        .collect();
    let holders: Vec<u32> = (0..HOLDERS)
        .map(|_| {
            let c = holder();
            let pid = c.id();
            children.push(c);
            pid
        })
        .collect();
    let topo = Topology::discover().expect("topology");
    let generic = profile::builtin("generic").expect("generic profile");
    let homes = Homes::resolve(&generic, &topo);
    let bounds = Bounds {
        top: HOLDERS,
        placed: 32,
        samples: 512,
        min_rss_pages: 4 << 20 >> 12,
    };
    let cpu_nodes = homes.cpu_nodes();
    // With the hardware counters where the CPU has them: their reads at
    // each switch are part of the cost measured.
    let attach = || KernelCounts::attach(4096, &cpu_nodes, &[], true).expect("the numa programs");
    let mut observer = Observer::from_now(Some(attach()));
    let (mut ours, mut theirs, mut seen, mut sampled) = (vec![], vec![], 0, 0);
    let mut sample_only = vec![];
    let page = pages::page_size();
    for _ in 0..ROUNDS {
        let t = thread_cpu_us();
        for _ in 0..LOOKS {
            let look = observer.look(&homes, bounds, &Default::default());
            seen = look.processes;
            sampled = look
                .procs
                .iter()
                .filter(|p| holders.contains(&p.pid))
                .count();
        }
        ours.push((thread_cpu_us() - t) / LOOKS as f64);
        let t = thread_cpu_us();
        for _ in 0..LOOKS {
            for pid in &holders {
                let text =
                    std::fs::read_to_string(format!("/proc/{pid}/numa_maps")).expect("numa_maps");
                assert!(text.contains("N0="), "{pid}: no pages on node 0?");
            }
        }
        theirs.push((thread_cpu_us() - t) / LOOKS as f64);
        let t = thread_cpu_us();
        for _ in 0..LOOKS {
            for &pid in &holders {
                let ranges = pages::ranges_of(pid).expect("maps");
                let status = pages::where_are(pid, &pages::spread(&ranges, bounds.samples, page))
                    .expect("move_pages");
                assert!(status.iter().any(|&s| s >= 0), "{pid}: nothing present?");
            }
        }
        sample_only.push((thread_cpu_us() - t) / LOOKS as f64);
    }
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert_eq!(sampled, HOLDERS, "every holder sampled");
    let range = |v: &[f64]| {
        let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = v.iter().cloned().fold(0.0, f64::max);
        format!("{lo:.0}-{hi:.0}")
    };
    let (o, t) = (common::median(ours.clone()), common::median(theirs.clone()));
    println!(
        "numa observation ({seen} processes seen, {HOLDERS} of 64 MiB sampled; {ROUNDS} rounds of {LOOKS} looks)"
    );
    println!(
        "  nodus look (nodes, every process's stat, {HOLDERS} sampled): {o:.0} us CPU ({}) = {:.2}% of a CPU at one look a second",
        range(&ours),
        o / 1e4
    );
    println!(
        "  numa_maps of the same {HOLDERS} alone (numastat -p's way): {t:.0} us CPU ({})",
        range(&theirs)
    );
    let so = common::median(sample_only.clone());
    println!(
        "  nodus's sample of the same {HOLDERS} alone (maps + 512 addresses to move_pages each): {so:.0} us CPU ({})",
        range(&sample_only)
    );
    println!("  numa_maps / nodus's sample: {:.1}x the CPU", t / so);
    println!("  numa_maps / nodus's whole look: {:.2}x", t / o);
    drop(observer);

    // The tracepoints' price per context switch.
    let (mut with, mut without) = (vec![], vec![]);
    for round in 0..ROUNDS {
        let mut attached = || {
            let k = attach();
            let us = pipe_us_per_op();
            drop(k);
            with.push(us);
        };
        if round % 2 == 0 {
            attached();
            without.push(pipe_us_per_op());
        } else {
            without.push(pipe_us_per_op());
            attached();
        }
    }
    let range2 = |v: &[f64]| {
        let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = v.iter().cloned().fold(0.0, f64::max);
        format!("{lo:.2}-{hi:.2}")
    };
    let (w, wo) = (
        common::median(with.clone()),
        common::median(without.clone()),
    );
    println!("numa scheduler tracepoints (perf bench sched pipe -l {PIPE_LOOPS}; {ROUNDS} rounds)");
    println!(
        "  without: {wo:.2} us per round trip ({}); with: {w:.2} ({}); {:.3}x, {:+.2} us per round trip (two switches, two wakeups)",
        range2(&without),
        range2(&with),
        w / wo,
        w - wo
    );
}

/// Round trips of `perf bench sched pipe` per measurement.
const PIPE_LOOPS: u32 = 200_000;

/// One `perf bench sched pipe` run: microseconds per round trip.
fn pipe_us_per_op() -> f64 {
    let out = Command::new("perf")
        .args(["bench", "sched", "pipe", "-l", &PIPE_LOOPS.to_string()])
        .output()
        .expect("perf (linux-perf)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_suffix("usecs/op")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no usecs/op in {text}"))
}
