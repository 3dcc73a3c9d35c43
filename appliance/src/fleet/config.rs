//! `[fleet]`: the broker, the board's identity, telemetry and fleet-config
//! policy. Every key is documented, with its default, in `config/defaults.toml`.

use std::{fmt, path::PathBuf};

use serde::{Deserialize, Serialize};

use super::topics::check_topic_name;

/// `[fleet]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// Whether nodus talks to a broker at all.
    pub enabled: bool,
    /// `mqtt://host[:port]` or `mqtts://host[:port]` (TLS).
    pub broker: String,
    /// MQTT protocol version.
    pub mqtt_version: MqttVersion,
    /// This board's id in topics; empty means /etc/machine-id.
    pub device_id: String,
    /// The group whose config documents this board also takes; empty for none.
    pub group: String,
    /// MQTT keep-alive, seconds: how soon the broker notices a dead board.
    pub keep_alive_s: u64,
    /// First reconnect delay, milliseconds; doubles up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, milliseconds (jittered by up to a half).
    pub reconnect_max_ms: u64,
    /// PEM bundle of the CAs the broker's certificate must chain to (mqtts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain), for brokers that require one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// MQTT user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// File holding the MQTT password (kept out of the config file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Milliseconds between telemetry reports.
    pub telemetry_interval_ms: u64,
    /// Reports kept while the broker is unreachable; beyond, the oldest are
    /// dropped and counted. Takes effect at the next start.
    pub outbox_reports: usize,
    /// Bytes of `<state_dir>/telemetry.spool`, where reports that do not fit
    /// in the outbox, and those still waiting when nodus stops, are kept
    /// across restarts and reboots; 0 = no spool. Takes effect at the next start.
    pub spool_bytes: u64,
    /// Base64 Ed25519 public keys allowed to sign config documents.
    pub trusted_keys: Vec<String>,
    /// Largest config document accepted, bytes.
    pub max_document_bytes: usize,
    /// How long an applied config must keep every component as healthy as
    /// before, milliseconds, before it is committed as last-good.
    pub grace_ms: u64,
    /// Where the last-good config documents are kept.
    pub state_dir: PathBuf,
    /// What a fleet document may set: `"section"` (every key of it) or
    /// `"section.key"`. Anything else in a document refuses it, so a leaked
    /// signing key cannot point the file server at `/` or follow symlinks
    /// out of its docroot unless the board's own file allows that.
    pub document_keys: Vec<String>,
}

/// The default `document_keys`: what tunes a component without widening
/// what the board exposes or reads.
pub const DEFAULT_DOCUMENT_KEYS: &[&str] = &[
    "proccache",
    "pagecache",
    "fileserver.enabled",
    "fileserver.listen",
    "fileserver.index",
    "fileserver.workers",
    "fileserver.pin_workers",
    "fileserver.max_connections",
    "fileserver.max_request_line",
    "fileserver.max_header_bytes",
    "fileserver.max_headers",
    "fileserver.header_timeout_ms",
    "fileserver.idle_timeout_ms",
    "fileserver.small_file_max",
    "fileserver.hot_bytes",
    "fileserver.hot_policy",
    "fileserver.hot_review_requests",
    "fileserver.open_files",
    "fileserver.backlog",
    "fileserver.reuseport_steering",
    "log.level",
];

impl FleetConfig {
    /// Whether a document may set `key` of `[section]`.
    pub fn document_may_set(&self, section: &str, key: &str) -> bool {
        !super::document::LOCAL_ONLY.contains(&section)
            && self.document_keys.iter().any(|k| match k.split_once('.') {
                Some((s, k)) => s == section && k == key,
                None => k == section,
            })
    }
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            enabled: true,
            broker: "mqtt://127.0.0.1:1883".into(),
            mqtt_version: MqttVersion::V5,
            device_id: String::new(),
            group: String::new(),
            keep_alive_s: 30,
            reconnect_min_ms: 500,
            reconnect_max_ms: 30_000,
            ca_file: None,
            client_cert: None,
            client_key: None,
            username: None,
            password_file: None,
            telemetry_interval_ms: 10_000,
            outbox_reports: 1024,
            spool_bytes: 1 << 20,
            trusted_keys: Vec::new(),
            max_document_bytes: 65_536,
            grace_ms: 10_000,
            state_dir: PathBuf::from("/var/lib/nodus"),
            document_keys: DEFAULT_DOCUMENT_KEYS
                .iter()
                .map(|k| k.to_string())
                .collect(),
        }
    }
}

/// MQTT protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MqttVersion {
    /// MQTT 3.1.1.
    #[serde(rename = "3.1.1")]
    V311,
    /// MQTT 5.
    #[serde(rename = "5")]
    V5,
}

impl fmt::Display for MqttVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MqttVersion::V311 => "3.1.1",
            MqttVersion::V5 => "5",
        })
    }
}

/// A parsed `broker` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerUrl {
    /// `mqtts://`.
    pub tls: bool,
    /// Host name or address (without brackets).
    pub host: String,
    /// Port (1883 or 8883 when not given).
    pub port: u16,
}

impl BrokerUrl {
    /// Parses `mqtt://host[:port]`, `mqtts://host[:port]`, with `[v6]` hosts.
    pub fn parse(url: &str) -> Result<BrokerUrl, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "'{url}' is not mqtt://host[:port] or mqtts://host[:port]"
            ));
        };
        let rest = rest.trim_end_matches('/');
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("'{url}': unclosed '['"))?;
            (host, after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.contains(['/', '@', '?', '#']) {
            return Err(format!("'{url}': no usable host"));
        }
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("'{url}': port '{p}' is not 1-65535"))?,
        };
        Ok(BrokerUrl {
            tls,
            host: host.to_owned(),
            port,
        })
    }
}

