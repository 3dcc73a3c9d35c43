//! `nodus selftest`: proves, in the binary at hand, that a panicking
//! component does not stop the others.
//!
//! The promise rests on the build's panic strategy: with `panic = "abort"`
//! (which a firmware build system can impose through its own profile or
//! `RUSTFLAGS`) the first panic anywhere ends the process, whatever the
//! supervisor does. So this runs the real [`Supervisor`] in the shipped
//! binary with components that panic where real ones could (in `start`, in
//! their async main loop, in a worker thread) next to one that keeps
//! beating, and checks what status would show. A build that aborts dies
//! here with SIGABRT instead of answering, which is the failure to catch.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use super::{
    BoxFuture, Component, ComponentContext, Health, MainLoop, StartError, Stats, Supervisor,
};
use crate::probe::ProbeReport;

/// How a test component fails.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    PanicInStart,
    PanicInLoop,
    PanicInThread,
}

struct Probe {
    name: &'static str,
    fault: Fault,
    main: Option<MainLoop>,
}

impl Component for Probe {
    fn name(&self) -> &'static str {
        self.name
    }

    fn start(&mut self, ctx: ComponentContext) -> Result<(), StartError> {
        if self.fault == Fault::PanicInStart {
            panic!("selftest: a panic in start");
        }
        let fault = self.fault;
        if fault == Fault::PanicInThread {
            // A worker thread that dies; the component's loop notices.
            let worker = std::thread::spawn(|| panic!("selftest: a panic in a worker thread"));
            self.main = Some(MainLoop::spawn(move |_stop| async move {
                while !worker.is_finished() {
                    ctx.heartbeat.beat();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }));
            return Ok(());
        }
        self.main = Some(MainLoop::spawn(move |mut stop| async move {
            for i in 0u32.. {
                if fault == Fault::PanicInLoop && i == 5 {
                    panic!("selftest: a panic in a main loop");
                }
                ctx.heartbeat.beat();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    _ = stop.changed() => return,
                }
            }
        }));
        Ok(())
    }

    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(m) = self.main.take() {
                m.stop().await;
            }
        })
    }

    fn health(&self) -> Health {
        match &self.main {
            Some(m) if !m.is_finished() => Health::Healthy,
            _ => Health::Unavailable("main loop ended".into()),
        }
    }

    fn stats(&self) -> Stats {
        Stats::new()
    }
}

/// Runs the check; the report on success, what went wrong otherwise.
pub fn panic_containment() -> Result<String, String> {
    let panics = Arc::new(AtomicUsize::new(0));
    let counted = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |_| {
        counted.fetch_add(1, Ordering::Relaxed);
    }));
    let result = run(&panics);
    std::panic::set_hook(previous);
    result
}

fn run(panics: &AtomicUsize) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build a runtime: {e}"))?;
    runtime.block_on(async {
        let mut supervisor =
            Supervisor::new(Duration::from_millis(300), Arc::new(ProbeReport::default()));
        let faults = [
            ("steady", Fault::None),
            ("panics-in-start", Fault::PanicInStart),
            ("panics-in-loop", Fault::PanicInLoop),
            ("panics-in-thread", Fault::PanicInThread),
        ];
        for (name, fault) in faults {
            let _ = supervisor.start(Box::new(Probe {
                name,
                fault,
                main: None,
            }));
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        let health = supervisor.health();
        supervisor.stop_all(Duration::from_secs(2)).await;
        let mut problems = Vec::new();
        for (name, h) in &health {
            let ok = match *name {
                "steady" => *h == Health::Healthy,
                _ => matches!(h, Health::Unavailable(_)),
            };
            if !ok {
                problems.push(format!("{name} is {h}"));
            }
        }
        let seen = panics.load(Ordering::Relaxed);
        // At least: a test harness may panic elsewhere at the same time.
        if seen < 3 {
            problems.push(format!("{seen} panics seen, 3 expected"));
        }
        if problems.is_empty() {
            Ok(format!(
                "panic containment: ok ({seen} panics in start, a main loop and a worker thread; \
                 the steady component kept running)"
            ))
        } else {
            Err(format!(
                "panic containment: FAILED: {}",
                problems.join("; ")
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_build_contains_panics() {
        let report = super::panic_containment().unwrap();
        assert!(report.contains("ok"), "{report}");
    }
}
