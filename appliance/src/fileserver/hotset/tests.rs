use super::*;

/// xorshift64*: deterministic, so the comparison is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf(s) over `n` keys by inverse CDF.
fn zipf(n: usize, s: f64, count: usize, rng: &mut Rng) -> Vec<u32> {
    let weights: Vec<f64> = (1..=n).map(|k| 1.0 / (k as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(n);
    let mut acc = 0.0;
    for w in weights {
        acc += w / total;
        cdf.push(acc);
    }
    (0..count)
        .map(|_| {
            let u = rng.unit();
            cdf.partition_point(|&c| c < u).min(n - 1) as u32
        })
        .collect()
}

fn size_of_key(k: u32) -> u64 {
    // 1-64 KiB, fixed per key.
    1024 * (1 + u64::from(k.wrapping_mul(2_654_435_761) % 64))
}

fn trace(keys: &[u32]) -> Vec<(u32, u64)> {
    keys.iter().map(|&k| (k, size_of_key(k))).collect()
}

const BUDGET: u64 = 4 * 1024 * 1024;

#[test]
fn arc_matches_lru_on_a_pure_zipf_workload() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t = trace(&zipf(2000, 0.9, 200_000, &mut rng));
    let arc = simulate(&mut Arc::new(BUDGET), &t);
    let lru = simulate(&mut Lru::new(BUDGET), &t);
    assert!(arc.hits >= lru.hits * 0.98, "arc {arc:?} lru {lru:?}");
}

#[test]
fn arc_resists_scans_that_flush_lru() {
    let mut rng = Rng(42);
    let hot = zipf(400, 1.0, 100_000, &mut rng);
    let mut keys = Vec::new();
    let mut scan_key = 1_000_000u32;
    for chunk in hot.chunks(1000) {
        keys.extend_from_slice(chunk);
        // A crawler reads 300 files nobody asks for again.
        for _ in 0..300 {
            keys.push(scan_key);
            scan_key += 1;
        }
    }
    let t = trace(&keys);
    let arc = simulate(&mut Arc::new(BUDGET), &t);
    let lru = simulate(&mut Lru::new(BUDGET), &t);
    assert!(
        arc.hits > lru.hits * 1.10,
        "ARC should beat LRU by >10% under scans: arc {arc:?} lru {lru:?}"
    );
}

#[test]
fn arc_never_exceeds_its_budget_and_reports_evictions() {
    let mut rng = Rng(7);
    let mut arc = Arc::new(BUDGET);
    let mut resident: std::collections::HashSet<u32> = Default::default();
    for k in zipf(5000, 0.7, 50_000, &mut rng) {
        let a = arc.access(&k, size_of_key(k));
        for e in &a.evicted {
            assert!(resident.remove(e), "evicted {e} was not resident");
        }
        if a.resident {
            resident.insert(k);
        }
        assert!(arc.resident_bytes() <= BUDGET);
    }
    let sum: u64 = resident.iter().map(|&k| size_of_key(k)).sum();
    assert_eq!(sum, arc.resident_bytes());
}

#[test]
fn too_large_is_never_resident() {
    let mut arc = Arc::new(1000);
    assert!(!arc.access(&1, 2000).resident);
    assert!(arc.access(&2, 500).resident);
    assert!(arc.access(&2, 500).hit);
    // The file grew past the budget: it is evicted.
    let a = arc.access(&2, 5000);
    assert!(!a.resident);
    assert_eq!(a.evicted, vec![2]);
    assert_eq!(arc.resident_bytes(), 0);
}
