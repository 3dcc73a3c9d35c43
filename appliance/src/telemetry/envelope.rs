//! The telemetry wire format.
//!
//! Every message starts with three bytes: [`MAGIC`], the envelope version and
//! the message kind; a postcard body follows. Evolution is append-only: a
//! later version only adds fields at the end of a body, and a decoder reads
//! the fields it knows and ignores the rest, so an old `nodus telemetry
//! watch` (or a fleet backend) keeps decoding newer boards. Nothing is ever
//! removed or reordered; a change that cannot be expressed that way needs a
//! new magic byte. Only the top-level bodies ([`Report`], [`Schema`]) grow:
//! [`ComponentSample`] and [`Value`] sit inside sequences, where an appended
//! field or a new variant would shift everything after it, so they are
//! frozen; per-component additions go into new top-level fields.
//!
//! A [`Report`] carries each component's stat values without their names: the
//! names travel in a [`Schema`] message, published retained on its own topic
//! and identified by a hash of the names, so a decoder that joins late (or
//! reads reports stored across an outage) can always resolve them. That is
//! what keeps a report under a quarter of the same report as JSON (measured
//! by `cargo bench --bench telemetry`; text stats are most of what remains).

use serde::{Deserialize, Serialize};

use crate::supervisor::{Health, Stat};

/// First byte of every telemetry message ('N' for nodus).
pub const MAGIC: u8 = 0x4e;
/// The envelope version this build writes.
pub const VERSION: u8 = 1;

const KIND_REPORT: u8 = 1;
const KIND_SCHEMA: u8 = 2;

/// One periodic report from a board.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The kernel's boot id: sequence numbers restart with each boot.
    pub boot_id: [u8; 16],
    /// Position of this report in the boot's sequence; a gap is a loss.
    pub seq: u64,
    /// Wall-clock time the report was made, ms since the Unix epoch.
    pub unix_ms: u64,
    /// Milliseconds since nodus started.
    pub uptime_ms: u64,
    /// nodus's resident set size, bytes.
    pub rss_bytes: u64,
    /// Reports this boot made but could not keep (outbox full), so far.
    pub dropped_total: u64,
    /// Every component, in start order.
    pub components: Vec<ComponentSample>,
}

/// One component's part of a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentSample {
    /// The component's name.
    pub name: String,
    /// 0 healthy, 1 degraded, 2 unavailable.
    pub health: u8,
    /// Why not healthy.
    pub reason: Option<String>,
    /// The [`Schema::id`] naming `values`.
    pub schema: u32,
    /// Stat values, in the schema's order.
    pub values: Vec<Value>,
}

/// A stat value. Floats travel as f32: telemetry wants rates and
/// latencies, not their last bits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// A count that only grows.
    Counter(u64),
    /// A current level.
    Gauge(i64),
    /// A rate or a latency.
    Float(f32),
    /// A label.
    Text(String),
}

impl From<&Stat> for Value {
    fn from(s: &Stat) -> Value {
        match s {
            Stat::Counter(v) => Value::Counter(*v),
            Stat::Gauge(v) => Value::Gauge(*v),
            Stat::Float(v) => Value::Float(*v as f32),
            Stat::Text(v) => Value::Text(v.clone()),
        }
    }
}

impl Value {
    /// The plain JSON value (a number or a string).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Counter(v) => (*v).into(),
            Value::Gauge(v) => (*v).into(),
            Value::Float(v) => f64::from(*v).into(),
            Value::Text(v) => v.clone().into(),
        }
    }
}

/// The names of one component's stats, in report order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// The component.
    pub component: String,
    /// [`Schema::id_of`] the component and names.
    pub id: u32,
    /// Stat names.
    pub names: Vec<String>,
}

impl Schema {
    /// A schema for `component` with `names`, its id computed.
    pub fn new(component: &str, names: Vec<String>) -> Schema {
        Schema {
            component: component.to_owned(),
            id: Schema::id_of(component, &names),
            names,
        }
    }

    /// FNV-1a over the component and names, NUL-separated: equal lists get
    /// equal ids on every board and build.
    pub fn id_of(component: &str, names: &[String]) -> u32 {
        let mut h: u32 = 0x811c_9dc5;
        for part in std::iter::once(component).chain(names.iter().map(String::as_str)) {
            for b in part.bytes().chain(std::iter::once(0)) {
                h ^= u32::from(b);
                h = h.wrapping_mul(0x0100_0193);
            }
        }
        h
    }
}

/// Health as a report carries it.
pub fn health_code(h: &Health) -> u8 {
    match h {
        Health::Healthy => 0,
        Health::Degraded(_) => 1,
        Health::Unavailable(_) => 2,
    }
}

/// Name of a [`health_code`].
pub fn health_name(code: u8) -> &'static str {
    match code {
        0 => "healthy",
        1 => "degraded",
        2 => "unavailable",
        _ => "unknown",
    }
}

