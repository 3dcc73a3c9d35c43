//! Moving misplaced processes' pages home, under a bandwidth budget.
//!
//! A process whose sampled pages are less local than the target is walked
//! from a cursor: each chunk of addresses is first asked where its pages
//! are (`move_pages` without targets, no copying), then only the present
//! pages off the home node are moved. The budget is a token bucket in
//! pages, filled each look and spent on pages actually moved; the walk
//! itself is bounded too, so a sparse address space costs a bounded look.
//! Where a walk stops (budget spent), the next look resumes it. A process
//! still short of the target after a whole walk (pages it shares with
//! others stay where they are) is settled at that share: it is walked again
//! when it falls 5 points below it, and, while short of the target, after
//! 2, 4, ... up to 64 looks (pages a forking process shares with its child
//! for a moment are refused once, not forever: HIL 77's shell, forking a
//! `sleep` five times a second, was left at 88 % local).

use std::collections::{HashMap, HashSet};

use super::{
    homes::Homes,
    look::Look,
    pages::{self, Cursor},
};

/// Addresses asked about per `move_pages` call.
const CHUNK: usize = 512;

/// How far below the share it settled at a walked process must fall to be
/// walked again, in percentage points.
const RESETTLE_PCT: f64 = 5.0;

/// What the migrations did so far.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Pages moved home since start.
    pub moved: u64,
    /// Pages the kernel refused to move (busy, pinned, no memory on the node).
    pub refused: u64,
    /// Pages left where they are because other processes map them too
    /// (shared libraries, a parent's copy-on-write pages).
    pub shared: u64,
    /// Pages moved per process (pid, start), for the process list.
    pub moved_by: HashMap<(u32, u64), u64>,
}

/// A process walked to the end.
#[derive(Clone, Copy, Debug, Default)]
struct Settled {
    /// The share it settled at: `None` until the next look measured it.
    share: Option<f64>,
    /// Walks to the end so far.
    walks: u32,
    /// From this look on, a share below the target is walked again: pages
    /// refused for a moment (shared with a child between its fork and
    /// exec) move on a later try; the wait doubles with each walk, up to
    /// 64 looks, so memory that cannot move is not walked every look.
    retry_at: u64,
}

/// The migrations in progress.
#[derive(Default)]
pub struct Mover {
    cursors: HashMap<(u32, u64), Cursor>,
    /// Processes walked to the end, and the share they settled at.
    settled: HashMap<(u32, u64), Settled>,
    /// Looks acted on since start.
    looks: u64,
    /// What they did.
    pub tally: Tally,
    /// The last error a call returned, for the health line.
    pub last_error: Option<String>,
    tokens: u64,
}

