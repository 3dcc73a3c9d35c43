//! Telemetry bytes per report, side by side with the same report as JSON
//! (the wire format's target: a report is at most a quarter of its JSON).
//!
//! Builds the `StatusReport` a daemon with every component on would answer
//! (profile, control, proccache, fileserver with steering and the TC
//! classifier, fleet), with each component's stat names and kinds as its
//! `stats()` makes them and values a board reaches after an hour, a day and
//! a month at a moderate load. The fleet component's path follows: the
//! `Collector` turns the status into a report and its schemas, the outbox
//! fills in sequence number and drop count, `Report::encode` frames it. The
//! peer is `NamedReport::resolve` of the same report through `serde_json`,
//! what `nodus telemetry watch --json` prints. Also times encode and decode.
//! No daemon and no root needed: `cargo bench -p nodus --bench telemetry`.
//! Exits non-zero when a report is above the target.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use nodus::{
    control::protocol::StatusReport,
    probe::ProbeReport,
    supervisor::{ComponentStatus, Health, Stat, Stats},
    telemetry::{
        Message, Report, Schema, Value,
        collect::{self, Collector},
        envelope::{self, NamedReport},
    },
};

const TARGET_PCT: f64 = 25.0;
const ITERATIONS: u32 = 100_000;
/// `fleet.telemetry_interval_ms`'s default.
const INTERVAL_S: u64 = 10;
/// A device id as /etc/machine-id gives it (the default).
const DEVICE: &str = "4c1f0e7a92d84b6c8e3a5f0d1b2c3e4f";

/// How long the board has been up, and so how far its counters got.
struct Age {
    label: &'static str,
    seconds: u64,
}

const AGES: [Age; 3] = [
    Age {
        label: "1 hour",
        seconds: 3_600,
    },
    Age {
        label: "1 day",
        seconds: 86_400,
    },
    Age {
        label: "30 days",
        seconds: 30 * 86_400,
    },
];

