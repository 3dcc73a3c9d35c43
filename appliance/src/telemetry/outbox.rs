//! Store and forward: reports wait here, in order, until the broker has
//! acknowledged them.
//!
//! The outbox holds at most `capacity` reports, allocated once. A report
//! leaves only when the broker's PUBACK for it arrives; a disconnect puts
//! every report in flight back in line, so a broker that vanishes loses
//! nothing that fits. When a new report finds the outbox full, the oldest is
//! dropped and counted: the count travels in every later report
//! ([`super::Report::dropped_total`]) and the gap shows in the sequence
//! numbers, so loss is exact and visible, never silent.
//!
//! It lives outside the fleet component (in the daemon's shared state) so a
//! component restart on reload keeps what is waiting.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

/// One stored report.
struct Entry {
    seq: u64,
    bytes: Vec<u8>,
    in_flight: bool,
}

struct Inner {
    capacity: usize,
    queue: VecDeque<Entry>,
    next_seq: u64,
    dropped: u64,
    acked: u64,
}

/// The bounded report queue, shared between the report timer and the link.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Mutex<Inner>>,
}

/// Counters for status and telemetry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Reports waiting (in flight included).
    pub queued: usize,
    /// Most reports held.
    pub capacity: usize,
    /// Reports dropped because the outbox was full.
    pub dropped: u64,
    /// Reports the broker acknowledged.
    pub acked: u64,
    /// Sequence number the next report gets.
    pub next_seq: u64,
}

impl Outbox {
    /// An empty outbox for `capacity` reports (at least one).
    pub fn new(capacity: usize) -> Outbox {
        let capacity = capacity.max(1);
        Outbox {
            inner: Arc::new(Mutex::new(Inner {
                capacity,
                queue: VecDeque::with_capacity(capacity),
                next_seq: 0,
                dropped: 0,
                acked: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data consistent
        // (every method changes it in one step), so keep using it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a report. `make(seq, dropped_total)` builds its bytes, so the
    /// report carries its own sequence number and the exact drop count,
    /// including the report this push may drop to make room.
    pub fn push(&self, make: impl FnOnce(u64, u64) -> Vec<u8>) -> u64 {
        let mut inner = self.lock();
        if inner.queue.len() >= inner.capacity {
            inner.queue.pop_front();
            inner.dropped += 1;
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let bytes = make(seq, inner.dropped);
        inner.queue.push_back(Entry {
            seq,
            bytes,
            in_flight: false,
        });
        seq
    }

    /// The oldest report not yet handed to the link, now marked in flight.
    pub fn next_unsent(&self) -> Option<(u64, Vec<u8>)> {
        let mut inner = self.lock();
        let entry = inner.queue.iter_mut().find(|e| !e.in_flight)?;
        entry.in_flight = true;
        Some((entry.seq, entry.bytes.clone()))
    }

    /// The broker acknowledged `seq`: forget it. Unknown sequence numbers
    /// (dropped while in flight) are ignored.
    pub fn ack(&self, seq: u64) {
        let mut inner = self.lock();
        if let Some(i) = inner.queue.iter().position(|e| e.seq == seq) {
            inner.queue.remove(i);
            inner.acked += 1;
        }
    }

    /// The connection went away: everything in flight goes out again, in order.
    pub fn requeue_in_flight(&self) {
        for e in self.lock().queue.iter_mut() {
            e.in_flight = false;
        }
    }

    /// Reports handed to the link and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.lock().queue.iter().filter(|e| e.in_flight).count()
    }

    /// The sequence number the next report will get.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Counters.
    pub fn stats(&self) -> OutboxStats {
        let inner = self.lock();
        OutboxStats {
            queued: inner.queue.len(),
            capacity: inner.capacity,
            dropped: inner.dropped,
            acked: inner.acked,
            next_seq: inner.next_seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(o: &Outbox) -> u64 {
        o.push(|seq, dropped| format!("{seq}/{dropped}").into_bytes())
    }

    #[test]
    fn reports_leave_only_when_acknowledged_in_order() {
        let o = Outbox::new(4);
        for _ in 0..3 {
            push(&o);
        }
        assert_eq!(o.next_unsent().map(|r| r.0), Some(0));
        assert_eq!(o.next_unsent().map(|r| r.0), Some(1));
        o.ack(0);
        assert_eq!(o.stats().queued, 2);
        // The link dropped: report 1 was never acknowledged and goes again first.
        o.requeue_in_flight();
        assert_eq!(o.next_unsent().map(|r| r.0), Some(1));
        assert_eq!(o.next_unsent().map(|r| r.0), Some(2));
        assert_eq!(o.next_unsent(), None);
        o.ack(1);
        o.ack(2);
        assert_eq!(o.stats().acked, 3);
        assert_eq!(o.stats().queued, 0);
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_and_every_later_report_says_so() {
        let o = Outbox::new(3);
        for _ in 0..5 {
            push(&o);
        }
        let s = o.stats();
        assert_eq!((s.queued, s.dropped, s.next_seq), (3, 2, 5));
        let kept: Vec<String> = std::iter::from_fn(|| o.next_unsent())
            .map(|(_, b)| String::from_utf8(b).unwrap())
            .collect();
        // Seqs 0 and 1 were dropped; report 3 was made when the first drop
        // happened, report 4 after the second.
        assert_eq!(kept, ["2/0", "3/1", "4/2"]);
    }

    #[test]
    fn an_ack_for_a_report_dropped_in_flight_is_ignored() {
        let o = Outbox::new(1);
        push(&o);
        let (seq, _) = o.next_unsent().unwrap();
        push(&o);
        o.ack(seq);
        let s = o.stats();
        assert_eq!((s.queued, s.acked, s.dropped), (1, 0, 1));
    }

    #[test]
    fn capacity_is_never_exceeded() {
        let o = Outbox::new(16);
        for _ in 0..10_000 {
            push(&o);
            assert!(o.stats().queued <= 16);
        }
        assert_eq!(o.stats().dropped, 10_000 - 16);
    }
}
