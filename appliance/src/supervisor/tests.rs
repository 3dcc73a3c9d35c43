use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use super::*;

/// A scripted component: how it starts, whether its loop beats, what it logs.
struct Scripted {
    name: &'static str,
    start: fn() -> Result<(), StartError>,
    beating: Arc<AtomicBool>,
    journal: Arc<Mutex<Vec<String>>>,
    stop_takes: Duration,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Scripted {
    fn new(name: &'static str, journal: &Arc<Mutex<Vec<String>>>) -> Self {
        Scripted {
            name,
            start: || Ok(()),
            beating: Arc::new(AtomicBool::new(true)),
            journal: journal.clone(),
            stop_takes: Duration::ZERO,
            task: None,
        }
    }
}

impl Component for Scripted {
    fn name(&self) -> &'static str {
        self.name
    }
    fn start(&mut self, ctx: ComponentContext) -> Result<(), StartError> {
        (self.start)()?;
        let beating = self.beating.clone();
        self.task = Some(tokio::spawn(async move {
            loop {
                if beating.load(Ordering::Relaxed) {
                    ctx.heartbeat.beat();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
        Ok(())
    }
    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            tokio::time::sleep(self.stop_takes).await;
            if let Some(t) = self.task.take() {
                t.abort();
            }
            self.journal
                .lock()
                .unwrap()
                .push(format!("stop {}", self.name));
        })
    }
    fn health(&self) -> Health {
        Health::Healthy
    }
    fn stats(&self) -> Stats {
        ScriptedStats {
            ticks: 1,
            ..ScriptedStats::default()
        }
        .to_stats()
    }
}

crate::stats! {
    /// What a scripted component reports.
    struct ScriptedStats {
        /// Ticks so far.
        ticks: Counter,
        /// A label with a name that is
        /// not an identifier; absent unless set.
        label as "the.label": Maybe<Text>,
    }
}

#[test]
fn declared_stats_carry_their_names_kinds_and_descriptions() {
    let f = ScriptedStats::FIELDS;
    assert_eq!(f.len(), 2);
    assert_eq!(
        (f[0].name, f[0].kind, f[0].optional),
        ("ticks", "counter", false)
    );
    assert_eq!(f[0].description(), "Ticks so far.");
    assert_eq!(
        (f[1].name, f[1].kind, f[1].optional),
        ("the.label", "text", true)
    );
    assert_eq!(
        f[1].description(),
        "A label with a name that is not an identifier; absent unless set."
    );
    let absent = ScriptedStats::default().to_stats();
    assert_eq!(absent, Stats::from([("ticks".into(), Stat::Counter(0))]));
    let present = ScriptedStats {
        ticks: 3,
        label: Some("x".into()),
    }
    .to_stats();
    assert_eq!(present.get("the.label"), Some(&Stat::Text("x".into())));
    let md = stats_markdown(&[("scripted", f)]);
    assert!(md.contains("| `the.label` | text, optional | A label with a name that is not an identifier; absent unless set. |"), "{md}");
}

fn supervisor(wedge_ms: u64) -> Supervisor {
    Supervisor::new(Duration::from_millis(wedge_ms), Arc::default())
}

#[tokio::test]
async fn a_failing_start_leaves_the_others_running() {
    let journal = Arc::default();
    let mut sup = supervisor(1000);
    let mut bad = Scripted::new("bad", &journal);
    bad.start = || Err(StartError("no such device".into()));
    assert!(sup.start(Box::new(Scripted::new("a", &journal))).is_ok());
    assert!(sup.start(Box::new(bad)).is_err());
    assert!(sup.start(Box::new(Scripted::new("b", &journal))).is_ok());
    let status = sup.status();
    assert_eq!(status.len(), 3);
    assert_eq!(status[0].health, Health::Healthy);
    assert_eq!(
        status[1].health,
        Health::Unavailable("no such device".into())
    );
    assert!(status[1].stats.is_empty());
    assert_eq!(status[2].health, Health::Healthy);
    assert!(
        sup.all_alive(),
        "a component that never started is not wedged"
    );
}

#[tokio::test]
async fn a_panicking_start_is_contained() {
    let journal = Arc::default();
    let mut sup = supervisor(1000);
    let mut bad = Scripted::new("bad", &journal);
    bad.start = || panic!("boom");
    let err = sup.start(Box::new(bad)).unwrap_err();
    assert!(err.contains("panicked while starting: boom"), "{err}");
    sup.start(Box::new(Scripted::new("ok", &journal))).unwrap();
    assert_eq!(sup.status()[1].health, Health::Healthy);
}

#[tokio::test]
async fn a_silent_component_is_wedged_until_it_beats_again() {
    let journal = Arc::default();
    let mut sup = supervisor(200);
    let c = Scripted::new("stuck", &journal);
    let beating = c.beating.clone();
    sup.start(Box::new(c)).unwrap();
    assert!(sup.all_alive());
    beating.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(!sup.all_alive());
    let h = &sup.status()[0].health;
    assert!(
        matches!(h, Health::Unavailable(r) if r.starts_with("wedged")),
        "{h:?}"
    );
    beating.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(sup.all_alive());
    assert_eq!(sup.status()[0].health, Health::Healthy);
}

#[tokio::test]
async fn stop_all_goes_in_reverse_and_bounds_slow_components() {
    let journal: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut sup = supervisor(1000);
    sup.start(Box::new(Scripted::new("first", &journal)))
        .unwrap();
    let mut slow = Scripted::new("slow", &journal);
    slow.stop_takes = Duration::from_secs(30);
    sup.start(Box::new(slow)).unwrap();
    sup.start(Box::new(Scripted::new("last", &journal)))
        .unwrap();
    let t0 = Instant::now();
    sup.stop_all(Duration::from_millis(300)).await;
    assert!(t0.elapsed() < Duration::from_secs(2));
    // "slow" was abandoned at the deadline; "first", reached after it, still
    // stopped within its minimum grace, and the order was the reverse of start.
    assert_eq!(*journal.lock().unwrap(), vec!["stop last", "stop first"]);
    assert!(sup.names().is_empty());
}
