//! Request counters and a latency histogram ([`crate::histogram`]), one set per worker (no shared
//! cache lines on the hot path), summed when status or telemetry asks.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::{
    histogram::{AtomicHistogram, Histogram},
    supervisor::{Counter, Float, Gauge, Maybe, Text},
};

crate::stats! {
    /// What the file server reports. Steering and kernel-side counts are
    /// absent while their eBPF program is not attached.
    pub struct FileserverStats {
        /// The address it listens on.
        listen: Text,
        /// The directory it serves.
        docroot: Text,
        /// Each worker's CPU, `-` for one left unpinned.
        worker_cpus: Text,
        /// Responses sent since start.
        requests: Counter,
        /// 1xx responses.
        responses_1xx: Counter,
        /// 2xx responses.
        responses_2xx: Counter,
        /// 3xx responses (redirects, 304 Not Modified).
        responses_3xx: Counter,
        /// 4xx responses.
        responses_4xx: Counter,
        /// 5xx responses.
        responses_5xx: Counter,
        /// Head and body bytes written.
        bytes_sent: Counter,
        /// Median request latency, µs (histogram bucket upper bound).
        latency_p50_us: Gauge,
        /// 99th percentile request latency, µs (histogram bucket upper bound).
        latency_p99_us: Gauge,
        /// Connections open now.
        connections_open: Gauge,
        /// Connections accepted since start.
        connections_accepted: Counter,
        /// Connections refused with 503 (over `max_connections`).
        connections_refused: Counter,
        /// Connections closed by the header timeout (408).
        header_timeouts: Counter,
        /// Accepts that found no file descriptor left (EMFILE/ENFILE); each
        /// pending connection is answered 503 through a spare descriptor.
        accept_fd_exhausted: Counter,
        /// Requests answered from a cached open file.
        cache_hits: Counter,
        /// Requests that had to open the file.
        cache_misses: Counter,
        /// Cache entries dropped because inotify saw a change.
        cache_invalidations: Counter,
        /// Files held open in the cache now.
        open_files: Gauge,
        /// Requests whose body came from the in-memory hot set.
        hot_hits: Counter,
        /// Files made resident in the hot set.
        hot_loads: Counter,
        /// Hot-set loads that failed (file changed meanwhile, mmap refused).
        hot_load_failures: Counter,
        /// Bytes resident in the hot set.
        hot_bytes: Gauge,
        /// Files resident in the hot set.
        hot_files: Gauge,
        /// The hot set's replacement policy, `(auto)` when chosen by
        /// replaying the served requests, `(fixed)` by the config.
        hot_policy: Text,
        /// Reviews of the hot set's policy since start (one per
        /// `hot_review_requests` requests served).
        hot_policy_reviews: Counter,
        /// Times a review changed the hot set's policy since start.
        hot_policy_changes: Counter,
        /// Requests the last review counted (`hot_review_requests`); the
        /// ratios below are over them. Absent before the first review.
        hot_reviewed_requests: Maybe<Counter>,
        /// Of those, the share the hot set found resident, measured, %.
        hot_hit_ratio_pct: Maybe<Float>,
        /// The share LRU finds resident when the same requests are
        /// replayed at the same budget (warmed by the window before), %.
        hot_sim_lru_pct: Maybe<Float>,
        /// The same for ARC, %.
        hot_sim_arc_pct: Maybe<Float>,
        /// The same for S3-FIFO, %.
        hot_sim_s3fifo_pct: Maybe<Float>,
        /// The same for SIEVE, %.
        hot_sim_sieve_pct: Maybe<Float>,
        /// Connections the sk_reuseport program gave to the worker on the
        /// receiving CPU.
        reuseport_steered: Maybe<Counter>,
        /// Connections given to another worker on the receiving CPU's node.
        reuseport_same_node: Maybe<Counter>,
        /// Connections left to the kernel's hash (no worker on that node).
        reuseport_fallback: Maybe<Counter>,
        /// Interfaces the TC request classifier is attached to, with the mode.
        tc_interfaces: Maybe<Text>,
        /// GET of a directory index, counted in the kernel.
        kernel_get_index as "kernel_requests.get.index": Maybe<Counter>,
        /// GET of an HTML page, counted in the kernel.
        kernel_get_html as "kernel_requests.get.html": Maybe<Counter>,
        /// GET of a page asset (`.css`, `.js`, `.json`, `.svg`, `.woff2`), counted in the kernel.
        kernel_get_asset as "kernel_requests.get.asset": Maybe<Counter>,
        /// GET of an image, counted in the kernel.
        kernel_get_image as "kernel_requests.get.image": Maybe<Counter>,
        /// GET of any other path, counted in the kernel.
        kernel_get_other as "kernel_requests.get.other": Maybe<Counter>,
        /// GET of a path containing `..` or `%` (traversal attempts, encoded
        /// paths), counted in the kernel.
        kernel_get_suspicious as "kernel_requests.get.suspicious": Maybe<Counter>,
        /// HEAD of a directory index, counted in the kernel.
        kernel_head_index as "kernel_requests.head.index": Maybe<Counter>,
        /// HEAD of an HTML page, counted in the kernel.
        kernel_head_html as "kernel_requests.head.html": Maybe<Counter>,
        /// HEAD of a page asset (`.css`, `.js`, `.json`, `.svg`, `.woff2`), counted in the kernel.
        kernel_head_asset as "kernel_requests.head.asset": Maybe<Counter>,
        /// HEAD of an image, counted in the kernel.
        kernel_head_image as "kernel_requests.head.image": Maybe<Counter>,
        /// HEAD of any other path, counted in the kernel.
        kernel_head_other as "kernel_requests.head.other": Maybe<Counter>,
        /// HEAD of a path containing `..` or `%` (traversal attempts, encoded
        /// paths), counted in the kernel.
        kernel_head_suspicious as "kernel_requests.head.suspicious": Maybe<Counter>,
        /// Requests with another method, counted in the kernel.
        kernel_other_method as "kernel_requests.other_method": Maybe<Counter>,
    }
}

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
    /// Accepts that found no file descriptor (EMFILE/ENFILE).
    pub fd_exhausted: AtomicU64,
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