impl Mover {
    /// Moves pages of the misplaced processes of `look` home: at most
    /// `budget` pages this look (unspent budget carries over one look).
    pub fn act(&mut self, look: &Look, homes: &Homes, budget: u64, target_pct: f64) {
        self.tokens = (self.tokens + budget).min(2 * budget);
        self.looks += 1;
        let alive: HashSet<_> = look.procs.iter().map(|p| (p.pid, p.start)).collect();
        self.cursors.retain(|k, _| alive.contains(k));
        self.settled.retain(|k, _| alive.contains(k));
        self.tally.moved_by.retain(|k, _| alive.contains(k));
        let page = pages::page_size();
        let walk_limit = (budget as usize).saturating_mul(4).max(1 << 16);
        for p in &look.procs {
            if self.tokens == 0 {
                break;
            }
            let Some((home, _)) = &p.home else { continue };
            let key = (p.pid, p.start);
            let resuming = self.cursors.contains_key(&key);
            let local = p.local_pct(homes);
            let bar = match self.settled.get_mut(&key) {
                // Walked to the end last look: this share is where it settled.
                Some(s) if s.share.is_none() => {
                    s.share = local;
                    s.retry_at = self.looks + (1 << s.walks.min(6));
                    continue;
                }
                Some(Settled {
                    share: Some(at),
                    retry_at,
                    ..
                }) if *at < target_pct && self.looks >= *retry_at => target_pct,
                Some(Settled {
                    share: Some(at), ..
                }) => target_pct.min(*at - RESETTLE_PCT),
                Some(_) | None => target_pct,
            };
            if !resuming && !local.is_some_and(|l| l < bar) {
                continue;
            }
            let Ok(ranges) = pages::ranges_of(p.pid) else {
                self.cursors.remove(&key);
                continue;
            };
            let mut cursor = self.cursors.remove(&key).unwrap_or_default();
            let mut walked = 0;
            let finished = loop {
                if self.tokens == 0 || walked >= walk_limit {
                    break false;
                }
                let (addrs, next) = pages::walk(&ranges, cursor, CHUNK, page);
                walked += addrs.len();
                match self.move_chunk(p.pid, &addrs, *home) {
                    Ok(n) => *self.tally.moved_by.entry(key).or_default() += n,
                    // It exited meanwhile (an exiting process has no
                    // memory left to move: EINVAL).
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ESRCH | libc::EINVAL)) => {
                        break true;
                    }
                    Err(e) => {
                        self.last_error = Some(format!("moving pid {}'s pages: {e}", p.pid));
                        break true;
                    }
                }
                match next {
                    Some(c) => cursor = c,
                    None => break true,
                }
            };
            if finished {
                let walks = self.settled.get(&key).map_or(0, |s| s.walks) + 1;
                self.settled.insert(
                    key,
                    Settled {
                        walks,
                        ..Settled::default()
                    },
                );
            } else {
                self.cursors.insert(key, cursor);
            }
        }
    }

    /// Moves the pages at `addrs` that are present and off `home`, as many
    /// as the tokens allow; the number moved.
    ///
    /// The kernel moves a huge page whole when any of its addresses is
    /// asked to move, so the pages moved are counted over the whole batch
    /// (away before, home after), not over the addresses asked: a batch is
    /// one 2 MiB block (`pages::walk`), so it holds every page of a huge
    /// page it touches. Counting only the addresses asked missed the rest
    /// of a huge page cut by the token limit or by a batch boundary, and
    /// the budget was charged for them neither (the board's 64 MiB
    /// process: 8,613 counted of 16,384 moved).
    fn move_chunk(&mut self, pid: u32, addrs: &[u64], home: u32) -> std::io::Result<u64> {
        let before = pages::where_are(pid, addrs)?;
        let is_away = |s: &i32| u32::try_from(*s).is_ok_and(|n| n != home);
        // Positions in the batch of the pages to move.
        let away: Vec<usize> = (0..addrs.len())
            .filter(|&i| before.get(i).is_some_and(is_away))
            .take(self.tokens as usize)
            .collect();
        if away.is_empty() {
            return Ok(0);
        }
        let asked: Vec<u64> = away.iter().map(|&i| addrs[i]).collect();
        let tried = pages::move_to(pid, &asked, home)?;
        // Counted by asking again where the pages are now, so what is
        // reported is what happened, whatever the move's own statuses say.
        let after = pages::where_are(pid, addrs)?;
        let home_now = |s: &i32| u32::try_from(*s) == Ok(home);
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| is_away(b) && home_now(a))
            .count() as u64;
        let stayed: Vec<i32> = away
            .iter()
            .map(|&i| after.get(i).copied().unwrap_or(-libc::ENOENT))
            .collect();
        let shared = tried
            .iter()
            .zip(&stayed)
            .filter(|(t, n)| **t == -libc::EACCES && !home_now(n))
            .count() as u64;
        let refused = stayed.iter().filter(|s| !home_now(s)).count() as u64 - shared;
        let t = &mut self.tally;
        t.moved += moved;
        t.shared += shared;
        t.refused += refused;
        self.tokens = self.tokens.saturating_sub((away.len() as u64).max(moved));
        Ok(moved)
    }
}
