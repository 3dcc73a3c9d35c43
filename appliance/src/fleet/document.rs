//! Signed fleet config documents.
//!
//! A document is TOML: `version` (a positive integer that only grows),
//! `target` (`"device:<id>"` or `"group:<name>"`) and config sections that
//! overlay the board's own config file, key by key. Its last line is the
//! signature over every byte before it:
//!
//! ```text
//! version = 7
//! target = "group:lab"
//!
//! [fileserver]
//! max_connections = 2000
//! # nodus-signature: ed25519 <base64 of the 64-byte signature>
//! ```
//!
//! The signature line is a TOML comment, so the document stays readable and
//! parseable as it is; and it is plain Ed25519 over the payload bytes, so a
//! fleet backend can sign with `nodus config sign`, `openssl pkeyutl -sign
//! -rawin` or any Ed25519 library. Sections in [`LOCAL_ONLY`] are refused
//! here; which other keys a document may set is the board's policy
//! (`fleet.document_keys`), checked by the fleet component.

use std::path::Path;

use crate::change::{Change, Overlay, Scope};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use ed25519_dalek::{
    Signature, Signer, SigningKey, VerifyingKey,
    pkcs8::{DecodePrivateKey, DecodePublicKey},
};

/// What precedes the base64 signature on the last line.
pub const SIGNATURE_PREFIX: &str = "# nodus-signature: ed25519 ";

/// Sections no fleet document may set, whatever `fleet.document_keys`
/// says: `[fleet]` and `[control]` keep the board reachable by its fleet and
/// its operator; `[daemon]` and `[profile]` take effect only at the next
/// start, so the grace period could not verify them before they were
/// committed as last-good.
pub const LOCAL_ONLY: &[&str] = &["fleet", "control", "daemon", "profile"];

/// A document whose signature checked out and whose payload parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Its version.
    pub version: u64,
    /// Device or group.
    pub scope: Scope,
    /// The device id or group name it names.
    pub target: String,
    /// The config sections it sets.
    pub overlay: toml::Table,
    /// The document as signed and received, kept to be stored as last-good
    /// (and verified again at the next boot).
    pub text: String,
}

impl Document {
    /// How logs and the configuration layers name it: `device v7`.
    pub fn label(&self) -> String {
        format!("{} v{}", self.scope, self.version)
    }

    /// Its base64 signature: unique to its bytes, so it names this
    /// document and no other of the same version.
    pub fn signature(&self) -> &str {
        self.text
            .trim_end()
            .rsplit('\n')
            .next()
            .and_then(|l| l.strip_prefix(SIGNATURE_PREFIX))
            .unwrap_or_default()
    }

    /// The change that puts this document's overlay in its scope's layer.
    pub fn change(&self) -> Change {
        Change {
            scope: self.scope,
            overlay: Some(Overlay {
                label: self.label(),
                table: self.overlay.clone(),
            }),
        }
    }
}

/// Why a document was refused. Each is reported on `config/reported`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Larger than `fleet.max_document_bytes`.
    #[error("oversized: {len} bytes, the limit is {max} (fleet.max_document_bytes)")]
    Oversized {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No signature line at the end.
    #[error("unsigned: the last line is not '{}<signature>'", SIGNATURE_PREFIX.trim_end())]
    Unsigned,
    /// A signature no trusted key made.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// Signed, but not a document.
    #[error("malformed: {0}")]
    Malformed(String),
    /// For another board or group.
    #[error("wrong target: '{got}' is not {expected}")]
    WrongTarget {
        /// `device:<id>` or `group:<name>` this board expects.
        expected: String,
        /// What the document names.
        got: String,
    },
    /// A replay or an older document: not above the highest version this
    /// board already decided on (committed, refused or rolled back), and
    /// not the committed document itself.
    #[error(
        "version {version} is not newer than version {highest}, the highest this board has decided on"
    )]
    NotNewer {
        /// The document's version.
        version: u64,
        /// The scope's high-water mark.
        highest: u64,
    },
    /// It sets `[fleet]`, `[control]`, `[daemon]` or `[profile]`.
    #[error(
        "[{0}] is local-only: a fleet document may not change it ([fleet] and [control] keep the board reachable; [daemon] and [profile] take effect only at start, so they could not be verified)"
    )]
    LocalOnly(String),
    /// It sets a key `fleet.document_keys` does not list.
    #[error("'{0}' is not in fleet.document_keys: this board does not let fleet documents set it")]
    NotAllowed(String),
    /// The merged configuration does not validate.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Decodes a trusted key: base64 of the 32-byte Ed25519 public key (what
