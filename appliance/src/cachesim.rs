//! Cache replacement policies (LRU, ARC, S3-FIFO, SIEVE) and their
//! what-if replay: how a cache of a given size and policy would have done
//! on an access trace, and the miss-ratio curve over sizes.
//!
//! One implementation of each policy serves two users: `nodus cache
//! simulate` replays page traces (every object one unit: a page), and the
//! file server's hot set runs the policy its own replay chose, with files
//! weighted by their bytes. Each policy follows libCacheSim's rules
//! exactly, sizes included, so its miss ratios can be checked against
//! libCacheSim's on the same trace (a test does, with its Python bindings).

pub mod arc;
pub mod list;
pub mod lru;
pub mod s3fifo;
pub mod sieve;
pub mod trace;

use std::time::Instant;

/// A cache replacement policy over objects with sizes, under a budget in
/// the same unit.
pub trait Policy: Send {
    /// Requests object `id` of `size` units: true on a hit. On a miss it is
    /// admitted if the policy takes it and it fits; the objects that leave
    /// the cache to make room are pushed to `evicted` (ghosts the policy
    /// only remembers are not: they were not cached).
    fn access(&mut self, id: u64, size: u64, evicted: &mut Vec<u64>) -> bool;
    /// Whether `id` is cached now (a remembered ghost is not).
    fn contains(&self, id: u64) -> bool;
    /// Forgets `id` entirely, cached or remembered (it changed or vanished).
    fn remove(&mut self, id: u64);
    /// Units cached now.
    fn used(&self) -> u64;
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
    /// An empty cache of this policy holding up to `capacity` units.
    pub fn build(self, capacity: u64) -> Box<dyn Policy> {
        match self {
            Kind::Lru => Box::new(lru::Lru::new(capacity)),
            Kind::Arc => Box::new(arc::Arc::new(capacity)),
            Kind::S3fifo => Box::new(s3fifo::S3Fifo::new(capacity)),
            Kind::Sieve => Box::new(sieve::Sieve::new(capacity)),
        }
    }

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
    /// Cache size: objects, or the trace's size unit (bytes) when weighted.
    pub size: u64,
    /// Requests replayed.
    pub requests: u64,
    /// Of those, misses.
    pub misses: u64,
    /// misses / requests.
    pub miss_ratio: f64,
    /// Replay speed of this point, requests per second (one thread).
    pub requests_per_sec: f64,
}

/// Replays `ids` through a cache of `kind` holding `size` units: each
/// object one unit, or, with `weights` (one per request), its weight.
pub fn replay(kind: Kind, size: u64, ids: &[u64], weights: Option<&[u32]>) -> Point {
    // Monomorphised per policy: the replay loop is the bench's hot path.
    fn run<P: Policy>(mut p: P, ids: &[u64], weights: Option<&[u32]>) -> u64 {
        let mut evicted = Vec::new();
        let mut misses = 0;
        match weights {
            None => {
                for &id in ids {
                    evicted.clear();
                    misses += u64::from(!p.access(id, 1, &mut evicted));
                }
            }
            Some(w) => {
                for (&id, &w) in ids.iter().zip(w) {
                    evicted.clear();
                    misses += u64::from(!p.access(id, u64::from(w), &mut evicted));
                }
            }
        }
        misses
    }
    let started = Instant::now();
    let misses = match kind {
        Kind::Lru => run(lru::Lru::new(size), ids, weights),
        Kind::Arc => run(arc::Arc::new(size), ids, weights),
        Kind::S3fifo => run(s3fifo::S3Fifo::new(size), ids, weights),
        Kind::Sieve => run(sieve::Sieve::new(size), ids, weights),
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

/// The miss-ratio curve of every policy in `kinds` at every size (objects
/// weighted as [`replay`] says), the points spread over `threads` threads
/// (each point is independent).
pub fn curve(
    kinds: &[Kind],
    sizes: &[u64],
    ids: &[u64],
    weights: Option<&[u32]>,
    threads: usize,
) -> Vec<Point> {
    let jobs: Vec<(Kind, u64)> = sizes
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
                        done.push((j, replay(kind, size, ids, weights)));
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
            let misses = replay(kind, 20, &too_long, None).misses;
            if kind == Kind::S3fifo {
                assert_eq!(misses, 283);
            } else {
                assert_eq!(misses, too_long.len() as u64, "{kind:?}");
            }
            assert_eq!(replay(kind, 20, &fits, None).misses, 20, "{kind:?}");
        }
    }

    #[test]
    fn repeated_objects_hit_once_cached() {
        for kind in Kind::ALL {
            let ids = [1, 2, 3, 1, 2, 3, 1, 2, 3];
            assert_eq!(replay(kind, 100, &ids, None).misses, 3, "{kind:?}");
        }
    }

    /// What a user of the cache (the file server) keeps beside it stays
    /// true: every object reported evicted leaves, `contains` says what is
    /// cached, `used` is the sum of their sizes and never over the budget,
    /// and `remove` forgets an object, on a trace of mixed sizes.
    #[test]
    fn evictions_contents_and_sizes_stay_consistent() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let size_of = |id: u64| 1 + (id * 2_654_435_761) % 40;
        for kind in Kind::ALL {
            let capacity = 200;
            let mut cache = kind.build(capacity);
            let mut mirror = std::collections::HashSet::new();
            let mut evicted = vec![];
            for step in 0..20_000 {
                let id = next() % 60;
                if step % 97 == 0 {
                    cache.remove(id);
                    mirror.remove(&id);
                    continue;
                }
                evicted.clear();
                let hit = cache.access(id, size_of(id), &mut evicted);
                assert_eq!(hit, mirror.contains(&id), "{kind:?} step {step}");
                for gone in &evicted {
                    assert!(mirror.remove(gone), "{kind:?}: {gone} evicted, not cached");
                    assert!(!cache.contains(*gone) || *gone == id, "{kind:?}");
                }
                if cache.contains(id) {
                    mirror.insert(id);
                }
                let used: u64 = mirror.iter().map(|&i| size_of(i)).sum();
                assert_eq!(cache.used(), used, "{kind:?} step {step}");
                assert!(used <= capacity, "{kind:?}");
            }
            assert!((0..60).all(|i| cache.contains(i) == mirror.contains(&i)));
            // An object larger than the cache is never admitted.
            assert!(!cache.access(1000, capacity + 1, &mut evicted));
            assert!(!cache.contains(1000));
        }
    }

    #[test]
    fn the_curve_keeps_the_order_asked_for() {
        let ids: Vec<u64> = (0..1000u64).map(|i| i % 37).collect();
        let pts = curve(&Kind::ALL, &[5, 50], &ids, None, 2);
        let order: Vec<(Kind, u64)> = pts.iter().map(|p| (p.policy, p.size)).collect();
        assert_eq!(order[0], (Kind::Lru, 5));
        assert_eq!(order[7], (Kind::Sieve, 50));
        assert!(pts.iter().filter(|p| p.size == 50).all(|p| p.misses == 37));
    }
}
