//! Reading a TLS ClientHello without terminating TLS: what the proxy routes
//! by (the server name, the offered ALPN protocols).
//!
//! Nothing here trusts one read or one record. A post-quantum hello
//! (X25519MLKEM768 key share, 1.5-2 KB) often arrives in two TCP segments,
//! and a client may split its hello over several TLS records; the reader
//! accumulates bytes until the whole handshake message is there, across any
//! number of reads and records, up to [`MAX_HELLO`]. The handshake body is
//! parsed by tls-parser (GREASE, unknown extensions and ECH outer hellos are
//! just extensions to it); the reassembly is ours, because tls-parser reads
//! one record at a time.
//!
//! Every byte read is kept unchanged: after routing, the proxy sends them
//! all to the backend first (the hello, and any early data behind it).

use tls_parser::{TlsExtension, TlsMessage, TlsMessageHandshake, TlsVersion};

/// The largest ClientHello accepted (handshake message, header included):
/// eight times the post-quantum hellos browsers send today (about 2 KB),
/// and a bound on what one connection may make the proxy hold.
pub const MAX_HELLO: usize = 16 * 1024;

/// TLS record content type of a handshake.
const HANDSHAKE: u8 = 22;
/// Handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;
/// Extension type of an Encrypted Client Hello (the outer hello carries it).
const ECH: u16 = 0xfe0d;
/// The largest TLS plaintext record body (RFC 8446 5.1).
const MAX_RECORD: usize = 1 << 14;

/// What a ClientHello says about where it wants to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The server name (SNI), lower-cased, without a trailing dot.
    pub server_name: Option<String>,
    /// ALPN protocols offered, in the client's order.
    pub alpn: Vec<Vec<u8>>,
    /// The client offers TLS 1.3 (supported_versions).
    pub tls13: bool,
    /// The hello is an ECH outer hello (the real name is encrypted; the
    /// server name above is the public one).
    pub ech: bool,
}

/// Why bytes are not a ClientHello the proxy can route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The first record is not a TLS handshake (plain HTTP, SSLv2, noise).
    #[error("not TLS: first record type {0}")]
    NotTls(u8),
    /// A record header carries an impossible version or length.
    #[error("bad TLS record header (version {version:#06x}, length {length})")]
    BadRecord {
        /// The record's protocol version.
        version: u16,
        /// The record's declared length.
        length: usize,
    },
    /// Another record type arrived before the hello was complete.
    #[error("record type {0} inside the ClientHello")]
    Interleaved(u8),
    /// The first handshake message is not a ClientHello.
    #[error("first handshake message is type {0}, not ClientHello")]
    NotClientHello(u8),
    /// The hello is larger than [`MAX_HELLO`], or its records take more
    /// than twice that.
    #[error("ClientHello of {0} bytes is over the {MAX_HELLO}-byte limit")]
    TooLarge(usize),
    /// The hello's body does not parse.
    #[error("malformed ClientHello: {0}")]
    Malformed(String),
    /// The server name is not a host name.
    #[error("server name is not a host name: {0:?}")]
    BadServerName(String),
}

/// Where a reader is after the bytes given so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// The hello is not complete yet: read more.
    NeedMore,
    /// The hello is complete.
    Done(Hello),
}

/// Accumulates a connection's first bytes until its ClientHello is whole.
#[derive(Debug, Default)]
pub struct HelloReader {
    /// Every byte received, unchanged (sent on to the backend).
    received: Vec<u8>,
}

impl HelloReader {
    /// An empty reader.
    pub fn new() -> Self {
        HelloReader::default()
    }

    /// Every byte received so far, as received.
    pub fn received(&self) -> &[u8] {
        &self.received
    }

    /// Takes the bytes received, for forwarding.
    pub fn into_received(self) -> Vec<u8> {
        self.received
    }

    /// Adds bytes read from the client and says whether the hello is
    /// complete. Errors are final: the connection is not TLS, or not one
    /// the proxy will route.
    pub fn push(&mut self, data: &[u8]) -> Result<Progress, HelloError> {
        self.received.extend_from_slice(data);
        let message = match handshake_prefix(&self.received)? {
            None => return Ok(Progress::NeedMore),
            Some(m) => m,
        };
        parse_client_hello(&message).map(Progress::Done)
    }
}

