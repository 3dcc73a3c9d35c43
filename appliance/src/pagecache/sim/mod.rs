//! What-if simulation: how a cache of a given size and policy would have
//! done on an access trace, and the miss-ratio curve over sizes
//! (`nodus cache simulate`).
//!
//! Objects count one each (the page cache's unit is a page). Each policy
//! follows libCacheSim's rules exactly, so its miss ratios can be checked
//! against libCacheSim's on the same trace (a test does, with its Python
//! bindings).

pub mod arc;
pub mod list;
pub mod lru;
pub mod s3fifo;
pub mod sieve;
pub mod trace;

use std::time::Instant;

/// A cache replacement policy over unit-size objects.
pub trait Policy {
    /// Requests object `id`: true on a hit; on a miss it is admitted
    /// (evicting as the policy decides).
    fn access(&mut self, id: u64) -> bool;
}

/// The policies nodus simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Least recently used.
    Lru,
    /// Adaptive replacement cache.
    Arc,
    /// S3-FIFO.
    S3fifo,
    /// SIEVE.
    Sieve,
}

impl Kind {
    /// Every policy, in the order tables show them.
    pub const ALL: [Kind; 4] = [Kind::Lru, Kind::Arc, Kind::S3fifo, Kind::Sieve];

    /// Its name on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lru => "lru",
            Kind::Arc => "arc",
            Kind::S3fifo => "s3fifo",
            Kind::Sieve => "sieve",
        }
    }

    /// The policy named `name` (as [`Kind::name`] writes it).
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// One point of a miss-ratio curve.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Point {
    /// The policy.
    pub policy: Kind,
    /// Cache size, in objects.
    pub size: usize,
    /// Requests replayed.
    pub requests: u64,
    /// Of those, misses.
    pub misses: u64,
    /// misses / requests.
    pub miss_ratio: f64,
    /// Replay speed of this point, requests per second (one thread).
    pub requests_per_sec: f64,
}

/// Replays `ids` through a cache of `kind` and `size`.
pub fn replay(kind: Kind, size: usize, ids: &[u64]) -> Point {
    fn run<P: Policy>(mut p: P, ids: &[u64]) -> u64 {
        ids.iter().filter(|&&id| !p.access(id)).count() as u64
    }
    let started = Instant::now();
    let misses = match kind {
        Kind::Lru => run(lru::Lru::new(size), ids),
        Kind::Arc => run(arc::Arc::new(size), ids),
        Kind::S3fifo => run(s3fifo::S3Fifo::new(size), ids),
        Kind::Sieve => run(sieve::Sieve::new(size), ids),
    };
    let secs = started.elapsed().as_secs_f64();
    let requests = ids.len() as u64;
    Point {
        policy: kind,
        size,
        requests,
        misses,
        miss_ratio: if requests == 0 {
            0.0
        } else {
            misses as f64 / requests as f64
        },
        requests_per_sec: if secs > 0.0 {
            requests as f64 / secs
        } else {
            0.0
        },
    }
}

/// The miss-ratio curve of every policy in `kinds` at every size, the
/// points spread over `threads` threads (each point is independent).
pub fn curve(kinds: &[Kind], sizes: &[usize], ids: &[u64], threads: usize) -> Vec<Point> {
    let jobs: Vec<(Kind, usize)> = sizes
        .iter()
        .flat_map(|&s| kinds.iter().map(move |&k| (k, s)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut points: Vec<(usize, Point)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1).min(jobs.len().max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = vec![];
                    loop {
                        let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(kind, size)) = jobs.get(j) else {
                            return done;
                        };
                        done.push((j, replay(kind, size, ids)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    points.sort_by_key(|(j, _)| *j);
    points.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loop one object longer than the cache defeats LRU, ARC and SIEVE
    /// (nothing is requested while still cached) but not S3-FIFO, whose
    /// ghost sends returning objects to main (libCacheSim: 283 misses of
    /// 2100, as here); a loop that fits misses only its first pass.
    #[test]
    fn loops_longer_than_the_cache_always_miss_and_fitting_ones_hit() {
        let too_long: Vec<u64> = (0..100).flat_map(|_| 0..21u64).collect();
        let fits: Vec<u64> = (0..100).flat_map(|_| 0..20u64).collect();
        for kind in Kind::ALL {
            let misses = replay(kind, 20, &too_long).misses;
            if kind == Kind::S3fifo {
                assert_eq!(misses, 283);
            } else {
                assert_eq!(misses, too_long.len() as u64, "{kind:?}");
            }
            assert_eq!(replay(kind, 20, &fits).misses, 20, "{kind:?}");
        }
    }

    #[test]
    fn repeated_objects_hit_once_cached() {
        for kind in Kind::ALL {
            let ids = [1, 2, 3, 1, 2, 3, 1, 2, 3];
            assert_eq!(replay(kind, 100, &ids).misses, 3, "{kind:?}");
        }
    }

    #[test]
    fn the_curve_keeps_the_order_asked_for() {
        let ids: Vec<u64> = (0..1000u64).map(|i| i % 37).collect();
        let pts = curve(&Kind::ALL, &[5, 50], &ids, 2);
        let order: Vec<(Kind, usize)> = pts.iter().map(|p| (p.policy, p.size)).collect();
        assert_eq!(order[0], (Kind::Lru, 5));
        assert_eq!(order[7], (Kind::Sieve, 50));
        assert!(pts.iter().filter(|p| p.size == 50).all(|p| p.misses == 37));
    }
}
