//! Store and forward: reports wait here, in order, until the broker has
//! acknowledged them.
//!
//! The outbox holds at most `capacity` reports in memory, allocated once. A
//! report leaves only when the broker's PUBACK for it arrives; a disconnect
//! puts every report in flight back in line, so a broker that vanishes loses
//! nothing that fits. When a new report finds the outbox full, the oldest
//! one the link does not hold moves to the [`Spool`] on disk if there is one
//! and it has room (so a report is not sent twice, nor counted as dropped
//! while it arrives; only with every report in flight does the oldest of
//! those move); otherwise
//! it is dropped and counted: the count travels in every later report
//! ([`super::Report::dropped_total`]) and the gap shows in the sequence
//! numbers, so loss is exact and visible, never silent. Spooled reports are
//! older than any in memory and go out first; at a clean stop the reports
//! still in memory join them ([`Outbox::persist`]), so a restart or reboot
//! during an outage loses nothing either.
//!
//! Sequence numbers belong to the kernel's boot, not to one run of nodus:
//! with a resume file ([`Outbox::resume`], on tmpfs so it costs no flash
//! writes) a restarted daemon carries on where the last run of this boot
//! stopped, so `(boot_id, seq)` names one report even across restarts.
//!
//! It lives outside the fleet component (in the daemon's shared state) so a
//! component restart on reload keeps what is waiting.

use std::{
    collections::VecDeque,
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use super::{envelope::format_boot_id, spool::RecordEnd, spool::Spool};

/// Names one report handed to the link, to acknowledge it with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(u64);

/// One report in memory.
struct Entry {
    ticket: Ticket,
    seq: u64,
    bytes: Vec<u8>,
    in_flight: bool,
}

/// The spool and the records of it the link holds.
struct Spooled {
    spool: Spool,
    /// Handed out, oldest first, and whether the broker acknowledged each.
    in_flight: VecDeque<(Ticket, RecordEnd, bool)>,
    errors: u64,
    last_error: Option<String>,
}

impl Spooled {
    fn failed(&mut self, what: &str, e: std::io::Error) {
        self.errors += 1;
        let message = format!("{what} {}: {e}", self.spool.path().display());
        // Once per distinct error, not once per report of a long outage.
        if self.last_error.as_ref() != Some(&message) {
            log::warn!("telemetry spool: {message}");
        }
        self.last_error = Some(message);
    }
}

/// Where this boot's sequence stands, kept across restarts of nodus.
struct Resume {
    path: PathBuf,
    boot_id: [u8; 16],
}

struct Inner {
    capacity: usize,
    queue: VecDeque<Entry>,
    next_seq: u64,
    next_ticket: u64,
    dropped: u64,
    acked: u64,
    spool: Option<Spooled>,
    resume: Option<Resume>,
}

impl Inner {
    fn ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        Ticket(self.next_ticket)
    }

    /// Moves a report that no longer fits in memory to the spool; false if
    /// there is no spool or no room in it.
    fn spill(&mut self, bytes: &[u8]) -> bool {
        let Some(s) = &mut self.spool else {
            return false;
        };
        match s.spool.append(bytes) {
            Ok(stored) => stored,
            Err(e) => {
                s.failed("cannot append to", e);
                false
            }
        }
    }

    /// The spool's next record, now in flight; `None` when it has none.
    fn next_from_spool(&mut self) -> Option<(Ticket, Vec<u8>)> {
        let s = self.spool.as_mut().filter(|s| s.spool.has_unsent())?;
        let next = s.spool.next_record();
        // Records found damaged were cut away: they are lost, and counted.
        let damaged = s.spool.take_lost();
        if damaged > 0 {
            s.failed(
                "damaged records cut from",
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{damaged} record(s) failed their check"),
                ),
            );
        }
        self.dropped += damaged;
        match next {
            Ok(Some((end, bytes))) => {
                let ticket = self.ticket();
                let s = self.spool.as_mut()?;
                s.in_flight.push_back((ticket, end, false));
                Some((ticket, bytes))
            }
            Ok(None) => None,
            Err(e) => {
                // An unreadable spool would block every report behind it:
                // give up on what it holds, and say how much.
                let s = self.spool.as_mut()?;
                let lost = s.spool.records() as u64;
                s.failed("cannot read", e);
                s.in_flight.clear();
                if let Err(e) = s.spool.clear() {
                    s.failed("cannot empty", e);
                }
                self.dropped += lost;
                None
            }
        }
    }

    fn save_resume(&self) {
        let Some(r) = &self.resume else { return };
        let text = format!(
            "{} {} {}\n",
            format_boot_id(&r.boot_id),
            self.next_seq,
            self.dropped
        );
        if let Err(e) = crate::durable::write_atomically(&r.path, text.as_bytes()) {
            log::debug!("telemetry: cannot write {}: {e}", r.path.display());
        }
    }
}

