//! LRU: a hit moves the object to the head, a miss inserts it there and
//! evicts from the tail.

use super::{
    Policy,
    list::{Arena, List, NIL},
};
use rustc_hash::FxHashMap;

/// Least recently used.
#[derive(Debug)]
pub struct Lru {
    capacity: usize,
    arena: Arena,
    list: List,
    index: FxHashMap<u64, u32>,
}

impl Lru {
    /// An empty cache of `capacity` objects.
    pub fn new(capacity: usize) -> Self {
        Lru {
            capacity,
            arena: Arena::default(),
            list: List::default(),
            index: FxHashMap::with_capacity_and_hasher(capacity + 1, Default::default()),
        }
    }
}

impl Policy for Lru {
    fn access(&mut self, id: u64) -> bool {
        if let Some(&i) = self.index.get(&id) {
            self.arena.unlink(&mut self.list, i);
            self.arena.push_head(&mut self.list, i);
            return true;
        }
        if self.capacity == 0 {
            return false;
        }
        while self.list.len + 1 > self.capacity {
            let tail = self.list.tail;
            debug_assert_ne!(tail, NIL);
            self.arena.unlink(&mut self.list, tail);
            self.index.remove(&self.arena.get(tail).id);
            self.arena.release(tail);
        }
        let i = self.arena.alloc(id, 0);
        self.arena.push_head(&mut self.list, i);
        self.index.insert(id, i);
        false
    }
}
