//! A route's backends and their health. Each backend is up or down, as
//! HAProxy's `check` decides it: a TCP connect every
//! `proxy.check_interval_ms`, down after `check_fall` failures in a row, up
//! again after `check_rise` successes in a row. Connections feed the same
//! count (a failed connect is a failed check, HAProxy's `observe layer4`),
//! so a backend that dies between checks stops taking connections after
//! `check_fall` of them.
//!
//! A backend is an address or a host name ([`Target`]); names are
//! resolved at each connection or check through the route's resolver
//! (cached for each answer's TTL), and each address of the answer is tried
//! in turn.
//!
//! Connections try the up backends in the configured order (the first is
//! the primary, the others its failovers), then the down ones: a check can
//! be stale, and trying costs one connect timeout where refusing would
//! cost the connection.

use std::{
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::{io::AsyncWriteExt, net::TcpStream};

use super::resolve::{Resolver, Target};
use crate::sync::lock;

/// When a backend changes state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Thresholds {
    /// Successes in a row that bring a down backend up.
    pub rise: u32,
    /// Failures in a row that take an up backend down.
    pub fall: u32,
}

/// One backend.
#[derive(Debug)]
pub struct Backend {
    /// Where it listens.
    pub target: Target,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    up: bool,
    /// Results in a row that disagree with `up`.
    against: u32,
    /// The last failure, for the log and status.
    last_error: Option<String>,
}

/// A state change, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// The backend came back.
    Up,
    /// The backend went down, with the last failure.
    Down(String),
}

/// A route's backends.
#[derive(Debug)]
pub struct Backends {
    list: Vec<Backend>,
    thresholds: Thresholds,
    /// Resolves the names among them (None: none are names, or the
    /// resolver could not be made: their connections fail with that).
    resolver: Option<Arc<Resolver>>,
    /// Whether a round of checks is under way (rounds never overlap).
    checking: AtomicBool,
}

impl Backends {
    /// Backends at `targets`, in the order connections try them, names
    /// resolved by `resolver`; all start up (a fresh daemon routes at once;
    /// the first checks correct it).
    pub fn new(
        targets: &[Target],
        thresholds: Thresholds,
        resolver: Option<Arc<Resolver>>,
    ) -> Backends {
        Backends {
            resolver,
            list: targets
                .iter()
                .map(|target| Backend {
                    target: target.clone(),
                    state: Mutex::new(State {
                        up: true,
                        against: 0,
                        last_error: None,
                    }),
                })
                .collect(),
            thresholds: Thresholds {
                rise: thresholds.rise.max(1),
                fall: thresholds.fall.max(1),
            },
            checking: AtomicBool::new(false),
        }
    }

    /// The order a connection tries them: up ones in configured order,
    /// then down ones.
    pub fn order(&self) -> impl Iterator<Item = &Backend> {
        let up: Vec<bool> = self.list.iter().map(Backend::is_up).collect();
        let (first, last): (Vec<_>, Vec<_>) = self.list.iter().zip(up).partition(|(_, up)| *up);
        first.into_iter().chain(last).map(|(b, _)| b)
    }

    /// Counts one check or connection result for `backend`; returns the
    /// change it caused, if any.
    pub fn record(&self, backend: &Backend, result: Result<(), String>) -> Option<Change> {
        let mut s = lock(&backend.state);
        let ok = result.is_ok();
        if let Err(e) = result {
            s.last_error = Some(e);
        }
        if ok == s.up {
            s.against = 0;
            return None;
        }
        s.against += 1;
        let needed = if s.up {
            self.thresholds.fall
        } else {
            self.thresholds.rise
        };
        if s.against < needed {
            return None;
        }
        s.up = ok;
        s.against = 0;
        Some(if ok {
            Change::Up
        } else {
            Change::Down(s.last_error.clone().unwrap_or_default())
        })
    }

    /// Backends up now.
    pub fn up(&self) -> usize {
        self.list.iter().filter(|b| b.is_up()).count()
    }

    /// All of them.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The down backends and why, for status: `127.0.0.1:8444 (connection
    /// refused)`, comma-separated; empty when all are up.
    pub fn down_text(&self) -> String {
        let mut text = String::new();
        for b in &self.list {
            let s = lock(&b.state);
            if !s.up {
                let _ = write!(
                    text,
                    "{}{} ({})",
                    if text.is_empty() { "" } else { ", " },
                    b.target,
                    s.last_error.as_deref().unwrap_or("down")
                );
            }
        }
        text
    }