/// The bounded report queue, shared between the report timer and the link.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Mutex<Inner>>,
}

/// Counters for status and telemetry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Reports waiting in memory (in flight included).
    pub queued: usize,
    /// Most reports held in memory.
    pub capacity: usize,
    /// Reports dropped because memory and spool were full (or the spool
    /// could not be written or read).
    pub dropped: u64,
    /// Reports the broker acknowledged.
    pub acked: u64,
    /// Sequence number the next report gets.
    pub next_seq: u64,
    /// Sequence number of the oldest report in memory (`next_seq` if none).
    pub oldest_in_memory: u64,
    /// Whether reports that do not fit in memory go to a spool file.
    pub spool_enabled: bool,
    /// Reports waiting in the spool file.
    pub spooled: usize,
    /// Size of the spool file, bytes.
    pub spool_bytes: u64,
    /// Spool writes or reads that failed.
    pub spool_errors: u64,
}

impl Outbox {
    /// An empty outbox for `capacity` reports (at least one), memory only.
    pub fn new(capacity: usize) -> Outbox {
        let capacity = capacity.max(1);
        Outbox {
            inner: Arc::new(Mutex::new(Inner {
                capacity,
                queue: VecDeque::with_capacity(capacity),
                next_seq: 0,
                next_ticket: 0,
                dropped: 0,
                acked: 0,
                spool: None,
                resume: None,
            })),
        }
    }

    /// Adds a spool for what does not fit in memory; what it already holds
    /// (from an earlier run) goes out before any new report.
    pub fn with_spool(self, spool: Spool) -> Outbox {
        self.lock().spool = Some(Spooled {
            spool,
            in_flight: VecDeque::new(),
            errors: 0,
            last_error: None,
        });
        self
    }

    /// Continues this boot's sequence (and drop count) from the resume file
    /// at `path` if an earlier run of this boot wrote one, and keeps it up
    /// to date from now on.
    pub fn resume(self, path: &Path, boot_id: [u8; 16]) -> Outbox {
        {
            let mut inner = self.lock();
            let text = fs::read_to_string(path).unwrap_or_default();
            let mut fields = text.split_whitespace();
            if fields.next() == Some(format_boot_id(&boot_id).as_str()) {
                let next = fields.next().and_then(|f| f.parse().ok());
                let dropped = fields.next().and_then(|f| f.parse().ok());
                if let (Some(next), Some(dropped)) = (next, dropped) {
                    inner.next_seq = next;
                    inner.dropped = dropped;
                }
            }
            inner.resume = Some(Resume {
                path: path.to_owned(),
                boot_id,
            });
        }
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }

