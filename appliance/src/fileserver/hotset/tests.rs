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

const BUDGET: u64 = 4 * 1024 * 1024;

/// Zipf traffic over 2,000 files of 1-64 KiB with a crawler reading 300
/// files nobody asks for again after every 1,000 requests.
fn scanned_workload(requests: usize) -> Vec<u32> {
    let mut rng = Rng(42);
    let hot = zipf(2000, 0.9, requests, &mut rng);
    let mut keys = Vec::new();
    let mut scan_key = 1_000_000u32;
    for chunk in hot.chunks(1000) {
        keys.extend_from_slice(chunk);
        for _ in 0..300 {
            keys.push(scan_key);
            scan_key += 1;
        }
    }
    keys
}

fn serve(hot: &mut HotSet, keys: &[u32]) -> usize {
    keys.iter()
        .filter(|&&k| hot.access(u64::from(k), size_of_key(k)).hit)
        .count()
}

fn ratio(v: &Verdict, kind: Kind) -> f64 {
    v.simulated
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(0.0, |s| s.1)
}

/// Under scans, the verdict shows LRU well below the best policy; `auto`
/// moves to the best one, and the new policy starts warm: the next window
/// measures what the replay promised.
#[test]
fn auto_moves_to_the_best_policy_and_it_starts_warm() {
    let window = 20_000;
    let keys = scanned_workload(60_000);
    let mut hot = HotSet::new(BUDGET, Choice::Auto, window);
    assert_eq!(hot.policy().0, AUTO_START);
    serve(&mut hot, &keys[..2 * window]);
    let input = hot.review_due().expect("a window was served");
    assert!(hot.review_due().is_none(), "one review per window");
    let successor = judge(&input);
    let verdict = successor.verdict.clone();
    let best = verdict
        .simulated
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|s| s.0)
        .unwrap();
    assert!(
        ratio(&verdict, Kind::Lru) < ratio(&verdict, best) - 0.05,
        "{verdict:?}"
    );
    assert_eq!(verdict.chosen, best, "{verdict:?}");
    assert_ne!(best, AUTO_START, "{verdict:?}");
    // The measured ratio is the live ARC's, which the replay of ARC matches
    // (the same requests, the same budget, warm).
    assert!(
        (verdict.measured - ratio(&verdict, Kind::Arc)).abs() < 0.02,
        "{verdict:?}"
    );
    assert!(hot.adopt(successor));
    assert_eq!((hot.policy().0, hot.changes()), (best, (1, 1)));
    assert!(hot.resident_bytes() > BUDGET * 9 / 10, "starts warm");
    let hits = serve(&mut hot, &keys[2 * window..3 * window]);
    let next = judge(&hot.review_due().unwrap());
    assert!(
        (hits as f64 / window as f64 - ratio(&next.verdict, best)).abs() < 0.02,
        "measured {hits} of {window}, {:?}",
        next.verdict
    );
}

/// A fixed policy is reviewed (status shows the alternatives) but kept.
#[test]
fn a_fixed_policy_is_reviewed_but_kept() {
    let keys = scanned_workload(20_000);
    let mut hot = HotSet::new(BUDGET, Choice::Fixed(Kind::Lru), 10_000);
    serve(&mut hot, &keys[..20_000]);
    let successor = judge(&hot.review_due().unwrap());
    assert_eq!(successor.verdict.chosen, Kind::Lru);
    assert!(!hot.adopt(successor));
    assert_eq!((hot.policy().0, hot.changes()), (Kind::Lru, (1, 0)));
    assert!(hot.verdict().is_some());
}

/// Near-equal policies do not make the hot set flap: a pure Zipf workload
/// without scans leaves the start policy in place unless another beats it
/// by more than the margin.
#[test]
fn near_equals_do_not_switch() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let keys = zipf(2000, 0.9, 40_000, &mut rng);
    let mut hot = HotSet::new(BUDGET, Choice::Auto, 20_000);
    serve(&mut hot, &keys);
    let s = judge(&hot.review_due().unwrap());
    let margin = ratio(&s.verdict, s.verdict.chosen) - ratio(&s.verdict, AUTO_START);
    if s.verdict.chosen == AUTO_START {
        assert!(!hot.adopt(s));
    } else {
        assert!(margin > SWITCH_MARGIN, "{:?}", s.verdict);
    }
}

/// A file larger than the budget is never resident; a removed one is gone.
#[test]
fn too_large_is_never_resident_and_removed_is_gone() {
    let mut hot = HotSet::new(1000, Choice::Auto, 100);
    assert!(!hot.access(1, 2000).resident);
    assert!(hot.access(2, 500).resident);
    assert!(hot.access(2, 500).hit);
    hot.remove(2);
    assert!(!hot.contains(2));
    assert_eq!(hot.resident_bytes(), 0);
}

#[test]
fn policies_parse_as_the_config_spells_them() {
    assert_eq!(Choice::parse("auto"), Some(Choice::Auto));
    assert_eq!(Choice::parse("S3FIFO"), Some(Choice::Fixed(Kind::S3fifo)));
    assert_eq!(Choice::parse("lfu"), None);
}
