//! Which files stay resident in memory: the hot set, and the choice of its
//! replacement policy from the workload it serves.
//!
//! The policy is one of [`crate::cachesim`]'s (LRU, ARC, S3-FIFO, SIEVE),
//! files weighted by their bytes under `hot_bytes`: the same code
//! `nodus cache simulate` replays, so what the simulator says of a policy
//! is what the file server would get. The hot set remembers its recent
//! requests (two review windows of `hot_review_requests`) and whether each
//! found its file resident. Every window, [`judge`] replays them through
//! every policy at the same budget (the older window warms each cache, the
//! newer one is counted) beside the measured ratio; with `hot_policy =
//! "auto"` the hot set moves to the best one when it beats the current one
//! by more than [`SWITCH_MARGIN`] (no flapping between near-equals). The
//! new policy starts warm: it has replayed the same requests, and the
//! files it holds that have no body yet load on their next request.
//!
//! Keys are 64-bit hashes of the file's path in the docroot; the cache
//! keeps the path beside each body and checks it, so a collision can only
//! cost a body, never serve the wrong one.

use std::{
    collections::VecDeque,
    hash::{Hash, Hasher},
};

use crate::cachesim::{Kind, Policy};

/// How much better (in hit ratio) the best policy must replay the served
/// workload than the current one before the hot set moves to it.
pub const SWITCH_MARGIN: f64 = 0.005;

/// The hot set's key for a file's path in the docroot.
pub fn id_of(key: &[u8]) -> u64 {
    // SipHash with fixed keys: stable across runs, so a trace or a test
    // sees the same ids.
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Which policy the hot set runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Chosen by [`judge`] from the served workload.
    Auto,
    /// Fixed by the configuration.
    Fixed(Kind),
}

impl Choice {
    /// `auto` or a policy's name, as `hot_policy` spells it.
    pub fn parse(s: &str) -> Option<Choice> {
        if s.trim().eq_ignore_ascii_case("auto") {
            Some(Choice::Auto)
        } else {
            Kind::parse(s).map(Choice::Fixed)
        }
    }
}

/// The policy the hot set starts with under `auto`, until the first
/// verdict: ARC resists one-off scans, which LRU does not.
pub const AUTO_START: Kind = Kind::Arc;

/// What one access did.
#[derive(Debug, PartialEq, Eq)]
pub struct Access {
    /// The file was resident before this access.
    pub hit: bool,
    /// The file is resident after this access (too-large files never are).
    pub resident: bool,
    /// Files no longer resident because of this access.
    pub evicted: Vec<u64>,
}

/// One remembered request.
#[derive(Clone, Copy, Debug)]
struct Request {
    id: u64,
    size: u64,
    hit: bool,
}

/// What a review replays: the remembered requests, oldest first; only the
/// last `counted` are counted (the rest warm the caches).
#[derive(Clone, Debug)]
pub struct ReviewInput {
    requests: Vec<(u64, u64)>,
    counted: usize,
    /// Of the counted requests, those the live hot set found resident.
    measured_hits: usize,
    budget: u64,
    current: Kind,
    choice: Choice,
    /// Requests seen when the input was taken (for [`HotSet::adopt`]).
    seq: u64,
}

/// A review's result: every policy's hit ratio on the served workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Requests counted.
    pub requests: usize,
    /// Share the live hot set found resident.
    pub measured: f64,
    /// Each policy's share when the same requests are replayed, warm.
    pub simulated: Vec<(Kind, f64)>,
    /// The policy the hot set should run.
    pub chosen: Kind,
}

/// A policy already warmed by a review's replay, ready to take over.
pub struct Successor {
    verdict: Verdict,
    policy: Option<(Box<dyn Policy>, u64)>,
}

impl std::fmt::Debug for Successor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Successor")
            .field("verdict", &self.verdict)
            .field("switch", &self.policy.is_some())
            .finish()
    }
}

/// Replays a review's requests through every policy (on the caller's
/// thread: a review of 2 x 50,000 requests takes milliseconds) and decides.
pub fn judge(input: &ReviewInput) -> Successor {
    let warm = input.requests.len() - input.counted;
    let mut evicted = Vec::new();
    let mut best: Option<(Kind, f64, Box<dyn Policy>)> = None;
    let mut simulated = Vec::new();
    let mut current_ratio = 0.0;
    for kind in Kind::ALL {
        let mut policy = kind.build(input.budget);
        let mut hits = 0usize;
        for (n, &(id, size)) in input.requests.iter().enumerate() {
            evicted.clear();
            if policy.access(id, size, &mut evicted) && n >= warm {
                hits += 1;
            }
        }
        let ratio = hits as f64 / input.counted.max(1) as f64;
        simulated.push((kind, ratio));
        if kind == input.current {
            current_ratio = ratio;
        }
        if best.as_ref().is_none_or(|(_, r, _)| ratio > *r) {
            best = Some((kind, ratio, policy));
        }
    }
    let measured = input.measured_hits as f64 / input.counted.max(1) as f64;
    let (chosen, policy) = match (input.choice, best) {
        (Choice::Auto, Some((kind, ratio, policy)))
            if kind != input.current && ratio > current_ratio + SWITCH_MARGIN =>
        {
            (kind, Some((policy, input.seq)))
        }
        _ => (input.current, None),
    };
    Successor {
        verdict: Verdict {
            requests: input.counted,
            measured,
            simulated,
            chosen,
        },
        policy,
    }
}

