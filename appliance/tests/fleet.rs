//! The fleet link against a real mosquitto on loopback: birth and Last Will,
//! telemetry decoded by `nodus telemetry watch`, store-and-forward across a
//! broker outage, signed config documents (applied, refused, rolled back),
//! the last-good file under kill -9, and TLS with a client certificate.

mod common;

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{
    broker::{Broker, TlsFiles},
    daemon::{TempDaemon, component},
    nodus, tempdir, tool, unique, wait_for,
};
use serde_json::Value;

/// An Ed25519 key made by openssl, and its `fleet.trusted_keys` form.
struct SigningKey {
    pem: PathBuf,
    public: String,
}

impl SigningKey {
    fn generate(dir: &Path, name: &str) -> SigningKey {
        let pem = dir.join(format!("{name}.pem"));
        let ok = Command::new(tool("openssl"))
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&pem)
            .status()
            .expect("openssl genpkey");
        assert!(ok.success());
        let out = nodus()
            .args(["config", "public-key", "--key"])
            .arg(&pem)
            .output()
            .expect("nodus config public-key");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        SigningKey { pem, public }
    }

    /// `nodus config sign` of `payload`.
    fn sign(&self, payload: &str) -> String {
        let file = self.pem.with_extension(format!("doc{}", unique("")));
        fs::write(&file, payload).expect("write doc");
        let out = nodus()
            .args(["config", "sign", "--key"])
            .arg(&self.pem)
            .arg(&file)
            .output()
            .expect("nodus config sign");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    }

    /// Signs `payload` with `openssl pkeyutl`, without the checks `nodus
    /// config sign` makes: how a hostile or buggy backend could sign anything.
    fn sign_raw(&self, payload: &str) -> String {
        let file = self.pem.with_extension(format!("raw{}", unique("")));
        let sig = file.with_extension("sig");
        fs::write(&file, payload).expect("write payload");
        let ok = Command::new(tool("openssl"))
            .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
            .arg(&self.pem)
            .arg("-in")
            .arg(&file)
            .arg("-out")
            .arg(&sig)
            .status()
            .expect("openssl pkeyutl");
        assert!(ok.success());
        use base64::Engine;
        let sig = base64::engine::general_purpose::STANDARD.encode(fs::read(&sig).unwrap());
        format!("{payload}# nodus-signature: ed25519 {sig}\n")
    }
}

/// A board: a daemon with the fleet link on, pointed at `broker`.
struct Board {
    daemon: TempDaemon,
    device: String,
    state: tempfile::TempDir,
}

fn fleet_config(url: &str, device: &str, state: &Path, extra: &str) -> String {
    format!(
        "[fleet]\nbroker = \"{url}\"\ndevice_id = \"{device}\"\n\
         telemetry_interval_ms = 200\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\
         state_dir = \"{}\"\n{extra}\n",
        state.display()
    )
}

impl Board {
    fn start(broker_url: &str, extra: &str) -> Board {
        let state = tempdir();
        let device = unique("board");
        let daemon =
            TempDaemon::start(&fleet_config(broker_url, &device, state.path(), extra), &[]);
        Board {
            daemon,
            device,
            state,
        }
    }

    fn fleet(&self) -> Value {
        component(&self.daemon.status_json(), "fleet")
    }

    fn wait_connected(&self) {
        wait_for("the fleet link to connect", Duration::from_secs(10), || {
            (self.fleet()["stats"]["connected"] == 1).then_some(())
        });
    }

