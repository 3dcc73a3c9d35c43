//! S3-FIFO (Yang et al., SOSP '23): a small FIFO (10% of the cache) that
//! new objects pass through, a main FIFO with lazy reinsertion, and a ghost
//! FIFO of ids recently evicted from the small queue (90% of the cache) that
//! sends a returning object straight to main. With libCacheSim's defaults
//! and its exact rules (an object read at least twice in the small queue
//! moves to main; main reinserts an object it read with its count capped at
//! 3, minus one), so miss ratios can be compared with it. Sizes weigh
//! every queue; an object as large as the small queue is not admitted
//! (unless the ghost vouches for it), as in libCacheSim.

use super::{
    Policy,
    list::{Arena, List, NIL},
};
use rustc_hash::FxHashMap;

const SMALL: u8 = 0;
const MAIN: u8 = 1;
const GHOST: u8 = 2;
/// Reads in the small queue that earn an object a place in main.
const MOVE_TO_MAIN: u32 = 2;

/// S3-FIFO.
#[derive(Debug)]
pub struct S3Fifo {
    capacity: u64,
    small_capacity: u64,
    main_capacity: u64,
    ghost_capacity: u64,
    arena: Arena,
    small: List,
    main: List,
    ghost: List,
    /// Objects in small or main.
    index: FxHashMap<u64, u32>,
    ghost_index: FxHashMap<u64, u32>,
    /// Until the first eviction, a full small queue sends new objects to main.
    has_evicted: bool,
}

impl S3Fifo {
    /// An empty cache of `capacity` units: small 10% (rounded down),
    /// main the rest, ghost 90% (rounded down).
    pub fn new(capacity: u64) -> Self {
        let small_capacity = (capacity as f64 * 0.1) as u64;
        S3Fifo {
            capacity,
            small_capacity,
            main_capacity: capacity - small_capacity,
            ghost_capacity: (capacity as f64 * 0.9) as u64,
            arena: Arena::default(),
            small: List::default(),
            main: List::default(),
            ghost: List::default(),
            index: FxHashMap::default(),
            ghost_index: FxHashMap::default(),
            has_evicted: false,
        }
    }

    /// Remembers `id` of `size` in the ghost FIFO (no-op if it is there
    /// already or could never fit).
    fn remember(&mut self, id: u64, size: u64) {
        if size > self.ghost_capacity || self.ghost_index.contains_key(&id) {
            return;
        }
        while self.ghost.bytes + size > self.ghost_capacity {
            let tail = self.ghost.tail;
            self.arena.unlink(&mut self.ghost, tail);
            self.ghost_index.remove(&self.arena.get(tail).id);
            self.arena.release(tail);
        }
        let i = self.arena.alloc(id, size, GHOST);
        self.arena.push_head(&mut self.ghost, i);
        self.ghost_index.insert(id, i);
    }

    /// Forgets `id` from the ghost; whether it was there.
    fn forget(&mut self, id: u64) -> bool {
        match self.ghost_index.remove(&id) {
            Some(i) => {
                self.arena.unlink(&mut self.ghost, i);
                self.arena.release(i);
                true
            }
            None => false,
        }
    }

    fn evict_small(&mut self, evicted: &mut Vec<u64>) {
        while self.small.tail != NIL {
            let t = self.small.tail;
            self.arena.unlink(&mut self.small, t);
            if self.arena.get(t).freq >= MOVE_TO_MAIN {
                let n = self.arena.get_mut(t);
                n.freq = 0;
                n.queue = MAIN;
                self.arena.push_head(&mut self.main, t);
            } else {
                let (id, size) = (self.arena.get(t).id, self.arena.get(t).size);
                self.index.remove(&id);
                self.arena.release(t);
                self.remember(id, size);
                evicted.push(id);
                return;
            }
        }
    }

    fn evict_main(&mut self, evicted: &mut Vec<u64>) {
        while self.main.tail != NIL {
            let t = self.main.tail;
            self.arena.unlink(&mut self.main, t);
            let freq = self.arena.get(t).freq;
            if freq >= 1 {
                self.arena.get_mut(t).freq = freq.min(3) - 1;
                self.arena.push_head(&mut self.main, t);
            } else {
                let id = self.arena.get(t).id;
                self.index.remove(&id);
                self.arena.release(t);
                evicted.push(id);
                return;
            }
        }
    }

    fn evict(&mut self, evicted: &mut Vec<u64>) {
        self.has_evicted = true;
        if self.main.bytes > self.main_capacity || self.small.len == 0 {
            self.evict_main(evicted);
        } else {
            self.evict_small(evicted);
        }
    }
}

impl Policy for S3Fifo {
    fn access(&mut self, id: u64, size: u64, evicted: &mut Vec<u64>) -> bool {
        let found = self.index.get(&id).copied();
        if let Some(i) = found {
            if self.arena.get(i).queue == SMALL {
                self.arena.get_mut(i).freq += 1;
                return true;
            }
        }
        let from_ghost = self.forget(id);
        if let Some(i) = found {
            self.arena.get_mut(i).freq += 1;
            return true;
        }
        if self.small_capacity < 1 || size > self.capacity {
            return false;
        }
        while self.small.bytes + self.main.bytes + size > self.capacity {
            self.evict(evicted);
        }
        let queue = if from_ghost {
            MAIN
        } else if size >= self.small_capacity {
            // Not admitted: an object must be smaller than the small queue
            // (libCacheSim makes room first all the same).
            return false;
        } else if !self.has_evicted && self.small.bytes >= self.small_capacity {
            MAIN
        } else {
            SMALL
        };
        let i = self.arena.alloc(id, size, queue);
        let list = if queue == MAIN {
            &mut self.main
        } else {
            &mut self.small
        };
        self.arena.push_head(list, i);
        self.index.insert(id, i);
        false
    }

    fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    fn remove(&mut self, id: u64) {
        self.forget(id);
        if let Some(i) = self.index.remove(&id) {
            let list = if self.arena.get(i).queue == MAIN {
                &mut self.main
            } else {
                &mut self.small
            };
            self.arena.unlink(list, i);
            self.arena.release(i);
        }
    }

    fn used(&self) -> u64 {
        self.small.bytes + self.main.bytes
    }
}
