//! The component supervisor: starts components, watches their liveness,
//! reports their health and stops them in reverse order.
//!
//! Every capability of nodus (process cache, file server, proxy, ...) is a
//! [`Component`]. The supervisor guarantees the design's central promise: one
//! component failing (a start error, a panic, a wedged loop) never stops the
//! others, and is always visible in status, telemetry and the watchdog.

mod config;
mod health;
mod heartbeat;
pub mod selftest;
mod stats;

use std::{
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

pub use config::DaemonConfig;
pub use health::{Health, Stat, Stats};
pub use heartbeat::{BEAT_INTERVAL, Heartbeat};
pub use stats::{
    Counter, Float, Gauge, Maybe, StatField, StatKind, StatSet, Text, markdown as stats_markdown,
};

use crate::probe::ProbeReport;

/// The least time any component gets to stop, even past the overall deadline.
pub const MIN_STOP_GRACE: Duration = Duration::from_millis(50);

/// A boxed future, so the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a component is given when it starts.
#[derive(Clone)]
pub struct ComponentContext {
    /// Beat this from the component's main loop at least every [`BEAT_INTERVAL`].
    pub heartbeat: Heartbeat,
    /// What the kernel offers; components decide healthy/degraded from it.
    pub kernel: Arc<ProbeReport>,
}

/// Why a component could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// One capability of nodus, run under the supervisor.
pub trait Component: Send {
    /// Short, stable name used in status, telemetry and logs.
    fn name(&self) -> &'static str;

    /// Acquires what the component needs (eBPF programs, sockets) and spawns its
    /// tasks on the current runtime. Must return promptly; long work belongs in
    /// the spawned tasks.
    fn start(&mut self, ctx: ComponentContext) -> Result<(), StartError>;

    /// Detaches and restores everything `start` changed, then returns.
    fn stop(&mut self) -> BoxFuture<'_, ()>;

    /// What the component reports about itself. Must not block.
    fn health(&self) -> Health;

    /// Counters and gauges for status and telemetry, from the component's
    /// [`stats!`](crate::stats) struct, whose [`StatSet::FIELDS`] its
    /// registration in the daemon lists. Must not block.
    fn stats(&self) -> Stats;
}

/// A component's spawned main loop and the means to stop it: the loop gets
/// a receiver that changes when the component is asked to stop.
pub struct MainLoop {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl MainLoop {
    /// Spawns `body(stopped)` on the current runtime.
    pub fn spawn<F>(body: impl FnOnce(tokio::sync::watch::Receiver<bool>) -> F) -> MainLoop
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        MainLoop {
            stop,
            task: tokio::spawn(body(stopped)),
        }
    }

    /// Whether the loop has returned (or panicked).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the loop to stop and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The next tick of `interval`, or never when there is none (a periodic
/// job switched off in the config), for one arm of a `select!` loop.
pub async fn tick_every(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A component's entry in `nodus status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ComponentStatus {
    /// The component's name.
    pub name: String,
    /// Health, after the supervisor's own liveness check.
    pub health: Health,
    /// Milliseconds since the component's last heartbeat.
    pub heartbeat_age_ms: u64,
    /// The component's statistics.
    pub stats: Stats,
}

struct Slot {
    component: Box<dyn Component>,
    heartbeat: Heartbeat,
    /// Set when `start` failed or panicked: the component is not running.
    failed: Option<String>,
}

/// Owns the running components, in start order.
pub struct Supervisor {
    slots: Vec<Slot>,
    wedge_after: Duration,
    kernel: Arc<ProbeReport>,
}

impl Supervisor {
    /// A supervisor that declares a component wedged after `wedge_after`
    /// without a heartbeat.
    pub fn new(wedge_after: Duration, kernel: Arc<ProbeReport>) -> Self {
        Supervisor {
            slots: Vec::new(),
            wedge_after,
            kernel,
        }
    }

    /// Starts `component` and keeps it, running or not: a component that failed
    /// to start stays listed as unavailable with its reason.
    pub fn start(&mut self, mut component: Box<dyn Component>) -> Result<(), String> {
        let heartbeat = Heartbeat::new();
        heartbeat.beat();
        let ctx = ComponentContext {
            heartbeat: heartbeat.clone(),
            kernel: self.kernel.clone(),
        };
        let name = component.name();
        let failed = match catch_unwind(AssertUnwindSafe(|| component.start(ctx))) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(panic) => Some(format!(
                "panicked while starting: {}",
                panic_message(&*panic)
            )),
        };
        match &failed {
            None => log::info!("{name}: started ({})", component.health()),
            Some(reason) => log::error!("{name}: unavailable: {reason}"),
        }
        let result = failed.clone().map_or(Ok(()), Err);
        self.slots.push(Slot {
            component,
            heartbeat,
            failed,
        });
        result
    }

    /// Stops and removes the component called `name`, returning it.
    pub async fn remove(&mut self, name: &str, timeout: Duration) -> Option<Box<dyn Component>> {
        let i = self.slots.iter().position(|s| s.component.name() == name)?;
        let mut slot = self.slots.remove(i);
        stop_slot(&mut slot, timeout).await;
        Some(slot.component)
    }

    /// Stops every component, last started first, within `timeout` overall.
    /// A component reached after the deadline still gets [`MIN_STOP_GRACE`]:
    /// a quick stop restores what the component changed, and that matters more
    /// than a few milliseconds.
    pub async fn stop_all(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while let Some(mut slot) = self.slots.pop() {
            let left = deadline.saturating_duration_since(Instant::now());
            stop_slot(&mut slot, left.max(MIN_STOP_GRACE)).await;
        }
    }

    /// Health of one slot as the outside world should see it.
    fn effective_health(&self, slot: &Slot) -> Health {
        if let Some(reason) = &slot.failed {
            return Health::Unavailable(reason.clone());
        }
        let age = slot.heartbeat.age();
        if age > self.wedge_after {
            return Health::Unavailable(format!(
                "wedged: no heartbeat for {:.1} s",
                age.as_secs_f64()
            ));
        }
        catch_unwind(AssertUnwindSafe(|| slot.component.health())).unwrap_or_else(|p| {
            Health::Unavailable(format!("health check panicked: {}", panic_message(&*p)))
        })
    }

    /// Name and health of every component, in start order: what the STATUS
    /// line needs, without collecting every component's stats.
    pub fn health(&self) -> Vec<(&'static str, Health)> {
        self.slots
            .iter()
            .map(|slot| (slot.component.name(), self.effective_health(slot)))
            .collect()
    }

    /// Status of every component, in start order.
    pub fn status(&self) -> Vec<ComponentStatus> {
        self.slots
            .iter()
            .map(|slot| ComponentStatus {
                name: slot.component.name().to_owned(),
                health: self.effective_health(slot),
                heartbeat_age_ms: slot.heartbeat.age().as_millis() as u64,
                stats: if slot.failed.is_some() {
                    Stats::new()
                } else {
                    catch_unwind(AssertUnwindSafe(|| slot.component.stats())).unwrap_or_default()
                },
            })
            .collect()
    }

    /// True while every started component is beating: the condition for
    /// sending WATCHDOG=1. A component that never started does not count
    /// (it is unavailable, not wedged, and restarting nodus would not help).
    pub fn all_alive(&self) -> bool {
        self.slots
            .iter()
            .all(|s| s.failed.is_some() || s.heartbeat.age() <= self.wedge_after)
    }

    /// Names of the components, in start order.
    pub fn names(&self) -> Vec<&'static str> {
        self.slots.iter().map(|s| s.component.name()).collect()
    }
}

async fn stop_slot(slot: &mut Slot, timeout: Duration) {
    let name = slot.component.name();
    if slot.failed.is_some() {
        return;
    }
    if tokio::time::timeout(timeout, slot.component.stop())
        .await
        .is_err()
    {
        log::warn!("{name}: did not stop within {} ms", timeout.as_millis());
    } else {
        log::info!("{name}: stopped");
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

#[cfg(test)]
mod tests;