    /// Adds a report. `make(seq, dropped_total)` builds its bytes, so the
    /// report carries its own sequence number and the exact drop count,
    /// including the report this push may drop to make room.
    pub fn push(&self, make: impl FnOnce(u64, u64) -> Vec<u8>) -> u64 {
        let mut inner = self.lock();
        if inner.queue.len() >= inner.capacity {
            // Make room with the oldest report the link does not hold: one
            // in flight may be arriving right now, and moving it would send
            // it twice (or count a report as dropped that arrived). Only
            // when the link holds every one does the oldest go.
            let at = inner.queue.iter().position(|e| !e.in_flight).unwrap_or(0);
            if let Some(oldest) = inner.queue.remove(at)
                && !inner.spill(&oldest.bytes)
            {
                inner.dropped += 1;
            }
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let bytes = make(seq, inner.dropped);
        let ticket = inner.ticket();
        inner.queue.push_back(Entry {
            ticket,
            seq,
            bytes,
            in_flight: false,
        });
        inner.save_resume();
        seq
    }

    /// The oldest report not yet handed to the link, now in flight: the
    /// spool's first, then memory's.
    pub fn next_unsent(&self) -> Option<(Ticket, Vec<u8>)> {
        let mut inner = self.lock();
        if let Some(report) = inner.next_from_spool() {
            return Some(report);
        }
        let entry = inner.queue.iter_mut().find(|e| !e.in_flight)?;
        entry.in_flight = true;
        Some((entry.ticket, entry.bytes.clone()))
    }

    /// The broker acknowledged `ticket`: forget that report, in memory or
    /// in the spool. Unknown tickets (a report dropped or spooled while in
    /// flight) are ignored.
    pub fn ack(&self, ticket: Ticket) {
        let mut inner = self.lock();
        if let Some(s) = &mut inner.spool
            && let Some(i) = s.in_flight.iter().position(|f| f.0 == ticket)
        {
            s.in_flight[i].2 = true;
            let mut done = None;
            while s.in_flight.front().is_some_and(|f| f.2) {
                done = s.in_flight.pop_front().map(|f| f.1);
            }
            if let Some(end) = done
                && let Err(e) = s.spool.consume_to(end)
            {
                s.failed("cannot update", e);
            }
            inner.acked += 1;
            return;
        }
        if let Some(i) = inner.queue.iter().position(|e| e.ticket == ticket) {
            inner.queue.remove(i);
            inner.acked += 1;
        }
    }

    /// The connection went away: everything in flight goes out again, in order.
    pub fn requeue_in_flight(&self) {
        let mut inner = self.lock();
        for e in inner.queue.iter_mut() {
            e.in_flight = false;
        }
        if let Some(s) = &mut inner.spool {
            s.in_flight.clear();
            s.spool.rewind();
        }
    }

    /// Reports handed to the link and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        let inner = self.lock();
        let spooled = inner
            .spool
            .as_ref()
            .map_or(0, |s| s.in_flight.iter().filter(|f| !f.2).count());
        spooled + inner.queue.iter().filter(|e| e.in_flight).count()
    }

