//! Which files stay resident in memory: the hot-set admission policy.
//!
//! [`Arc`] is ARC (Megiddo & Modha, FAST '03) weighted by bytes: a recency
//! list T1 and a frequency list T2 share a byte budget, and ghost lists B1/B2
//! (keys only) of what each recently evicted steer the split `p`. Unlike LRU,
//! a one-off scan of many cold files (a backup, a crawler) only cycles
//! through T1 and cannot flush the files that are requested again and again.
//! [`Lru`] is the baseline, and [`simulate`] replays a trace against either,
//! so the choice is a unit test, not a belief.

use std::{
    collections::{BTreeMap, HashMap},
    hash::Hash,
};

/// What one access did.
#[derive(Debug, PartialEq, Eq)]
pub struct Access<K> {
    /// The key was resident before this access.
    pub hit: bool,
    /// The key is resident after this access (too-large files never are).
    pub resident: bool,
    /// Keys no longer resident because of this access.
    pub evicted: Vec<K>,
}

impl<K> Access<K> {
    fn miss() -> Self {
        Access {
            hit: false,
            resident: false,
            evicted: Vec::new(),
        }
    }
}

/// A residency policy under a byte budget.
pub trait Policy<K> {
    /// Records an access to `key` of `size` bytes.
    fn access(&mut self, key: &K, size: u64) -> Access<K>;
    /// Forgets `key` (the file changed or vanished).
    fn remove(&mut self, key: &K);
    /// Bytes currently resident.
    fn resident_bytes(&self) -> u64;
}

/// An LRU list with O(log n) removal anywhere: recency ticks in a BTreeMap.
#[derive(Debug)]
struct List<K> {
    order: BTreeMap<u64, K>,
    bytes: u64,
}

impl<K: Clone> List<K> {
    fn new() -> Self {
        List {
            order: BTreeMap::new(),
            bytes: 0,
        }
    }
    fn push(&mut self, tick: u64, key: K, size: u64) {
        self.order.insert(tick, key);
        self.bytes += size;
    }
    fn take(&mut self, tick: u64, size: u64) {
        self.order.remove(&tick);
        self.bytes -= size;
    }
    fn oldest(&self) -> Option<(u64, K)> {
        self.order.first_key_value().map(|(t, k)| (*t, k.clone()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    T1,
    T2,
    B1,
    B2,
}

#[derive(Clone, Copy, Debug)]
struct Meta {
    at: Where,
    tick: u64,
    size: u64,
}

/// Byte-weighted ARC.
#[derive(Debug)]
pub struct Arc<K> {
    capacity: u64,
    /// Target bytes of T1.
    p: u64,
    tick: u64,
    lists: [List<K>; 4],
    meta: HashMap<K, Meta>,
}

fn idx(w: Where) -> usize {
    w as usize
}

impl<K: Clone + Eq + Hash> Arc<K> {
    /// An empty policy with a budget of `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        Arc {
            capacity,
            p: 0,
            tick: 0,
            lists: [List::new(), List::new(), List::new(), List::new()],
            meta: HashMap::new(),
        }
    }

    /// Whether `key` is in T1 or T2 (resident), without counting an access.
    pub fn is_resident(&self, key: &K) -> bool {
        self.meta
            .get(key)
            .is_some_and(|m| matches!(m.at, Where::T1 | Where::T2))
    }

    fn bytes(&self, w: Where) -> u64 {
        self.lists[idx(w)].bytes
    }

    fn unlink(&mut self, key: &K) -> Option<Meta> {
        let m = self.meta.remove(key)?;
        self.lists[idx(m.at)].take(m.tick, m.size);
        Some(m)
    }

    fn link(&mut self, key: K, at: Where, size: u64) {
        self.tick += 1;
        self.lists[idx(at)].push(self.tick, key.clone(), size);
        self.meta.insert(
            key,
            Meta {
                at,
                tick: self.tick,
                size,
            },
        );
    }

    /// Moves the oldest entry of `from` to ghost list `to` (or drops it).
    fn demote(&mut self, from: Where, to: Option<Where>) -> Option<K> {
        let (_, key) = self.lists[idx(from)].oldest()?;
        let m = self.unlink(&key)?;
        if let Some(to) = to {
            self.link(key.clone(), to, m.size);
        }
        Some(key)
    }

    /// Makes room for `size` bytes in T1+T2 (ARC's REPLACE), ghosting victims.
    fn replace(&mut self, size: u64, in_b2: bool, evicted: &mut Vec<K>) {
        while self.bytes(Where::T1) + self.bytes(Where::T2) + size > self.capacity {
            let t1 = self.bytes(Where::T1);
            let from_t1 =
                t1 > 0 && (t1 > self.p || (in_b2 && t1 >= self.p)) || self.bytes(Where::T2) == 0;
            let (from, to) = if from_t1 {
                (Where::T1, Where::B1)
            } else {
                (Where::T2, Where::B2)
            };
            match self.demote(from, Some(to)) {
                Some(k) => evicted.push(k),
                None => break,
            }
        }
    }

    /// Keeps the ghost lists within the budget too (ARC's |L1|, |L2| <= c).
    fn trim_ghosts(&mut self) {
        while self.bytes(Where::T1) + self.bytes(Where::B1) > self.capacity
            && self.demote(Where::B1, None).is_some()
        {}
        let total = |s: &Self| s.lists.iter().map(|l| l.bytes).sum::<u64>();
        while total(self) > 2 * self.capacity && self.demote(Where::B2, None).is_some() {}
    }
}

impl<K: Clone + Eq + Hash> Policy<K> for Arc<K> {
    fn access(&mut self, key: &K, size: u64) -> Access<K> {
        let mut out = Access::miss();
        let prev = self.meta.get(key).copied();
        if size > self.capacity {
            if prev.is_some_and(|m| matches!(m.at, Where::T1 | Where::T2)) {
                out.evicted.push(key.clone());
            }
            self.unlink(key);
            return out;
        }
        match prev.map(|m| m.at) {
            Some(Where::T1 | Where::T2) => {
                self.unlink(key);
                out.hit = true;
                // A changed size may need room.
                self.replace(size, false, &mut out.evicted);
            }
            Some(ghost @ (Where::B1 | Where::B2)) => {
                let (b1, b2) = (self.bytes(Where::B1).max(1), self.bytes(Where::B2).max(1));
                self.unlink(key);
                if ghost == Where::B1 {
                    let delta = (b2 / b1).max(1) * size;
                    self.p = (self.p + delta).min(self.capacity);
                } else {
                    let delta = (b1 / b2).max(1) * size;
                    self.p = self.p.saturating_sub(delta);
                }
                self.replace(size, ghost == Where::B2, &mut out.evicted);
            }
            None => {
                self.replace(size, false, &mut out.evicted);
                self.link(key.clone(), Where::T1, size);
                self.trim_ghosts();
                out.resident = true;
                return out;
            }
        }
        self.link(key.clone(), Where::T2, size);
        self.trim_ghosts();
        out.resident = true;
        out
    }

