//! The systemd notification protocol (sd_notify) through the `sd-notify`
//! crate: a datagram of `KEY=VALUE` lines to the socket `NOTIFY_SOCKET`
//! names (a path, or `@name` in the abstract namespace), no libsystemd.
//! Other supervisors (s6, runit with a shim, procd) speak the same protocol.

use std::time::Duration;

pub use sd_notify::NotifyState;

/// Where notifications go (the service manager named by `NOTIFY_SOCKET`,
/// if any) and the keep-alive interval it expects.
pub struct Notifier {
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The watchdog from `WATCHDOG_USEC` (honouring `WATCHDOG_PID`).
    pub fn from_env() -> Notifier {
        Notifier {
            watchdog: sd_notify::watchdog_enabled().filter(|d| !d.is_zero()),
        }
    }

    /// Expecting keep-alives every `watchdog` (if any), whatever the
    /// environment says: for tests that run the daemon in-process.
    pub fn with_watchdog(watchdog: Option<Duration>) -> Notifier {
        Notifier { watchdog }
    }

    /// The watchdog interval the service manager expects, if it set one.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `states`; failures are logged, never fatal. Nothing is sent
    /// without `NOTIFY_SOCKET`.
    pub fn notify(&self, states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(states) {
            log::debug!("sd_notify: {e}");
        }
    }
}
