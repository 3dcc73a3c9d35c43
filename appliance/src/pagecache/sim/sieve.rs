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
    capacity: usize,
    arena: Arena,
    queue: List,
    /// Where the next eviction starts looking; NIL: at the tail.
    hand: u32,
    index: FxHashMap<u64, u32>,
}

impl Sieve {
    /// An empty cache of `capacity` objects.
    pub fn new(capacity: usize) -> Self {
        Sieve {
            capacity,
            arena: Arena::default(),
            queue: List::default(),
            hand: NIL,
            index: FxHashMap::with_capacity_and_hasher(capacity + 1, Default::default()),
        }
    }

    fn evict(&mut self) {
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
        self.hand = self.arena.get(i).newer;
        self.arena.unlink(&mut self.queue, i);
        self.index.remove(&self.arena.get(i).id);
        self.arena.release(i);
    }
}

impl Policy for Sieve {
    fn access(&mut self, id: u64) -> bool {
        if let Some(&i) = self.index.get(&id) {
            self.arena.get_mut(i).freq = 1;
            return true;
        }
        if self.capacity == 0 {
            return false;
        }
        while self.queue.len + 1 > self.capacity {
            self.evict();
        }
        let i = self.arena.alloc(id, 0);
        self.arena.push_head(&mut self.queue, i);
        self.index.insert(id, i);
        false
    }
}
