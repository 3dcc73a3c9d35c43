//! The fleet link: the board's MQTT connection to its fleet.
//!
//! [`link`] is the MQTT connection (rumqttc, 3.1.1 or 5, TLS on rustls with
//! the ring provider); [`topics`] names the topic tree; [`document`] signs and
//! verifies config documents; [`lastgood`] keeps the last verified ones on
//! disk; [`versions`] is the replay guard that outlives them; [`component`] is what the supervisor runs: birth and death
//! messages, telemetry out of the [`crate::telemetry`] outbox, and config
//! documents in, each applied through the daemon's one change path
//! (validate, apply, verify for a grace period, commit or roll back).
//! Design notes and the contract: `docs/fleet.md`.

pub mod component;
pub mod config;
pub mod document;
pub mod inbox;
pub mod lastgood;
pub mod link;
pub mod topics;
pub mod versions;
pub mod watch;

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

pub use component::Fleet;
pub use config::FleetConfig;
pub use document::{Document, Refusal};

use crate::change::{Change, Scope};

use crate::telemetry::{Outbox, Spool};

pub use versions::Versions;

/// The spool's file name inside `fleet.state_dir`.
pub const SPOOL_FILE: &str = "telemetry.spool";
/// The sequence resume file's name in nodus's runtime directory.
pub const SEQUENCE_FILE: &str = "telemetry.seq";

/// Fleet state that outlives a restart of the fleet component (on reload):
/// the telemetry outbox and the documents the running config came from.
#[derive(Clone)]
pub struct FleetShared {
    /// Reports waiting for the broker.
    pub outbox: Outbox,
    /// The fleet documents in effect.
    pub applied: Arc<Mutex<AppliedDocuments>>,
    /// The replay guard, as stored under `fleet.state_dir`.
    pub versions: Arc<Mutex<Versions>>,
}

/// The fleet documents the running configuration includes.
#[derive(Clone, Debug, Default)]
pub struct AppliedDocuments {
    /// From the group topic.
    pub group: Option<Document>,
    /// From the device topic.
    pub device: Option<Document>,
}

impl AppliedDocuments {
    /// The document of `scope`.
    pub fn get(&self, scope: Scope) -> Option<&Document> {
        match scope {
            Scope::Group => self.group.as_ref(),
            Scope::Device => self.device.as_ref(),
        }
    }

    /// Replaces the document of `scope`.
    pub fn set(&mut self, scope: Scope, doc: Option<Document>) {
        match scope {
            Scope::Group => self.group = doc,
            Scope::Device => self.device = doc,
        }
    }
}

/// The last-good documents found at boot, before the daemon decides whether
/// the configuration they make still validates.
#[derive(Default)]
pub struct BootDocuments {
    /// The documents, verified.
    pub documents: AppliedDocuments,
}

impl BootDocuments {
    /// Reads and verifies the last-good documents for this board (see
    /// [`lastgood`]) and checks each against the replay guard (a last-good
    /// document is the committed one, or newer than the guard if the guard
    /// was lost, which then learns it back); what cannot be used is logged.
    /// Nothing when the fleet link is off or the board has no device id.
    pub fn load(config: &FleetConfig, versions: &Mutex<Versions>) -> BootDocuments {
        if !config.enabled {
            return BootDocuments::default();
        }
        let Ok(device) = config.resolve_device_id() else {
            return BootDocuments::default();
        };
        let loaded = lastgood::load(config, &device);
        for problem in &loaded.problems {
            log::error!("fleet last-good: not used: {problem}");
        }
        let mut guard = crate::sync::lock(versions);
        let mut learned = false;
        let mut admit = |doc: Option<Document>| {
            let doc = doc?;
            match guard.admits(&doc) {
                Ok(()) => {
                    learned |= guard.decided(&doc, true);
                    Some(doc)
                }
                Err(e) => {
                    log::error!("fleet last-good: {} not used: {e}", doc.label());
                    None
                }
            }
        };
        let documents = AppliedDocuments {
            group: admit(loaded.group),
            device: admit(loaded.device),
        };
        if learned && let Err(e) = guard.store(&config.state_dir) {
            log::error!(
                "fleet: cannot store the replay guard in {}: {e}",
                config.state_dir.display()
            );
        }
        BootDocuments { documents }
    }

    /// The changes that put these documents' overlays on the running layers.
    pub fn changes(&self) -> Vec<Change> {
        Scope::ALL
            .into_iter()
            .filter_map(|s| self.documents.get(s).map(Document::change))
            .collect()
    }
}

impl FleetShared {
    /// Empty state with an outbox of `fleet.outbox_reports`. With the
    /// fleet link on, the outbox also gets its spool under `fleet.state_dir`
    /// (reports an earlier run kept there go out first) and continues this
    /// boot's sequence from `run_dir` (tmpfs: no flash writes). A spool that
    /// cannot be opened is logged and left out: telemetry then lives in
    /// memory only, and `reports_spooled` stays 0.
    pub fn new(fleet: &FleetConfig, run_dir: &Path) -> FleetShared {
        let mut outbox = Outbox::new(fleet.outbox_reports);
        if fleet.enabled {
            outbox = outbox.resume(
                &run_dir.join(SEQUENCE_FILE),
                crate::telemetry::collect::boot_id(),
            );
            if let Some(spool) = open_spool(fleet) {
                outbox = outbox.with_spool(spool);
            }
        }
        let mut versions = Versions::default();
        if fleet.enabled {
            let problems;
            (versions, problems) = Versions::load(&fleet.state_dir);
            for p in problems {
                log::warn!("fleet replay guard: {p}");
            }
        }
        FleetShared {
            outbox,
            applied: Arc::default(),
            versions: Arc::new(Mutex::new(versions)),
        }
    }

    /// Records the boot documents as the ones in effect: the daemon calls
    /// this once the configuration they make has validated.
    pub fn adopt(&self, boot: BootDocuments) {
        *crate::sync::lock(&self.applied) = boot.documents;
    }

    /// A copy of the documents in effect.
    pub fn documents(&self) -> AppliedDocuments {
        crate::sync::lock(&self.applied).clone()
    }
}

/// The spool under `fleet.state_dir`, unless `fleet.spool_bytes` is 0 or it
/// cannot be opened (logged: telemetry then lives in memory only).
fn open_spool(fleet: &FleetConfig) -> Option<Spool> {
    if fleet.spool_bytes == 0 {
        return None;
    }
    let path = fleet.state_dir.join(SPOOL_FILE);
    match Spool::open(&path, fleet.spool_bytes) {
        Ok(spool) => {
            if spool.discarded_bytes > 0 {
                log::warn!(
                    "telemetry spool {}: {} damaged or torn bytes at its end discarded",
                    path.display(),
                    spool.discarded_bytes
                );
            }
            if spool.records() > 0 {
                log::info!(
                    "telemetry spool {}: {} reports from an earlier run go out first",
                    path.display(),
                    spool.records()
                );
            }
            Some(spool)
        }
        Err(e) => {
            log::warn!(
                "telemetry spool {}: {e}; reports are kept in memory only",
                path.display()
            );
            None
        }
    }
}
