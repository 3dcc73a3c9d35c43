//! ARC (Megiddo and Modha, FAST '03): recency (T1) and frequency (T2)
//! lists with ghosts of what each evicted (B1, B2) steering the target size
//! `p` of T1. libCacheSim's variant, rule for rule (`p` a real number, the
//! ghosts trimmed only when a request misses everywhere, a returning ghost
//! inserted into T2), so miss ratios can be compared with it.

use super::{Policy, list::Arena, list::List};
use rustc_hash::FxHashMap;

const T1: u8 = 0;
const T2: u8 = 1;
const B1: u8 = 2;
const B2: u8 = 3;

/// Adaptive replacement cache.
#[derive(Debug)]
pub struct Arc {
    capacity: usize,
    /// Target size of T1.
    p: f64,
    arena: Arena,
    lists: [List; 4],
    /// Every object in any of the four lists.
    index: FxHashMap<u64, u32>,
}

impl Arc {
    /// An empty cache of `capacity` objects.
    pub fn new(capacity: usize) -> Self {
        Arc {
            capacity,
            p: 0.0,
            arena: Arena::default(),
            lists: [List::default(); 4],
            index: FxHashMap::with_capacity_and_hasher(2 * capacity + 1, Default::default()),
        }
    }

    fn len(&self, q: u8) -> usize {
        self.lists[q as usize].len
    }

    /// Moves node `i` to the head of list `to`.
    fn move_to(&mut self, i: u32, to: u8) {
        let from = self.arena.get(i).queue;
        self.arena.unlink(&mut self.lists[from as usize], i);
        self.arena.get_mut(i).queue = to;
        self.arena.push_head(&mut self.lists[to as usize], i);
    }

    /// Drops the tail of list `q` entirely.
    fn drop_tail(&mut self, q: u8) {
        let t = self.lists[q as usize].tail;
        self.arena.unlink(&mut self.lists[q as usize], t);
        self.index.remove(&self.arena.get(t).id);
        self.arena.release(t);
    }

    /// ARC's REPLACE: T1's tail to B1, or T2's to B2.
    fn replace(&mut self, hit_in_b2: bool) {
        let t1 = self.len(T1);
        let t1f = t1 as f64;
        if (t1 > 0 && (t1f > self.p || (t1f == self.p && hit_in_b2))) || self.len(T2) == 0 {
            self.move_to(self.lists[T1 as usize].tail, B1);
        } else {
            self.move_to(self.lists[T2 as usize].tail, B2);
        }
    }

    /// Makes room for an object found nowhere.
    fn evict_for_new(&mut self) {
        let c = self.capacity;
        if self.len(T1) + self.len(B1) + 1 > c {
            if self.len(B1) > 0 {
                self.drop_tail(B1);
                self.replace(false);
            } else {
                self.drop_tail(T1);
            }
        } else {
            if self.len(T1) + self.len(B1) + self.len(T2) + self.len(B2) >= 2 * c
                && self.len(B2) > 0
            {
                self.drop_tail(B2);
            }
            self.replace(false);
        }
    }
}

impl Policy for Arc {
    fn access(&mut self, id: u64) -> bool {
        let mut ghost = None;
        if let Some(&i) = self.index.get(&id) {
            match self.arena.get(i).queue {
                T1 | T2 => {
                    self.move_to(i, T2);
                    return true;
                }
                q => {
                    let (b1, b2) = (self.len(B1) as f64, self.len(B2) as f64);
                    if q == B1 {
                        self.p = (self.p + (b2 / b1).max(1.0)).min(self.capacity as f64);
                    } else {
                        self.p = (self.p - (b1 / b2).max(1.0)).max(0.0);
                    }
                    self.arena.unlink(&mut self.lists[q as usize], i);
                    self.index.remove(&id);
                    self.arena.release(i);
                    ghost = Some(q);
                }
            }
        }
        if self.capacity == 0 {
            return false;
        }
        while self.len(T1) + self.len(T2) + 1 > self.capacity {
            match ghost {
                Some(q) => self.replace(q == B2),
                None => self.evict_for_new(),
            }
        }
        let to = if ghost.is_some() { T2 } else { T1 };
        let i = self.arena.alloc(id, to);
        self.arena.push_head(&mut self.lists[to as usize], i);
        self.index.insert(id, i);
        false
    }
}
