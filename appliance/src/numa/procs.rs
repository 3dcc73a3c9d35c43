//! The processes a look considers: every process's `/proc/PID/stat` (one
//! read each: name, nice, resident size, the CPU it last ran on), and the
//! facts a home rule may need, read only when a rule asks.

use std::{os::unix::fs::MetadataExt, path::Path};

/// One process at one look.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proc {
    /// Its pid.
    pub pid: u32,
    /// Its name (`comm`).
    pub comm: String,
    /// Its nice value.
    pub nice: i32,
    /// Resident pages.
    pub rss_pages: u64,
    /// The CPU it last ran on.
    pub cpu: u32,
    /// Its start time, clock ticks after boot: with the pid, who it is.
    pub start: u64,
}

/// Every user process now (kernel threads hold no memory and are skipped).
pub fn scan() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            parse_stat(pid, &text)
        })
        .filter(|p| p.rss_pages > 0)
        .collect()
}

/// `/proc/PID/stat`'s text. The name is between the first `(` and the
/// last `)`: it may hold spaces and parentheses itself.
pub fn parse_stat(pid: u32, text: &str) -> Option<Proc> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    // Fields from the third (state) on.
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied();
    Some(Proc {
        pid,
        comm,
        nice: field(19)?.parse().ok()?,
        rss_pages: field(24)?.parse().ok()?,
        cpu: field(39)?.parse().ok()?,
        start: field(22)?.parse().ok()?,
    })
}

/// When `pid` started (clock ticks after boot), if it runs.
pub fn start_of(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &text).map(|p| p.start)
}

/// The CPUs `pid` may run on.
pub fn affinity_of(pid: u32) -> Option<Vec<u32>> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(pid as i32)).ok()?;
    Some(
        (0..nix::sched::CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .map(|c| c as u32)
            .collect(),
    )
}

/// The cgroup v2 path of `pid` (`/system.slice/foo.service`).
pub fn cgroup_of(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

/// The effective uid of `pid`.
pub fn euid_of(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The device and inode of `pid`'s executable.
pub fn exe_of(pid: u32) -> Option<(u64, u64)> {
    let m = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((m.dev(), m.ino()))
}

/// The device and inode of the file at `path`.
pub fn file_id(path: &Path) -> Option<(u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_spaces_and_parentheses_is_whole() {
        let stat = "123 (a (b) c) S 1 123 123 0 -1 4194560 100 0 0 0 5 6 0 0 20 -5 1 0 777 1000000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0";
        let p = parse_stat(123, stat).unwrap();
        assert_eq!(p.comm, "a (b) c");
        assert_eq!((p.nice, p.rss_pages, p.cpu, p.start), (-5, 250, 3, 777));
        assert_eq!(parse_stat(1, "garbage"), None);
    }

    #[test]
    fn this_process_is_scanned() {
        let me = std::process::id();
        let p = scan()
            .into_iter()
            .find(|p| p.pid == me)
            .expect("this process");
        assert!(p.rss_pages > 0);
        assert!(euid_of(me).is_some());
        assert_eq!(exe_of(me), file_id(&std::env::current_exe().unwrap()));
    }
}
