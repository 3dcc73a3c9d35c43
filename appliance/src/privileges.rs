//! Which Linux capabilities nodus needs, and a clear error naming any that are
//! missing: "Operation not permitted" from deep inside a BPF syscall tells an
//! operator nothing about what to grant.

use std::fs;

/// A capability nodus uses, with the number the kernel gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Load programs and create maps.
    Bpf = 39,
    /// Tracing programs (tracepoints, fentry) and reading kernel memory.
    Perfmon = 38,
    /// TC/XDP attach, socket options, IRQ affinity.
    NetAdmin = 12,
    /// struct_ops (sched_ext), mounts, sysctls, memory policy of others.
    SysAdmin = 21,
}

impl Capability {
    /// What the daemon needs to run its components.
    pub const DAEMON: [Capability; 4] = [
        Capability::Bpf,
        Capability::Perfmon,
        Capability::NetAdmin,
        Capability::SysAdmin,
    ];

    /// The name as in capabilities(7).
    pub fn name(self) -> &'static str {
        match self {
            Capability::Bpf => "CAP_BPF",
            Capability::Perfmon => "CAP_PERFMON",
            Capability::NetAdmin => "CAP_NET_ADMIN",
            Capability::SysAdmin => "CAP_SYS_ADMIN",
        }
    }
}

/// The capabilities in `wanted` that this process does not have in its
/// effective set.
pub fn missing(wanted: &[Capability]) -> Vec<Capability> {
    let effective = effective_set().unwrap_or(0);
    wanted
        .iter()
        .copied()
        .filter(|&c| effective & (1u64 << c as u32) == 0)
        .collect()
}

/// The error line for missing capabilities, or `None` when all are present.
pub fn check(wanted: &[Capability]) -> Option<String> {
    let missing = missing(wanted);
    if missing.is_empty() {
        return None;
    }
    let names: Vec<&str> = missing.iter().map(|c| c.name()).collect();
    Some(format!(
        "missing capabilities {}: run nodus as root, or grant them (systemd: AmbientCapabilities={})",
        names.join(", "),
        names.join(" ")
    ))
}

fn effective_set() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}
