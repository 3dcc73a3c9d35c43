//! The bounded process table: what events and /proc say, kept within a fixed
//! capacity with a stated eviction order.
//!
//! - Live processes are keyed by pid (at most one live process holds a pid);
//!   exited ones by pid and start time, so a reused pid never merges two
//!   processes.
//! - Live and exited together never exceed the capacity. Exited processes
//!   make room first, soonest-to-expire first, and short-lived ones expire
//!   sooner; a live process is never evicted to keep a dead one. When every
//!   slot holds a live process, a new one is refused and counted.
//!
//! Everything here is plain data and synchronous, so the policy is unit
//! tested without a kernel.

use std::collections::{HashMap, VecDeque};

use nodus_common::proccache::ProcEvent;

use super::{
    event::{Event, Exec},
    process::{Entry, Exit, Origin, Process, c_text},
};

/// How long exited processes stay queryable, in ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// For processes that lived at least `short_lived_ns`.
    pub exited_ns: u64,
    /// For processes that lived less.
    pub short_lived_retention_ns: u64,
    /// The lifetime under which a process is short-lived.
    pub short_lived_ns: u64,
}

/// What the cache did, for stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Fork events applied.
    pub forks: u64,
    /// Exec events applied.
    pub execs: u64,
    /// Exit events applied.
    pub exits: u64,
    /// Exited processes dropped to make room before their retention ended.
    pub evicted: u64,
    /// Exited processes dropped because their retention ended.
    pub expired: u64,
    /// New live processes not recorded because every slot held a live one.
    pub refused: u64,
    /// Processes whose exit was never reported, found gone (by /proc or by
    /// their pid starting a new process).
    pub missed_exits: u64,
    /// Live processes /proc showed that no event had reported.
    pub missed_processes: u64,
    /// Parent changes found by reconciliation (the parent exited and the
    /// kernel re-parented its children).
    pub reparented: u64,
}

/// One process as /proc/PID/stat shows it: what reconciliation compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Start, ns since boot, at clock-tick precision.
    pub start_ns: u64,
    /// State letter (`R`, `S`, `Z`, ...).
    pub state: char,
}

impl ProcStat {
    /// Zombies and dead tasks have exited; they only wait to be reaped.
    pub fn running(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// How reconciliation treats what it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconcileRules {
    /// When the /proc scan began (ns since boot): records learnt after that
    /// are newer than the scan and left alone.
    pub scan_started_ns: u64,
    /// Processes younger than this at the scan are left to their events.
    pub grace_ns: u64,
}

/// What one reconciliation changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Repairs {
    /// Live records whose process was gone.
    pub missed_exits: u64,
    /// Processes added from /proc.
    pub missed_processes: u64,
    /// Parents corrected.
    pub reparented: u64,
}

impl Repairs {
    /// Divergences repaired (re-parenting is normal kernel behaviour, not a
    /// divergence, and is not included).
    pub fn fixes(&self) -> u64 {
        self.missed_exits + self.missed_processes
    }
}

type ExitedKey = (u32, u64);

/// The process table.
pub struct Cache {
    capacity: usize,
    retention: Retention,
    ns_per_tick: u64,
    live: HashMap<u32, Entry>,
    exited: HashMap<ExitedKey, Entry>,
    /// Exited keys by expiry deadline, one queue per retention class; each is
    /// in deadline order because deadlines are `now + constant`.
    short_lived: VecDeque<(u64, ExitedKey)>,
    long_lived: VecDeque<(u64, ExitedKey)>,
    peak: usize,
    counters: Counters,
}

impl Cache {
    /// An empty table. `ns_per_tick` is /proc's clock tick (10 ms at the
    /// usual USER_HZ of 100).
    pub fn new(capacity: usize, retention: Retention, ns_per_tick: u64) -> Cache {
        Cache {
            capacity: capacity.max(1),
            retention,
            ns_per_tick: ns_per_tick.max(1),
            live: HashMap::new(),
            exited: HashMap::new(),
            short_lived: VecDeque::new(),
            long_lived: VecDeque::new(),
            peak: 0,
            counters: Counters::default(),
        }
    }

