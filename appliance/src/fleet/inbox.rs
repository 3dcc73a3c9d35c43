//! Config documents waiting while another is decided.
//!
//! Deciding a document takes a grace period (seconds), and anyone who can
//! publish on the board's config topics can send faster than that. Only the
//! newest payload per scope is worth deciding (a newer one supersedes an
//! older one anyway), so the inbox holds at most one per scope: its memory
//! is bounded by two documents whatever the broker delivers.

use std::collections::HashMap;

use crate::change::Scope;

/// One waiting document per scope, at most.
const SCOPES: usize = Scope::ALL.len();

/// The documents waiting, oldest scope first, and the last payload seen per
/// scope.
#[derive(Default)]
pub struct Inbox {
    waiting: heapless::Deque<(Scope, Vec<u8>), SCOPES>,
    /// So a retained document delivered again on every reconnect is
    /// decided once.
    last_seen: HashMap<Scope, Vec<u8>>,
}

impl Inbox {
    /// A payload arrived for `scope`. It replaces any still waiting for that
    /// scope; false if it is the payload last seen there (nothing to do).
    pub fn offer(&mut self, scope: Scope, payload: Vec<u8>) -> bool {
        if self.last_seen.get(&scope) == Some(&payload) {
            return false;
        }
        self.last_seen.insert(scope, payload.clone());
        match self.waiting.iter_mut().find(|(s, _)| *s == scope) {
            Some(slot) => {
                log::debug!("fleet: a newer {scope} document supersedes the one waiting");
                slot.1 = payload;
            }
            None => {
                // Cannot be full: it holds at most one entry per scope, and
                // this scope has none.
                let _ = self.waiting.push_back((scope, payload));
            }
        }
        true
    }

    /// The next document to decide.
    pub fn take_next(&mut self) -> Option<(Scope, Vec<u8>)> {
        self.waiting.pop_front()
    }

    /// The last payload of `scope` was not decided (the daemon was busy):
    /// the same payload delivered again is taken.
    pub fn forget(&mut self, scope: Scope) {
        self.last_seen.remove(&scope);
    }

    /// Documents waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_keeps_one_document_per_scope_the_newest() {
        let mut inbox = Inbox::default();
        for i in 0..100_000u32 {
            inbox.offer(Scope::Device, i.to_le_bytes().to_vec());
            inbox.offer(Scope::Group, (i + 7).to_le_bytes().to_vec());
            assert!(inbox.len() <= 2);
        }
        assert_eq!(
            inbox.take_next(),
            Some((Scope::Device, 99_999u32.to_le_bytes().to_vec()))
        );
        assert_eq!(
            inbox.take_next(),
            Some((Scope::Group, 100_006u32.to_le_bytes().to_vec()))
        );
        assert!(inbox.is_empty());
    }

    #[test]
    fn a_payload_seen_last_is_taken_once_unless_forgotten() {
        let mut inbox = Inbox::default();
        assert!(inbox.offer(Scope::Device, b"doc".to_vec()));
        inbox.take_next();
        assert!(!inbox.offer(Scope::Device, b"doc".to_vec()));
        inbox.forget(Scope::Device);
        assert!(inbox.offer(Scope::Device, b"doc".to_vec()));
    }
}
