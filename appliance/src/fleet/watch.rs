//! `nodus telemetry watch`: the operator's decoder. Reports are postcard on
//! the wire; this subscribes to a board's (or every board's) telemetry, joins
//! each report with the retained schemas that name its values, and prints a
//! table, or one JSON object per report for tools.

use std::{collections::HashMap, io::Write, time::Duration};

use tokio::sync::{mpsc, watch};

use super::{
    config::{BrokerUrl, MqttVersion},
    link::{self, Backoff, LinkEvent, LinkOptions, Up},
    topics::{self, ROOT},
};
use crate::{
    telemetry::envelope::{self, Message, NamedReport, Schema},
    terminal::printable,
};

/// What to watch and how to print it.
pub struct WatchOptions {
    /// Broker URL (`mqtt://` or `mqtts://`).
    pub broker: String,
    /// One board, or every board when `None`.
    pub device: Option<String>,
    /// MQTT version to speak.
    pub version: MqttVersion,
    /// CA bundle for `mqtts://`.
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate and key (PEM), for brokers that require one.
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// MQTT user name and password.
    pub credentials: Option<(String, String)>,
    /// One JSON object per report instead of a table.
    pub json: bool,
    /// Stop after this many reports.
    pub count: Option<u64>,
    /// Give up (an error) if `count` reports have not arrived in this time.
    pub timeout: Option<Duration>,
}

/// Watches until `count` reports were printed (or forever); errors are
/// sentences for the operator.
pub async fn watch(o: WatchOptions, out: &mut dyn Write) -> Result<(), String> {
    let url = BrokerUrl::parse(&o.broker)?;
    let tls = match (&o.ca_file, url.tls) {
        (Some(ca), true) => {
            let client = o.client.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
            Some(std::sync::Arc::new(link::tls_config(ca, client)?))
        }
        (None, true) => return Err("mqtts:// needs --ca-file".into()),
        _ => None,
    };
    let options = LinkOptions {
        client_id: format!("nodus-watch-{}", std::process::id()),
        url,
        version: o.version,
        keep_alive: Duration::from_secs(30),
        tls,
        credentials: o.credentials.clone(),
        last_will: None,
        max_incoming: 1 << 20,
        inflight: 16,
    };
    let device = o.device.as_deref().unwrap_or("+");
    let filters = [
        format!("{ROOT}/{device}/schema/#"),
        format!("{ROOT}/{device}/state"),
        format!("{ROOT}/{device}/telemetry"),
    ];
    let (tx, mut rx) = mpsc::channel(256);
    let (stop_tx, stop_rx) = watch::channel(false);
    let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let task = tokio::spawn(link::run(options, backoff, tx, stop_rx));
    let deadline = o.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut schemas: HashMap<(String, String, u32), Schema> = HashMap::new();
    let mut printed = 0u64;
    let result = loop {
        if o.count.is_some_and(|n| printed >= n) {
            break Ok(());
        }
        let up = match deadline {
            Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                Ok(u) => u,
                Err(_) => {
                    break Err(format!(
                        "{printed} reports in {:?}; expected {}",
                        o.timeout.unwrap_or_default(),
                        o.count.unwrap_or(1)
                    ));
                }
            },
            None => rx.recv().await,
        };
        let Some(up) = up else {
            break Err("the MQTT link stopped".into());
        };
        match up {
            Up::Connected(client) => {
                for f in &filters {
                    if let Err(e) = client.subscribe(f) {
                        eprintln!("nodus: cannot subscribe to {f}: {e}");
                    }
                }
            }
            Up::Down { reason, retry_in } => {
                eprintln!(
                    "nodus: broker {}: {reason}; retrying in {retry_in:?}",
                    o.broker
                );
            }
            Up::Event(LinkEvent::Message { topic, payload, .. }) => {
                let dev = topics::device_of(&topic).unwrap_or("?").to_owned();
                if topic.ends_with("/state") {
                    if !o.json {
                        let text = String::from_utf8_lossy(&payload);
                        let _ = writeln!(out, "{} state: {}", printable(&dev), printable(&text));
                    }
                    continue;
                }
                match envelope::decode(&payload) {
                    Ok(Message::Schema(s)) => {
                        schemas.insert((dev, s.component.clone(), s.id), s);
                    }
                    Ok(Message::Report(r)) => {
                        let named = NamedReport::resolve(&dev, &r, |c, id| {
                            schemas.get(&(dev.clone(), c.to_owned(), id))
                        });
                        let text = if o.json {
                            serde_json::to_string(&named).unwrap_or_default() + "\n"
                        } else {
                            render(&named)
                        };
                        if out
                            .write_all(text.as_bytes())
                            .and_then(|_| out.flush())
                            .is_err()
                        {
                            break Ok(());
                        }
                        printed += 1;
                    }
                    Err(e) => eprintln!("nodus: {}: {e}", printable(&topic)),
                }
            }
            Up::Event(_) => {}
        }
    };
    let _ = stop_tx.send(true);
    let _ = task.await;
    result
}

/// The human form of one report.
/// Every name and text in it came from a remote board (or whoever can
/// publish on its topics), so each is shown through [`printable`].
pub fn render(r: &NamedReport) -> String {
    let mut s = format!(
        "{} boot {} seq {} up {} ms rss {:.1} MiB dropped {}\n",
        printable(&r.device),
        r.boot_id.get(..8).unwrap_or(&r.boot_id),
        r.seq,
        r.uptime_ms,
        r.rss_bytes as f64 / (1024.0 * 1024.0),
        r.dropped_total
    );
    for c in &r.components {
        s.push_str(&format!("  {:<12} {}", printable(&c.name), c.health));
        if let Some(why) = &c.reason {
            s.push_str(&format!(" ({})", printable(why)));
        }
        s.push('\n');
        for (k, v) in &c.stats {
            let v = v.to_string();
            s.push_str(&format!(
                "      {:<24} {}\n",
                printable(k),
                printable(v.trim_matches('"'))
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::envelope::NamedComponent;

    /// Whoever can publish on a board's topics chooses these strings.
    #[test]
    fn remote_text_cannot_drive_the_terminal() {
        let r = NamedReport {
            device: "b\x1b[2J".into(),
            boot_id: "0123".into(),
            seq: 1,
            unix_ms: 0,
            uptime_ms: 0,
            rss_bytes: 0,
            dropped_total: 0,
            components: vec![NamedComponent {
                name: "c\x1b]0;t\x07".into(),
                health: "degraded",
                reason: Some("why\u{9b}2J".into()),
                stats: [("k\x1b[A".to_owned(), serde_json::json!("v\x1b[K"))].into(),
            }],
        };
        let out = render(&r);
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        assert!(
            out.contains("b\\x1b[2J") && out.contains("why\\u{9b}2J"),
            "{out}"
        );
    }
}
