//! Fixed-memory latency quantiles for component stats.
//!
//! Components report p50/p99 latencies over their whole run; keeping every
//! sample would grow with traffic. Log-linear buckets (16 per power of two,
//! so any quantile is within about 6% of the truth) cost under 5 KiB
//! forever. [`AtomicHistogram`] is the lock-free form hot paths record into
//! (one per worker, say); [`Histogram`] is what quantiles are read from.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Values below this are counted exactly, one bucket each.
const LINEAR: u64 = 64;
/// Buckets per power of two above [`LINEAR`].
const SUB: u64 = 16;
/// Powers of two covered above [`LINEAR`] (up to 2^40: 18 minutes in ns).
const OCTAVES: u64 = 34;
const BUCKETS: usize = (LINEAR + OCTAVES * SUB) as usize;
/// log2(SUB): how many bits below the leading one pick the sub-bucket.
const SUB_BITS: u64 = SUB.trailing_zeros() as u64;

/// Counts of recorded values by magnitude.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let octave = 63 - u64::from(v.leading_zeros()); // >= 6
    let sub = (v >> (octave - SUB_BITS)) & (SUB - 1);
    ((LINEAR + (octave - 6) * SUB + sub) as usize).min(BUCKETS - 1)
}

/// The largest value that lands in bucket `b`.
fn upper(b: usize) -> u64 {
    let b = b as u64;
    if b < LINEAR {
        return b;
    }
    let octave = (b - LINEAR) / SUB + 6;
    let sub = (b - LINEAR) % SUB;
    ((SUB + sub + 1) << (octave - SUB_BITS)) - 1
}

/// A histogram many threads record into without a lock.
pub struct AtomicHistogram {
    counts: Box<[AtomicU64]>,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl AtomicHistogram {
    /// Counts one value.
    pub fn record(&self, value: u64) {
        self.counts[bucket(value)].fetch_add(1, Relaxed);
    }

    /// Adds what was recorded here to `into` (to merge several, or read one).
    pub fn add_to(&self, into: &mut Histogram) {
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Relaxed);
            into.counts[i] += n;
            into.total += n;
        }
    }

    /// What was recorded so far.
    pub fn snapshot(&self) -> Histogram {
        let mut h = Histogram::default();
        self.add_to(&mut h);
        h
    }
}

impl Histogram {
    /// Counts one value.
    pub fn record(&mut self, value: u64) {
        self.counts[bucket(value)] += 1;
        self.total += 1;
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value under which a fraction `q` (0..=1) of the recorded values
    /// fall, rounded up to its bucket's bound; `None` before any value.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(upper(b));
            }
        }
        Some(upper(BUCKETS - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        for v in [0, 1, 63, 64, 65, 127, 128, 1000, 123_456, 1 << 39] {
            let b = bucket(v);
            assert!(upper(b) >= v, "{v} above its bucket bound {}", upper(b));
            if b > 0 {
                assert!(upper(b - 1) < v, "{v} belongs in an earlier bucket");
            }
        }
    }

    #[test]
    fn quantiles_are_within_seven_percent() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.07, "p50 {p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.07, "p99 {p99}");
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn atomic_histograms_merge() {
        let (a, b) = (AtomicHistogram::default(), AtomicHistogram::default());
        for v in 0..99 {
            a.record(10 + v % 2);
        }
        b.record(5000);
        let mut h = a.snapshot();
        b.add_to(&mut h);
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), Some(10));
        let p100 = h.quantile(1.0).unwrap();
        assert!((5000..5000 + 5000 / 16 + 1).contains(&p100), "{p100}");
    }

    #[test]
    fn huge_values_stay_in_the_last_bucket() {
        let mut h = Histogram::default();
        h.record(u64::MAX);
        assert!(h.quantile(1.0).is_some());
    }
}
