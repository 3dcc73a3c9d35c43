//! Moving misplaced processes' pages home, under a bandwidth budget.
//!
//! A process whose sampled pages are less local than the target is walked
//! from a cursor: each chunk of addresses is first asked where its pages
//! are (`move_pages` without targets, no copying), then only the present
//! pages off the home node are moved. The budget is a token bucket in
//! pages, filled each look and spent on pages actually moved; the walk
//! itself is bounded too, so a sparse address space costs a bounded look.
//! Where a walk stops (budget spent), the next look resumes it.

use std::collections::HashMap;

use super::{
    homes::Homes,
    look::Look,
    pages::{self, Cursor},
};

/// Addresses asked about per `move_pages` call.
const CHUNK: usize = 4096;

/// The migrations so far.
#[derive(Default)]
pub struct Mover {
    cursors: HashMap<(u32, u64), Cursor>,
    /// Pages moved per process (pid, start), for the process list.
    pub moved_by: HashMap<(u32, u64), u64>,
    /// Pages moved home since start.
    pub moved: u64,
    /// Pages the kernel refused to move (busy, pinned, no memory on the node).
    pub refused: u64,
    /// The last error a call returned, for the health line.
    pub last_error: Option<String>,
    tokens: u64,
}

impl Mover {
    /// Moves pages of the misplaced processes of `look` home: at most
    /// `budget` pages this look (unspent budget carries over one look).
    pub fn act(&mut self, look: &Look, homes: &Homes, budget: u64, target_pct: f64) {
        self.tokens = (self.tokens + budget).min(2 * budget);
        let alive: std::collections::HashSet<_> =
            look.procs.iter().map(|p| (p.pid, p.start)).collect();
        self.cursors.retain(|k, _| alive.contains(k));
        self.moved_by.retain(|k, _| alive.contains(k));
        let page = pages::page_size();
        let walk_limit = (budget as usize).saturating_mul(4).max(1 << 16);
        for p in &look.procs {
            if self.tokens == 0 {
                break;
            }
            let Some((home, _)) = &p.home else { continue };
            let key = (p.pid, p.start);
            let resuming = self.cursors.contains_key(&key);
            let misplaced = p.local_pct(homes).is_some_and(|l| l < target_pct);
            if !resuming && !misplaced {
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
                    Ok(n) => *self.moved_by.entry(key).or_default() += n,
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
            if !finished {
                self.cursors.insert(key, cursor);
            }
        }
    }

    /// Moves the pages at `addrs` that are present and off `home`, as many
    /// as the tokens allow; the number moved.
    fn move_chunk(&mut self, pid: u32, addrs: &[u64], home: u32) -> std::io::Result<u64> {
        let status = pages::where_are(pid, addrs)?;
        let away: Vec<u64> = addrs
            .iter()
            .zip(&status)
            .filter(|(_, s)| **s >= 0 && **s as u32 != home)
            .map(|(a, _)| *a)
            .take(self.tokens as usize)
            .collect();
        if away.is_empty() {
            return Ok(0);
        }
        let after = pages::move_to(pid, &away, home)?;
        let moved = after
            .iter()
            .filter(|s| **s >= 0 && **s as u32 == home)
            .count() as u64;
        self.refused += away.len() as u64 - moved;
        self.moved += moved;
        self.tokens = self.tokens.saturating_sub(away.len() as u64);
        Ok(moved)
    }
}
