//! `[proccache]`: the process cache's section of the configuration.

use serde::{Deserialize, Serialize};

/// How the process cache sizes and keeps what it knows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcCacheConfig {
    /// Run the process cache at all.
    pub enabled: bool,
    /// Most processes held, live and exited together. Memory is bounded by
    /// this, never by how fast processes come and go.
    pub capacity: usize,
    /// Seconds an exited process stays queryable.
    pub retain_exited_s: u64,
    /// Seconds an exited short-lived process stays queryable; they are the
    /// bulk of churn, so they make room first.
    pub retain_short_lived_s: u64,
    /// A process that lived less than this many milliseconds is short-lived.
    pub short_lived_ms: u64,
    /// Seconds between /proc reconciliations (0 = never).
    pub reconcile_interval_s: u64,
    /// Milliseconds between /proc scans when the kernel refuses the
    /// tracepoint programs and the cache falls back to polling.
    pub poll_interval_ms: u64,
    /// Size of the kernel-to-nodus ring buffer in KiB, a power of two of at
    /// least one page.
    pub ring_buffer_kib: u32,
    /// SCHED_FIFO priority of the thread that moves events into the table
    /// (1-99; 0 = ordinary scheduling). Decides exec-to-queryable latency
    /// when every CPU is busy.
    pub event_thread_priority: u8,
}

impl Default for ProcCacheConfig {
    fn default() -> Self {
        ProcCacheConfig {
            enabled: true,
            capacity: 4096,
            retain_exited_s: 300,
            retain_short_lived_s: 30,
            short_lived_ms: 1000,
            reconcile_interval_s: 10,
            poll_interval_ms: 100,
            ring_buffer_kib: 1024,
            event_thread_priority: 1,
        }
    }
}

impl ProcCacheConfig {
    /// Range checks: `(key, reason)` of the first value out of range.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |key: &str, reason: &str| Err((format!("proccache.{key}"), reason.to_owned()));
        if !(16..=1 << 22).contains(&self.capacity) {
            return err("capacity", "must be between 16 and 4194304");
        }
        if self.retain_short_lived_s > self.retain_exited_s {
            return err("retain_short_lived_s", "must not exceed retain_exited_s");
        }
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            return err("poll_interval_ms", "must be between 10 and 60000");
        }
        let kib = self.ring_buffer_kib;
        if !kib.is_power_of_two() || !(4..=1 << 20).contains(&kib) {
            return err(
                "ring_buffer_kib",
                "must be a power of two between 4 and 1048576",
            );
        }
        if self.event_thread_priority > 99 {
            return err("event_thread_priority", "must be between 0 and 99");
        }
        Ok(())
    }
}