    /// Records held now, live and exited.
    pub fn len(&self) -> usize {
        self.live.len() + self.exited.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live records.
    pub fn live_len(&self) -> usize {
        self.live.len()
    }

    /// The most records ever held at once (never above the capacity).
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// The configured capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// What the cache has done so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Applies one kernel event at time `now_ns`. Returns the process an
    /// exec event produced, for exec subscribers.
    pub fn apply(&mut self, event: &Event, now_ns: u64) -> Option<&Entry> {
        match event {
            Event::Fork(h) => {
                self.counters.forks += 1;
                self.on_fork(h, now_ns);
                None
            }
            Event::Exit(h) => {
                self.counters.exits += 1;
                self.on_exit(h, now_ns);
                None
            }
            Event::Exec(e) => {
                self.counters.execs += 1;
                self.on_exec(e, now_ns)
            }
        }
    }

    /// The live record for `pid` if it is the process that started at
    /// `start_ns`; a live record for an older process that held the pid is
    /// retired first (its exit was missed).
    fn current(&mut self, pid: u32, start_ns: u64, exact: bool, now_ns: u64) -> Option<&mut Entry> {
        let tick = self.ns_per_tick;
        let same = self.live.get(&pid)?.same_start(start_ns, exact, tick);
        if !same {
            self.counters.missed_exits += 1;
            self.retire_live(pid, Exit::unobserved(now_ns), now_ns);
            return None;
        }
        self.live.get_mut(&pid)
    }

    fn on_fork(&mut self, h: &ProcEvent, now_ns: u64) {
        if self.current(h.pid, h.start_ns, true, now_ns).is_some() {
            return; // already known (seeded or reconciled just before)
        }
        let mut entry = entry_from(h, now_ns);
        // A forked child runs its parent's image until it execs.
        if let Some(parent) = self.live.get(&h.ppid) {
            entry.filename = parent.filename.clone();
            entry.args = parent.args.clone();
            entry.argv_truncated = parent.argv_truncated;
        }
        self.insert_live(entry, now_ns);
    }

    fn on_exec(&mut self, e: &Exec, now_ns: u64) -> Option<&Entry> {
        let h = &e.header;
        if self.current(h.pid, h.start_ns, true, now_ns).is_none() {
            // Its fork was lost or predates the cache's start.
            if !self.insert_live(entry_from(h, now_ns), now_ns) {
                return None;
            }
        }
        let entry = self.live.get_mut(&h.pid)?;
        entry.comm = c_text(&h.comm);
        entry.filename = e.filename.clone();
        entry.args = e.args.clone();
        entry.argv_truncated = e.args_truncated;
        entry.uid = h.uid;
        entry.gid = h.gid;
        entry.cgroup_id = h.cgroup_id;
        entry.ppid = h.ppid;
        entry.exec_ns = Some(h.time_ns);
        if !entry.start_exact {
            entry.start_ns = h.start_ns;
            entry.start_exact = true;
        }
        Some(entry)
    }

    fn on_exit(&mut self, h: &ProcEvent, now_ns: u64) {
        let exit = Exit::from_wait_status(h.time_ns, h.exit_status);
        if self.current(h.pid, h.start_ns, true, now_ns).is_some() {
            self.retire_live(h.pid, exit, now_ns);
            return;
        }
        // Reconciliation may have retired it moments before its exit event.
        if let Some(done) = self.exited.get_mut(&(h.pid, h.start_ns)) {
            done.exit = Some(exit);
            return;
        }
        // Neither its fork nor its exec reached us: keep what the exit says.
        let mut entry = entry_from(h, now_ns);
        entry.exit = Some(exit);
        if self.make_room(now_ns) {
            self.retain(entry, now_ns);
        }
    }

    /// Adds a live record if there is room; false (and counted) if every
    /// slot holds a live process.
    fn insert_live(&mut self, entry: Entry, now_ns: u64) -> bool {
        if !self.make_room(now_ns) {
            self.counters.refused += 1;
            return false;
        }
        self.live.insert(entry.pid, entry);
        self.peak = self.peak.max(self.len());
        true
    }

    /// Frees a slot if the cache is full, evicting the exited record that
    /// would expire soonest. False when only live records remain.
    fn make_room(&mut self, now_ns: u64) -> bool {
        self.expire(now_ns);
        while self.len() >= self.capacity {
            let short = self.short_lived.front().map(|f| f.0);
            let long = self.long_lived.front().map(|f| f.0);
            let queue = match (short, long) {
                (None, None) => return false,
                (Some(s), Some(l)) if l < s => &mut self.long_lived,
                (Some(_), _) => &mut self.short_lived,
                (None, Some(_)) => &mut self.long_lived,
            };
            if let Some((_, key)) = queue.pop_front()
                && self.exited.remove(&key).is_some()
            {
                self.counters.evicted += 1;
            }
        }
        true
    }

    fn retire_live(&mut self, pid: u32, exit: Exit, now_ns: u64) {
        if let Some(mut entry) = self.live.remove(&pid) {
            entry.exit = Some(exit);
            self.retain(entry, now_ns);
        }
    }

    /// Keeps an exited record for its retention time (needs a free slot).
    fn retain(&mut self, entry: Entry, now_ns: u64) {
        let lived = entry
            .exit
            .as_ref()
            .map_or(0, |x| x.time_ns.saturating_sub(entry.start_ns));
        let short = lived < self.retention.short_lived_ns;
        let keep = if short {
            self.retention.short_lived_retention_ns
        } else {
            self.retention.exited_ns
        };
        if keep == 0 {
            self.counters.expired += 1;
            return;
        }
        let key = (entry.pid, entry.start_ns);
        let queue = if short {
            &mut self.short_lived
        } else {
            &mut self.long_lived
        };
        queue.push_back((now_ns.saturating_add(keep), key));
        self.exited.insert(key, entry);
        self.peak = self.peak.max(self.len());
    }

    /// Drops exited records whose retention has ended.
    pub fn expire(&mut self, now_ns: u64) {
        for queue in [&mut self.short_lived, &mut self.long_lived] {
            while let Some(&(deadline, key)) = queue.front() {
                if deadline > now_ns {
                    break;
                }
                queue.pop_front();
                if self.exited.remove(&key).is_some() {
                    self.counters.expired += 1;
                }
            }
        }
    }

    /// Adds processes found in /proc at start (they predate the cache).
    pub fn seed(&mut self, entries: impl IntoIterator<Item = Entry>, now_ns: u64) {
        for entry in entries {
            if !self.live.contains_key(&entry.pid) {
                self.insert_live(entry, now_ns);
            }
        }
    }

    /// Compares the table with a /proc scan and repairs what diverged: live
    /// records of processes that are gone are retired, processes no event
    /// reported are read (`read`) and added, parents are corrected.
    pub fn reconcile(
        &mut self,
        scan: &[ProcStat],
        rules: ReconcileRules,
        now_ns: u64,
        mut read: impl FnMut(&ProcStat) -> Option<Entry>,
    ) -> Repairs {
        let tick = self.ns_per_tick;
        let running: HashMap<u32, &ProcStat> = scan
            .iter()
            .filter(|s| s.running())
            .map(|s| (s.pid, s))
            .collect();
        let mut repairs = Repairs::default();
        let mut gone = Vec::new();
        for (pid, entry) in self.live.iter_mut() {
            match running.get(pid) {
                Some(s) if entry.same_start(s.start_ns, false, tick) => {
                    if entry.ppid != s.ppid {
                        entry.ppid = s.ppid;
                        repairs.reparented += 1;
                    }
                }
                // Learnt of after the scan began: the scan may predate it.
                _ if entry.known_since_ns >= rules.scan_started_ns => {}
                _ => gone.push(*pid),
            }
        }
        for pid in gone {
            self.retire_live(pid, Exit::unobserved(now_ns), now_ns);
            repairs.missed_exits += 1;
        }
        let young = rules.scan_started_ns.saturating_sub(rules.grace_ns);
        for s in running.values() {
            if self
                .live
                .get(&s.pid)
                .is_some_and(|e| e.same_start(s.start_ns, false, tick))
                || s.start_ns >= young
            {
                continue;
            }
            if self.live.contains_key(&s.pid) {
                self.retire_live(s.pid, Exit::unobserved(now_ns), now_ns);
                repairs.missed_exits += 1;
            }
            if let Some(entry) = read(s)
                && self.insert_live(entry, now_ns)
            {
                repairs.missed_processes += 1;
            }
        }
        self.counters.missed_exits += repairs.missed_exits;
        self.counters.missed_processes += repairs.missed_processes;
        self.counters.reparented += repairs.reparented;
        repairs
    }

    /// The live record for `pid`.
    pub fn get(&self, pid: u32) -> Option<&Entry> {
        self.live.get(&pid)
    }

    /// Live records, then (if asked) exited ones, that pass `keep`, oldest
    /// start first.
    pub fn select(&self, exited: bool, keep: impl Fn(&Entry) -> bool) -> Vec<Process> {
        let exited_iter = self.exited.values().filter(|_| exited);
        let mut out: Vec<Process> = self
            .live
            .values()
            .chain(exited_iter)
            .filter(|e| keep(e))
            .map(Entry::to_process)
            .collect();
        out.sort_by_key(|p| (p.start_ns, p.pid, p.exit.is_none()));
        out
    }

    /// Exited records held.
    pub fn exited_len(&self) -> usize {
        self.exited.len()
    }
}

/// A record from an event's common part; the exec fields come later.
fn entry_from(h: &ProcEvent, now_ns: u64) -> Entry {
    Entry {
        pid: h.pid,
        ppid: h.ppid,
        start_ns: h.start_ns,
        start_exact: true,
        uid: h.uid,
        gid: h.gid,
        cgroup_id: h.cgroup_id,
        comm: c_text(&h.comm),
        filename: "".into(),
        args: Box::new([]),
        argv_truncated: false,
        exec_ns: None,
        exit: None,
        origin: Origin::Events,
        known_since_ns: now_ns,
    }
}

#[cfg(test)]
mod tests;