impl FleetConfig {
    /// Range and consistency checks: `(key, reason)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, r: String| Err((format!("fleet.{k}"), r));
        let url = match BrokerUrl::parse(&self.broker) {
            Ok(u) => u,
            Err(e) => return err("broker", e),
        };
        if url.tls && self.ca_file.is_none() {
            return err(
                "ca_file",
                "required for mqtts:// (nodus trusts only the CAs you give it)".into(),
            );
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return err(
                "client_key",
                "client_cert and client_key go together".into(),
            );
        }
        if !self.device_id.is_empty()
            && let Err(e) = check_topic_name(&self.device_id)
        {
            return err("device_id", e);
        }
        if !self.group.is_empty()
            && let Err(e) = check_topic_name(&self.group)
        {
            return err("group", e);
        }
        if !(1..=3600).contains(&self.keep_alive_s) {
            return err("keep_alive_s", "must be between 1 and 3600".into());
        }
        if self.reconnect_min_ms == 0 || self.reconnect_min_ms > self.reconnect_max_ms {
            return err(
                "reconnect_min_ms",
                "must be at least 1 and at most reconnect_max_ms".into(),
            );
        }
        if self.reconnect_max_ms > 3_600_000 {
            return err("reconnect_max_ms", "must be at most 3600000".into());
        }
        if !(100..=86_400_000).contains(&self.telemetry_interval_ms) {
            return err(
                "telemetry_interval_ms",
                "must be between 100 and 86400000".into(),
            );
        }
        if !(1..=1_000_000).contains(&self.outbox_reports) {
            return err("outbox_reports", "must be between 1 and 1000000".into());
        }
        if self.spool_bytes != 0 && !(4096..=1 << 30).contains(&self.spool_bytes) {
            return err(
                "spool_bytes",
                "must be 0 (no spool) or between 4096 and 1073741824".into(),
            );
        }
        if !(1024..=16 << 20).contains(&self.max_document_bytes) {
            return err(
                "max_document_bytes",
                "must be between 1024 and 16777216".into(),
            );
        }
        if self.grace_ms > 600_000 {
            return err("grace_ms", "must be at most 600000".into());
        }
        for (i, key) in self.trusted_keys.iter().enumerate() {
            if let Err(e) = super::document::parse_public_key(key) {
                return Err((format!("fleet.trusted_keys[{i}]"), e));
            }
        }
        for (i, entry) in self.document_keys.iter().enumerate() {
            let section = entry.split_once('.').map_or(entry.as_str(), |(s, _)| s);
            if super::document::LOCAL_ONLY.contains(&section) {
                return Err((
                    format!("fleet.document_keys[{i}]"),
                    format!("[{section}] is local-only and can never be set by a fleet document"),
                ));
            }
        }
        if !self.state_dir.is_absolute() {
            return err("state_dir", "must be an absolute path".into());
        }
        Ok(())
    }

    /// The configured device id, else /etc/machine-id.
    pub fn resolve_device_id(&self) -> Result<String, String> {
        if !self.device_id.is_empty() {
            return Ok(self.device_id.clone());
        }
        let id = std::fs::read_to_string("/etc/machine-id")
            .map_err(|e| format!("fleet.device_id is empty and /etc/machine-id: {e}"))?;
        let id = id.trim().to_owned();
        check_topic_name(&id).map_err(|e| format!("/etc/machine-id: {e}"))?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let u = BrokerUrl::parse("mqtt://127.0.0.1").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "127.0.0.1", 1883));
        let u = BrokerUrl::parse("mqtts://broker.example:9883/").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (true, "broker.example", 9883)
        );
        let u = BrokerUrl::parse("mqtts://[::1]").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8883));
        let u = BrokerUrl::parse("mqtt://[::1]:1884").unwrap();
        assert_eq!(u.port, 1884);
        for bad in [
            "tcp://x:1",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:99999",
            "mqtt://h:x",
            "mqtt://[::1",
            "mqtt://u@h",
        ] {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn defaults_validate() {
        assert_eq!(FleetConfig::default().validate(), Ok(()));
    }

    #[test]
    fn each_rule_names_its_key() {
        type Breaker = fn(&mut FleetConfig);
        let cases: [(&str, Breaker); 9] = [
            ("fleet.broker", |c| c.broker = "http://x".into()),
            ("fleet.ca_file", |c| c.broker = "mqtts://x".into()),
            ("fleet.client_key", |c| c.client_cert = Some("/c".into())),
            ("fleet.device_id", |c| c.device_id = "a/b".into()),
            ("fleet.outbox_reports", |c| c.outbox_reports = 0),
            ("fleet.spool_bytes", |c| c.spool_bytes = 100),
            ("fleet.trusted_keys[0]", |c| {
                c.trusted_keys = vec!["not base64!".into()]
            }),
            ("fleet.state_dir", |c| c.state_dir = "rel".into()),
            ("fleet.reconnect_min_ms", |c| c.reconnect_min_ms = 60_000),
        ];
        for (key, break_it) in cases {
            let mut c = FleetConfig::default();
            break_it(&mut c);
            assert_eq!(c.validate().map_err(|e| e.0), Err(key.to_owned()));
        }
    }
}