/// The first handshake message, gathered from as many records as it spans,
/// once all of it has arrived.
fn handshake_prefix(bytes: &[u8]) -> Result<Option<Vec<u8>>, HelloError> {
    let mut message = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = bytes.get(at..at + 5) else {
            return Ok(None);
        };
        let (kind, version) = (header[0], u16::from_be_bytes([header[1], header[2]]));
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if kind != HANDSHAKE {
            return Err(if at == 0 {
                HelloError::NotTls(kind)
            } else {
                HelloError::Interleaved(kind)
            });
        }
        // Record versions 3.0 to 3.3 (a 1.3 hello says 3.1 or 3.3 here).
        if header[1] != 3 || header[2] > 4 || length == 0 || length > MAX_RECORD {
            return Err(HelloError::BadRecord { version, length });
        }
        let Some(body) = bytes.get(at + 5..at + 5 + length) else {
            // The part of this record already here still counts toward
            // the size check, so a hello declared too large fails early.
            let partial = &bytes[at + 5..];
            message.extend_from_slice(partial);
            check_declared(&message)?;
            return Ok(None);
        };
        message.extend_from_slice(body);
        at += 5 + length;
        // Record headers count too: a hello in one-byte records must not
        // make the proxy hold six times the limit.
        if at > 2 * MAX_HELLO {
            return Err(HelloError::TooLarge(at));
        }
        if let Some(total) = check_declared(&message)? {
            if message.len() >= total {
                message.truncate(total);
                return Ok(Some(message));
            }
        }
    }
}

/// The first handshake message's whole length (header included), once its
/// header is here; errors if it is not a ClientHello or too large.
fn check_declared(message: &[u8]) -> Result<Option<usize>, HelloError> {
    let Some(header) = message.get(..4) else {
        return Ok(None);
    };
    if header[0] != CLIENT_HELLO {
        return Err(HelloError::NotClientHello(header[0]));
    }
    let total = 4
        + ((usize::from(header[1]) << 16) | (usize::from(header[2]) << 8) | usize::from(header[3]));
    if total > MAX_HELLO {
        return Err(HelloError::TooLarge(total));
    }
    Ok(Some(total))
}

fn parse_client_hello(message: &[u8]) -> Result<Hello, HelloError> {
    let malformed = |e: &dyn std::fmt::Debug| HelloError::Malformed(format!("{e:?}"));
    let (_, parsed) =
        tls_parser::parse_tls_message_handshake(message).map_err(|e| malformed(&e))?;
    let TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello)) = parsed else {
        return Err(HelloError::Malformed("not a ClientHello body".into()));
    };
    let mut out = Hello {
        server_name: None,
        alpn: Vec::new(),
        tls13: false,
        ech: false,
    };
    let Some(ext) = hello.ext else {
        // A hello without extensions (old TLS 1.0 clients) has no name;
        // but bytes after the compression methods that did not parse as
        // extensions are a broken hello, not an anonymous one.
        let fixed = 4
            + 2
            + 32
            + 1
            + hello.session_id.map_or(0, <[u8]>::len)
            + 2
            + 2 * hello.ciphers.len()
            + 1
            + hello.comp.len();
        if message.len() > fixed {
            return Err(HelloError::Malformed("extensions do not parse".into()));
        }
        return Ok(out);
    };
    let (_, extensions) =
        tls_parser::parse_tls_client_hello_extensions(ext).map_err(|e| malformed(&e))?;
    for e in extensions {
        match e {
            TlsExtension::SNI(names) => {
                // Type 0 (host_name) is the only one defined.
                if let Some((_, name)) = names.iter().find(|(t, _)| t.0 == 0) {
                    out.server_name = Some(host_name(name)?);
                }
            }
            TlsExtension::ALPN(protocols) => {
                out.alpn = protocols.iter().map(|p| p.to_vec()).collect();
            }
            TlsExtension::SupportedVersions(versions) => {
                out.tls13 = versions.contains(&TlsVersion::Tls13);
            }
            TlsExtension::Unknown(t, _) if t.0 == ECH => out.ech = true,
            _ => {}
        }
    }
    Ok(out)
}

/// A server name as routes compare it: ASCII letters, digits, `-` and `.`
/// (labels of 1-63, 253 in all), lower-cased, without a trailing dot.
fn host_name(raw: &[u8]) -> Result<String, HelloError> {
    let text = String::from_utf8_lossy(raw);
    let bad = || HelloError::BadServerName(crate::terminal::printable(&text).into_owned());
    let name = raw.strip_suffix(b".").unwrap_or(raw);
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    for label in name.split(|&c| c == b'.') {
        if label.is_empty()
            || label.len() > 63
            || !label
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        {
            return Err(bad());
        }
    }
    Ok(String::from_utf8_lossy(name).to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
