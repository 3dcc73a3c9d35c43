//! SIEVE (Zhang et al., NSDI '24): one FIFO queue and a hand. A hit only
//! marks the object visited; eviction walks the hand from the tail toward
//! the head, clearing visited marks, and evicts the first unvisited object.
//! New objects enter at the head.

use super::{
    Policy,
    list::{Arena, List, NIL},
};
use rustc_hash::FxHashMap;

/// SIEVE.
#[derive(Debug)]
pub struct Sieve {
    capacity: u64,
    arena: Arena,
    queue: List,
    /// Where the next eviction starts looking; NIL: at the tail.
    hand: u32,
    index: FxHashMap<u64, u32>,
}

impl Sieve {
    /// An empty cache of `capacity` units.
    pub fn new(capacity: u64) -> Self {
        Sieve {
            capacity,
            arena: Arena::default(),
            queue: List::default(),
            hand: NIL,
            index: FxHashMap::default(),
        }
    }

    /// Takes node `i` out of the queue, keeping the hand on the next node
    /// toward the head, where its walk would have gone.
    fn take(&mut self, i: u32) -> u64 {
        if self.hand == i {
            self.hand = self.arena.get(i).newer;
        }
        self.arena.unlink(&mut self.queue, i);
        let id = self.arena.get(i).id;
        self.index.remove(&id);
        self.arena.release(i);
        id
    }

    fn evict(&mut self) -> u64 {
        let mut i = if self.hand != NIL {
            self.hand
        } else {
            self.queue.tail
        };
        while self.arena.get(i).freq > 0 {
            let n = self.arena.get_mut(i);
            n.freq = 0;
            // Past the head, the walk wraps to the tail.
            i = if n.newer != NIL {
                n.newer
            } else {
                self.queue.tail
            };
        }
        self.hand = i;
        self.take(i)
    }
}

impl Policy for Sieve {
    fn access(&mut self, id: u64, size: u64, evicted: &mut Vec<u64>) -> bool {
        if let Some(&i) = self.index.get(&id) {
            self.arena.get_mut(i).freq = 1;
            return true;
        }
        if size > self.capacity {
            return false;
        }
        while self.queue.bytes + size > self.capacity {
            let gone = self.evict();
            evicted.push(gone);
        }
        let i = self.arena.alloc(id, size, 0);
        self.arena.push_head(&mut self.queue, i);
        self.index.insert(id, i);
        false
    }

    fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    fn remove(&mut self, id: u64) {
        if let Some(&i) = self.index.get(&id) {
            self.take(i);
        }
    }

    fn used(&self) -> u64 {
        self.queue.bytes
    }
}