    /// The sequence number the next report will get.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// nodus is stopping: the reports still in memory go to the spool, behind
    /// those already there, and the spool is made durable. Returns how many
    /// were kept; without a spool, none are.
    pub fn persist(&self) -> usize {
        let mut inner = self.lock();
        if inner.spool.is_none() {
            return 0;
        }
        let mut kept = 0;
        while let Some(e) = inner.queue.pop_front() {
            if inner.spill(&e.bytes) {
                kept += 1;
            } else {
                inner.dropped += 1;
            }
        }
        inner.save_resume();
        if let Some(s) = &mut inner.spool
            && let Err(e) = s.spool.sync()
        {
            s.failed("cannot sync", e);
        }
        kept
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
            oldest_in_memory: inner.queue.front().map_or(inner.next_seq, |e| e.seq),
            spool_enabled: inner.spool.is_some(),
            spooled: inner.spool.as_ref().map_or(0, |s| s.spool.records()),
            spool_bytes: inner.spool.as_ref().map_or(0, |s| s.spool.bytes()),
            spool_errors: inner.spool.as_ref().map_or(0, |s| s.errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(o: &Outbox) -> u64 {
        o.push(|seq, dropped| format!("{seq}/{dropped}").into_bytes())
    }

    /// The next report handed out, as "seq/dropped", with its ticket.
    fn next(o: &Outbox) -> Option<(Ticket, String)> {
        o.next_unsent()
            .map(|(t, b)| (t, String::from_utf8(b).expect("utf-8")))
    }

    fn drain(o: &Outbox) -> Vec<String> {
        std::iter::from_fn(|| next(o)).map(|r| r.1).collect()
    }

    fn with_spool(capacity: usize, dir: &tempfile::TempDir, max: u64) -> Outbox {
        let spool = Spool::open(&dir.path().join("t.spool"), max).expect("spool");
        Outbox::new(capacity).with_spool(spool)
    }

    #[test]
    fn reports_leave_only_when_acknowledged_in_order() {
        let o = Outbox::new(4);
        for _ in 0..3 {
            push(&o);
        }
        let (t0, r0) = next(&o).unwrap();
        let (_, r1) = next(&o).unwrap();
        assert_eq!((r0.as_str(), r1.as_str()), ("0/0", "1/0"));
        o.ack(t0);
        assert_eq!(o.stats().queued, 2);
        // The link dropped: report 1 was never acknowledged and goes again first.
        o.requeue_in_flight();
        let (t1, r1) = next(&o).unwrap();
        let (t2, r2) = next(&o).unwrap();
        assert_eq!((r1.as_str(), r2.as_str()), ("1/0", "2/0"));
        assert!(next(&o).is_none());
        o.ack(t1);
        o.ack(t2);
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
        // Seqs 0 and 1 were dropped; report 3 was made when the first drop
        // happened, report 4 after the second.
        assert_eq!(drain(&o), ["2/0", "3/1", "4/2"]);
    }

    #[test]
    fn an_ack_for_a_report_dropped_in_flight_is_ignored() {
        let o = Outbox::new(1);
        push(&o);
        let (ticket, _) = next(&o).unwrap();
        push(&o);
        o.ack(ticket);
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

    #[test]
    fn overflow_goes_to_the_spool_and_comes_out_first_in_order() {
        let d = tempfile::tempdir().unwrap();
        let o = with_spool(3, &d, 1 << 16);
        for _ in 0..10 {
            push(&o);
        }
        let s = o.stats();
        assert_eq!((s.queued, s.spooled, s.dropped), (3, 7, 0));
        let sent: Vec<(Ticket, String)> = std::iter::from_fn(|| next(&o)).collect();
        let order: Vec<&str> = sent.iter().map(|r| r.1.as_str()).collect();
        let expected: Vec<String> = (0..10).map(|i| format!("{i}/0")).collect();
        assert_eq!(order, expected);
        for (t, _) in &sent {
            o.ack(*t);
        }
        let s = o.stats();
        assert_eq!((s.queued, s.spooled, s.acked), (0, 0, 10));
    }

    #[test]
    fn a_full_spool_drops_and_counts_exactly() {
        let d = tempfile::tempdir().unwrap();
        // Room for 16-byte header + 3 records of 8 + 3 bytes ("n/0").
        let o = with_spool(2, &d, 16 + 3 * 11 + 5);
        for _ in 0..10 {
            push(&o);
        }
        let s = o.stats();
        assert_eq!((s.queued, s.spooled, s.dropped), (2, 3, 5));
        let got = drain(&o);
        // The spool kept the oldest, memory the newest; the five between
        // are missing and every report made after a drop says how many.
        assert_eq!(got, ["0/0", "1/0", "2/0", "8/4", "9/5"]);
    }

    #[test]
    fn an_ack_out_of_order_frees_the_spool_only_up_to_the_first_gap() {
        let d = tempfile::tempdir().unwrap();
        let o = with_spool(1, &d, 1 << 16);
        for _ in 0..4 {
            push(&o);
        }
        let (a, _) = next(&o).unwrap();
        let (b, _) = next(&o).unwrap();
        o.ack(b);
        assert_eq!(o.stats().spooled, 3, "report 0 still unacknowledged");
        o.ack(a);
        assert_eq!(o.stats().spooled, 1);
        // A reconnect resends only what was not acknowledged.
        o.requeue_in_flight();
        assert_eq!(drain(&o), ["2/0", "3/0"]);
    }

    /// A full spool drains over a slow link while new reports keep
    /// spilling into it, so compactions move records the broker holds:
    /// every report either arrives or is counted as dropped, never both,
    /// never neither.
    #[test]
    fn a_spool_compacted_while_reports_are_in_flight_loses_nothing_silently() {
        use std::{collections::BTreeSet, os::unix::fs::MetadataExt};
        let d = tempfile::tempdir().unwrap();
        // Fixed-size reports; the spool holds about six of them.
        let o = with_spool(4, &d, 16 + 6 * (8 + 13) + 4);
        let path = d.path().join("t.spool");
        let make = |seq: u64, dropped: u64| format!("{seq:06}/{dropped:06}").into_bytes();
        let mut in_flight: VecDeque<(Ticket, u64)> = VecDeque::new();
        let mut arrived = BTreeSet::new();
        let mut compactions = 0;
        let mut inode = None;
        let mut pushed = 0u64;
        for step in 0..400u64 {
            o.push(make);
            pushed += 1;
            // The link takes up to three reports at a time...
            while in_flight.len() < 3 {
                let Some((ticket, bytes)) = o.next_unsent() else {
                    break;
                };
                let text = String::from_utf8(bytes).unwrap();
                let seq: u64 = text[..6].parse().unwrap();
                in_flight.push_back((ticket, seq));
            }
            // ...and the broker acknowledges one every third step, sometimes
            // the second in line before the first.
            if step % 3 == 0 && !in_flight.is_empty() {
                let i = if step % 2 == 0 && in_flight.len() > 1 {
                    1
                } else {
                    0
                };
                let (ticket, seq) = in_flight.remove(i).unwrap();
                o.ack(ticket);
                assert!(arrived.insert(seq), "report {seq} arrived twice");
            }
            let now = fs::metadata(&path).map(|m| m.ino()).ok();
            if inode.is_some() && now != inode {
                compactions += 1;
            }
            inode = now;
        }
        // The link catches up: everything still waiting goes out.
        loop {
            while let Some((ticket, bytes)) = o.next_unsent() {
                let seq: u64 = String::from_utf8(bytes).unwrap()[..6].parse().unwrap();
                in_flight.push_back((ticket, seq));
            }
            let Some((ticket, seq)) = in_flight.pop_front() else {
                break;
            };
            o.ack(ticket);
            assert!(arrived.insert(seq), "report {seq} arrived twice");
        }
        assert!(
            compactions > 5,
            "the spool was compacted {compactions} times"
        );
        let s = o.stats();
        assert!(s.dropped > 0, "the test overfilled the spool");
        assert_eq!(
            arrived.len() as u64 + s.dropped,
            pushed,
            "{} arrived, {} counted as dropped",
            arrived.len(),
            s.dropped
        );
        assert_eq!((s.queued, s.spooled), (0, 0));
    }

    /// A record damaged on flash after the spool was opened is not trusted:
    /// it and what follows it are cut away and counted as dropped.
    #[test]
    fn a_record_damaged_after_opening_is_counted_not_sent() {
        use std::os::unix::fs::FileExt;
        let d = tempfile::tempdir().unwrap();
        let o = with_spool(1, &d, 1 << 16);
        for _ in 0..5 {
            push(&o);
        }
        assert_eq!(o.stats().spooled, 4);
        // Report 1's length field now claims more than any record may hold.
        let f = fs::OpenOptions::new()
            .write(true)
            .open(d.path().join("t.spool"))
            .unwrap();
        f.write_all_at(&u32::MAX.to_le_bytes(), 16 + 8 + 3).unwrap();
        let got = drain(&o);
        assert_eq!(got, ["0/0", "4/0"]);
        let s = o.stats();
        assert_eq!(s.dropped, 3, "reports 1, 2 and 3 are counted as lost");
        assert!(s.spool_errors > 0);
    }

    #[test]
    fn a_stop_keeps_what_memory_held_and_the_next_run_sends_it_first() {
        let d = tempfile::tempdir().unwrap();
        let o = with_spool(4, &d, 1 << 16);
        for _ in 0..6 {
            push(&o);
        }
        // One was in flight when nodus stopped: it is kept too.
        next(&o).unwrap();
        assert_eq!(o.persist(), 4);
        drop(o);
        let o = with_spool(4, &d, 1 << 16);
        push(&o);
        let got = drain(&o);
        assert_eq!(got[..6], ["0/0", "1/0", "2/0", "3/0", "4/0", "5/0"]);
        assert_eq!(got.len(), 7);
    }

    #[test]
    fn the_sequence_resumes_within_a_boot_and_restarts_with_a_new_one() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("telemetry.seq");
        let boot = [1; 16];
        let o = Outbox::new(2).resume(&path, boot);
        for _ in 0..5 {
            push(&o);
        }
        assert_eq!(o.stats().dropped, 3);
        drop(o);
        // nodus restarted (or crashed) within the same boot.
        let o = Outbox::new(2).resume(&path, boot);
        assert_eq!(push(&o), 5);
        assert_eq!(o.stats().dropped, 3);
        drop(o);
        // A new boot starts from 0.
        let o = Outbox::new(2).resume(&path, [2; 16]);
        assert_eq!(push(&o), 0);
        assert_eq!(o.stats().dropped, 0);
    }

    #[test]
    fn a_garbled_resume_file_starts_from_zero() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("telemetry.seq");
        let boot = [1; 16];
        for text in ["", "nonsense", &format!("{} x 0", format_boot_id(&boot))] {
            fs::write(&path, text).unwrap();
            let o = Outbox::new(2).resume(&path, boot);
            assert_eq!(push(&o), 0, "{text:?}");
        }
    }
}
