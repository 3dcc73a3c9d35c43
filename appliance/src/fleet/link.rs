//! One MQTT connection, 3.1.1 or 5, over TCP or TLS: rumqttc's two client
//! flavours behind one small interface, so the fleet component and `nodus
//! telemetry watch` are written once.
//!
//! The link keeps no messages of its own across a disconnect: sessions are
//! clean, and whoever publishes decides what to send again (the telemetry
//! outbox does, from its own bounded store). Retries live with the caller
//! too, which paces them with backoff and jitter.

use std::{path::Path, sync::Arc, time::Duration};

use rumqttc::{Outgoing, TlsConfiguration, Transport};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use super::config::{BrokerUrl, FleetConfig, MqttVersion};

/// Requests queued towards rumqttc's event loop at most.
const REQUEST_CAPACITY: usize = 64;

/// What happened on the link.
#[derive(Debug)]
pub enum LinkEvent {
    /// The broker accepted the connection (a new, clean session).
    Connected,
    /// A publish went out with this packet id (0 for QoS 0), in the order
    /// they were queued.
    Sent(u16),
    /// The broker acknowledged the QoS 1 publish with this packet id.
    Acked(u16),
    /// A message arrived on a subscribed topic.
    Message {
        /// Its topic.
        topic: String,
        /// Its payload.
        payload: Vec<u8>,
        /// Whether the broker delivered it as retained.
        retained: bool,
    },
    /// Anything else (pings, subscription acks).
    Other,
}

/// Connection parameters.
#[derive(Clone)]
pub struct LinkOptions {
    /// MQTT client id.
    pub client_id: String,
    /// Broker address.
    pub url: BrokerUrl,
    /// Protocol version.
    pub version: MqttVersion,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// TLS settings when `url.tls`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// User name and password.
    pub credentials: Option<(String, String)>,
    /// Retained message the broker publishes if the link dies: topic, payload.
    pub last_will: Option<(String, Vec<u8>)>,
    /// Largest packet accepted from the broker.
    pub max_incoming: usize,
    /// Most QoS 1 publishes unacknowledged at once.
    pub inflight: u16,
}

impl LinkOptions {
    /// The largest packet the board's link accepts: room for the largest
    /// document plus headers, and never less than 256 KiB, so the document
    /// limit is enforced above the MQTT layer, with a report. (A bigger
    /// packet kills the connection; the fleet component then pauses its
    /// config topics.)
    pub fn max_incoming(config: &FleetConfig) -> usize {
        (config.max_document_bytes * 2).max(256 << 10)
    }

    /// Options for the board's own link, from `[fleet]`: TLS material and
    /// password are read here, so a missing file is an error at start.
    pub fn from_config(
        config: &FleetConfig,
        client_id: String,
        last_will: Option<(String, Vec<u8>)>,
    ) -> Result<LinkOptions, String> {
        let url = BrokerUrl::parse(&config.broker)?;
        let tls = match (&config.ca_file, url.tls) {
            (Some(ca), true) => Some(Arc::new(tls_config(
                ca,
                config
                    .client_cert
                    .as_deref()
                    .zip(config.client_key.as_deref()),
            )?)),
            _ => None,
        };
        let credentials = match &config.username {
            None => None,
            Some(user) => {
                let password = match &config.password_file {
                    None => String::new(),
                    Some(p) => std::fs::read_to_string(p)
                        .map_err(|e| format!("fleet.password_file {}: {e}", p.display()))?
                        .trim_end_matches(['\r', '\n'])
                        .to_owned(),
                };
                Some((user.clone(), password))
            }
        };
        Ok(LinkOptions {
            client_id,
            url,
            version: config.mqtt_version,
            keep_alive: Duration::from_secs(config.keep_alive_s),
            tls,
            credentials,
            last_will,
            max_incoming: LinkOptions::max_incoming(config),
            inflight: 16,
        })
    }
}

