use nodus_common::proccache::{EVENT_EXEC, EVENT_EXIT, EVENT_FORK};

use super::*;

const MS: u64 = 1_000_000;
const TICK: u64 = 10 * MS;

fn retention() -> Retention {
    Retention {
        exited_ns: 60_000 * MS,
        short_lived_retention_ns: 5_000 * MS,
        short_lived_ns: 1_000 * MS,
    }
}

fn header(kind: u32, pid: u32, start_ns: u64, time_ns: u64) -> ProcEvent {
    let mut comm = [0; 16];
    comm[..4].copy_from_slice(b"test");
    ProcEvent {
        kind,
        pid,
        ppid: 1,
        start_ns,
        time_ns,
        comm,
        ..Default::default()
    }
}

fn fork(pid: u32, start: u64) -> Event {
    Event::Fork(header(EVENT_FORK, pid, start, start))
}

fn exec(pid: u32, start: u64, at: u64, args: &[u8]) -> Event {
    Event::Exec(Box::new(Exec {
        header: header(EVENT_EXEC, pid, start, at),
        filename: "/bin/prog".into(),
        args: args.into(),
        args_truncated: false,
    }))
}

fn exit(pid: u32, start: u64, at: u64, status: u32) -> Event {
    let mut h = header(EVENT_EXIT, pid, start, at);
    h.exit_status = status;
    Event::Exit(h)
}

fn stat(pid: u32, ppid: u32, start_ns: u64) -> ProcStat {
    ProcStat {
        pid,
        ppid,
        start_ns,
        state: 'S',
    }
}

fn seeded(pid: u32, ppid: u32, start_ns: u64) -> Entry {
    let mut e = entry_from(&header(EVENT_FORK, pid, start_ns, 0), 0);
    e.ppid = ppid;
    e.start_exact = false;
    e.origin = Origin::Seed;
    e
}

#[test]
fn a_short_lived_process_is_kept_with_argv_and_exit_code() {
    let mut c = Cache::new(16, retention(), TICK);
    c.apply(&fork(100, 1_000), 1_000);
    c.apply(&exec(100, 1_000, 1_200, b"prog\0--flag\0"), 1_300);
    c.apply(&exit(100, 1_000, 1_500, 7 << 8), 1_600);
    assert!(c.select(false, |_| true).is_empty(), "no longer live");
    let all = c.select(true, |_| true);
    assert_eq!(all.len(), 1);
    let p = &all[0];
    assert_eq!(p.argv, ["prog", "--flag"]);
    assert_eq!(p.filename, "/bin/prog");
    let x = p.exit.as_ref().unwrap();
    assert_eq!((x.code, x.signal, x.observed), (Some(7), None, true));
}

#[test]
fn a_reused_pid_never_merges_two_processes() {
    let mut c = Cache::new(16, retention(), TICK);
    c.apply(&fork(200, 1_000), 1_000);
    c.apply(&exec(200, 1_000, 1_100, b"first\0"), 1_100);
    c.apply(&exit(200, 1_000, 1_200, 0), 1_200);
    c.apply(&fork(200, 5_000), 5_000);
    c.apply(&exec(200, 5_000, 5_100, b"second\0"), 5_100);
    let all = c.select(true, |e| e.pid == 200);
    let argv: Vec<_> = all.iter().map(|p| p.argv[0].as_str()).collect();
    assert_eq!(argv, ["first", "second"]);
    assert!(all[0].exit.is_some() && all[1].exit.is_none());
    assert_eq!(c.counters().missed_exits, 0);
}

#[test]
fn a_new_process_on_a_live_pid_retires_the_old_one_unobserved() {
    let mut c = Cache::new(16, retention(), TICK);
    c.apply(&fork(300, 1_000), 1_000);
    // Its exit event was lost; the pid now starts another process.
    c.apply(&fork(300, 9_000), 9_000);
    let all = c.select(true, |e| e.pid == 300);
    assert_eq!(all.len(), 2);
    assert!(!all[0].exit.as_ref().unwrap().observed);
    assert_eq!(c.counters().missed_exits, 1);
}

#[test]
fn a_forked_child_shows_its_parents_image_until_it_execs() {
    let mut c = Cache::new(16, retention(), TICK);
    c.apply(&fork(10, 100), 100);
    c.apply(&exec(10, 100, 150, b"shell\0-c\0"), 150);
    let mut child = header(EVENT_FORK, 11, 200, 200);
    child.ppid = 10;
    c.apply(&Event::Fork(child), 200);
    assert_eq!(c.get(11).unwrap().to_process().argv, ["shell", "-c"]);
}

#[test]
fn capacity_is_never_exceeded_under_churn() {
    let mut c = Cache::new(64, retention(), TICK);
    let mut t = 0;
    for i in 0..100_000u32 {
        t += 1_000;
        let pid = 1000 + (i % 30_000);
        c.apply(&fork(pid, t), t);
        c.apply(&exec(pid, t, t + 10, b"x\0"), t + 10);
        c.apply(&exit(pid, t, t + 20, 0), t + 20);
        assert!(c.len() <= 64);
    }
    assert!(c.peak() <= 64);
    assert!(c.counters().evicted > 99_000);
}

