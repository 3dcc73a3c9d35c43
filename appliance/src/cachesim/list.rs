//! Doubly linked lists over one arena of nodes, addressed by index: the
//! queues every policy is made of (LRU's list, ARC's four, S3-FIFO's three,
//! SIEVE's one), with O(1) insert, unlink and move and no allocation per
//! request once the arena has grown to the cache's size.

/// No node.
pub const NIL: u32 = u32::MAX;

/// One cached (or remembered) object.
#[derive(Debug, Clone, Copy)]
pub struct Node {
    /// The object.
    pub id: u64,
    /// Its size, in the cache's unit (1 for a page, bytes for a file).
    pub size: u64,
    /// Toward the head (the newest end).
    pub newer: u32,
    /// Toward the tail (the oldest end).
    pub older: u32,
    /// Per-policy counter (S3-FIFO's frequency, SIEVE's visited bit).
    pub freq: u32,
    /// Which of the policy's queues holds it.
    pub queue: u8,
}

/// A queue: head is the newest, tail the oldest.
#[derive(Debug, Clone, Copy)]
pub struct List {
    /// The newest node.
    pub head: u32,
    /// The oldest node.
    pub tail: u32,
    /// Nodes in it.
    pub len: usize,
    /// Sum of their sizes.
    pub bytes: u64,
}

impl Default for List {
    fn default() -> Self {
        List {
            head: NIL,
            tail: NIL,
            len: 0,
            bytes: 0,
        }
    }
}

/// The nodes of every list of one policy.
#[derive(Debug, Default)]
pub struct Arena {
    nodes: Vec<Node>,
    free: Vec<u32>,
}

impl Arena {
    /// A new node for `id` of `size` in `queue`, not yet in any list.
    pub fn alloc(&mut self, id: u64, size: u64, queue: u8) -> u32 {
        let node = Node {
            id,
            size,
            newer: NIL,
            older: NIL,
            freq: 0,
            queue,
        };
        match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// Returns node `i` to the free list (it must be in no list).
    pub fn release(&mut self, i: u32) {
        self.free.push(i);
    }

    /// Node `i`.
    pub fn get(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    /// Node `i`, mutably.
    pub fn get_mut(&mut self, i: u32) -> &mut Node {
        &mut self.nodes[i as usize]
    }

    /// Puts node `i` at the head of `list`.
    pub fn push_head(&mut self, list: &mut List, i: u32) {
        let old_head = list.head;
        {
            let n = self.get_mut(i);
            list.bytes += n.size;
            n.newer = NIL;
            n.older = old_head;
        }
        if old_head != NIL {
            self.get_mut(old_head).newer = i;
        }
        list.head = i;
        if list.tail == NIL {
            list.tail = i;
        }
        list.len += 1;
    }

    /// Takes node `i` out of `list`.
    pub fn unlink(&mut self, list: &mut List, i: u32) {
        let Node {
            newer, older, size, ..
        } = *self.get(i);
        if newer != NIL {
            self.get_mut(newer).older = older;
        } else {
            list.head = older;
        }
        if older != NIL {
            self.get_mut(older).newer = newer;
        } else {
            list.tail = newer;
        }
        let n = self.get_mut(i);
        n.newer = NIL;
        n.older = NIL;
        list.len -= 1;
        list.bytes -= size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(a: &Arena, l: &List) -> Vec<u64> {
        let mut out = vec![];
        let mut i = l.head;
        while i != NIL {
            out.push(a.get(i).id);
            i = a.get(i).older;
        }
        out
    }

    #[test]
    fn push_unlink_and_reuse() {
        let mut a = Arena::default();
        let mut l = List::default();
        let n: Vec<u32> = (1..=3).map(|id| a.alloc(id, id * 10, 0)).collect();
        for &i in &n {
            a.push_head(&mut l, i);
        }
        assert_eq!(ids(&a, &l), [3, 2, 1]);
        assert_eq!(l.bytes, 60);
        a.unlink(&mut l, n[1]);
        assert_eq!(ids(&a, &l), [3, 1]);
        assert_eq!(l.bytes, 40);
        a.unlink(&mut l, n[2]);
        a.unlink(&mut l, n[0]);
        assert_eq!((l.len, l.bytes, l.head, l.tail), (0, 0, NIL, NIL));
        a.release(n[1]);
        assert_eq!(a.alloc(9, 1, 1), n[1]);
    }
}