/// Any telemetry message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A periodic report.
    Report(Report),
    /// The names behind a report's values.
    Schema(Schema),
}

/// Why bytes are not a telemetry message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the three header bytes.
    #[error("truncated: {0} bytes, the header alone is 3")]
    Truncated(usize),
    /// Not nodus telemetry at all.
    #[error("not nodus telemetry (first byte {0:#04x}, expected {MAGIC:#04x})")]
    Magic(u8),
    /// Envelope version 0 does not exist.
    #[error("envelope version 0")]
    Version,
    /// A kind this decoder does not know (from a newer board).
    #[error("unknown message kind {0}")]
    Kind(u8),
    /// The body does not decode.
    #[error("malformed body: {0}")]
    Body(String),
}

fn encode<T: Serialize>(kind: u8, body: &T) -> Vec<u8> {
    let mut out = vec![MAGIC, VERSION, kind];
    // Serializing plain structs into a Vec cannot fail (no maps with
    // non-string keys, no unsized sequences); an empty body would be
    // refused by every decoder, which is the honest outcome if it ever did.
    if let Ok(body) = postcard::to_extend(body, Vec::new()) {
        out.extend_from_slice(&body);
    }
    out
}

impl Report {
    /// The report on the wire.
    pub fn encode(&self) -> Vec<u8> {
        encode(KIND_REPORT, self)
    }
}

impl Schema {
    /// The schema on the wire.
    pub fn encode(&self) -> Vec<u8> {
        encode(KIND_SCHEMA, self)
    }
}

/// Decodes any telemetry message, ignoring fields appended by later versions.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let [magic, version, kind, body @ ..] = bytes else {
        return Err(DecodeError::Truncated(bytes.len()));
    };
    if *magic != MAGIC {
        return Err(DecodeError::Magic(*magic));
    }
    if *version == 0 {
        return Err(DecodeError::Version);
    }
    let body_err = |e: postcard::Error| DecodeError::Body(e.to_string());
    match *kind {
        KIND_REPORT => postcard::take_from_bytes::<Report>(body)
            .map(|(r, _later_fields)| Message::Report(r))
            .map_err(body_err),
        KIND_SCHEMA => postcard::take_from_bytes::<Schema>(body)
            .map(|(s, _later_fields)| Message::Schema(s))
            .map_err(body_err),
        other => Err(DecodeError::Kind(other)),
    }
}

/// A report with its names resolved: what `watch --json` prints, and the
/// "same report as JSON" the size benchmark compares against.
#[derive(Clone, Debug, Serialize)]
pub struct NamedReport {
    /// The board.
    pub device: String,
    /// Boot id, as the kernel writes it.
    pub boot_id: String,
    /// Sequence number.
    pub seq: u64,
    /// Wall-clock time, ms since the epoch.
    pub unix_ms: u64,
    /// nodus uptime, ms.
    pub uptime_ms: u64,
    /// RSS, bytes.
    pub rss_bytes: u64,
    /// Reports lost to a full outbox this boot.
    pub dropped_total: u64,
    /// Components.
    pub components: Vec<NamedComponent>,
}

/// One component with named stats.
#[derive(Clone, Debug, Serialize)]
pub struct NamedComponent {
    /// Name.
    pub name: String,
    /// healthy / degraded / unavailable.
    pub health: &'static str,
    /// Why not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Stats by name; `#<index>` where the schema has not been seen.
    pub stats: std::collections::BTreeMap<String, serde_json::Value>,
}

impl NamedReport {
    /// Resolves `report`'s values with `schema_of(component, id)`.
    pub fn resolve<'a>(
        device: &str,
        report: &Report,
        schema_of: impl Fn(&str, u32) -> Option<&'a Schema>,
    ) -> NamedReport {
        NamedReport {
            device: device.to_owned(),
            boot_id: format_boot_id(&report.boot_id),
            seq: report.seq,
            unix_ms: report.unix_ms,
            uptime_ms: report.uptime_ms,
            rss_bytes: report.rss_bytes,
            dropped_total: report.dropped_total,
            components: report
                .components
                .iter()
                .map(|c| {
                    let schema = schema_of(&c.name, c.schema);
                    NamedComponent {
                        name: c.name.clone(),
                        health: health_name(c.health),
                        reason: c.reason.clone(),
                        stats: c
                            .values
                            .iter()
                            .enumerate()
                            .map(|(i, v)| {
                                let name = schema
                                    .and_then(|s| s.names.get(i).cloned())
                                    .unwrap_or_else(|| format!("#{i}"));
                                (name, v.to_json())
                            })
                            .collect(),
                    }
                })
                .collect(),
        }
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as /proc/sys/kernel/random/boot_id.
pub fn format_boot_id(id: &[u8; 16]) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Parses a boot id in the kernel's format; `None` if it is not one.
pub fn parse_boot_id(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(id)
}

#[cfg(test)]
mod tests;
