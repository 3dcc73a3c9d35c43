//! What kind of work a process does, from what the scheduler did to it
//! between two looks: its CPU share, how long it runs before it stops,
//! whether it stops by itself (sleeps) or is preempted, and how long it
//! waits for a CPU once runnable.
//!
//! Three classes, the ones a placement decision needs:
//! - *idle*: under 1 % of a CPU and under 20 runs a second (a process
//!   waking a thousand times a second for 10 µs is not idle: it is the
//!   most latency-sensitive kind);
//! - *batch*: runs until preempted (at least as many involuntary switches
//!   as voluntary ones), or 10 ms and more per run: it wants throughput;
//! - *latency*: short runs that end in a sleep: it waits for events and
//!   wants a CPU the moment one arrives.

use nodus_common::numa::TaskCounts;

pub use crate::workload::Class;

/// Below this share of one CPU a process is idle, percent...
const IDLE_BELOW_PCT: f64 = 1.0;
/// ...if it also runs fewer times than this a second.
const IDLE_BELOW_RUNS_PER_S: f64 = 20.0;
/// Runs this long or longer, on average, make a process batch, µs.
const BATCH_RUN_US: f64 = 10_000.0;

/// What the scheduler did to a process over one interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Behaviour {
    /// Share of one CPU, percent.
    pub cpu_pct: f64,
    /// Average run before switching out, µs (0 without a run).
    pub run_us: f64,
    /// Voluntary switches (sleeps) per second.
    pub sleeps_per_s: f64,
    /// Average wait for a CPU once runnable, µs (0 without a run).
    pub wait_us: f64,
    /// CPU migrations in the interval.
    pub migrations: u64,
    /// Of which to another node.
    pub node_migrations: u64,
    /// Instructions per cycle while on a CPU, where both are counted and
    /// it ran.
    pub ipc: Option<f64>,
    /// Cache misses per thousand instructions, where both are counted and
    /// it ran.
    pub misses_per_kilo_instruction: Option<f64>,
    /// The class it falls in.
    pub class: Class,
}

/// The behaviour between counts `before` and `now`, `elapsed_ns` apart.
/// Counters that went backwards (a pid reused by a new process) count from
/// zero.
pub fn behaviour(before: &TaskCounts, now: &TaskCounts, elapsed_ns: u64) -> Behaviour {
    let d = |a: u64, b: u64| if b >= a { b - a } else { b };
    let run_ns = d(before.run_ns, now.run_ns);
    let runs = d(before.runs, now.runs);
    let voluntary = d(before.voluntary, now.voluntary);
    let involuntary = d(before.involuntary, now.involuntary);
    let wait_ns = d(before.wait_ns, now.wait_ns);
    let instructions = d(before.instructions, now.instructions);
    let cycles = d(before.cycles, now.cycles);
    let cache_misses = d(before.cache_misses, now.cache_misses);
    let secs = elapsed_ns.max(1) as f64 / 1e9;
    let cpu_pct = run_ns as f64 * 100.0 / elapsed_ns.max(1) as f64;
    let run_us = if runs > 0 {
        run_ns as f64 / runs as f64 / 1000.0
    } else {
        0.0
    };
    let class = if cpu_pct < IDLE_BELOW_PCT && (runs as f64) / secs < IDLE_BELOW_RUNS_PER_S {
        Class::Idle
    } else if involuntary >= voluntary || run_us >= BATCH_RUN_US {
        Class::Batch
    } else {
        Class::Latency
    };
    Behaviour {
        cpu_pct,
        run_us,
        sleeps_per_s: voluntary as f64 / secs,
        wait_us: if runs > 0 {
            wait_ns as f64 / runs as f64 / 1000.0
        } else {
            0.0
        },
        migrations: d(before.migrations, now.migrations),
        node_migrations: d(before.node_migrations, now.node_migrations),
        ipc: ratio(instructions, cycles),
        misses_per_kilo_instruction: ratio(cache_misses * 1000, instructions),
        class,
    }
}

/// `a / b`, where both were counted (non-zero).
fn ratio(a: u64, b: u64) -> Option<f64> {
    (a > 0 && b > 0).then(|| a as f64 / b as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn counts(run_ms: u64, voluntary: u64, involuntary: u64) -> TaskCounts {
        TaskCounts {
            run_ns: run_ms * 1_000_000,
            runs: voluntary + involuntary,
            voluntary,
            involuntary,
            ..TaskCounts::default()
        }
    }

    #[test]
    fn a_spinner_is_batch_a_sleeper_latency_a_sleeping_daemon_idle() {
        let zero = TaskCounts::default();
        // Ran the whole second, preempted every 4 ms.
        let spin = behaviour(&zero, &counts(1000, 0, 250), SECOND);
        assert_eq!(spin.class, Class::Batch);
        assert!((spin.cpu_pct - 100.0).abs() < 0.01);
        assert!((spin.run_us - 4000.0).abs() < 0.01);
        // Woke 1000 times for 50 µs each: 5 % of a CPU.
        let sleeper = behaviour(&zero, &counts(50, 1000, 10), SECOND);
        assert_eq!(sleeper.class, Class::Latency);
        assert!((sleeper.sleeps_per_s - 1000.0).abs() < 0.01);
        // Woke 10 times for 100 µs.
        let daemon = behaviour(&zero, &counts(1, 10, 0), SECOND);
        assert_eq!(daemon.class, Class::Idle);
        // Woke 900 times for 10 µs: under 1 % of a CPU, not idle.
        let ticker = behaviour(&zero, &counts(9, 900, 0), SECOND);
        assert_eq!(ticker.class, Class::Latency);
        // Long runs ending in sleeps (a compressor reading its input).
        let long = behaviour(&zero, &counts(600, 40, 2), SECOND);
        assert_eq!(long.class, Class::Batch);
    }

    #[test]
    fn ipc_and_misses_come_from_the_counters_and_only_where_counted() {
        let zero = TaskCounts::default();
        let mut now = counts(500, 10, 10);
        let none = behaviour(&zero, &now, SECOND);
        assert_eq!((none.ipc, none.misses_per_kilo_instruction), (None, None));
        now.instructions = 3_000_000;
        now.cycles = 2_000_000;
        let no_misses = behaviour(&zero, &now, SECOND);
        assert_eq!(no_misses.ipc, Some(1.5));
        assert_eq!(no_misses.misses_per_kilo_instruction, None);
        now.cache_misses = 6_000;
        let later = TaskCounts {
            instructions: 4_000_000,
            cycles: 4_000_000,
            cache_misses: 7_000,
            ..now
        };
        let b = behaviour(&now, &later, SECOND);
        assert_eq!(b.ipc, Some(0.5));
        assert_eq!(b.misses_per_kilo_instruction, Some(1.0));
    }

    #[test]
    fn a_reused_pid_counts_from_zero() {
        let old = counts(5000, 100, 100);
        let new = counts(10, 5, 0);
        let b = behaviour(&old, &new, SECOND);
        assert!((b.cpu_pct - 1.0).abs() < 0.01);
        assert_eq!(b.class, Class::Latency);
    }
}
