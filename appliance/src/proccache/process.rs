//! What the cache knows about one process, and the form queries return.

use serde::{Deserialize, Serialize};

/// Where a process's record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Kernel events (fork or exec seen as it happened).
    Events,
    /// The start-up /proc scan: it existed before nodus.
    Seed,
    /// A reconciliation or poll found it in /proc (its events were lost, or
    /// the kernel events are unavailable).
    Procfs,
}

/// How a process ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// When, ns since boot (for an unobserved exit: when it was noticed).
    pub time_ns: u64,
    /// exit(2) code, when it exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The signal that killed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Whether the signal dumped core.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub core_dumped: bool,
    /// False when the exit event was lost and /proc showed it gone: code and
    /// signal are then unknown.
    pub observed: bool,
}

impl Exit {
    /// Decodes a wait(2) status as the kernel stores it in `exit_code`.
    pub fn from_wait_status(time_ns: u64, status: u32) -> Exit {
        let signal = (status & 0x7f) as i32;
        Exit {
            time_ns,
            code: (signal == 0).then_some(((status >> 8) & 0xff) as i32),
            signal: (signal != 0).then_some(signal),
            core_dumped: signal != 0 && status & 0x80 != 0,
            observed: true,
        }
    }

    /// An exit found by reconciliation, not by an event.
    pub fn unobserved(time_ns: u64) -> Exit {
        Exit {
            time_ns,
            code: None,
            signal: None,
            core_dumped: false,
            observed: false,
        }
    }
}

/// One process as `nodus ps` and the internal API return it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Start, ns since boot. With `pid`, the process's identity.
    pub start_ns: u64,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// cgroup v2 id (the cgroup directory's inode number).
    pub cgroup_id: u64,
    /// Command name (`comm`, at most 15 bytes).
    pub comm: String,
    /// The executed file, as passed to exec (empty when never seen).
    pub filename: String,
    /// The argument vector (empty for kernel threads and when never seen).
    pub argv: Vec<String>,
    /// The argument vector was longer than the kernel side keeps.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub argv_truncated: bool,
    /// When it last exec'd, ns since boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_ns: Option<u64>,
    /// How it ended, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<Exit>,
    /// Where the record came from.
    pub origin: Origin,
}

/// The cache's compact form of a [`Process`]: the argument vector stays one
/// NUL-separated allocation, so a hostile argv of many empty strings costs
/// its bytes and no more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Start, ns since boot.
    pub start_ns: u64,
    /// `start_ns` is exact (from an event), not /proc's clock-tick value.
    pub start_exact: bool,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// Command name.
    pub comm: Box<str>,
    /// The executed file.
    pub filename: Box<str>,
    /// NUL-separated arguments.
    pub args: Box<[u8]>,
    /// The arguments were cut at the kernel side's bound.
    pub argv_truncated: bool,
    /// Last exec, ns since boot.
    pub exec_ns: Option<u64>,
    /// How it ended.
    pub exit: Option<Exit>,
    /// Where the record came from.
    pub origin: Origin,
    /// When the cache learnt of it (ns since boot); reconciliation leaves
    /// alone what it learnt after its /proc scan began.
    pub known_since_ns: u64,
}

impl Entry {
    /// The query form.
    pub fn to_process(&self) -> Process {
        Process {
            pid: self.pid,
            ppid: self.ppid,
            start_ns: self.start_ns,
            uid: self.uid,
            gid: self.gid,
            cgroup_id: self.cgroup_id,
            comm: self.comm.to_string(),
            filename: self.filename.to_string(),
            argv: split_args(&self.args),
            argv_truncated: self.argv_truncated,
            exec_ns: self.exec_ns,
            exit: self.exit.clone(),
            origin: self.origin,
        }
    }

    /// Whether `start_ns` (exact or not) denotes the same start as ours.
    /// /proc reports starts in clock ticks, so a tick-precision start matches
    /// any exact start within the same tick.
    pub fn same_start(&self, start_ns: u64, exact: bool, ns_per_tick: u64) -> bool {
        if self.start_exact && exact {
            self.start_ns == start_ns
        } else {
            self.start_ns / ns_per_tick == start_ns / ns_per_tick
        }
    }
}

/// Splits a NUL-separated argument area into arguments. A trailing NUL ends
/// the last argument rather than starting an empty one.
pub fn split_args(area: &[u8]) -> Vec<String> {
    let area = area.strip_suffix(&[0]).unwrap_or(area);
    if area.is_empty() {
        return Vec::new();
    }
    area.split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Text up to the first NUL of a fixed-size kernel buffer.
pub fn c_text(bytes: &[u8]) -> Box<str> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_wait_statuses() {
        let normal = Exit::from_wait_status(5, 3 << 8);
        assert_eq!(
            (normal.code, normal.signal, normal.core_dumped),
            (Some(3), None, false)
        );
        let killed = Exit::from_wait_status(5, 9);
        assert_eq!((killed.code, killed.signal), (None, Some(9)));
        let core = Exit::from_wait_status(5, 11 | 0x80);
        assert_eq!((core.signal, core.core_dumped), (Some(11), true));
    }

    #[test]
    fn splits_argument_areas() {
        assert_eq!(split_args(b"ls\0-l\0/tmp\0"), ["ls", "-l", "/tmp"]);
        assert_eq!(split_args(b"a\0\0b\0"), ["a", "", "b"]);
        assert_eq!(split_args(b"truncat"), ["truncat"]);
        assert!(split_args(b"").is_empty());
        assert_eq!(&*c_text(b"bash\0\0\0"), "bash");
    }
}
