//! Request counters and a latency histogram ([`crate::histogram`]), one set per worker (no shared
//! cache lines on the hot path), summed when status or telemetry asks.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::histogram::{AtomicHistogram, Histogram};

/// One worker's counters.
#[repr(align(128))]
pub struct WorkerStats {
    /// Responses by class: 1xx..5xx at 0..4.
    pub by_class: [AtomicU64; 5],
    /// Body and head bytes written.
    pub bytes: AtomicU64,
    latency: AtomicHistogram,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            by_class: Default::default(),
            bytes: AtomicU64::new(0),
            latency: AtomicHistogram::default(),
        }
    }
}

impl WorkerStats {
    /// Counts one response.
    pub fn response(&self, code: u16) {
        let class = usize::from(code / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Relaxed);
    }

    /// Records one request's latency.
    pub fn latency_us(&self, us: u64) {
        self.latency.record(us);
    }
}

/// Connection gauges and counters, shared by every worker.
#[derive(Default)]
pub struct ConnStats {
    /// Open now.
    pub open: AtomicU64,
    /// Accepted since start.
    pub accepted: AtomicU64,
    /// Refused with 503 (over max_connections).
    pub refused: AtomicU64,
    /// Closed by the header timeout (408).
    pub timeouts: AtomicU64,
}

/// Sums over workers.
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    /// Responses by class 1xx..5xx.
    pub by_class: [u64; 5],
    /// Bytes written.
    pub bytes: u64,
    /// Median latency, µs (bucket upper bound).
    pub p50_us: u64,
    /// 99th percentile latency, µs (bucket upper bound).
    pub p99_us: u64,
}

/// Sums `workers` into one summary.
pub fn summarize(workers: &[WorkerStats]) -> Summary {
    let mut s = Summary::default();
    let mut hist = Histogram::default();
    for w in workers {
        for (d, c) in s.by_class.iter_mut().zip(&w.by_class) {
            *d += c.load(Relaxed);
        }
        s.bytes += w.bytes.load(Relaxed);
        w.latency.add_to(&mut hist);
    }
    s.p50_us = hist.quantile(0.50).unwrap_or(0);
    s.p99_us = hist.quantile(0.99).unwrap_or(0);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_classes() {
        let w = [WorkerStats::default(), WorkerStats::default()];
        for i in 0..99 {
            w[i % 2].latency_us(10);
            w[i % 2].response(200);
        }
        w[1].latency_us(5000);
        w[1].response(404);
        let s = summarize(&w);
        assert_eq!(s.by_class, [0, 99, 0, 1, 0]);
        assert_eq!(s.p50_us, 10);
        assert_eq!(s.p99_us, 10);
        for _ in 0..10 {
            w[0].latency_us(5000);
        }
        let s = summarize(&w);
        assert!(s.p99_us >= 5000 && s.p99_us < 5000 + 5000 / 16 + 1, "{s:?}");
    }
}