/// A `Stats` map from literal entries.
fn stats<const N: usize>(entries: [(&str, Stat); N]) -> Stats {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// A healthy component's `nodus status` entry.
fn component(name: &str, stats: Stats) -> ComponentStatus {
    ComponentStatus {
        name: name.to_owned(),
        health: Health::Healthy,
        heartbeat_age_ms: 420,
        stats,
    }
}

/// `profile`'s stats (profile/component.rs) with a placement applied.
fn profile(t: u64) -> Stats {
    stats([
        ("profile", Stat::Text("nvidia-grace-superchip".into())),
        (
            "source",
            Stat::Text("<built-in nvidia-grace-superchip>".into()),
        ),
        ("changes_applied", Stat::Gauge(6)),
        ("drift", Stat::Gauge(0)),
        ("verifications", Stat::Counter(t / 30)),
        ("runtime_cpus", Stat::Text("0-7".into())),
        ("mempolicy", Stat::Text("bind [0]".into())),
    ])
}

/// `control`'s stats (control/server.rs): an operator or a script now and then.
fn control(t: u64) -> Stats {
    stats([
        ("socket", Stat::Text("/run/nodus/control.sock".into())),
        ("connections", Stat::Counter(t / 600)),
        ("requests", Stat::Counter(t / 300)),
        ("bad_requests", Stat::Counter(t / 86_400)),
        ("active_clients", Stat::Gauge(0)),
    ])
}

/// `proccache`'s stats (proccache/component.rs) in event mode, table and
/// latency histogram populated: about 40 processes a second.
fn proccache(t: u64) -> Stats {
    let execs = 40 * t + 1_187;
    let mut s = stats([
        ("mode", Stat::Text("events".into())),
        ("capacity", Stat::Gauge(4096)),
        ("events", Stat::Counter(3 * execs + 2 * t / 7)),
        ("events_per_s", Stat::Float(121.7)),
        ("drops", Stat::Counter(0)),
        ("undecodable", Stat::Counter(0)),
        ("reconciliations", Stat::Counter(t / 60)),
        ("event_thread", Stat::Text("fifo:1 on cpus 0-1".into())),
        ("capacity_used_pct", Stat::Float(100.0 * 1411.0 / 4096.0)),
        ("live", Stat::Gauge(387)),
        ("exited", Stat::Gauge(1024)),
        ("peak", Stat::Gauge(2219)),
        ("exec_latency_p50_us", Stat::Float(10.8)),
        ("exec_latency_p99_us", Stat::Float(62.5)),
    ]);
    for (k, v) in [
        ("forks", execs + t / 3),
        ("execs", execs),
        ("exits", execs + t / 3 - 380),
        ("evicted", execs / 3),
        ("expired", execs / 2),
        ("refused", 0),
        ("reconcile_fixes", t / 5_000),
        ("missed_exits", t / 9_000),
        ("missed_processes", t / 10_000),
        ("reparented", t / 40),
    ] {
        s.insert(k.into(), Stat::Counter(v));
    }
    s
}

/// `fileserver`'s stats (fileserver/component.rs) with steering and the TC
/// classifier on: about 50 requests a second, 40 KiB each.
fn fileserver(t: u64) -> Stats {
    let requests = 50 * t + 313;
    let mut s = stats([
        ("requests", Stat::Counter(requests)),
        ("bytes_sent", Stat::Counter(requests * 40_960 + 17)),
        ("latency_p50_us", Stat::Gauge(38)),
        ("latency_p99_us", Stat::Gauge(412)),
        ("connections_open", Stat::Gauge(23)),
        ("connections_accepted", Stat::Counter(requests / 12)),
        ("connections_refused", Stat::Counter(t / 50_000)),
        ("header_timeouts", Stat::Counter(t / 700)),
        ("hot_bytes", Stat::Gauge(48_215_040)),
        ("hot_files", Stat::Gauge(311)),
        ("open_files", Stat::Gauge(1_270)),
        ("listen", Stat::Text("0.0.0.0:8480".into())),
        ("docroot", Stat::Text("/usr/share/nodus/www".into())),
        ("worker_cpus", Stat::Text("72,73,74,75".into())),
        ("reuseport_steered", Stat::Counter(requests / 12 - t / 100)),
        ("reuseport_same_node", Stat::Counter(t / 100)),
        ("reuseport_fallback", Stat::Counter(0)),
        ("tc_interfaces", Stat::Text("eth0".into())),
    ]);
    let by_class = [0, requests - requests / 9, requests / 10, requests / 90, 7];
    for (i, n) in by_class.into_iter().enumerate() {
        s.insert(format!("responses_{}xx", i + 1), Stat::Counter(n));
    }
    for (k, v) in [
        ("cache_hits", requests - requests / 40),
        ("cache_misses", requests / 40),
        ("hot_hits", requests - requests / 15),
        ("cache_invalidations", t / 3_600),
        ("hot_loads", 311 + t / 1_800),
        ("hot_load_failures", 0),
    ] {
        s.insert(k.into(), Stat::Counter(v));
    }
    for (method, share) in [("get", 1), ("head", 50)] {
        for (class, part) in [
            ("index", 10),
            ("html", 5),
            ("asset", 3),
            ("image", 4),
            ("other", 20),
            ("suspicious", 5_000),
        ] {
            s.insert(
                format!("kernel_requests.{method}.{class}"),
                Stat::Counter(requests / share / part),
            );
        }
    }
    s.insert(
        "kernel_requests.other_method".into(),
        Stat::Counter(t / 900),
    );
    s
}

/// `fleet`'s stats (fleet/component.rs), connected, group and device
/// documents applied.
fn fleet(t: u64) -> Stats {
    let seq = t / INTERVAL_S;
    stats([
        (
            "broker",
            Stat::Text("mqtts://fleet.example.net:8883".into()),
        ),
        ("device_id", Stat::Text(DEVICE.into())),
        ("connected", Stat::Gauge(1)),
        ("connects", Stat::Counter(1 + t / 86_400)),
        ("reports_queued", Stat::Gauge(1)),
        ("reports_capacity", Stat::Gauge(1024)),
        ("reports_acked", Stat::Counter(seq)),
        ("reports_dropped", Stat::Counter(0)),
        ("next_seq", Stat::Counter(seq + 1)),
        ("reports_spooled", Stat::Gauge(0)),
        ("spool_bytes", Stat::Gauge(16)),
        ("spool_errors", Stat::Counter(0)),
        ("config_group_version", Stat::Gauge(12)),
        ("config_device_version", Stat::Gauge(3)),
        ("documents_applied", Stat::Counter(4)),
        ("documents_refused", Stat::Counter(1)),
    ])
}

/// What `{"cmd":"status"}` answers after `t` seconds, components in start order.
fn status(t: u64) -> StatusReport {
    StatusReport {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: 812,
        uptime_ms: t * 1000 + 250,
        ready_ms: Some(117),
        rss_bytes: 11_837_440,
        log_lines_dropped: 0,
        config: "/etc/nodus/nodus.toml".to_owned(),
        kernel: ProbeReport::default(),
        components: vec![
            component("profile", profile(t)),
            component("control", control(t)),
            component("proccache", proccache(t)),
            component("fileserver", fileserver(t)),
            component("fleet", fleet(t)),
        ],
    }
}

/// The report as the fleet component makes it: the outbox numbers it.
fn report(collector: &mut Collector, t: u64) -> (Report, Vec<Schema>) {
    let (mut r, schemas) = collector.sample(&status(t));
    r.seq = t / INTERVAL_S;
    r.dropped_total = 0;
    (r, schemas)
}

/// The report with its names, as `nodus telemetry watch --json` prints it.
fn resolve(r: &Report, schemas: &[Schema]) -> NamedReport {
    NamedReport::resolve(DEVICE, r, |c, id| {
        schemas.iter().find(|s| s.component == c && s.id == id)
    })
}

/// The JSON a decoder would print if it wrote each f32 in its shortest form
/// rather than widened to f64 (`0.1f32` as `0.1`, not `0.10000000149011612`).
fn json_shortest_floats(named: &NamedReport, r: &Report) -> Vec<u8> {
    let mut named = named.clone();
    for (c, sample) in named.components.iter_mut().zip(&r.components) {
        // The collector's names are sorted (they are a BTreeMap's keys), so
        // the named stats are in value order.
        for (json, value) in c.stats.values_mut().zip(&sample.values) {
            if let Value::Float(f) = value
                && let Ok(short) = f.to_string().parse::<f64>()
            {
                *json = short.into();
            }
        }
    }
    serde_json::to_vec(&named).unwrap_or_default()
}

/// The same report as JSON that also leaves the names out: each component
/// carries its schema id and a plain array of values, like the wire format,
/// so the comparison is encoding against encoding, not ids against names.
fn json_with_schema_ids(r: &Report) -> Vec<u8> {
    let components: Vec<serde_json::Value> = r
        .components
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name,
                "health": c.health,
                "reason": c.reason,
                "schema": c.schema,
                "values": c.values.iter().map(Value::to_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let boot: String = r.boot_id.iter().map(|b| format!("{b:02x}")).collect();
    serde_json::to_vec(&serde_json::json!({
        "boot_id": boot,
        "seq": r.seq,
        "unix_ms": r.unix_ms,
        "uptime_ms": r.uptime_ms,
        "rss_bytes": r.rss_bytes,
        "dropped_total": r.dropped_total,
        "components": components,
    }))
    .unwrap_or_default()
}

/// Bytes the report's text values take on the wire (variant, length, text).
fn text_bytes(r: &Report) -> usize {
    r.components
        .iter()
        .flat_map(|c| &c.values)
        .filter(|v| matches!(v, Value::Text(_)))
        .map(|v| postcard::to_allocvec(v).map_or(0, |b| b.len()))
        .sum()
}

/// `part` as a percentage of `whole`.
fn pct(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

/// Mean microseconds per iteration.
fn mean_us(total: Duration, n: u32) -> f64 {
    total.as_secs_f64() * 1e6 / f64::from(n)
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments.
    let boot = collect::boot_id();
    let mut over = false;
    let mut day: Option<(Report, Vec<Schema>)> = None;

    println!(
        "telemetry: 5 components (profile, control, proccache, fileserver, fleet), report every {INTERVAL_S} s"
    );
    for age in &AGES {
        let mut collector = Collector::new(boot);
        let (first, schemas) = report(&mut collector, age.seconds - INTERVAL_S);
        let (r, again) = report(&mut collector, age.seconds);
        assert_eq!(schemas.len(), 5, "a schema per component");
        assert!(again.is_empty(), "schemas are sent once, not per report");
        assert_eq!(
            envelope::decode(&first.encode()),
            Ok(Message::Report(first))
        );
        let wire = r.encode();
        let named = resolve(&r, &schemas);
        assert!(
            named
                .components
                .iter()
                .all(|c| c.stats.keys().all(|k| !k.starts_with('#'))),
            "every value named"
        );
        let json = serde_json::to_vec(&named).expect("JSON");
        let short = json_shortest_floats(&named, &r);
        let stats: usize = r.components.iter().map(|c| c.values.len()).sum();
        let ratio = pct(wire.len(), json.len());
        over |= ratio > TARGET_PCT;
        println!(
            "telemetry: report {} bytes postcard vs {} bytes JSON = {ratio:.1}% (target <= {TARGET_PCT}%){}  [{}: seq {}, {stats} stats]",
            wire.len(),
            json.len(),
            if ratio > TARGET_PCT {
                "  OVER TARGET"
            } else {
                ""
            },
            age.label,
            r.seq,
        );
        println!(
            "           JSON with each f32 in its shortest form: {} bytes = {:.1}%",
            short.len(),
            pct(wire.len(), short.len())
        );
        let ids = json_with_schema_ids(&r);
        println!(
            "           JSON with schema ids instead of names (like with like): {} bytes = {:.1}%",
            ids.len(),
            pct(wire.len(), ids.len())
        );
        let text = text_bytes(&r);
        println!(
            "           of the {} bytes, text values (labels resent in every report) {text} = {:.1}%",
            wire.len(),
            pct(text, wire.len())
        );
        if age.seconds == 86_400 {
            day = Some((r, schemas));
        }
    }

    let (r, schemas) = day.expect("AGES has a day");
    let schema_bytes: usize = schemas.iter().map(|s| s.encode().len()).sum();
    let sizes: Vec<String> = schemas
        .iter()
        .map(|s| format!("{} {}", s.component, s.encode().len()))
        .collect();
    println!(
        "telemetry: schemas (once per boot and schema change, retained) {schema_bytes} bytes in {} messages: {}",
        schemas.len(),
        sizes.join(", ")
    );

    let wire = r.encode();
    assert_eq!(envelope::decode(&wire), Ok(Message::Report(r.clone())));
    let started = Instant::now();
    for _ in 0..ITERATIONS {
        black_box(black_box(&r).encode());
    }
    let encode = started.elapsed();
    let started = Instant::now();
    for _ in 0..ITERATIONS {
        let _ = black_box(envelope::decode(black_box(&wire)));
    }
    let decode = started.elapsed();
    let started = Instant::now();
    for _ in 0..ITERATIONS {
        let bytes = black_box(&r).encode();
        let _ = black_box(envelope::decode(black_box(&bytes)));
    }
    let both = started.elapsed();
    println!(
        "telemetry: encode+decode {:.2} us per report (encode {:.2} us, decode {:.2} us; mean over {ITERATIONS} each, the 1-day report)",
        mean_us(both, ITERATIONS),
        mean_us(encode, ITERATIONS),
        mean_us(decode, ITERATIONS),
    );

    let named = resolve(&r, &schemas);
    let json = serde_json::to_vec(&named).expect("JSON");
    let runs = ITERATIONS / 10;
    let started = Instant::now();
    for _ in 0..runs {
        let bytes = serde_json::to_vec(black_box(&named)).unwrap_or_default();
        let _ = black_box(serde_json::from_slice::<serde_json::Value>(black_box(
            &bytes,
        )));
    }
    let peer = started.elapsed();
    println!(
        "telemetry: peer: JSON to_vec + parse {:.2} us per report ({} bytes; mean over {runs})",
        mean_us(peer, runs),
        json.len()
    );
    if over {
        eprintln!("telemetry: a report is above {TARGET_PCT}% of its JSON");
        std::process::exit(1);
    }
}
