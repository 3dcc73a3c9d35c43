//! `[sched]`: the layered scheduler's section of the configuration. The
//! layers themselves are the board profile's `[[layer]]` tables.

use serde::{Deserialize, Serialize};

/// How the scheduler runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedConfig {
    /// Load the scheduler where the kernel has sched_ext and the profile
    /// has layers.
    pub enabled: bool,
    /// Schedule only tasks set to SCHED_EXT (`chrt --ext`, systemd's
    /// `CPUSchedulingPolicy=ext`); everything else stays on the default
    /// scheduler.
    pub switch_partial: bool,
    /// The kernel's watchdog: a runnable task left unrun this long ends the
    /// scheduler (every task returns to the default scheduler; nodus
    /// reloads it). The kernel allows at most 30000.
    pub watchdog_ms: u32,
    /// How often grouped layers are resized and cgroups and executables
    /// matched again.
    pub interval_ms: u64,
    /// The first wait before reloading after the kernel ended the
    /// scheduler; it doubles on each exit up to `max_backoff_ms`, and
    /// starts over after a minute of running.
    pub backoff_ms: u64,
    /// The longest wait before a reload.
    pub max_backoff_ms: u64,
}

impl Default for SchedConfig {
    fn default() -> Self {
        SchedConfig {
            enabled: true,
            switch_partial: false,
            watchdog_ms: 5000,
            interval_ms: 1000,
            backoff_ms: 1000,
            max_backoff_ms: 60_000,
        }
    }
}

impl SchedConfig {
    /// Range checks: `(key, reason)` of the first value out of range.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |key: &str, reason: &str| Err((format!("sched.{key}"), reason.to_owned()));
        if !(100..=30_000).contains(&self.watchdog_ms) {
            return err(
                "watchdog_ms",
                "must be between 100 and 30000 (the kernel's limit)",
            );
        }
        if !(100..=60_000).contains(&self.interval_ms) {
            return err("interval_ms", "must be between 100 and 60000");
        }
        if !(100..=self.max_backoff_ms).contains(&self.backoff_ms) {
            return err(
                "backoff_ms",
                "must be at least 100 and at most max_backoff_ms",
            );
        }
        if self.max_backoff_ms > 3_600_000 {
            return err("max_backoff_ms", "must be at most 3600000 (an hour)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_watchdog_the_kernel_would_refuse() {
        assert!(SchedConfig::default().validate().is_ok());
        let long = SchedConfig {
            watchdog_ms: 60_000,
            ..SchedConfig::default()
        };
        assert_eq!(long.validate().unwrap_err().0, "sched.watchdog_ms");
        let backwards = SchedConfig {
            backoff_ms: 5000,
            max_backoff_ms: 1000,
            ..SchedConfig::default()
        };
        assert_eq!(backwards.validate().unwrap_err().0, "sched.backoff_ms");
    }
}
