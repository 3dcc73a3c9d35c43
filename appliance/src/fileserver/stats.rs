//! Request counters and a latency histogram, one set per worker (no shared
//! cache lines on the hot path), summed when status or telemetry asks.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Histogram buckets: exact below 16 µs, then 8 per power of two up to ~2^40 µs.
const BUCKETS: usize = 16 + 37 * 8;

fn bucket(us: u64) -> usize {
    if us < 16 {
        return us as usize;
    }
    let msb = 63 - us.leading_zeros() as usize;
    let sub = ((us >> (msb - 3)) & 7) as usize;
    (16 + (msb - 4) * 8 + sub).min(BUCKETS - 1)
}

/// The largest value that falls into bucket `i` (what a quantile reports).
fn upper(i: usize) -> u64 {
    if i < 16 {
        return i as u64;
    }
    let msb = (i - 16) / 8 + 4;
    let sub = ((i - 16) % 8) as u64;
    ((8 + sub + 1) << (msb - 3)) - 1
}

/// One worker's counters.
#[repr(align(128))]
pub struct WorkerStats {
    /// Responses by class: 1xx..5xx at 0..4.
    pub by_class: [AtomicU64; 5],
    /// Body and head bytes written.
    pub bytes: AtomicU64,
    latency: Box<[AtomicU64]>,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            by_class: Default::default(),
            bytes: AtomicU64::new(0),
            latency: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
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
        self.latency[bucket(us)].fetch_add(1, Relaxed);
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
    let mut hist = vec![0u64; BUCKETS];
    for w in workers {
        for (d, c) in s.by_class.iter_mut().zip(&w.by_class) {
            *d += c.load(Relaxed);
        }
        s.bytes += w.bytes.load(Relaxed);
        for (d, c) in hist.iter_mut().zip(w.latency.iter()) {
            *d += c.load(Relaxed);
        }
    }
    let total: u64 = hist.iter().sum();
    let quantile = |q: f64| {
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, n) in hist.iter().enumerate() {
            acc += n;
            if acc >= want {
                return upper(i);
            }
        }
        0
    };
    if total > 0 {
        s.p50_us = quantile(0.50);
        s.p99_us = quantile(0.99);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bound_their_values() {
        let mut last = 0;
        for us in 0..100_000u64 {
            let b = bucket(us);
            assert!(b >= last);
            assert!(upper(b) >= us, "{us} in bucket {b} with upper {}", upper(b));
            last = b;
        }
        // Relative error stays within 1/8.
        assert!(upper(bucket(10_000)) <= 10_000 + 10_000 / 8);
    }

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
        assert!(s.p99_us >= 5000 && s.p99_us < 5000 + 5000 / 8, "{s:?}");
    }
}
