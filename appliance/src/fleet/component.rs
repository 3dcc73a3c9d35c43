//! The fleet component: the board's side of the MQTT contract.
//!
//! One main loop owns everything that changes: it makes a telemetry report
//! every `telemetry_interval_ms` (into the outbox, which survives outages),
//! sends what the outbox holds while the broker is there, publishes the
//! retained birth message on every connect, and takes config documents in,
//! one at a time, handing each to the daemon's change path and reporting the
//! outcome on `config/reported`. The MQTT connection itself runs in its own
//! task ([`link::run`]), which reconnects with backoff and jitter.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use ed25519_dalek::VerifyingKey;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    FleetConfig, FleetShared,
    document::{self, Document, Refusal},
    inbox::Inbox,
    lastgood,
    link::{self, Backoff, LinkClient, LinkError, LinkEvent, LinkOptions, Up, stopping},
    topics::Topics,
};
use crate::{
    change::{Outcome, Proposal, Proposals, Scope},
    ratelimit::RateLimit,
    status::{StatusReport, StatusSource},
    supervisor::{
        BEAT_INTERVAL, BoxFuture, Component, ComponentContext, Counter, Gauge, Health, MainLoop,
        Maybe, StartError, Stat, StatSet, Stats, Text,
    },
    telemetry::{collect::Collector, collect::boot_id, envelope::format_boot_id, outbox::Ticket},
};

/// Telemetry publishes unacknowledged at once.
const WINDOW: usize = 16;
/// How long a status question to the daemon may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a clean stop waits for the offline message to leave.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long config topics stay unsubscribed after the broker sent a packet
/// too large for the link (see [`Worker::config_paused_until`]).
const OVERSIZED_PAUSE: Duration = Duration::from_secs(600);
/// At most one refusal logged and published per this long.
const REFUSAL_INTERVAL: Duration = Duration::from_secs(1);

/// What a log line that stands for held-back others adds.
fn held_back_note(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more refused since the last one logged)")
    }
}

/// The last thing that happened to a document, for `config/reported`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DocumentResult {
    /// Group or device.
    pub scope: Scope,
    /// Its version (0 when it could not be read).
    pub version: u64,
    /// `committed`, `unchanged`, `refused` or `rolled_back`.
    pub result: &'static str,
    /// Why, when not applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Default)]
struct LinkState {
    device_id: String,
    connected: bool,
    last_error: Option<String>,
    connects: u64,
    documents_applied: u64,
    documents_refused: u64,
    last: Option<DocumentResult>,
    rejected: Option<DocumentResult>,
}

crate::stats! {
    /// What the fleet link reports.
    pub struct FleetStats {
        /// The broker URL.
        broker: Text,
        /// This board's id in topics.
        device_id: Text,
        /// 1 while connected to the broker, else 0.
        connected: Gauge,
        /// Connections made since start.
        connects: Counter,
        /// Reports waiting in memory for the broker.
        reports_queued: Gauge,
        /// Reports the in-memory outbox holds at most.
        reports_capacity: Gauge,
        /// Reports the broker acknowledged since start.
        reports_acked: Counter,
        /// Reports made but not kept (outbox and spool full) this boot.
        reports_dropped: Counter,
        /// Sequence number of the next report.
        next_seq: Counter,
        /// Reports kept in the spool file.
        reports_spooled: Gauge,
        /// Bytes the spool file uses.
        spool_bytes: Gauge,
        /// Spool writes or reads that failed.
        spool_errors: Counter,
        /// Version of the group config document in effect, 0 for none.
        config_group_version: Gauge,
        /// Version of the device config document in effect, 0 for none.
        config_device_version: Gauge,
        /// Config documents applied since start.
        documents_applied: Counter,
        /// Config documents refused or rolled back since start.
        documents_refused: Counter,
        /// The last document refused or rolled back, and why.
        last_rejected: Maybe<Text>,
    }
}

/// The fleet link, as a supervised component.
pub struct Fleet {
    config: FleetConfig,
    shared: FleetShared,
    status: StatusSource,
    proposals: Proposals,
    state: Arc<Mutex<LinkState>>,
    main: Option<MainLoop>,
}