#[test]
fn live_processes_are_never_evicted_for_dead_ones() {
    let mut c = Cache::new(16, retention(), TICK);
    for pid in 0..16 {
        c.apply(&fork(pid + 1, 10), 10);
    }
    // An exit for a process never seen, and a new process: no room for either.
    c.apply(&exit(999, 5, 20, 0), 20);
    c.apply(&fork(500, 30), 30);
    assert_eq!(c.live_len(), 16);
    assert_eq!(c.exited_len(), 0);
    assert_eq!(c.counters().refused, 1);
    // One exits: its record stays, and takes the only slot there is.
    c.apply(&exit(1, 10, 40, 0), 40);
    assert_eq!((c.live_len(), c.exited_len()), (15, 1));
    // A new process evicts the dead record, not a live one.
    c.apply(&fork(501, 50), 50);
    assert_eq!((c.live_len(), c.exited_len()), (16, 0));
    assert_eq!(c.counters().evicted, 1);
}

#[test]
fn short_lived_processes_make_room_first_and_expire_sooner() {
    let mut c = Cache::new(4, retention(), TICK);
    // pid 1 lived 2 s (long-lived); pids 2 and 3 lived 1 ms.
    c.apply(&fork(1, 0), 0);
    c.apply(&exit(1, 0, 2_000 * MS, 0), 2_000 * MS);
    for pid in [2, 3] {
        let t = 2_000 * MS + u64::from(pid);
        c.apply(&fork(pid, t), t);
        c.apply(&exit(pid, t, t + MS, 0), t + MS);
    }
    c.apply(&fork(4, 2_100 * MS), 2_100 * MS);
    c.apply(&fork(5, 2_100 * MS), 2_100 * MS);
    let exited: Vec<u32> = c
        .select(true, |e| e.exit.is_some())
        .iter()
        .map(|p| p.pid)
        .collect();
    assert_eq!(exited, [1, 3], "the short-lived pid 2 went first");
    // After the short retention only the long-lived record remains.
    c.expire(2_000 * MS + 5_100 * MS);
    let exited: Vec<u32> = c
        .select(true, |e| e.exit.is_some())
        .iter()
        .map(|p| p.pid)
        .collect();
    assert_eq!(exited, [1]);
    c.expire(2_000 * MS + 60_001 * MS);
    assert_eq!(c.exited_len(), 0);
}

#[test]
fn reconciliation_repairs_lost_events_and_fills_unseen_parents() {
    let mut c = Cache::new(64, retention(), TICK);
    // pid 40: its exit was lost. pid 41: alive, parent 50 never seen.
    c.apply(&fork(40, 100 * TICK), 100 * TICK);
    let mut h = header(EVENT_FORK, 41, 101 * TICK, 101 * TICK);
    h.ppid = 50;
    c.apply(&Event::Fork(h), 101 * TICK);
    // pid 42 was learnt of after the scan started; pid 43 is too young.
    let scan_started = 200 * TICK;
    c.apply(&fork(42, 199 * TICK), scan_started + 1);
    let scan = [
        stat(41, 50, 101 * TICK),
        stat(50, 1, 10 * TICK),
        stat(43, 1, scan_started - MS),
        stat(60, 1, 20 * TICK),
    ];
    let mut read = Vec::new();
    let r = c.reconcile(
        &scan,
        ReconcileRules {
            scan_started_ns: scan_started,
            grace_ns: 100 * MS,
        },
        scan_started + 2,
        |s| {
            read.push(s.pid);
            Some(seeded(s.pid, s.ppid, s.start_ns))
        },
    );
    read.sort();
    assert_eq!(
        read,
        [50, 60],
        "the unseen parent and the process with no events"
    );
    assert_eq!(
        (r.missed_exits, r.missed_processes, r.reparented),
        (1, 2, 0)
    );
    assert!(c.get(40).is_none() && c.get(42).is_some() && c.get(43).is_none());
    let gone = c.select(true, |e| e.pid == 40);
    assert!(!gone[0].exit.as_ref().unwrap().observed);
    // A second pass over the same /proc finds nothing more to fix.
    let r = c.reconcile(
        &scan,
        ReconcileRules {
            scan_started_ns: scan_started + 10,
            grace_ns: 100 * MS,
        },
        scan_started + 20,
        |s| Some(seeded(s.pid, s.ppid, s.start_ns)),
    );
    assert_eq!(
        r.fixes(),
        1,
        "only pid 42, which /proc never showed, is retired"
    );
}

#[test]
fn reconciliation_follows_reparenting_and_treats_zombies_as_exited() {
    let mut c = Cache::new(16, retention(), TICK);
    c.seed([seeded(7, 3, 50 * TICK), seeded(8, 3, 60 * TICK)], 0);
    let mut zombie = stat(8, 3, 60 * TICK);
    zombie.state = 'Z';
    let r = c.reconcile(
        &[stat(7, 1, 50 * TICK), zombie],
        ReconcileRules {
            scan_started_ns: 1_000 * TICK,
            grace_ns: 0,
        },
        1_000 * TICK,
        |_| None,
    );
    assert_eq!((r.reparented, r.missed_exits), (1, 1));
    assert_eq!(c.get(7).unwrap().ppid, 1);
    assert!(c.get(8).is_none());
}

#[test]
fn an_exact_event_start_matches_a_tick_precision_seed() {
    let mut c = Cache::new(16, retention(), TICK);
    c.seed([seeded(9, 1, 70 * TICK)], 0);
    // The exec's exact start falls inside the same tick: same process.
    c.apply(
        &exec(9, 70 * TICK + 3 * MS, 80 * TICK, b"nine\0"),
        80 * TICK,
    );
    assert_eq!(c.select(true, |e| e.pid == 9).len(), 1);
    assert_eq!(c.get(9).unwrap().start_ns, 70 * TICK + 3 * MS);
}