/// TLS client settings on the ring provider, trusting only `ca_file`.
pub fn tls_config(
    ca_file: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("fleet.ca_file {}: {e}", ca_file.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("fleet.ca_file {}: {e}", ca_file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("fleet.ca_file {}: {e}", ca_file.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "fleet.ca_file {}: no certificates in it",
            ca_file.display()
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| format!("fleet.client_cert {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("fleet.client_key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("fleet.client_cert: {e}"))
        }
    }
}

enum Client {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

enum Events {
    V311(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// The publishing half of a link: cheap to clone, never blocks.
#[derive(Clone)]
pub struct LinkClient {
    client: Arc<Client>,
}

/// The event half of a link. rumqttc's event loop is not cancel-safe, so it
/// is polled from one task that never drops a poll half-way ([`run`]).
pub struct LinkEvents {
    events: Events,
}

/// A client and its event loop; connects on the first [`LinkEvents::poll`].
pub fn open(o: &LinkOptions) -> (LinkClient, LinkEvents) {
    let transport = match &o.tls {
        Some(cfg) if o.url.tls => Transport::tls_with_config(TlsConfiguration::Rustls(cfg.clone())),
        _ => Transport::tcp(),
    };
    let (client, events) = match o.version {
        MqttVersion::V311 => {
            let mut m = rumqttc::MqttOptions::new(&o.client_id, &o.url.host, o.url.port);
            m.set_keep_alive(o.keep_alive)
                .set_clean_session(true)
                .set_max_packet_size(o.max_incoming, o.max_incoming)
                .set_inflight(o.inflight)
                .set_transport(transport);
            if let Some((u, p)) = &o.credentials {
                m.set_credentials(u, p);
            }
            if let Some((topic, payload)) = &o.last_will {
                m.set_last_will(rumqttc::LastWill::new(
                    topic,
                    payload.clone(),
                    rumqttc::QoS::AtLeastOnce,
                    true,
                ));
            }
            let (c, e) = rumqttc::AsyncClient::new(m, REQUEST_CAPACITY);
            (Client::V311(c), Events::V311(Box::new(e)))
        }
        MqttVersion::V5 => {
            use rumqttc::v5::mqttbytes::{QoS, v5::LastWill};
            let mut m = rumqttc::v5::MqttOptions::new(&o.client_id, &o.url.host, o.url.port);
            m.set_keep_alive(o.keep_alive)
                .set_clean_start(true)
                .set_max_packet_size(Some(o.max_incoming as u32))
                .set_outgoing_inflight_upper_limit(o.inflight)
                .set_transport(transport);
            if let Some((u, p)) = &o.credentials {
                m.set_credentials(u, p);
            }
            if let Some((topic, payload)) = &o.last_will {
                m.set_last_will(LastWill::new(
                    topic,
                    payload.clone(),
                    QoS::AtLeastOnce,
                    true,
                    None,
                ));
            }
            let (c, e) = rumqttc::v5::AsyncClient::new(m, REQUEST_CAPACITY);
            (Client::V5(c), Events::V5(Box::new(e)))
        }
    };
    (
        LinkClient {
            client: Arc::new(client),
        },
        LinkEvents { events },
    )
}

/// Why the connection went down.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The broker sent a packet over the link's incoming size limit. MQTT
    /// 3.1.1 has no way to refuse one, so the connection dies on it, and on
    /// every redelivery of a retained message.
    #[error("{0}")]
    Oversized(String),
    /// Anything else: the network, TLS, the broker refusing us, a timeout.
    #[error("{0}")]
    Connection(String),
}

impl From<rumqttc::ConnectionError> for LinkError {
    fn from(e: rumqttc::ConnectionError) -> Self {
        use rumqttc::{ConnectionError, Error, StateError};
        match &e {
            ConnectionError::MqttState(StateError::Deserialization(
                Error::PayloadSizeLimitExceeded(_),
            )) => LinkError::Oversized(e.to_string()),
            _ => LinkError::Connection(e.to_string()),
        }
    }
}

impl From<rumqttc::v5::ConnectionError> for LinkError {
    fn from(e: rumqttc::v5::ConnectionError) -> Self {
        use rumqttc::v5::{ConnectionError, StateError, mqttbytes::Error};
        match &e {
            ConnectionError::MqttState(StateError::Deserialization(
                Error::PayloadSizeLimitExceeded { .. },
            )) => LinkError::Oversized(e.to_string()),
            _ => LinkError::Connection(e.to_string()),
        }
    }
}

impl LinkEvents {
    /// The next event; connects first when not connected. An error means the
    /// connection is gone.
    pub async fn poll(&mut self) -> Result<LinkEvent, LinkError> {
        match &mut self.events {
            Events::V311(e) => {
                use rumqttc::{Event, Packet};
                match e.poll().await? {
                    Event::Incoming(Packet::ConnAck(_)) => Ok(LinkEvent::Connected),
                    Event::Incoming(Packet::PubAck(a)) => Ok(LinkEvent::Acked(a.pkid)),
                    Event::Incoming(Packet::Publish(p)) => Ok(LinkEvent::Message {
                        topic: p.topic,
                        payload: p.payload.to_vec(),
                        retained: p.retain,
                    }),
                    Event::Outgoing(Outgoing::Publish(pkid)) => Ok(LinkEvent::Sent(pkid)),
                    _ => Ok(LinkEvent::Other),
                }
            }
            Events::V5(e) => {
                use rumqttc::v5::{Event, mqttbytes::v5::Packet};
                match e.poll().await? {
                    Event::Incoming(Packet::ConnAck(_)) => Ok(LinkEvent::Connected),
                    Event::Incoming(Packet::PubAck(a)) => Ok(LinkEvent::Acked(a.pkid)),
                    Event::Incoming(Packet::Publish(p)) => Ok(LinkEvent::Message {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                        retained: p.retain,
                    }),
                    Event::Outgoing(Outgoing::Publish(pkid)) => Ok(LinkEvent::Sent(pkid)),
                    _ => Ok(LinkEvent::Other),
                }
            }
        }
    }
}

impl LinkClient {
    /// Queues a publish (QoS 1 when `reliable`, else QoS 0). Fails only when
    /// the request queue is full or the event loop is gone.
    pub fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        reliable: bool,
        retain: bool,
    ) -> Result<(), String> {
        match &*self.client {
            Client::V311(c) => {
                let qos = if reliable {
                    rumqttc::QoS::AtLeastOnce
                } else {
                    rumqttc::QoS::AtMostOnce
                };
                c.try_publish(topic, qos, retain, payload)
                    .map_err(|e| e.to_string())
            }
            Client::V5(c) => {
                use rumqttc::v5::mqttbytes::QoS;
                let qos = if reliable {
                    QoS::AtLeastOnce
                } else {
                    QoS::AtMostOnce
                };
                c.try_publish(topic, qos, retain, payload)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Queues a QoS 1 subscription.
    pub fn subscribe(&self, filter: &str) -> Result<(), String> {
        match &*self.client {
            Client::V311(c) => c
                .try_subscribe(filter, rumqttc::QoS::AtLeastOnce)
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_subscribe(filter, rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
                .map_err(|e| e.to_string()),
        }
    }

    /// Queues a clean DISCONNECT (the broker then does not publish the will).
    pub fn disconnect(&self) -> Result<(), String> {
        match &*self.client {
            Client::V311(c) => c.try_disconnect().map_err(|e| e.to_string()),
            Client::V5(c) => c.try_disconnect().map_err(|e| e.to_string()),
        }
    }
}

/// What the link task tells its owner.
pub enum Up {
    /// Connected; publish through this client until the next `Down`.
    Connected(LinkClient),
    /// An event on the current connection.
    Event(LinkEvent),
    /// The connection is gone (or never came); the link retries by itself
    /// after the delay given.
    Down {
        /// Why.
        reason: LinkError,
        /// When the next attempt is.
        retry_in: Duration,
    },
}

/// Reconnect pacing: exponential from `min` to `max`, each delay jittered
/// down by up to a half so a fleet that lost its broker does not return in
/// one wave.
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    seed: u64,
}

impl Backoff {
    /// Delays from `min` up to `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        Backoff {
            min,
            max: max.max(min),
            next: min,
            seed: seed | 1,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        // xorshift64: enough to spread a fleet, no dependency needed.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let full = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = full.mul_f64((self.seed % 1000) as f64 / 2000.0);
        full - jitter
    }

    /// A connection succeeded: start again from `min`.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Keeps a connection up until `stop` turns true: opens the link, forwards
/// its events, and after a failure opens a fresh one (a clean session with
/// nothing carried over: what must be sent again, the owner sends).
/// Returns when `stop` is set or the owner is gone.
pub async fn run(
    options: LinkOptions,
    mut backoff: Backoff,
    up: tokio::sync::mpsc::Sender<Up>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (client, mut events) = open(&options);
        let last_client = Some(client);
        let reason = loop {
            // Polled to completion every time: only `stop` interrupts, and
            // then the event loop is dropped as a whole.
            let event = tokio::select! {
                e = events.poll() => e,
                _ = stopping(&mut stop) => return,
            };
            let msg = match event {
                Ok(LinkEvent::Connected) => {
                    backoff.reset();
                    match last_client.clone() {
                        Some(c) => Up::Connected(c),
                        None => continue,
                    }
                }
                Ok(e) => Up::Event(e),
                Err(e) => break e,
            };
            if up.send(msg).await.is_err() {
                return;
            }
        };
        let retry_in = backoff.next_delay();
        if up.send(Up::Down { reason, retry_in }).await.is_err() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(retry_in) => {}
            _ = stopping(&mut stop) => return,
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopping(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|&s| s).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_and_resets() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(800));
        let mut b = Backoff::new(min, max);
        let delays: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        let caps = [100, 200, 400, 800, 800, 800];
        for (d, cap) in delays.iter().zip(caps) {
            let cap = Duration::from_millis(cap);
            assert!(
                *d <= cap && *d >= cap / 2,
                "{d:?} outside [{:?}, {cap:?}]",
                cap / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= min);
    }
}
