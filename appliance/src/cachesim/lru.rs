//! LRU: a hit moves the object to the head, a miss inserts it there and
//! evicts from the tail until it fits.

use super::{
    Policy,
    list::{Arena, List, NIL},
};
use rustc_hash::FxHashMap;

/// Least recently used.
#[derive(Debug)]
pub struct Lru {
    capacity: u64,
    arena: Arena,
    list: List,
    index: FxHashMap<u64, u32>,
}

impl Lru {
    /// An empty cache of `capacity` units.
    pub fn new(capacity: u64) -> Self {
        Lru {
            capacity,
            arena: Arena::default(),
            list: List::default(),
            index: FxHashMap::default(),
        }
    }
}

impl Policy for Lru {
    fn access(&mut self, id: u64, size: u64, evicted: &mut Vec<u64>) -> bool {
        if let Some(&i) = self.index.get(&id) {
            self.arena.unlink(&mut self.list, i);
            self.arena.push_head(&mut self.list, i);
            return true;
        }
        if size > self.capacity {
            return false;
        }
        while self.list.bytes + size > self.capacity {
            let tail = self.list.tail;
            debug_assert_ne!(tail, NIL);
            self.arena.unlink(&mut self.list, tail);
            let gone = self.arena.get(tail).id;
            self.index.remove(&gone);
            self.arena.release(tail);
            evicted.push(gone);
        }
        let i = self.arena.alloc(id, size, 0);
        self.arena.push_head(&mut self.list, i);
        self.index.insert(id, i);
        false
    }

    fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    fn remove(&mut self, id: u64) {
        if let Some(i) = self.index.remove(&id) {
            self.arena.unlink(&mut self.list, i);
            self.arena.release(i);
        }
    }

    fn used(&self) -> u64 {
        self.list.bytes
    }
}
