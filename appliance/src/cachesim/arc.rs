//! ARC (Megiddo and Modha, FAST '03): recency (T1) and frequency (T2)
//! lists with ghosts of what each evicted (B1, B2) steering the target size
//! `p` of T1. libCacheSim's variant, rule for rule (`p` a real number, the
//! ghosts trimmed only when a request misses everywhere, a returning ghost
//! inserted into T2), so miss ratios can be compared with it. Sizes weigh
//! every list; `p` moves by the ghosts' ratio whatever the size, as in
//! libCacheSim.

use super::{Policy, list::Arena, list::List};
use rustc_hash::FxHashMap;

const T1: u8 = 0;
const T2: u8 = 1;
const B1: u8 = 2;
const B2: u8 = 3;

/// Adaptive replacement cache.
#[derive(Debug)]
pub struct Arc {
    capacity: u64,
    /// Target size of T1.
    p: f64,
    arena: Arena,
    lists: [List; 4],
    /// Every object in any of the four lists.
    index: FxHashMap<u64, u32>,
}

impl Arc {
    /// An empty cache of `capacity` units.
    pub fn new(capacity: u64) -> Self {
        Arc {
            capacity,
            p: 0.0,
            arena: Arena::default(),
            lists: [List::default(); 4],
            index: FxHashMap::default(),
        }
    }

    fn len(&self, q: u8) -> usize {
        self.lists[q as usize].len
    }

    fn bytes(&self, q: u8) -> u64 {
        self.lists[q as usize].bytes
    }

    /// Moves node `i` to the head of list `to`.
    fn move_to(&mut self, i: u32, to: u8) {
        let from = self.arena.get(i).queue;
        self.arena.unlink(&mut self.lists[from as usize], i);
        self.arena.get_mut(i).queue = to;
        self.arena.push_head(&mut self.lists[to as usize], i);
    }

    /// Drops node `i` from list `q` entirely; its id.
    fn drop_node(&mut self, q: u8, i: u32) -> u64 {
        self.arena.unlink(&mut self.lists[q as usize], i);
        let id = self.arena.get(i).id;
        self.index.remove(&id);
        self.arena.release(i);
        id
    }

    /// Drops the tail of list `q` entirely; its id.
    fn drop_tail(&mut self, q: u8) -> u64 {
        self.drop_node(q, self.lists[q as usize].tail)
    }

    /// ARC's REPLACE: T1's tail to B1, or T2's to B2 (T1 and T2 are not
    /// both empty: the caller needs room).
    fn replace(&mut self, hit_in_b2: bool, evicted: &mut Vec<u64>) {
        let t1 = self.bytes(T1);
        let t1f = t1 as f64;
        let (from, to) =
            if (t1 > 0 && (t1f > self.p || (t1f == self.p && hit_in_b2))) || self.len(T2) == 0 {
                (T1, B1)
            } else {
                (T2, B2)
            };
        let tail = self.lists[from as usize].tail;
        evicted.push(self.arena.get(tail).id);
        self.move_to(tail, to);
    }

    /// Makes room for an object of `size` found nowhere (ARC's case IV).
    fn evict_for_new(&mut self, size: u64, evicted: &mut Vec<u64>) {
        let c = self.capacity;
        if self.bytes(T1) + self.bytes(B1) + size > c {
            if self.len(B1) > 0 {
                self.drop_tail(B1);
                self.replace(false, evicted);
            } else {
                evicted.push(self.drop_tail(T1));
            }
        } else {
            if self.bytes(T1) + self.bytes(B1) + self.bytes(T2) + self.bytes(B2) >= 2 * c
                && self.len(B2) > 0
            {
                self.drop_tail(B2);
            }
            self.replace(false, evicted);
        }
    }
}

impl Policy for Arc {
    fn access(&mut self, id: u64, size: u64, evicted: &mut Vec<u64>) -> bool {
        let mut ghost = None;
        if let Some(&i) = self.index.get(&id) {
            match self.arena.get(i).queue {
                T1 | T2 => {
                    self.move_to(i, T2);
                    return true;
                }
                q => {
                    let (b1, b2) = (self.bytes(B1) as f64, self.bytes(B2) as f64);
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
        if size > self.capacity {
            return false;
        }
        while self.bytes(T1) + self.bytes(T2) + size > self.capacity {
            match ghost {
                Some(q) => self.replace(q == B2, evicted),
                None => self.evict_for_new(size, evicted),
            }
        }
        let to = if ghost.is_some() { T2 } else { T1 };
        let i = self.arena.alloc(id, size, to);
        self.arena.push_head(&mut self.lists[to as usize], i);
        self.index.insert(id, i);
        false
    }

    fn contains(&self, id: u64) -> bool {
        self.index
            .get(&id)
            .is_some_and(|&i| matches!(self.arena.get(i).queue, T1 | T2))
    }

    fn remove(&mut self, id: u64) {
        if let Some(&i) = self.index.get(&id) {
            let q = self.arena.get(i).queue;
            self.drop_node(q, i);
        }
    }

    fn used(&self) -> u64 {
        self.bytes(T1) + self.bytes(T2)
    }
}
