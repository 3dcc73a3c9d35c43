//! The thread that moves events from the ring buffer into the table.
//!
//! It is a plain thread, not a task: exec-to-queryable latency is decided by
//! how soon it runs after the kernel wakes it, and on a board whose CPUs are
//! busy forking that is a scheduling question. Optionally (by default) it
//! runs SCHED_FIFO at a low real-time priority, so it preempts ordinary work
//! the moment events arrive; it only ever drains and sleeps, so it cannot
//! starve anything.

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::{
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use aya::maps::{MapData, RingBuf};

use super::{ProcessTable, event::Event, measures::Measures, procfs::now_boot_ns};
use crate::{board::CpuList, sync::lock};

/// Events applied per hold of the table lock, so queries never wait long.
const BATCH: usize = 256;
/// How often the thread checks whether it should stop while idle.
const IDLE_WAKE: Duration = Duration::from_millis(100);

/// Where drained events go.
#[derive(Clone)]
pub(super) struct Sink {
    pub table: ProcessTable,
    pub measures: Arc<Measures>,
}

impl Sink {
    /// Applies every queued event, [`BATCH`] per lock hold. Returns whether
    /// any was read.
    pub fn drain(&self, ring: &mut RingBuf<MapData>) -> bool {
        let mut any = false;
        let mut exec_times = Vec::with_capacity(BATCH);
        loop {
            exec_times.clear();
            let mut applied = 0;
            self.table.with(|cache| {
                while applied < BATCH {
                    let Some(item) = ring.next() else { break };
                    applied += 1;
                    match Event::decode(&item) {
                        Ok(event) => {
                            if let Some(entry) = cache.apply(&event, now_boot_ns()) {
                                exec_times.push(event.header().time_ns);
                                self.table.publish_exec(entry);
                            }
                        }
                        Err(e) => {
                            self.measures.undecodable.fetch_add(1, Ordering::Relaxed);
                            log::debug!("proccache: {e}");
                        }
                    }
                }
            });
            // Queryable from the moment the lock was released.
            let now = now_boot_ns();
            for t in &exec_times {
                self.measures.latency_ns.record(now.saturating_sub(*t));
            }
            self.measures
                .events
                .fetch_add(applied as u64, Ordering::Relaxed);
            any |= applied > 0;
            if applied < BATCH {
                return any;
            }
        }
    }
}

/// The running consumer thread.
pub(super) struct Consumer {
    stop: Arc<AtomicBool>,
    /// None when the thread could not be created.
    thread: Option<JoinHandle<()>>,
}

impl Consumer {
    /// Starts draining `ring` (readable on `fd`) into `sink`, at SCHED_FIFO
    /// `priority` (0: ordinary scheduling), on `cpus` if given.
    pub fn spawn(
        ring: Arc<Mutex<RingBuf<MapData>>>,
        fd: Arc<OwnedFd>,
        sink: Sink,
        priority: u8,
        cpus: Option<CpuList>,
    ) -> Consumer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("nodus-proc-events".into())
            .spawn(move || {
                let mut scheduling = set_scheduling(priority);
                if let Some(cpus) = cpus {
                    match cpus.pin_current_thread() {
                        Ok(()) => scheduling.push_str(&format!(" on cpus {cpus}")),
                        Err(e) => {
                            log::warn!(
                                "proccache: event thread cannot be pinned to cpus {cpus}: {e}"
                            );
                            scheduling.push_str(&format!(" (pinning to {cpus} refused: {e})"));
                        }
                    }
                }
                *lock(&sink.measures.scheduling) = scheduling;
                while !flag.load(Ordering::Relaxed) {
                    if wait_readable(fd.as_fd(), IDLE_WAKE) {
                        sink.drain(&mut lock(&ring));
                    }
                }
            });
        let thread = thread
            .inspect_err(|e| log::error!("proccache: cannot start the event thread: {e}"))
            .ok();
        Consumer { stop, thread }
    }

    /// Whether the thread has ended (it only should when asked to).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Asks the thread to stop and waits for it (at most [`IDLE_WAKE`]).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread {
            let _ = thread.join();
        }
    }
}

/// Puts the calling thread in SCHED_FIFO at `priority`; says what it got.
fn set_scheduling(priority: u8) -> String {
    if priority == 0 {
        return "normal".into();
    }
    // Raw libc: nix has no pthread_setschedparam.
    // SAFETY: sched_param is plain integers (musl adds sporadic-server
    // fields glibc lacks); all-zero is valid for each.
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = i32::from(priority);
    // pthread_setschedparam, not sched_setscheduler: musl implements the
    // latter as ENOSYS (POSIX makes it per-process, Linux per-thread).
    // SAFETY: pthread_self is this thread; param is a valid sched_param.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        format!("fifo:{priority}")
    } else {
        let e = std::io::Error::from_raw_os_error(rc);
        log::warn!("proccache: event thread stays at normal priority: SCHED_FIFO {priority}: {e}");
        format!("normal (SCHED_FIFO refused: {e})")
    }
}

/// Waits up to `timeout` for `fd` to become readable.
fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
}
