//! `[numa]`: what the NUMA locality component watches and how hard it may
//! move memory.

use serde::{Deserialize, Serialize};

/// How the NUMA locality component observes and acts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NumaConfig {
    /// Run the component at all.
    pub enabled: bool,
    /// Milliseconds between looks at the nodes and processes.
    pub interval_ms: u64,
    /// Processes reported by resident memory, besides the placed ones.
    pub top: usize,
    /// Placed processes (those with a home node) looked at per interval,
    /// the largest first.
    pub placed: usize,
    /// Processes smaller than this (resident MiB) are counted but not
    /// looked at closely: their few pages are not worth a query or a move.
    pub min_rss_mib: u64,
    /// Pages of a process's address space asked where they are, per look
    /// (`move_pages(2)` with no target: a bounded query, where
    /// `/proc/PID/numa_maps` walks every page).
    pub samples: usize,
    /// Move placed processes' pages to their home node (when the kernel's
    /// automatic NUMA balancing is off; when it is on, the kernel is in
    /// charge and nodus only observes).
    pub migrate: bool,
    /// Pages moved per second at most, in MiB: the memory bandwidth nodus
    /// may take from the board's work.
    pub migrate_mib_per_s: u64,
    /// A placed process whose sampled pages are less local than this, in
    /// percent, is moved home.
    pub local_target_pct: u8,
    /// Pin a process that opens one of the profile's accelerators (a
    /// `[[device]]` with `dev` and a node) to the device's node; off:
    /// the opens are only reported.
    pub place_accelerator_users: bool,
    /// Processes whose scheduling (runs, switches, waits, migrations) the
    /// kernel counts at once; the least recently active give way.
    pub counted_processes: u32,
}

impl Default for NumaConfig {
    fn default() -> Self {
        NumaConfig {
            enabled: true,
            interval_ms: 1000,
            top: 8,
            placed: 32,
            min_rss_mib: 4,
            samples: 512,
            migrate: true,
            migrate_mib_per_s: 256,
            local_target_pct: 95,
            place_accelerator_users: true,
            counted_processes: 4096,
        }
    }
}

impl NumaConfig {
    /// Range checks: `(key, reason)` of the first value out of range.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |key: &str, reason: &str| Err((format!("numa.{key}"), reason.to_owned()));
        if !(100..=3_600_000).contains(&self.interval_ms) {
            return err("interval_ms", "must be between 100 and 3600000");
        }
        if self.top > 1024 {
            return err("top", "must be at most 1024");
        }
        if self.placed > 4096 {
            return err("placed", "must be at most 4096");
        }
        if !(16..=65_536).contains(&self.samples) {
            return err("samples", "must be between 16 and 65536");
        }
        if !(1..=65_536).contains(&self.migrate_mib_per_s) {
            return err("migrate_mib_per_s", "must be between 1 and 65536");
        }
        if !(1..=100).contains(&self.local_target_pct) {
            return err("local_target_pct", "must be between 1 and 100");
        }
        if !(64..=1_048_576).contains(&self.counted_processes) {
            return err("counted_processes", "must be between 64 and 1048576");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_values_out_of_range() {
        assert!(NumaConfig::default().validate().is_ok());
        let fast = NumaConfig {
            interval_ms: 10,
            ..NumaConfig::default()
        };
        assert_eq!(fast.validate().unwrap_err().0, "numa.interval_ms");
        let none = NumaConfig {
            migrate_mib_per_s: 0,
            ..NumaConfig::default()
        };
        assert_eq!(none.validate().unwrap_err().0, "numa.migrate_mib_per_s");
        let over = NumaConfig {
            local_target_pct: 101,
            ..NumaConfig::default()
        };
        assert_eq!(over.validate().unwrap_err().0, "numa.local_target_pct");
    }
}
