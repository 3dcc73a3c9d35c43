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
    BEAT_INTERVAL, BoxFuture, Component, ComponentContext, Health, MainLoop, StartError, Stat,
    Stats,
};

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
        let errors = self
            .applied
            .lock()
            .map(|mut a| a.restore())
            .unwrap_or_default();
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
                        let found = applied.lock().map(|a| a.verify()).unwrap_or_default();
                        checks.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut d) = drift.lock() {
                            for new in found.iter().filter(|f| !d.contains(f)) {
                                log::warn!("profile: drift: {new}");
                            }
                            *d = found;
                        }
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
        let drift = self.drift.lock().map(|d| d.clone()).unwrap_or_default();
        if !drift.is_empty() {
            return Health::Degraded(format!("drift: {}", drift.join("; ")));
        }
        let warnings = self
            .applied
            .lock()
            .map(|a| a.warnings.clone())
            .unwrap_or_default();
        if !warnings.is_empty() {
            return Health::Degraded(warnings.join("; "));
        }
        Health::Healthy
    }

    fn stats(&self) -> Stats {
        let a = self.applied.lock().map(|a| a.clone()).unwrap_or_default();
        let mut s = Stats::from([
            (
                "profile".into(),
                Stat::Text(self.chosen.profile.board.name.clone()),
            ),
            ("source".into(), Stat::Text(self.chosen.origin.to_string())),
            (
                "changes_applied".into(),
                Stat::Gauge(a.changes.len() as i64),
            ),
            (
                "drift".into(),
                Stat::Gauge(self.drift.lock().map(|d| d.len()).unwrap_or(0) as i64),
            ),
            (
                "verifications".into(),
                Stat::Counter(self.checks.load(Ordering::Relaxed)),
            ),
        ]);
        if let Some(c) = &a.runtime_cpus {
            s.insert("runtime_cpus".into(), Stat::Text(c.to_string()));
        }
        if let Some(m) = &a.mempolicy {
            s.insert("mempolicy".into(), Stat::Text(m.clone()));
        }
        s
    }
}
