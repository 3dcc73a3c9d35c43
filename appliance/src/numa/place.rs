//! Placing a process that opened an accelerator on the device's node: every
//! thread's CPU affinity set to the node's CPUs (threads it starts later
//! inherit it), so its new memory is allocated there too (first touch);
//! what it already holds the mover brings home.

use nix::{sched::CpuSet, unistd::Pid};

/// Pins every thread of `pid` to `cpus`; the number of threads pinned.
pub fn pin_process(pid: u32, cpus: &[u32]) -> Result<usize, String> {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c as usize).map_err(|e| format!("CPU {c}: {e}"))?;
    }
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(|e| format!("the threads of {pid}: {e}"))?;
    let mut pinned = 0;
    for tid in tasks
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        match nix::sched::sched_setaffinity(Pid::from_raw(tid), &set) {
            Ok(()) => pinned += 1,
            // A thread that exited since the listing.
            Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(format!("pinning thread {tid} of {pid}: {e}")),
        }
    }
    Ok(pinned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_of_a_process_is_pinned() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        let pid = child.id();
        let cpu = nix::sched::sched_getaffinity(Pid::from_raw(0))
            .ok()
            .and_then(|s| (0..CpuSet::count()).find(|&c| s.is_set(c).unwrap_or(false)))
            .expect("a CPU") as u32;
        assert_eq!(pin_process(pid, &[cpu]), Ok(1));
        let got = nix::sched::sched_getaffinity(Pid::from_raw(pid as i32)).unwrap();
        let on: Vec<usize> = (0..CpuSet::count())
            .filter(|&c| got.is_set(c).unwrap_or(false))
            .collect();
        assert_eq!(on, vec![cpu as usize]);
        let _ = child.kill();
        let _ = child.wait();
        assert!(pin_process(pid, &[cpu]).is_err(), "gone");
    }
}