impl Fleet {
    /// The component for `[fleet]`; `status` reaches the daemon's status,
    /// `proposals` its change path.
    pub fn new(
        config: FleetConfig,
        shared: FleetShared,
        status: StatusSource,
        proposals: Proposals,
    ) -> Fleet {
        Fleet {
            config,
            shared,
            status,
            proposals,
            state: Arc::default(),
            main: None,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LinkState> {
        crate::sync::lock(&self.state)
    }
}

impl Component for Fleet {
    fn name(&self) -> &'static str {
        "fleet"
    }

    fn start(&mut self, ctx: ComponentContext) -> Result<(), StartError> {
        let device = self.config.resolve_device_id().map_err(StartError)?;
        let group = (!self.config.group.is_empty()).then_some(self.config.group.as_str());
        let topics = Topics::new(&device, group);
        let boot = boot_id();
        let will = serde_json::to_vec(&json!({
            "online": false,
            "boot_id": format_boot_id(&boot),
            "reason": "connection lost",
        }))
        .unwrap_or_default();
        let options = LinkOptions::from_config(
            &self.config,
            format!("nodus-{device}"),
            Some((topics.state(), will)),
        )
        .map_err(StartError)?;
        let keys = self
            .config
            .trusted_keys
            .iter()
            .map(|k| document::parse_public_key(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(StartError)?;
        self.state().device_id = device.clone();
        let worker = Worker {
            config: self.config.clone(),
            shared: self.shared.clone(),
            status: self.status.clone(),
            proposals: self.proposals.clone(),
            state: self.state.clone(),
            topics,
            device,
            keys,
            collector: Collector::new(boot),
            boot,
            client: None,
            sent: VecDeque::new(),
            pkids: HashMap::new(),
            unacked: 0,
            inbox: Inbox::default(),
            deciding: None,
            refusals: RateLimit::new(REFUSAL_INTERVAL),
            config_paused_until: None,
        };
        let backoff = Backoff::new(
            Duration::from_millis(self.config.reconnect_min_ms),
            Duration::from_millis(self.config.reconnect_max_ms),
        );
        self.main = Some(MainLoop::spawn(move |stop| {
            worker.run(options, backoff, ctx, stop)
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
        let s = self.state();
        if s.connected {
            Health::Healthy
        } else {
            Health::Degraded(format!(
                "not connected to {}{}; telemetry is kept in the outbox",
                self.config.broker,
                s.last_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ))
        }
    }

    fn stats(&self) -> Stats {
        let outbox = self.shared.outbox.stats();
        let docs = self.shared.documents();
        let s = self.state();
        let version = |d: Option<&Document>| d.map_or(0, |d| d.version as i64);
        FleetStats {
            broker: self.config.broker.clone(),
            device_id: s.device_id.clone(),
            connected: i64::from(s.connected),
            connects: s.connects,
            reports_queued: outbox.queued as i64,
            reports_capacity: outbox.capacity as i64,
            reports_acked: outbox.acked,
            reports_dropped: outbox.dropped,
            next_seq: outbox.next_seq,
            reports_spooled: outbox.spooled as i64,
            spool_bytes: outbox.spool_bytes as i64,
            spool_errors: outbox.spool_errors,
            config_group_version: version(docs.group.as_ref()),
            config_device_version: version(docs.device.as_ref()),
            documents_applied: s.documents_applied,
            documents_refused: s.documents_refused,
            last_rejected: s.rejected.as_ref().map(|r| {
                format!(
                    "{} v{}: {}",
                    r.scope,
                    r.version,
                    r.reason.as_deref().unwrap_or(r.result)
                )
            }),
        }
        .to_stats()
    }
}

/// A document being decided by the daemon.
struct Deciding {
    doc: Document,
    outcome: oneshot::Receiver<Outcome>,
}

/// The main loop's state.
struct Worker {
    config: FleetConfig,
    shared: FleetShared,
    status: StatusSource,
    proposals: Proposals,
    state: Arc<Mutex<LinkState>>,
    topics: Topics,
    device: String,
    keys: Vec<VerifyingKey>,
    collector: Collector,
    boot: [u8; 16],
    /// The publishing half while connected.
    client: Option<LinkClient>,
    /// Publishes queued to the link and not yet seen leaving, in order:
    /// the outbox's ticket for reports, `None` for the rest.
    sent: VecDeque<Option<Ticket>>,
    /// Packet id of a report on the wire -> its outbox ticket.
    pkids: HashMap<u16, Ticket>,
    /// Reports handed to the link and not yet acknowledged.
    unacked: usize,
    /// Documents waiting for the one being decided.
    inbox: Inbox,
    deciding: Option<Deciding>,
    /// Refusals are logged and published at most once a second: anyone who
    /// can publish on the config topics can send them faster than that.
    refusals: RateLimit,
    /// A retained config message too large for the MQTT layer kills the
    /// connection on every delivery (MQTT 3.1.1 has no way to refuse it),
    /// which would cut telemetry off for good. After that happens, config
    /// topics stay unsubscribed until this time, then are tried again.
    config_paused_until: Option<tokio::time::Instant>,
}

impl Worker {
    fn state(&self) -> std::sync::MutexGuard<'_, LinkState> {
        crate::sync::lock(&self.state)
    }

    async fn run(
        mut self,
        options: LinkOptions,
        backoff: Backoff,
        ctx: ComponentContext,
        mut stop: watch::Receiver<bool>,
    ) {
        let (tx, mut rx) = mpsc::channel(256);
        let (link_stop, link_stopped) = watch::channel(false);
        let link_task = tokio::spawn(link::run(options, backoff, tx, link_stopped));
        let mut beat = tokio::time::interval(BEAT_INTERVAL / 2);
        let period = Duration::from_millis(self.config.telemetry_interval_ms.max(1));
        // The first report comes soon after start (a watcher should not wait
        // a whole interval to see a board come up), then one per period.
        let first = tokio::time::Instant::now() + period.min(Duration::from_secs(1));
        let mut report = tokio::time::interval_at(first, period);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Questions to the daemon give up when the component is stopped.
        let mut asking = stop.clone();
        loop {
            tokio::select! {
                _ = stopping(&mut stop) => break,
                _ = beat.tick() => ctx.heartbeat.beat(),
                _ = report.tick() => {
                    self.flush_refusals();
                    if let Some(status) = self.ask_status(&mut asking).await {
                        self.make_report(&status);
                    }
                    self.resume_config_topics();
                    self.pump();
                }
                up = rx.recv() => match up {
                    Some(up) => self.on_link(up, &mut asking).await,
                    None => break,
                },
                outcome = decided(&mut self.deciding) => {
                    if self.on_outcome(outcome)
                        && let Some(status) = self.ask_status(&mut asking).await
                    {
                        // The birth message names the config versions too.
                        self.publish_birth(&status);
                    }
                    self.next_document();
                }
            }
        }
        self.goodbye(&mut rx).await;
        let _ = link_stop.send(true);
        let _ = link_task.await;
    }

    async fn on_link(&mut self, up: Up, stop: &mut watch::Receiver<bool>) {
        match up {
            Up::Connected(client) => {
                {
                    let mut s = self.state();
                    s.connected = true;
                    s.connects += 1;
                    s.last_error = None;
                }
                log::info!("fleet: connected to {}", self.config.broker);
                self.client = Some(client);
                self.sent.clear();
                self.pkids.clear();
                self.unacked = 0;
                self.shared.outbox.requeue_in_flight();
                self.subscribe();
                if let Some(status) = self.ask_status(stop).await {
                    self.publish_birth(&status);
                }
                let schemas: Vec<_> = self.collector.schemas().cloned().collect();
                for s in schemas {
                    self.publish_other(&self.topics.schema(&s.component, s.id), s.encode());
                }
                self.publish_reported();
                self.pump();
            }
            Up::Down { reason, retry_in } => {
                let was = std::mem::replace(&mut self.state().connected, false);
                if was {
                    log::warn!("fleet: lost {}: {reason}", self.config.broker);
                } else {
                    log::debug!("fleet: cannot reach {}: {reason}", self.config.broker);
                }
                // The retry delay changes every time; the health reason
                // (and so the status line and its log) should not.
                log::debug!("fleet: next attempt in {retry_in:.1?}");
                self.client = None;
                let reason_text = reason.to_string();
                if matches!(reason, LinkError::Oversized(_)) {
                    self.pause_config_topics(&reason_text);
                }
                self.state().last_error = Some(reason_text);
                self.shared.outbox.requeue_in_flight();
                self.sent.clear();
                self.pkids.clear();
                self.unacked = 0;
            }
            Up::Event(LinkEvent::Sent(pkid)) => {
                if let Some(Some(ticket)) = self.sent.pop_front() {
                    self.pkids.insert(pkid, ticket);
                }
            }
            Up::Event(LinkEvent::Acked(pkid)) => {
                if let Some(ticket) = self.pkids.remove(&pkid) {
                    self.shared.outbox.ack(ticket);
                    self.unacked = self.unacked.saturating_sub(1);
                    self.pump();
                }
            }
            Up::Event(LinkEvent::Message { topic, payload, .. }) => {
                let scope = if topic == self.topics.desired() {
                    Scope::Device
                } else if Some(&topic) == self.topics.group_desired().as_ref() {
                    Scope::Group
                } else {
                    return;
                };
                if payload.is_empty() {
                    log::info!("fleet: {topic} cleared; keeping the running config");
                    return;
                }
                if self.inbox.offer(scope, payload) {
                    self.next_document();
                }
            }
            Up::Event(_) => {}
        }
    }

    fn subscribe(&self) {
        let Some(c) = &self.client else { return };
        if self.config_paused_until.is_some() {
            return;
        }
        let filters = [Some(self.topics.desired()), self.topics.group_desired()];
        for f in filters.into_iter().flatten() {
            if let Err(e) = c.subscribe(&f) {
                log::warn!("fleet: cannot subscribe to {f}: {e}");
            }
        }
    }

    /// The broker sent a packet over the link's limit: on the config topics,
    /// the only ones subscribed, so stop taking them for a while and say why.
    fn pause_config_topics(&mut self, reason: &str) {
        if self.config_paused_until.is_some() {
            return;
        }
        self.config_paused_until = Some(tokio::time::Instant::now() + OVERSIZED_PAUSE);
        let limit = LinkOptions::max_incoming(&self.config);
        log::error!(
            "fleet: a config document over the MQTT packet limit ({limit} bytes) broke the link ({reason}); \
             not taking config documents for {} s so telemetry can flow",
            OVERSIZED_PAUSE.as_secs()
        );
        let scope = if self.topics.group_desired().is_some() {
            Scope::Group
        } else {
            Scope::Device
        };
        // Disconnected now: `record` keeps it, the next connect publishes it.
        self.record(DocumentResult {
            scope,
            version: 0,
            result: "refused",
            reason: Some(format!(
                "oversized: a message on a config topic exceeded the MQTT packet limit of {limit} bytes; \
                 config topics paused for {} s",
                OVERSIZED_PAUSE.as_secs()
            )),
        });
    }

    /// Subscribes to the config topics again once a pause is over.
    fn resume_config_topics(&mut self) {
        if self
            .config_paused_until
            .is_some_and(|t| tokio::time::Instant::now() >= t)
        {
            self.config_paused_until = None;
            self.subscribe();
        }
    }

    /// The daemon's status, or `None` when it does not answer in time or
    /// the component is stopping.
    fn ask_status(
        &self,
        stop: &mut watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = Option<StatusReport>> + Send + 'static {
        ask_status(self.status.clone(), stop.clone())
    }

    fn make_report(&mut self, status: &StatusReport) {
        let (report, new_schemas) = self.collector.sample(status);
        for s in new_schemas {
            // Schemas go out before the reports that use them; retained, so
            // a decoder that joins later still finds them.
            self.publish_other(&self.topics.schema(&s.component, s.id), s.encode());
        }
        self.shared.outbox.push(|seq, dropped| {
            let mut r = report;
            r.seq = seq;
            r.dropped_total = dropped;
            r.encode()
        });
    }

    /// Hands reports to the link while the window has room.
    fn pump(&mut self) {
        let Some(client) = self.client.clone() else {
            return;
        };
        while self.unacked < WINDOW {
            let Some((ticket, bytes)) = self.shared.outbox.next_unsent() else {
                break;
            };
            match client.publish(&self.topics.telemetry(), bytes, true, false) {
                Ok(()) => {
                    self.sent.push_back(Some(ticket));
                    self.unacked += 1;
                }
                Err(e) => {
                    log::debug!("fleet: telemetry publish deferred: {e}");
                    self.shared.outbox.requeue_in_flight();
                    break;
                }
            }
        }
    }

    /// A retained QoS 1 publish that is not telemetry.
    fn publish_other(&mut self, topic: &str, payload: Vec<u8>) {
        let Some(c) = &self.client else { return };
        match c.publish(topic, payload, true, true) {
            Ok(()) => self.sent.push_back(None),
            Err(e) => log::warn!("fleet: cannot publish {topic}: {e}"),
        }
    }

    fn publish_birth(&mut self, status: &StatusReport) {
        let docs = self.shared.documents();
        let outbox = self.shared.outbox.stats();
        let profile = status
            .components
            .iter()
            .find(|c| c.name == "profile")
            .and_then(|c| match c.stats.get("profile") {
                Some(Stat::Text(t)) => Some(t.clone()),
                _ => None,
            });
        let components: serde_json::Map<String, serde_json::Value> = status
            .components
            .iter()
            .map(|c| (c.name.clone(), json!(c.health)))
            .collect();
        let birth = json!({
            "online": true,
            "boot_id": format_boot_id(&self.boot),
            "seq_base": outbox.oldest_in_memory,
            "spooled": outbox.spooled,
            "version": status.version,
            "profile": profile,
            "probe": status.kernel.summary(),
            "kernel": status.kernel.kernel,
            "config": {
                "group": docs.group.as_ref().map(|d| d.version),
                "device": docs.device.as_ref().map(|d| d.version),
            },
            "components": components,
        });
        self.publish_other(&self.topics.state(), birth.to_string().into_bytes());
    }

    fn publish_reported(&mut self) {
        let docs = self.shared.documents();
        let (last, rejected) = {
            let s = self.state();
            (s.last.clone(), s.rejected.clone())
        };
        let reported = json!({
            "device": self.device,
            "applied": {
                "group": docs.group.as_ref().map(|d| d.version),
                "device": docs.device.as_ref().map(|d| d.version),
            },
            "last": last,
            "rejected": rejected,
        });
        self.publish_other(&self.topics.reported(), reported.to_string().into_bytes());
    }

    /// Starts deciding the next queued document, unless one is being decided.
    fn next_document(&mut self) {
        while self.deciding.is_none() {
            let Some((scope, payload)) = self.inbox.take_next() else {
                return;
            };
            match self.check(scope, &payload) {
                Ok(None) => {}
                Ok(Some(doc)) => self.propose(doc),
                Err((version, refusal)) => {
                    self.record(DocumentResult {
                        scope,
                        version,
                        result: "refused",
                        reason: Some(refusal.to_string()),
                    });
                }
            }
        }
    }

    /// Signature, target and version: `Ok(None)` for the document already
    /// running (a retained message seen again).
    fn check(&self, scope: Scope, payload: &[u8]) -> Result<Option<Document>, (u64, Refusal)> {
        let doc = document::verify(payload, &self.keys, self.config.max_document_bytes)
            .map_err(|r| (0, r))?;
        let expected = match scope {
            Scope::Device => self.device.as_str(),
            Scope::Group => self.config.group.as_str(),
        };
        if doc.scope != scope || doc.target != expected {
            return Err((
                doc.version,
                Refusal::WrongTarget {
                    expected: format!("{scope}:{expected}"),
                    got: format!("{}:{}", doc.scope, doc.target),
                },
            ));
        }
        for (section, table) in &doc.overlay {
            let keys = table.as_table().into_iter().flat_map(|t| t.keys());
            for key in keys {
                if !self.config.document_may_set(section, key) {
                    return Err((doc.version, Refusal::NotAllowed(format!("{section}.{key}"))));
                }
            }
        }
        let running = self.shared.documents();
        if running.get(scope).is_some_and(|a| a.text == doc.text) {
            return Ok(None);
        }
        crate::sync::lock(&self.shared.versions)
            .admits(&doc)
            .map_err(|r| (doc.version, r))?;
        Ok(Some(doc))
    }

    fn propose(&mut self, doc: Document) {
        let (reply, outcome) = oneshot::channel();
        let proposal = Proposal {
            change: doc.change(),
            label: doc.label(),
            reply,
        };
        match self.proposals.try_send(proposal) {
            Ok(()) => self.deciding = Some(Deciding { doc, outcome }),
            Err(e) => {
                log::error!("fleet: the daemon did not take the document: {e}");
                self.record(DocumentResult {
                    scope: doc.scope,
                    version: doc.version,
                    result: "refused",
                    reason: Some("the daemon is busy; will retry on the next delivery".into()),
                });
                self.inbox.forget(doc.scope);
            }
        }
    }

    /// Records how the daemon decided; true when the running config now
    /// includes the document.
    fn on_outcome(&mut self, outcome: Result<Outcome, oneshot::error::RecvError>) -> bool {
        let Some(Deciding { doc, .. }) = self.deciding.take() else {
            return false;
        };
        let decided = outcome.is_ok();
        let outcome = outcome
            .unwrap_or_else(|_| Outcome::RolledBack("the daemon stopped before deciding".into()));
        let (result, reason) = match &outcome {
            Outcome::Committed => ("committed", None),
            Outcome::Unchanged => ("unchanged", None),
            Outcome::Refused(r) => ("refused", Some(Refusal::Invalid(r.clone()).to_string())),
            Outcome::RolledBack(r) => ("rolled_back", Some(r.clone())),
        };
        log::info!("fleet: {} document v{}: {outcome}", doc.scope, doc.version);
        let mut reason = reason;
        let applied = matches!(outcome, Outcome::Committed | Outcome::Unchanged);
        if applied {
            let docs = {
                let mut applied = crate::sync::lock(&self.shared.applied);
                applied.set(doc.scope, Some(doc.clone()));
                applied.clone()
            };
            if let Err(e) = lastgood::store(
                &self.config.state_dir,
                docs.group.as_ref(),
                docs.device.as_ref(),
            ) {
                let why = format!(
                    "applied, but the last-good file in {} was not updated: {e}",
                    self.config.state_dir.display()
                );
                log::error!("fleet: {why}");
                reason = Some(why);
            }
            self.state().documents_applied += 1;
        }
        // Decided, whichever way: no document of this version or older is
        // tried again (except the committed one), not even after a restart.
        if decided {
            self.remember_decided(&doc, applied);
        }
        self.record(DocumentResult {
            scope: doc.scope,
            version: doc.version,
            result,
            reason,
        });
        applied
    }

    /// Raises the replay guard's mark for `doc` and stores it. Called after
    /// the last-good file was written, so a power cut between the two leaves
    /// a last-good document the guard admits (newer than its mark).
    fn remember_decided(&mut self, doc: &Document, committed: bool) {
        let mut versions = crate::sync::lock(&self.shared.versions);
        if versions.decided(doc, committed)
            && let Err(e) = versions.store(&self.config.state_dir)
        {
            log::error!(
                "fleet: cannot store the replay guard in {}: {e}",
                self.config.state_dir.display()
            );
        }
    }

    /// Remembers a result and republishes `config/reported`. A refusal is
    /// logged and published at most once per [`REFUSAL_INTERVAL`] (counted
    /// always); the ones held back are summed in the next, or by
    /// [`Worker::flush_refusals`].
    fn record(&mut self, r: DocumentResult) {
        let refused = r.result == "refused";
        let said = if refused {
            self.refusals.allow()
        } else {
            Some(0)
        };
        if refused && let Some(held_back) = said {
            log::warn!(
                "fleet: {} document v{} refused: {}{}",
                r.scope,
                r.version,
                r.reason.as_deref().unwrap_or_default(),
                held_back_note(held_back)
            );
        }
        {
            let mut s = self.state();
            if matches!(r.result, "refused" | "rolled_back") {
                s.documents_refused += 1;
                s.rejected = Some(r.clone());
            }
            s.last = Some(r);
        }
        if said.is_some() {
            self.publish_reported();
        }
    }

    /// Says what [`Worker::record`] held back, once its interval is over.
    fn flush_refusals(&mut self) {
        if let Some(n) = self.refusals.overdue() {
            let last = self.state().rejected.clone();
            if let Some(r) = last {
                log::warn!(
                    "fleet: {n} more documents refused; the last, {} v{}: {}",
                    r.scope,
                    r.version,
                    r.reason.as_deref().unwrap_or_default()
                );
            }
            self.publish_reported();
        }
    }

    /// Clean stop: the retained offline message, then DISCONNECT (so the
    /// broker does not also publish the will), waiting briefly for both.
    async fn goodbye(&mut self, rx: &mut mpsc::Receiver<Up>) {
        let Some(client) = self.client.take() else {
            return;
        };
        let offline = json!({
            "online": false,
            "boot_id": format_boot_id(&self.boot),
            "reason": "stopped",
        });
        let _ = client.publish(
            &self.topics.state(),
            offline.to_string().into_bytes(),
            true,
            true,
        );
        let _ = client.disconnect();
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
            while let Some(up) = rx.recv().await {
                if matches!(up, Up::Down { .. }) {
                    break;
                }
            }
        })
        .await;
        self.state().connected = false;
    }
}

async fn decided(deciding: &mut Option<Deciding>) -> Result<Outcome, oneshot::error::RecvError> {
    match deciding {
        Some(d) => (&mut d.outcome).await,
        None => std::future::pending().await,
    }
}

async fn ask_status(status: StatusSource, mut stop: watch::Receiver<bool>) -> Option<StatusReport> {
    tokio::select! {
        r = tokio::time::timeout(ASK_TIMEOUT, status.get()) => r.ok().flatten(),
        _ = stopping(&mut stop) => None,
    }
}