    fn topic(&self, leaf: &str) -> String {
        format!("nodus/v1/{}/{leaf}", self.device)
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `nodus telemetry watch --json --count N` against `url`.
fn watch(url: &str, device: &str, version: &str, count: u32) -> Vec<Value> {
    let out = nodus()
        .args([
            "telemetry",
            "watch",
            "--json",
            "--broker",
            url,
            "--device",
            device,
        ])
        .args([
            "--mqtt-version",
            version,
            "--count",
            &count.to_string(),
            "--timeout",
            "15",
        ])
        .output()
        .expect("nodus telemetry watch");
    assert!(
        out.status.success(),
        "watch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(json)
        .collect()
}

#[test]
fn birth_telemetry_and_last_will_on_mqtt_5_and_3_1_1() {
    require_root!();
    let broker = Broker::start();
    for version in ["5", "3.1.1"] {
        let mut board = Board::start(&broker.url(), &format!("mqtt_version = \"{version}\"\n"));
        board.wait_connected();

        let birth = json(&broker.retained(&board.topic("state")).expect("birth"));
        assert_eq!(birth["online"], true, "{birth}");
        let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        assert_eq!(birth["boot_id"], boot_id.trim());
        assert_eq!(birth["components"]["fleet"]["state"], "healthy", "{birth}");
        assert!(
            birth["profile"].is_string() && birth["probe"].is_string(),
            "{birth}"
        );

        let reports = watch(&broker.url(), &board.device, version, 3);
        assert_eq!(reports.len(), 3);
        let seqs: Vec<u64> = reports.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        let fleet = reports[2]["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "fleet")
            .expect("fleet in the report")
            .clone();
        // Names resolved from the retained schema, values from the report.
        assert_eq!(fleet["stats"]["connected"], 1, "{fleet}");
        assert_eq!(
            fleet["stats"]["device_id"],
            board.device.as_str(),
            "{fleet}"
        );
        assert_eq!(reports[2]["dropped_total"], 0);

        // kill -9: the broker publishes the Last Will.
        board.daemon.signal(libc::SIGKILL);
        wait_for("the Last Will", Duration::from_secs(10), || {
            let state = json(&broker.retained(&board.topic("state"))?);
            (state["online"] == false && state["reason"] == "connection lost").then_some(())
        });
        board.daemon.child.take().map(|mut c| c.wait());

        // A clean stop says so itself.
        let board = Board::start(&broker.url(), &format!("mqtt_version = \"{version}\"\n"));
        board.wait_connected();
        let mut daemon = board.daemon;
        assert_eq!(daemon.stop(Duration::from_secs(10)).code(), Some(0));
        let state = json(
            &broker
                .retained(&format!("nodus/v1/{}/state", board.device))
                .unwrap(),
        );
        assert_eq!(state["online"], false, "{state}");
        assert_eq!(state["reason"], "stopped", "{state}");
    }
}

/// A child process killed when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A persistent `mosquitto_sub` of every board's telemetry, printing topic
/// and hex payload, so reports published while it reconnects are kept for it.
/// Returns once the broker has it connected: a subscriber whose connect is
/// refused (seen now and then under load with mosquitto listening, as in the
/// harness test) exits at once and would leave the test waiting for reports
/// nobody receives, so it is started again within a deadline.
fn persistent_subscriber(broker: &Broker, id: &str, out: &Path) -> KillOnDrop {
    let connected = format!(" as {id} ");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut exits = Vec::new();
    loop {
        let mut child = broker
            .client("mosquitto_sub")
            .args([
                "-i",
                id,
                "-c",
                "-q",
                "1",
                "-t",
                "nodus/v1/+/telemetry",
                "-F",
                "%t %x",
            ])
            .stdout(
                fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(out)
                    .unwrap(),
            )
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub");
        loop {
            if broker.log().contains(&connected) {
                return KillOnDrop(child);
            }
            if let Ok(Some(status)) = child.try_wait() {
                exits.push(status);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto_sub {id} not connected after 20 s (earlier exits: {exits:?});\nbroker log:\n{}",
                broker.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Every report in the subscriber's output for `device`: (seq, dropped_total).
fn reports_of(out: &Path, device: &str) -> Vec<(u64, u64)> {
    let topic = format!("nodus/v1/{device}/telemetry");
    fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(t, _)| *t == topic)
        .filter_map(|(_, hex)| {
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                .collect::<Result<_, _>>()
                .ok()?;
            match nodus::telemetry::envelope::decode(&bytes) {
                Ok(nodus::telemetry::Message::Report(r)) => Some((r.seq, r.dropped_total)),
                _ => None,
            }
        })
        .collect()
}

/// Waits until the subscriber writing `out` has seen `device`'s report
/// `last`, then lists the sequence numbers up to it that it never saw.
fn missing_once_caught_up(out: &Path, device: &str, last: u64) -> Vec<u64> {
    wait_for(
        "the subscriber to catch up",
        Duration::from_secs(20),
        || {
            reports_of(out, device)
                .iter()
                .any(|(s, _)| *s >= last)
                .then_some(())
        },
    );
    let got: BTreeSet<u64> = reports_of(out, device).iter().map(|r| r.0).collect();
    (0..=last).filter(|s| !got.contains(s)).collect()
}

#[test]
fn a_30_s_broker_outage_loses_nothing_that_fits_and_counts_exactly_what_does_not() {
    require_root!();
    let mut broker = Broker::start_persistent();
    let dir = tempdir();
    let seen = dir.path().join("telemetry.txt");
    let sub = persistent_subscriber(&broker, "outage-watch", &seen);
    let roomy = Board::start(&broker.url(), "outbox_reports = 1024\n");
    // No spool for this one: what does not fit in memory is dropped.
    let small = Board::start(&broker.url(), "outbox_reports = 20\nspool_bytes = 0\n");
    for b in [&roomy, &small] {
        wait_for("reports before the outage", Duration::from_secs(10), || {
            (reports_of(&seen, &b.device).len() >= 3).then_some(())
        });
    }

    // The subscriber reconnects by itself, to its persistent session, which
    // the broker saved on the way down.
    broker.stop();
    assert!(
        broker.dir.path().join("mosquitto.db").exists(),
        "mosquitto saved no sessions: the subscriber would miss reports"
    );
    std::thread::sleep(Duration::from_secs(30));
    for b in [&roomy, &small] {
        let f = b.fleet();
        assert_eq!(f["health"]["state"], "degraded", "{f}");
        assert!(f["stats"]["reports_queued"].as_i64().unwrap() > 0, "{f}");
    }
    broker.restart();

    // Everything in the outboxes goes out once the link is back.
    let dropped = |b: &Board| b.fleet()["stats"]["reports_dropped"].as_u64().unwrap();
    for b in [&roomy, &small] {
        wait_for("the outbox to drain", Duration::from_secs(20), || {
            let f = b.fleet();
            (f["stats"]["connected"] == 1 && f["stats"]["reports_queued"].as_i64() <= Some(1))
                .then_some(())
        });
    }
    let last_seq = |b: &Board| b.fleet()["stats"]["next_seq"].as_u64().unwrap() - 1;
    let (roomy_last, small_last) = (last_seq(&roomy), last_seq(&small));
    let missing = missing_once_caught_up(&seen, &roomy.device, roomy_last);
    let small_missing = missing_once_caught_up(&seen, &small.device, small_last).len() as u64;
    drop(sub);

    // 30 s at 5 reports/s is ~150 reports: within 1024, none may be missing.
    assert!(roomy_last > 150, "only {roomy_last} reports in the outage");
    assert_eq!(missing, Vec::<u64>::new(), "sequence gap within capacity");
    assert_eq!(dropped(&roomy), 0);

    // Beyond 20, the oldest were dropped: exactly as many as are missing,
    // and the count travels in the reports themselves.
    assert!(
        small_missing > 100,
        "{small_missing} missing: the outage did not overflow 20"
    );
    assert_eq!(dropped(&small), small_missing);
    let reported = reports_of(&seen, &small.device)
        .iter()
        .map(|r| r.1)
        .max()
        .unwrap();
    assert_eq!(reported, small_missing, "dropped_total in the last reports");
}

#[test]
fn a_restart_during_an_outage_loses_nothing_the_spool_can_hold() {
    require_root!();
    let mut broker = Broker::start_persistent();
    let dir = tempdir();
    let seen = dir.path().join("telemetry.txt");
    let sub = persistent_subscriber(&broker, "spool-watch", &seen);
    let mut board = Board::start(&broker.url(), "outbox_reports = 5\n");
    wait_for("reports before the outage", Duration::from_secs(10), || {
        (reports_of(&seen, &board.device).len() >= 3).then_some(())
    });

    broker.stop();
    let stat = |b: &Board, name: &str| b.fleet()["stats"][name].as_u64().unwrap_or(0);
    wait_for(
        "the outbox to overflow into the spool",
        Duration::from_secs(10),
        || (stat(&board, "reports_spooled") >= 5).then_some(()),
    );
    let before_stop = stat(&board, "next_seq");
    assert_eq!(board.daemon.stop(Duration::from_secs(10)).code(), Some(0));
    let spool = board.state.path().join("telemetry.spool");
    let spool_len = || fs::metadata(&spool).map(|m| m.len()).unwrap_or(0);
    assert!(spool_len() > 16, "nothing spooled at stop");
    assert!(board.daemon.log_text().contains("kept in the spool"));

    // Same boot, same state: the sequence goes on and the spool is read back.
    board.daemon.restart();
    assert!(
        stat(&board, "next_seq") >= before_stop,
        "sequence restarted"
    );
    assert!(stat(&board, "reports_spooled") >= 10, "{}", board.fleet());
    std::thread::sleep(Duration::from_secs(1));
    broker.restart();

    wait_for(
        "the spool and outbox to drain",
        Duration::from_secs(20),
        || {
            let f = board.fleet();
            (f["stats"]["connected"] == 1
                && f["stats"]["reports_spooled"] == 0
                && f["stats"]["reports_queued"].as_i64() <= Some(1))
            .then_some(())
        },
    );
    let last = stat(&board, "next_seq") - 1;
    let missing = missing_once_caught_up(&seen, &board.device, last);
    drop(sub);
    assert_eq!(missing, Vec::<u64>::new(), "lost across the restart");
    assert!(last > before_stop, "no reports after the restart");
    assert_eq!(stat(&board, "reports_dropped"), 0);
    assert_eq!(spool_len(), 16, "the drained spool shrinks to its header");
}

/// Waits until `config/reported` says `version` of `scope` ended as `result`.
fn reported(broker: &Broker, board: &Board, version: u64, result: &str) -> Value {
    wait_for(
        &format!("config/reported: v{version} {result}"),
        Duration::from_secs(15),
        || {
            let r = json(&broker.retained(&board.topic("config/reported"))?);
            (r["last"]["version"] == version && r["last"]["result"] == result).then_some(r)
        },
    )
}

/// Publishes `text` as the board's desired config and waits for its refusal.
fn refused(broker: &Broker, board: &Board, text: &str, version: u64, reason: &str) {
    let count = |b: &Board| b.fleet()["stats"]["documents_refused"].as_u64().unwrap();
    let before = count(board);
    broker.publish_retained(&board.topic("config/desired"), text.as_bytes());
    wait_for(
        &format!("refusal: {reason}"),
        Duration::from_secs(15),
        || (count(board) > before).then_some(()),
    );
    // The report follows the counter by a publish.
    let r = wait_for("config/reported to follow", Duration::from_secs(5), || {
        let r = json(&broker.retained(&board.topic("config/reported"))?);
        let why = r["rejected"]["reason"].as_str().unwrap_or_default();
        let this = r["rejected"]["version"] == version && why.contains(reason);
        (r["last"]["result"] == "refused" && this).then_some(r)
    });
    assert_eq!(r["rejected"]["version"], version, "{r}");
    assert_eq!(r["applied"]["device"], 2, "{r}");
}

fn running_config(board: &Board) -> String {
    board.daemon.status_json()["config"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn signed_documents_are_applied_bad_ones_refused_and_unhealthy_ones_rolled_back() {
    require_root!();
    let broker = Broker::start();
    let dir = tempdir();
    let key = SigningKey::generate(dir.path(), "fleet");
    let stranger = SigningKey::generate(dir.path(), "stranger");
    let trusted = format!(
        "trusted_keys = [\"{}\"]\ngroup = \"lab\"\ngrace_ms = 1000\nmax_document_bytes = 4096\n",
        key.public
    );
    let board = Board::start(&broker.url(), &trusted);
    board.wait_connected();
    let desired = board.topic("config/desired");
    let doc = |version: u64, body: &str| {
        format!(
            "version = {version}\ntarget = \"device:{}\"\n{body}",
            board.device
        )
    };

    // The group's document, then the board's own on top of it.
    let group = key.sign("version = 1\ntarget = \"group:lab\"\n[proccache]\ncapacity = 5000\nreconcile_interval_s = 7\n");
    broker.publish_retained("nodus/v1/group/lab/config/desired", group.as_bytes());
    let r = reported(&broker, &board, 1, "committed");
    assert_eq!(r["applied"]["group"], 1, "{r}");
    let v1 = key.sign(&doc(1, "[proccache]\ncapacity = 6000\n"));
    let v2 = key.sign(&doc(2, "[proccache]\ncapacity = 7000\n"));
    broker.publish_retained(&desired, v2.as_bytes());
    let r = reported(&broker, &board, 2, "committed");
    assert_eq!(r["applied"]["device"], 2, "{r}");
    wait_for(
        "the birth message to name the versions",
        Duration::from_secs(5),
        || {
            let birth = json(&broker.retained(&board.topic("state"))?);
            (birth["config"]["device"] == 2 && birth["config"]["group"] == 1).then_some(())
        },
    );
    let status = board.daemon.status_json();
    assert!(
        status["config"]
            .as_str()
            .unwrap()
            .ends_with(" + group v1 + device v2"),
        "{status}"
    );
    let pc = component(&status, "proccache");
    assert_eq!(pc["stats"]["capacity"], 7000, "device keys win: {pc}");
    let last_good = fs::read_to_string(board.state.path().join("fleet-last-good.json")).unwrap();
    assert!(last_good.contains("capacity = 7000") && last_good.contains("group:lab"));

    // Each bad document is refused with its reason; the running config stays.
    let tampered = v2
        .replace("7000", "7001")
        .replace("version = 2", "version = 3");
    let untrusted = stranger.sign(&doc(4, "[proccache]\ncapacity = 1\n"));
    let mut oversized = doc(5, "[proccache]\ncapacity = 2\n");
    oversized.push_str(&format!("# {}\n", "x".repeat(5000)));
    let oversized = key.sign(&oversized);
    let cases: Vec<(String, u64, &str)> = vec![
        (doc(3, "[proccache]\ncapacity = 1\n"), 0, "unsigned"),
        (tampered, 0, "bad signature"),
        (untrusted, 0, "bad signature"),
        (v1.clone(), 1, "not newer than version 2"),
        (
            key.sign(&doc(2, "[proccache]\ncapacity = 3\n")),
            2,
            "not newer",
        ),
        (oversized, 0, "oversized"),
        (
            key.sign("version = 6\ntarget = \"device:someone-else\"\n"),
            6,
            "wrong target",
        ),
        (
            key.sign_raw(&doc(7, "[fleet]\nenabled = false\n")),
            0,
            "local-only",
        ),
        // What a leaked key could use to read files as root is not in
        // fleet.document_keys; restart-only sections are local-only.
        (
            key.sign(&doc(7, "[fileserver]\ndocroot = \"/\"\n")),
            7,
            "'fileserver.docroot' is not in fleet.document_keys",
        ),
        (
            key.sign(&doc(7, "[fileserver]\nsymlinks_outside = true\n")),
            7,
            "fileserver.symlinks_outside",
        ),
        (
            key.sign_raw(&doc(7, "[daemon]\nworker_threads = 1\n")),
            0,
            "[daemon] is local-only",
        ),
        (
            key.sign(&doc(8, "[proccache]\ncapacityy = 1\n")),
            8,
            "capacityy",
        ),
    ];
    for (text, version, reason) in cases {
        refused(&broker, &board, &text, version, reason);
        let status = board.daemon.status_json();
        assert!(
            status["config"].as_str().unwrap().ends_with("device v2"),
            "{status}"
        );
        assert_eq!(component(&status, "proccache")["stats"]["capacity"], 7000);
    }
    // Malformed, yet validly signed: no version.
    broker.publish_retained(&desired, key.sign_raw("target = \"device:x\"\n").as_bytes());
    wait_for("refusal: malformed", Duration::from_secs(15), || {
        let r = json(&broker.retained(&board.topic("config/reported"))?);
        r["rejected"]["reason"]
            .as_str()?
            .contains("malformed")
            .then_some(())
    });

    // A config that breaks a component: the file server cannot bind a
    // foreign address, so the change is rolled back and the old one serves.
    let before = component(&board.daemon.status_json(), "fileserver");
    assert_eq!(before["health"]["state"], "healthy", "{before}");
    let breaking = key.sign(&doc(9, "[fileserver]\nlisten = \"192.0.2.1:80\"\n"));
    broker.publish_retained(&desired, breaking.as_bytes());
    let r = reported(&broker, &board, 9, "rolled_back");
    assert!(
        r["rejected"]["reason"]
            .as_str()
            .unwrap()
            .contains("fileserver"),
        "{r}"
    );
    assert_eq!(r["applied"]["device"], 2, "{r}");
    let after = component(&board.daemon.status_json(), "fileserver");
    assert_eq!(after["health"]["state"], "healthy", "{after}");
    assert_eq!(after["stats"]["listen"], before["stats"]["listen"]);

    // A later good document still goes through.
    broker.publish_retained(
        &desired,
        key.sign(&doc(10, "[proccache]\ncapacity = 8000\n"))
            .as_bytes(),
    );
    reported(&broker, &board, 10, "committed");
    let fleet = board.fleet();
    assert_eq!(fleet["stats"]["config_device_version"], 10, "{fleet}");
    assert!(
        fleet["stats"]["documents_refused"].as_u64().unwrap() >= 10,
        "{fleet}"
    );
    assert!(running_config(&board).ends_with("device v10"));

    // With the broker gone, a restart boots into the last-good config.
    let config = board.daemon.config.clone();
    let text = fs::read_to_string(&config).unwrap();
    let Board {
        mut daemon, state, ..
    } = board;
    assert_eq!(daemon.stop(Duration::from_secs(10)).code(), Some(0));
    drop(broker);
    let offline = TempDaemon::start(&text[text.find("[fleet]").unwrap()..], &[]);
    let status = offline.status_json();
    assert!(
        status["config"]
            .as_str()
            .unwrap()
            .ends_with("+ group v1 + device v10"),
        "{status}"
    );
    assert_eq!(component(&status, "proccache")["stats"]["capacity"], 8000);
    assert_eq!(component(&status, "fleet")["health"]["state"], "degraded");
    drop(state);
}

#[test]
fn kill_9_during_commit_leaves_the_old_or_the_new_last_good_never_a_torn_one() {
    require_root!();
    let broker = Broker::start();
    let dir = tempdir();
    let key = SigningKey::generate(dir.path(), "fleet");
    let state = tempdir();
    let device = unique("board");
    let extra = fleet_config(
        &broker.url(),
        &device,
        state.path(),
        &format!(
            "trusted_keys = [\"{}\"]\ngrace_ms = 0\nmax_document_bytes = 200000\n",
            key.public
        ),
    );
    let fleet = nodus::fleet::FleetConfig {
        trusted_keys: vec![key.public.clone()],
        max_document_bytes: 200_000,
        state_dir: state.path().to_owned(),
        ..Default::default()
    };
    // Large documents widen the window the kill can land in.
    let padding = format!("# {}\n", "p".repeat(100_000));
    let document = |version: u64| {
        key.sign(&format!(
            "version = {version}\ntarget = \"device:{device}\"\n{padding}[proccache]\ncapacity = {}\n",
            4096 + version
        ))
    };
    let desired = format!("nodus/v1/{device}/config/desired");
    // How long a commit takes on this machine, from READY (a debug build
    // under a loaded CI takes far longer than a release build): the kills
    // below are spread over twice that.
    let started = std::time::Instant::now();
    let mut d = TempDaemon::start(&extra, &[]);
    let ready = started.elapsed();
    broker.publish_retained(&desired, document(1).as_bytes());
    // Committed means stored in the last-good file (the log line comes
    // just before the store).
    let commit_time = common::wait_for("the first commit", Duration::from_secs(60), || {
        nodus::fleet::lastgood::load(&fleet, &device)
            .device
            .is_some()
            .then(|| started.elapsed() - ready)
    });
    d.signal(libc::SIGKILL);
    d.child.take().map(|mut c| c.wait());
    let mut committed = 1u64;
    for version in 2..=13u64 {
        let mut d = TempDaemon::start(&extra, &[]);
        broker.publish_retained(&desired, document(version).as_bytes());
        // Kill at a different moment each round, from before the document
        // arrives to well after it is committed.
        std::thread::sleep(commit_time * (version - 1) as u32 / 6);
        d.signal(libc::SIGKILL);
        d.child.take().map(|mut c| c.wait());
        let loaded = nodus::fleet::lastgood::load(&fleet, &device);
        assert!(
            loaded.problems.is_empty(),
            "round {version}: {:?}",
            loaded.problems
        );
        match loaded.device {
            None => panic!("round {version}: last-good file lost"),
            Some(doc) => {
                // The document of this round or of any earlier round that
                // was still retained when this daemon subscribed.
                assert!(
                    (committed..=version).contains(&doc.version),
                    "round {version}: found v{}, expected v{committed}..=v{version}",
                    doc.version
                );
                committed = doc.version;
            }
        }
    }
    assert!(committed > 1, "no round got as far as a commit");
}

#[test]
fn tls_with_a_client_certificate() {
    require_root!();
    let dir = tempdir();
    let tls = TlsFiles::generate(dir.path());
    let plain_port = common::free_port();
    let broker = Broker::start_with(|port, _| {
        format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\n\
             listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
             require_certificate true\nuse_identity_as_username true\n\
             listener {plain_port} 127.0.0.1\n",
            tls.ca.display(),
            tls.server_cert.display(),
            tls.server_key.display()
        )
    });
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let with_cert = format!(
        "ca_file = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
        tls.ca.display(),
        tls.client_cert.display(),
        tls.client_key.display()
    );
    let board = Board::start(&url, &with_cert);
    board.wait_connected();
    let reports = watch(
        &format!("mqtt://127.0.0.1:{plain_port}"),
        &board.device,
        "5",
        1,
    );
    assert_eq!(reports.len(), 1);
    // The operator's decoder speaks the same TLS, with its own certificate.
    let out = nodus()
        .args([
            "telemetry",
            "watch",
            "--json",
            "--broker",
            &url,
            "--device",
            &board.device,
        ])
        .args(["--count", "1", "--timeout", "15", "--ca-file"])
        .arg(&tls.ca)
        .arg("--client-cert")
        .arg(&tls.client_cert)
        .arg("--client-key")
        .arg(&tls.client_key)
        .output()
        .expect("nodus telemetry watch over TLS");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(report["device"], board.device.as_str());

    // Without a client certificate the broker refuses the board: it says so
    // and keeps running.
    let without = Board::start(&url, &format!("ca_file = \"{}\"\n", tls.ca.display()));
    let fleet = wait_for("the refusal to show", Duration::from_secs(10), || {
        let f = without.fleet();
        f["health"]["reason"].as_str().map(|_| f.clone())
    });
    assert_eq!(fleet["health"]["state"], "degraded", "{fleet}");
    assert_eq!(fleet["stats"]["connected"], 0);
    assert_eq!(
        component(&without.daemon.status_json(), "control")["health"]["state"],
        "healthy"
    );
}

#[test]
fn a_retained_document_too_big_for_mqtt_cannot_cut_the_board_off() {
    require_root!();
    let broker = Broker::start();
    for version in ["3.1.1", "5"] {
        let device = unique("board");
        // Far over the link's packet limit (256 KiB with the defaults).
        let huge = vec![b'x'; 400_000];
        broker.publish_retained(&format!("nodus/v1/{device}/config/desired"), &huge);
        let state = tempdir();
        let extra = fleet_config(
            &broker.url(),
            &device,
            state.path(),
            &format!("mqtt_version = \"{version}\"\n"),
        );
        let daemon = TempDaemon::start(&extra, &[]);
        let board = Board {
            daemon,
            device,
            state,
        };
        board.wait_connected();
        // Telemetry flows, and keeps flowing.
        let reports = watch(&broker.url(), &board.device, version, 3);
        assert_eq!(reports.len(), 3);
        let fleet = board.fleet();
        assert_eq!(fleet["stats"]["connected"], 1, "{fleet}");
        if version == "3.1.1" {
            // 3.1.1 cannot tell the broker its limit: the packet arrived,
            // broke the link once, and the board says so.
            let r = json(
                &broker
                    .retained(&board.topic("config/reported"))
                    .expect("reported"),
            );
            let why = r["rejected"]["reason"].as_str().unwrap_or_default();
            assert!(why.contains("exceeded the MQTT packet limit"), "{r}");
            assert!(fleet["stats"]["connects"].as_u64().unwrap() <= 3, "{fleet}");
        }
        // MQTT 5 announces the limit in CONNECT; the broker drops the
        // message for this board instead of sending it.
    }
}

#[test]
fn a_full_disk_keeps_the_applied_config_and_says_the_last_good_file_was_not_written() {
    require_root!();
    let broker = Broker::start();
    let dir = tempdir();
    let key = SigningKey::generate(dir.path(), "fleet");
    let state = tempdir();
    let device = unique("board");
    let extra = fleet_config(
        &broker.url(),
        &device,
        state.path(),
        &format!(
            "trusted_keys = [\"{}\"]\ngrace_ms = 500\nmax_document_bytes = 200000\n",
            key.public
        ),
    );
    // The state directory is a 64 KiB tmpfs, in this daemon's mount
    // namespace only: a 100 KB document cannot be stored there.
    let daemon = TempDaemon::start_in_mount_ns(
        &extra,
        &format!(
            "mount -t tmpfs -o size=64k tmpfs {}",
            state.path().display()
        ),
    );
    let board = Board {
        daemon,
        device,
        state,
    };
    board.wait_connected();
    let text = key.sign(&format!(
        "version = 1\ntarget = \"device:{}\"\n# {}\n[proccache]\ncapacity = 4321\n",
        board.device,
        "p".repeat(100_000)
    ));
    broker.publish_retained(&board.topic("config/desired"), text.as_bytes());
    let r = reported(&broker, &board, 1, "committed");
    let why = r["last"]["reason"].as_str().unwrap_or_default();
    assert!(
        why.contains("last-good file") && why.contains("No space left"),
        "{r}"
    );
    let status = board.daemon.status_json();
    assert!(
        status["config"].as_str().unwrap().ends_with("+ device v1"),
        "{status}"
    );
    assert_eq!(component(&status, "proccache")["stats"]["capacity"], 4321);
    assert_eq!(component(&status, "fleet")["health"]["state"], "healthy");
}

#[test]
fn sighup_rereads_the_file_and_keeps_the_fleet_documents_on_top() {
    require_root!();
    let broker = Broker::start();
    let dir = tempdir();
    let key = SigningKey::generate(dir.path(), "fleet");
    let state = tempdir();
    let device = unique("board");
    let extra = fleet_config(
        &broker.url(),
        &device,
        state.path(),
        &format!("trusted_keys = [\"{}\"]\ngrace_ms = 300\n", key.public),
    );
    let mut board = Board {
        daemon: TempDaemon::start(&extra, &[]),
        device,
        state,
    };
    board.wait_connected();
    let doc = key.sign(&format!(
        "version = 1\ntarget = \"device:{}\"\n[proccache]\ncapacity = 6543\n",
        board.device
    ));
    broker.publish_retained(&board.topic("config/desired"), doc.as_bytes());
    reported(&broker, &board, 1, "committed");

    // The file changes (the control socket moves); the document stays.
    let moved = board.daemon.dir.path().join("moved.sock");
    board.daemon.rewrite_config(&moved, &extra);
    board.daemon.signal(libc::SIGHUP);
    wait_for("the socket to move", Duration::from_secs(10), || {
        moved.exists().then_some(())
    });
    board.daemon.socket = moved;
    let status = board.daemon.status_json();
    assert!(
        status["config"].as_str().unwrap().ends_with("+ device v1"),
        "{status}"
    );
    assert_eq!(component(&status, "proccache")["stats"]["capacity"], 6543);
    wait_for("SIGHUP committed", Duration::from_secs(10), || {
        board
            .daemon
            .log_text()
            .contains("SIGHUP: committed")
            .then_some(())
    });
}

/// The replay guard outlives the last-good file: after a restart that could
/// not use it (damaged here; missing, a rotated key or a lowered size limit
/// are the same to the guard), an older validly signed document is refused,
/// a document that was rolled back is not tried again because the broker
/// still retains it, and the committed one is taken back.
#[test]
fn replays_are_refused_after_a_restart_that_lost_the_last_good_file() {
    require_root!();
    let broker = Broker::start();
    let dir = tempdir();
    let key = SigningKey::generate(dir.path(), "fleet");
    let mut board = Board::start(
        &broker.url(),
        &format!("trusted_keys = [\"{}\"]\ngrace_ms = 500\n", key.public),
    );
    board.wait_connected();
    let desired = board.topic("config/desired");
    let doc = |version: u64, body: &str| {
        key.sign(&format!(
            "version = {version}\ntarget = \"device:{}\"\n{body}",
            board.device
        ))
    };
    let v1 = doc(1, "[proccache]\ncapacity = 6001\n");
    let v2 = doc(2, "[proccache]\ncapacity = 6002\n");
    broker.publish_retained(&desired, v1.as_bytes());
    reported(&broker, &board, 1, "committed");
    broker.publish_retained(&desired, v2.as_bytes());
    reported(&broker, &board, 2, "committed");
    let breaking = doc(3, "[fileserver]\nlisten = \"192.0.2.1:80\"\n");
    broker.publish_retained(&desired, breaking.as_bytes());
    reported(&broker, &board, 3, "rolled_back");

    // Restart with the last-good file damaged on flash; the broker still
    // retains v3.
    assert_eq!(board.daemon.stop(Duration::from_secs(10)).code(), Some(0));
    let last_good = board.state.path().join("fleet-last-good.json");
    fs::write(&last_good, b"{\"device\": \"garbage").unwrap();
    board.daemon.restart();
    board.wait_connected();
    let r = reported(&broker, &board, 3, "refused");
    assert!(
        r["rejected"]["reason"]
            .as_str()
            .unwrap()
            .contains("not newer than version 3"),
        "{r}"
    );
    assert_eq!(
        component(&board.daemon.status_json(), "fleet")["stats"]["documents_applied"],
        0,
        "the rolled-back document was not applied again"
    );

    // An older document, validly signed, is a replay.
    broker.publish_retained(&desired, v1.as_bytes());
    let r = reported(&broker, &board, 1, "refused");
    assert!(
        r["rejected"]["reason"]
            .as_str()
            .unwrap()
            .contains("not newer"),
        "{r}"
    );
    assert_ne!(
        component(&board.daemon.status_json(), "proccache")["stats"]["capacity"],
        6001
    );
    // The committed one is taken back.
    broker.publish_retained(&desired, v2.as_bytes());
    reported(&broker, &board, 2, "committed");
    assert_eq!(
        component(&board.daemon.status_json(), "proccache")["stats"]["capacity"],
        6002
    );
}

/// A change is judged by the components it restarted: the fleet link
/// losing its broker during the grace period of a process-cache change is
/// not the change's fault, so the change is committed, not rolled back.
#[test]
fn a_broker_outage_during_the_grace_period_does_not_roll_back_an_unrelated_change() {
    require_root!();
    let mut broker = Broker::start_persistent();
    let dir = tempdir();
    let key = SigningKey::generate(dir.path(), "fleet");
    let board = Board::start(
        &broker.url(),
        &format!("trusted_keys = [\"{}\"]\ngrace_ms = 3000\n", key.public),
    );
    board.wait_connected();
    let v1 = key.sign(&format!(
        "version = 1\ntarget = \"device:{}\"\n[proccache]\ncapacity = 6100\n",
        board.device
    ));
    broker.publish_retained(&board.topic("config/desired"), v1.as_bytes());
    wait_for("v1 applied", Duration::from_secs(10), || {
        let s = board.daemon.status_json();
        (component(&s, "proccache")["stats"]["capacity"] == 6100).then_some(())
    });
    broker.stop();
    wait_for("the fleet link to notice", Duration::from_secs(10), || {
        (board.fleet()["health"]["state"] == "degraded").then_some(())
    });
    // Past the grace period, with the fleet link still degraded.
    wait_for("the change to be decided", Duration::from_secs(10), || {
        let log = board.daemon.log_text();
        (log.contains("device v1: committed") || log.contains("device v1: rolled back"))
            .then_some(())
    });
    broker.restart();
    board.wait_connected();
    reported(&broker, &board, 1, "committed");
    let status = board.daemon.status_json();
    assert!(
        status["config"].as_str().unwrap().ends_with("+ device v1"),
        "{status}"
    );
    assert_eq!(component(&status, "proccache")["stats"]["capacity"], 6100);
}

/// A flood on the config topic (no key needed to publish garbage) is
/// counted, but logged and published at most about once a second, and
/// the board still takes the next good document.
#[test]
fn a_flood_of_bad_documents_is_counted_not_logged_or_published_each_time() {
    require_root!();
    let broker = Broker::start();
    let dir = tempdir();
    let key = SigningKey::generate(dir.path(), "fleet");
    let board = Board::start(
        &broker.url(),
        &format!("trusted_keys = [\"{}\"]\ngrace_ms = 200\n", key.public),
    );
    board.wait_connected();
    let reported_log = dir.path().join("reported.txt");
    let mut watcher = broker
        .client("mosquitto_sub")
        .args(["-q", "1", "-t", &board.topic("config/reported")])
        .stdout(fs::File::create(&reported_log).unwrap())
        .spawn()
        .expect("mosquitto_sub");
    std::thread::sleep(Duration::from_millis(500));
    let flood: String = (0..3000).map(|i| format!("garbage {i}\n")).collect();
    let file = dir.path().join("flood.txt");
    fs::write(&file, flood).unwrap();
    let started = Instant::now();
    let ok = broker
        .client("mosquitto_pub")
        .args(["-q", "1", "-t", &board.topic("config/desired"), "-l"])
        .stdin(fs::File::open(&file).unwrap())
        .status()
        .expect("mosquitto_pub");
    assert!(ok.success());
    let count = || {
        board.fleet()["stats"]["documents_refused"]
            .as_u64()
            .unwrap()
    };
    wait_for("the flood to be counted", Duration::from_secs(30), || {
        (count() >= 1000).then_some(())
    });
    // Let the counter settle and the last summary go out.
    std::thread::sleep(Duration::from_millis(1500));
    let refused = count();
    let seconds = started.elapsed().as_secs() + 2;
    let _ = watcher.kill();
    let _ = watcher.wait();
    let logged = board
        .daemon
        .log_text()
        .lines()
        .filter(|l| l.contains("refused"))
        .count() as u64;
    let published = fs::read_to_string(&reported_log).unwrap().lines().count() as u64;
    assert!(
        logged <= 2 * seconds && published <= 2 * seconds + 2,
        "{refused} refusals: {logged} log lines and {published} publishes in about {seconds} s"
    );
    assert!(
        board.daemon.log_text().contains("more refused")
            || board.daemon.log_text().contains("more documents refused"),
        "held-back refusals are summed in the log"
    );
    // The board is unharmed and takes the next good document.
    broker.publish_retained(
        &board.topic("config/desired"),
        key.sign(&format!(
            "version = 1\ntarget = \"device:{}\"\n[proccache]\ncapacity = 6200\n",
            board.device
        ))
        .as_bytes(),
    );
    reported(&broker, &board, 1, "committed");
}
