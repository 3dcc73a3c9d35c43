//! From the supervisor's status to a [`Report`]: every component contributes
//! through the one interface it already has (`Component::stats`), so a new
//! component shows up in telemetry without touching this module.

use std::{
    collections::BTreeMap,
    time::{SystemTime, UNIX_EPOCH},
};

use super::envelope::{ComponentSample, Report, Schema, Value, health_code, parse_boot_id};
use crate::status::StatusReport;

/// The kernel's boot id, or zeros where /proc does not say (sequence numbers
/// then still order reports within the run).
pub fn boot_id() -> [u8; 16] {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .and_then(|s| parse_boot_id(&s))
        .unwrap_or_default()
}

/// Builds reports and remembers the schema each component's stats have.
pub struct Collector {
    boot_id: [u8; 16],
    schemas: BTreeMap<String, Schema>,
}

impl Collector {
    /// A collector for this boot.
    pub fn new(boot_id: [u8; 16]) -> Collector {
        Collector {
            boot_id,
            schemas: BTreeMap::new(),
        }
    }

    /// The report for `status`, without sequence number and drop count
    /// (the outbox fills those in), plus the schemas that are new since the
    /// last call and must be published.
    pub fn sample(&mut self, status: &StatusReport) -> (Report, Vec<Schema>) {
        let mut new_schemas = Vec::new();
        let components = status
            .components
            .iter()
            .map(|c| {
                let names: Vec<String> = c.stats.keys().cloned().collect();
                let id = Schema::id_of(&c.name, &names);
                if self.schemas.get(&c.name).map(|s| s.id) != Some(id) {
                    let schema = Schema::new(&c.name, names);
                    new_schemas.push(schema.clone());
                    self.schemas.insert(c.name.clone(), schema);
                }
                ComponentSample {
                    name: c.name.clone(),
                    health: health_code(&c.health),
                    reason: c.health.reason().map(str::to_owned),
                    schema: id,
                    values: c.stats.values().map(Value::from).collect(),
                }
            })
            .collect();
        let report = Report {
            boot_id: self.boot_id,
            seq: 0,
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            uptime_ms: status.uptime_ms,
            rss_bytes: status.rss_bytes,
            dropped_total: 0,
            components,
        };
        (report, new_schemas)
    }

    /// Every schema in use, for republishing after a reconnect.
    pub fn schemas(&self) -> impl Iterator<Item = &Schema> {
        self.schemas.values()
    }
}