    /// Checks every backend once, all at the same time, each by a TCP
    /// connect within `timeout` that then sends `greeting` (a PROXY
    /// protocol check header to backends that expect one; may be empty);
    /// calls `changed` for each state change.
    /// Returns the checks that failed; at once (none) if the previous
    /// round is still running.
    pub async fn check_round(
        &self,
        timeout: Duration,
        greeting: &Arc<[u8]>,
        changed: impl Fn(&Backend, Change),
    ) -> usize {
        if self.checking.swap(true, Relaxed) {
            return 0;
        }
        let mut failed = 0;
        let checks: Vec<_> = self
            .list
            .iter()
            .map(|b| {
                let (target, greeting) = (b.target.clone(), greeting.clone());
                let resolver = self.resolver.clone();
                tokio::spawn(async move {
                    let mut conn = connect(&target, resolver.as_deref(), timeout).await?;
                    if !greeting.is_empty() {
                        conn.write_all(&greeting).await.map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        for (b, check) in self.list.iter().zip(checks) {
            let result = check
                .await
                .unwrap_or_else(|e| Err(format!("check task: {e}")));
            failed += usize::from(result.is_err());
            if let Some(change) = self.record(b, result) {
                changed(b, change);
            }
        }
        self.checking.store(false, Relaxed);
        failed
    }
}

impl Backend {
    /// Whether it is up now.
    pub fn is_up(&self) -> bool {
        lock(&self.state).up
    }
}

impl Backends {
    /// Connects to `backend` (resolving its name) within `timeout` per
    /// step; the failure as text for the log and status.
    pub async fn connect(&self, backend: &Backend, timeout: Duration) -> Result<TcpStream, String> {
        connect(&backend.target, self.resolver.as_deref(), timeout).await
    }
}

/// Connects to `target` within `timeout` (for the lookup, then for each
/// address of the answer in turn).
async fn connect(
    target: &Target,
    resolver: Option<&Resolver>,
    timeout: Duration,
) -> Result<TcpStream, String> {
    let late = |what: &str| format!("{what}: no answer within {} ms", timeout.as_millis());
    let (addrs, named) = match target {
        Target::Addr(a) => (vec![*a], false),
        Target::Name { host, port } => {
            let resolver = resolver.ok_or_else(|| format!("resolving {host}: no resolver"))?;
            let found = tokio::time::timeout(timeout, resolver.addrs(host, *port))
                .await
                .map_err(|_| late(&format!("resolving {host}")))??;
            (found, true)
        }
    };
    let mut failed = String::new();
    for addr in addrs {
        let why = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => e.to_string(),
            Err(_) => late("connecting"),
        };
        // A name's answer may hold several addresses: say which failed.
        failed = if named { format!("{addr}: {why}") } else { why };
    }
    Err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Backends {
        let targets: Vec<Target> = ["127.0.0.1:1", "127.0.0.1:2"]
            .iter()
            .filter_map(|t| Target::parse(t))
            .collect();
        Backends::new(&targets, Thresholds { rise: 2, fall: 3 }, None)
    }

    fn order(b: &Backends) -> Vec<String> {
        b.order().map(|b| b.target.to_string()).collect()
    }

    #[test]
    fn a_backend_falls_after_fall_failures_and_rises_after_rise_successes() {
        let b = two();
        let first = &b.list[0];
        let fail = || Err::<(), _>("refused".to_owned());
        assert_eq!(b.record(first, fail()), None);
        assert_eq!(b.record(first, fail()), None);
        // A success in between starts the count again.
        assert_eq!(b.record(first, Ok(())), None);
        assert_eq!(b.record(first, fail()), None);
        assert_eq!(b.record(first, fail()), None);
        assert_eq!(
            b.record(first, fail()),
            Some(Change::Down("refused".into()))
        );
        assert_eq!(
            (b.up(), order(&b)),
            (1, vec!["127.0.0.1:2".into(), "127.0.0.1:1".into()])
        );
        assert_eq!(b.down_text(), "127.0.0.1:1 (refused)");
        assert_eq!(b.record(first, fail()), None);
        assert_eq!(b.record(first, Ok(())), None);
        assert_eq!(b.record(first, Ok(())), Some(Change::Up));
        assert_eq!(
            (b.up(), order(&b)),
            (2, vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()])
        );
        assert_eq!(b.down_text(), "");
    }

    #[tokio::test]
    async fn a_round_of_checks_finds_the_dead_backend() {
        let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let b = Backends::new(
            &[
                Target::Addr(dead_addr),
                Target::Addr(live.local_addr().unwrap()),
            ],
            Thresholds { rise: 1, fall: 1 },
            None,
        );
        let changes = Mutex::new(Vec::new());
        let failed = b
            .check_round(
                Duration::from_secs(2),
                &Arc::from(&b""[..]),
                |backend, c| {
                    lock(&changes).push((backend.target.clone(), c));
                },
            )
            .await;
        assert_eq!(failed, 1);
        let changes = changes.into_inner().unwrap();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].0, Target::Addr(dead_addr));
        assert!(matches!(&changes[0].1, Change::Down(e) if e.contains("refused")));
        assert_eq!(
            b.order().next().map(|b| b.target.clone()),
            live.local_addr().ok().map(Target::Addr)
        );
    }
}