/// `nodus config public-key` prints).
pub fn parse_public_key(b64: &str) -> Result<VerifyingKey, String> {
    let bytes = BASE64
        .decode(b64.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "{} bytes; an Ed25519 public key is 32 (base64 of the raw key)",
            bytes.len()
        )
    })?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not an Ed25519 key: {e}"))
}

/// Reads a signing key: PKCS#8 PEM, as `openssl genpkey -algorithm ed25519` writes.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        format!(
            "{}: not an Ed25519 private key in PKCS#8 PEM ({e})",
            path.display()
        )
    })
}

/// Reads a public key file: PEM (SPKI), as `openssl pkey -pubout` writes.
pub fn load_public_key_pem(path: &Path) -> Result<VerifyingKey, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    VerifyingKey::from_public_key_pem(&pem)
        .map_err(|e| format!("{}: not an Ed25519 public key PEM ({e})", path.display()))
}

/// Base64 of a public key, the form `fleet.trusted_keys` takes.
pub fn public_key_base64(key: &VerifyingKey) -> String {
    BASE64.encode(key.as_bytes())
}

/// Signs `payload` (checked first: a document nodus itself would refuse is
/// not worth signing) and returns the document to publish.
pub fn sign(key: &SigningKey, payload: &str) -> Result<String, Refusal> {
    if payload.contains(SIGNATURE_PREFIX.trim_end()) {
        return Err(Refusal::Malformed("payload is already signed".into()));
    }
    let mut text = payload.to_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    parse_payload(&text)?;
    let signature = key.sign(text.as_bytes());
    text.push_str(SIGNATURE_PREFIX);
    text.push_str(&BASE64.encode(signature.to_bytes()));
    text.push('\n');
    Ok(text)
}

/// Checks size and signature, then parses: everything that can be decided
/// from the bytes alone. Target and version are the caller's policy.
pub fn verify(bytes: &[u8], trusted: &[VerifyingKey], max: usize) -> Result<Document, Refusal> {
    if bytes.len() > max {
        return Err(Refusal::Oversized {
            len: bytes.len(),
            max,
        });
    }
    let text =
        std::str::from_utf8(bytes).map_err(|e| Refusal::Malformed(format!("not UTF-8: {e}")))?;
    let body = text.strip_suffix('\n').unwrap_or(text);
    let (payload, signature) = match body.rfind('\n') {
        Some(i) => (&body[..=i], &body[i + 1..]),
        None => ("", body),
    };
    let signature = signature
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(Refusal::Unsigned)?;
    let signature = BASE64
        .decode(signature.trim())
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or_else(|| Refusal::BadSignature("not a base64 Ed25519 signature".into()))?;
    if trusted.is_empty() {
        return Err(Refusal::BadSignature(
            "no trusted keys configured (fleet.trusted_keys)".into(),
        ));
    }
    if !trusted
        .iter()
        .any(|k| k.verify_strict(payload.as_bytes(), &signature).is_ok())
    {
        return Err(Refusal::BadSignature(format!(
            "made by none of the {} trusted keys, or the document was altered",
            trusted.len()
        )));
    }
    let mut doc = parse_payload(payload)?;
    doc.text = text.to_owned();
    Ok(doc)
}

fn parse_payload(payload: &str) -> Result<Document, Refusal> {
    let mut table: toml::Table = payload
        .parse()
        .map_err(|e: toml::de::Error| Refusal::Malformed(e.message().trim().to_owned()))?;
    let version = match table.remove("version") {
        Some(toml::Value::Integer(v)) if v > 0 => v as u64,
        Some(_) => {
            return Err(Refusal::Malformed(
                "version must be a positive integer".into(),
            ));
        }
        None => return Err(Refusal::Malformed("no version".into())),
    };
    let target = match table.remove("target") {
        Some(toml::Value::String(t)) => t,
        Some(_) => return Err(Refusal::Malformed("target must be a string".into())),
        None => return Err(Refusal::Malformed("no target".into())),
    };
    let named = |n: &str| super::topics::check_topic_name(n).is_ok();
    let (scope, name) = match target.split_once(':') {
        Some(("device", n)) if named(n) => (Scope::Device, n),
        Some(("group", n)) if named(n) => (Scope::Group, n),
        _ => {
            return Err(Refusal::Malformed(format!(
                "target '{target}' is not device:<id> or group:<name>"
            )));
        }
    };
    for (key, value) in &table {
        if LOCAL_ONLY.contains(&key.as_str()) {
            return Err(Refusal::LocalOnly(key.clone()));
        }
        if !value.is_table() {
            return Err(Refusal::Malformed(format!(
                "'{key}' is not a config section"
            )));
        }
    }
    Ok(Document {
        version,
        scope,
        target: name.to_owned(),
        overlay: table,
        text: String::new(),
    })
}

#[cfg(test)]
mod tests;