    fn remove(&mut self, key: &K) {
        self.unlink(key);
    }

    fn resident_bytes(&self) -> u64 {
        self.bytes(Where::T1) + self.bytes(Where::T2)
    }
}

/// Plain LRU under a byte budget: the baseline ARC is measured against.
#[derive(Debug)]
pub struct Lru<K> {
    capacity: u64,
    tick: u64,
    list: List<K>,
    meta: HashMap<K, (u64, u64)>,
}

impl<K: Clone + Eq + Hash> Lru<K> {
    /// An empty LRU with a budget of `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        Lru {
            capacity,
            tick: 0,
            list: List::new(),
            meta: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> Policy<K> for Lru<K> {
    fn access(&mut self, key: &K, size: u64) -> Access<K> {
        let mut out = Access::miss();
        if let Some((tick, old)) = self.meta.remove(key) {
            self.list.take(tick, old);
            out.hit = true;
        }
        if size > self.capacity {
            if out.hit {
                out.evicted.push(key.clone());
            }
            out.hit = false;
            return out;
        }
        while self.list.bytes + size > self.capacity {
            let Some((tick, k)) = self.list.oldest() else {
                break;
            };
            if let Some((_, s)) = self.meta.remove(&k) {
                self.list.take(tick, s);
            }
            out.evicted.push(k);
        }
        self.tick += 1;
        self.list.push(self.tick, key.clone(), size);
        self.meta.insert(key.clone(), (self.tick, size));
        out.resident = true;
        out
    }

    fn remove(&mut self, key: &K) {
        if let Some((tick, size)) = self.meta.remove(key) {
            self.list.take(tick, size);
        }
    }

    fn resident_bytes(&self) -> u64 {
        self.list.bytes
    }
}

/// Hit ratios of a trace replayed against a policy.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SimResult {
    /// Fraction of requests that found their file resident.
    pub hits: f64,
    /// Fraction of requested bytes that were resident.
    pub byte_hits: f64,
}

/// Replays `trace` (key, size) against `policy`.
pub fn simulate<K, P: Policy<K>>(policy: &mut P, trace: &[(K, u64)]) -> SimResult {
    let (mut hits, mut bytes, mut hit_bytes) = (0u64, 0u64, 0u64);
    for (key, size) in trace {
        let a = policy.access(key, *size);
        bytes += size;
        if a.hit {
            hits += 1;
            hit_bytes += size;
        }
    }
    SimResult {
        hits: hits as f64 / trace.len().max(1) as f64,
        byte_hits: hit_bytes as f64 / bytes.max(1) as f64,
    }
}

#[cfg(test)]
mod tests;