/// The hot set: the running policy and the requests it remembers.
pub struct HotSet {
    budget: u64,
    choice: Choice,
    kind: Kind,
    policy: Box<dyn Policy>,
    window: usize,
    recent: VecDeque<Request>,
    /// Requests seen since start.
    seq: u64,
    /// `seq` at the last review taken.
    reviewed_at: u64,
    verdict: Option<Verdict>,
    reviews: u64,
    changes: u64,
}

impl HotSet {
    /// An empty hot set of `budget` bytes running `choice`, reviewed every
    /// `window` requests (at least 1).
    pub fn new(budget: u64, choice: Choice, window: usize) -> Self {
        let kind = match choice {
            Choice::Auto => AUTO_START,
            Choice::Fixed(k) => k,
        };
        let window = window.max(1);
        HotSet {
            budget,
            choice,
            kind,
            policy: kind.build(budget),
            window,
            recent: VecDeque::with_capacity(2 * window),
            seq: 0,
            reviewed_at: 0,
            verdict: None,
            reviews: 0,
            changes: 0,
        }
    }

    /// Records an access to file `id` of `size` bytes.
    pub fn access(&mut self, id: u64, size: u64) -> Access {
        let mut evicted = Vec::new();
        let hit = self.policy.access(id, size, &mut evicted);
        if self.recent.len() == 2 * self.window {
            self.recent.pop_front();
        }
        self.recent.push_back(Request { id, size, hit });
        self.seq += 1;
        Access {
            hit,
            resident: self.policy.contains(id),
            evicted,
        }
    }

    /// Whether `id` is resident, without counting an access.
    pub fn contains(&self, id: u64) -> bool {
        self.policy.contains(id)
    }

    /// Forgets `id` (the file changed or vanished).
    pub fn remove(&mut self, id: u64) {
        self.policy.remove(id);
    }

    /// Bytes resident.
    pub fn resident_bytes(&self) -> u64 {
        self.policy.used()
    }

    /// The policy running now and how it was chosen.
    pub fn policy(&self) -> (Kind, Choice) {
        (self.kind, self.choice)
    }

    /// The last review's verdict, if one was made.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.verdict.as_ref()
    }

    /// Reviews made and times the policy changed, since start.
    pub fn changes(&self) -> (u64, u64) {
        (self.reviews, self.changes)
    }

    /// The requests to review, once a whole window has been served since
    /// the last review.
    pub fn review_due(&mut self) -> Option<ReviewInput> {
        if self.seq - self.reviewed_at < self.window as u64 || self.recent.is_empty() {
            return None;
        }
        self.reviewed_at = self.seq;
        let counted = self.window.min(self.recent.len());
        let measured_hits = self
            .recent
            .iter()
            .skip(self.recent.len() - counted)
            .filter(|r| r.hit)
            .count();
        Some(ReviewInput {
            requests: self.recent.iter().map(|r| (r.id, r.size)).collect(),
            counted,
            measured_hits,
            budget: self.budget,
            current: self.kind,
            choice: self.choice,
            seq: self.seq,
        })
    }

    /// Takes a review's verdict; if it chose another policy, that policy
    /// (warmed by the review, then fed the requests served since) takes
    /// over, and the caller drops the bodies of files it does not hold.
    /// Whether the policy changed.
    pub fn adopt(&mut self, successor: Successor) -> bool {
        let Successor { verdict, policy } = successor;
        let switched = policy.is_some();
        if let Some((mut policy, seen)) = policy {
            // Requests served between the review's snapshot and now.
            let missed = usize::try_from(self.seq - seen).unwrap_or(usize::MAX);
            let mut evicted = Vec::new();
            for r in self
                .recent
                .iter()
                .skip(self.recent.len().saturating_sub(missed))
            {
                evicted.clear();
                policy.access(r.id, r.size, &mut evicted);
            }
            self.policy = policy;
            self.kind = verdict.chosen;
            self.changes += 1;
        }
        self.verdict = Some(verdict);
        self.reviews += 1;
        switched
    }
}

#[cfg(test)]
mod tests;
