//! Reading processes from /proc: the start-up seed, reconciliation, and the
//! polling fallback when the kernel programs cannot run.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use nodus_common::proccache::ARGS_MAX;

use super::{
    cache::ProcStat,
    process::{Entry, Origin},
};

/// ns since boot on `CLOCK_BOOTTIME`, the clock of kernel event times and of
/// /proc start times.
pub fn now_boot_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).map_or(0, |ts| {
        ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
    })
}

/// A view of /proc (and of the cgroup v2 hierarchy, for cgroup ids).
#[derive(Clone, Debug)]
pub struct Procfs {
    root: PathBuf,
    cgroup2: Option<PathBuf>,
    ns_per_tick: u64,
}

impl Procfs {
    /// The system's /proc, and its cgroup v2 mount if there is one.
    pub fn system() -> Procfs {
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|&hz| hz > 0)
            .map_or(100, |hz| hz as u64);
        Procfs {
            root: PathBuf::from("/proc"),
            cgroup2: cgroup2_mount(Path::new("/proc/self/mounts")),
            ns_per_tick: 1_000_000_000 / hz,
        }
    }

    /// Length of /proc's clock tick, in ns.
    pub fn ns_per_tick(&self) -> u64 {
        self.ns_per_tick
    }

    /// Every process's /proc/PID/stat. Processes that vanish mid-scan are
    /// skipped.
    pub fn scan(&self) -> Vec<ProcStat> {
        let Ok(dir) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        dir.filter_map(|d| d.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| self.stat(pid).map(|(s, _)| s))
            .collect()
    }

    fn stat(&self, pid: u32) -> Option<(ProcStat, String)> {
        let text = fs::read_to_string(self.root.join(pid.to_string()).join("stat")).ok()?;
        parse_stat(&text, self.ns_per_tick)
    }

    /// Everything about one process, if it is still the process `seen` was
    /// (the pid may have been reused since the scan).
    pub fn read(&self, seen: &ProcStat, origin: Origin, now_ns: u64) -> Option<Entry> {
        let (stat, comm) = self.stat(seen.pid)?;
        if stat.start_ns != seen.start_ns {
            return None;
        }
        let dir = self.root.join(seen.pid.to_string());
        let mut args = fs::read(dir.join("cmdline")).unwrap_or_default();
        let argv_truncated = args.len() > ARGS_MAX;
        args.truncate(ARGS_MAX);
        let filename = fs::read_link(dir.join("exe"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let status = fs::read_to_string(dir.join("status")).unwrap_or_default();
        Some(Entry {
            pid: stat.pid,
            ppid: stat.ppid,
            start_ns: stat.start_ns,
            start_exact: false,
            uid: status_id(&status, "Uid:"),
            gid: status_id(&status, "Gid:"),
            cgroup_id: self.cgroup_id(&dir),
            comm: comm.into(),
            filename: filename.into(),
            args: args.into(),
            argv_truncated,
            exec_ns: None,
            exit: None,
            origin,
            known_since_ns: now_ns,
        })
    }

    /// Every running process, fully read: the start-up seed.
    pub fn read_all(&self, origin: Origin, now_ns: u64) -> Vec<Entry> {
        self.scan()
            .iter()
            .filter(|s| s.running())
            .filter_map(|s| self.read(s, origin, now_ns))
            .collect()
    }

    /// The cgroup v2 id: the inode number of the process's cgroup directory,
    /// which is what `bpf_get_current_cgroup_id()` returns.
    fn cgroup_id(&self, dir: &Path) -> u64 {
        let Some(mount) = &self.cgroup2 else { return 0 };
        let Ok(text) = fs::read_to_string(dir.join("cgroup")) else {
            return 0;
        };
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .and_then(|path| fs::metadata(mount.join(path.trim_start_matches('/'))).ok())
            .map_or(0, |m| m.ino())
    }
}

/// Parses /proc/PID/stat: `pid (comm) state ppid ...` where comm may hold
/// spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str, ns_per_tick: u64) -> Option<(ProcStat, String)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text.get(..open)?.trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // Fields 3 (state), 4 (ppid) and 22 (starttime), counted from 1.
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse().ok()?;
    let start_ticks: u64 = rest.get(19)?.parse().ok()?;
    Some((
        ProcStat {
            pid,
            ppid,
            start_ns: start_ticks.saturating_mul(ns_per_tick),
            state,
        },
        comm,
    ))
}

/// The real id from a `Uid:` or `Gid:` line of /proc/PID/status.
fn status_id(status: &str, key: &str) -> u32 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(u32::MAX)
}

/// Where cgroup v2 is mounted, from a mounts table.
fn cgroup2_mount(mounts: &Path) -> Option<PathBuf> {
    let text = fs::read_to_string(mounts).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, dir, kind) = (f.next()?, f.next()?, f.next()?);
        (kind == "cgroup2").then(|| PathBuf::from(dir))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_hostile_comm() {
        let line =
            "4242 (a) b) (c) S 17 4242 4242 0 -1 4194560 99 0 0 0 1 2 0 0 20 0 1 0 12345 1 2 3\n";
        let (s, comm) = parse_stat(line, 10_000_000).unwrap();
        assert_eq!(comm, "a) b) (c");
        assert_eq!((s.pid, s.ppid, s.state), (4242, 17, 'S'));
        assert_eq!(s.start_ns, 12345 * 10_000_000);
        assert!(parse_stat("12 (x) S", 1).is_none());
        assert!(parse_stat("garbage", 1).is_none());
    }

    #[test]
    fn reads_this_process() {
        let procfs = Procfs::system();
        let me = std::process::id();
        let scan = procfs.scan();
        let seen = scan.iter().find(|s| s.pid == me).expect("self in /proc");
        let entry = procfs.read(seen, Origin::Seed, 0).unwrap();
        assert!(
            entry.filename.ends_with(
                &*std::env::current_exe()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
            )
        );
        assert!(!entry.args.is_empty());
        // SAFETY: getuid has no preconditions.
        assert_eq!(entry.uid, nix::unistd::getuid().as_raw());
        if procfs.cgroup2.is_some() {
            assert_ne!(entry.cgroup_id, 0);
        }
        let stale = ProcStat {
            start_ns: seen.start_ns + 1,
            ..seen.clone()
        };
        assert!(
            procfs.read(&stale, Origin::Seed, 0).is_none(),
            "a reused pid is not read as the old process"
        );
    }
}
