//! The `profile` component: keeps the applied profile verified while nodus
//! runs (drift shows in status and telemetry) and restores every original
//! value on stop.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use super::{Applied, Chosen};
use crate::supervisor::{
    BEAT_INTERVAL, BoxFuture, Component, ComponentContext, Counter, Gauge, Health, MainLoop, Maybe,
    StartError, StatSet, Stats, Text,
};

crate::stats! {
    /// What the board profile reports.
    pub struct ProfileStats {
        /// The board profile in effect.
        profile: Text,
        /// Where it came from: built in, a file, or the generic fallback and why.
        source: Text,
        /// Settings the profile changed at start (each restored at stop).
        changes_applied: Gauge,
        /// Settings found changed behind nodus's back at the last check.
        drift: Gauge,
        /// Drift checks made since start.
        verifications: Counter,
        /// CPUs the daemon's own threads run on, when the profile places them.
        runtime_cpus: Maybe<Text>,
        /// The memory policy the daemon runs under, when the profile sets one.
        mempolicy: Maybe<Text>,
    }
}
use crate::sync::lock;

/// The supervised face of the applied profile.
pub struct ProfileComponent {
    chosen: Chosen,
    applied: Arc<Mutex<Applied>>,
    verify_every: Option<Duration>,
    drift: Arc<Mutex<Vec<String>>>,
    checks: Arc<AtomicU64>,
    running: Option<MainLoop>,
}

impl ProfileComponent {
    /// Wraps a profile already applied by [`super::apply`].
    pub fn new(chosen: Chosen, applied: Applied, verify_every: Option<Duration>) -> Self {
        ProfileComponent {
            chosen,
            applied: Arc::new(Mutex::new(applied)),
            verify_every,
            drift: Arc::default(),
            checks: Arc::default(),
            running: None,
        }
    }

    /// Puts back every value the profile changed, logging what could not be.
    /// Also used when the daemon fails before the component ever started.
    pub fn restore(&mut self) {
        let errors = lock(&self.applied).restore();
        for e in errors {
            log::error!("profile: {e}");
        }
    }
}

impl Component for ProfileComponent {
    fn name(&self) -> &'static str {
        "profile"
    }

    fn start(&mut self, ctx: ComponentContext) -> Result<(), StartError> {
        if let Some(why) = &self.chosen.fallback {
            log::error!("profile: {why}; running the generic profile");
        }
        let (applied, drift, checks) = (
            self.applied.clone(),
            self.drift.clone(),
            self.checks.clone(),
        );
        let every = self.verify_every;
        self.running = Some(MainLoop::spawn(|mut stopped| async move {
            let mut beat = tokio::time::interval(BEAT_INTERVAL);
            let mut verify = every.map(tokio::time::interval);
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = beat.tick() => ctx.heartbeat.beat(),
                    _ = async { match verify.as_mut() { Some(v) => { v.tick().await; } None => std::future::pending().await } } => {
                        let found = lock(&applied).verify();
                        checks.fetch_add(1, Ordering::Relaxed);
                        let mut d = lock(&drift);
                        for new in found.iter().filter(|f| !d.contains(f)) {
                            log::warn!("profile: drift: {new}");
                        }
                        *d = found;
                    }
                }
            }
        }));
        Ok(())
    }

    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(running) = self.running.take() {
                running.stop().await;
            }
            self.restore();
        })
    }

    fn health(&self) -> Health {
        if let Some(why) = &self.chosen.fallback {
            return Health::Degraded(format!("{why}; running generic"));
        }
        let drift = lock(&self.drift).clone();
        if !drift.is_empty() {
            return Health::Degraded(format!("drift: {}", drift.join("; ")));
        }
        let warnings = lock(&self.applied).warnings.clone();
        if !warnings.is_empty() {
            return Health::Degraded(warnings.join("; "));
        }
        Health::Healthy
    }

    fn stats(&self) -> Stats {
        let a = lock(&self.applied).clone();
        ProfileStats {
            profile: self.chosen.profile.board.name.clone(),
            source: self.chosen.origin.to_string(),
            changes_applied: a.changes.len() as i64,
            drift: lock(&self.drift).len() as i64,
            verifications: self.checks.load(Ordering::Relaxed),
            runtime_cpus: a.runtime_cpus.as_ref().map(ToString::to_string),
            mempolicy: a.mempolicy.clone(),
        }
        .to_stats()
    }
}
