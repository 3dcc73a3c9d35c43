//! The last-good fleet documents on disk: what the board falls back to at
//! boot when its broker cannot be reached.
//!
//! One file holds both documents (group and device), so committing one never
//! pairs it with a stale other. It is replaced atomically: written to a
//! temporary file in the same directory, fsynced, renamed over the old one,
//! and the directory fsynced; a power cut or `kill -9` at any point leaves
//! the old file or the new one, never a torn one. The documents are stored
//! as signed and verified again when read, so a tampered file (or a key the
//! fleet has since stopped trusting) is refused too.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::change::Scope;

use super::{
    FleetConfig,
    document::{self, Document},
};

/// The file's name inside `fleet.state_dir`.
pub const FILE_NAME: &str = "fleet-last-good.json";

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<String>,
}

/// The path of the last-good file.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Replaces the last-good file with these documents.
pub fn store(
    state_dir: &Path,
    group: Option<&Document>,
    device: Option<&Document>,
) -> io::Result<()> {
    let body = serde_json::to_vec_pretty(&OnDisk {
        group: group.map(|d| d.text.clone()),
        device: device.map(|d| d.text.clone()),
    })
    .map_err(io::Error::other)?;
    crate::durable::write_atomically(&path(state_dir), &body)
}

/// What was found on disk.
#[derive(Default)]
pub struct Loaded {
    /// The group document, verified.
    pub group: Option<Document>,
    /// The device document, verified.
    pub device: Option<Document>,
    /// Why something on disk was not used.
    pub problems: Vec<String>,
}

/// Reads and verifies the last-good documents for this board.
pub fn load(config: &FleetConfig, device_id: &str) -> Loaded {
    let mut loaded = Loaded::default();
    let file = path(&config.state_dir);
    let bytes = match fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return loaded,
        Err(e) => {
            loaded.problems.push(format!("{}: {e}", file.display()));
            return loaded;
        }
    };
    let on_disk: OnDisk = match serde_json::from_slice(&bytes) {
        Ok(d) => d,
        Err(e) => {
            loaded.problems.push(format!("{}: {e}", file.display()));
            return loaded;
        }
    };
    let keys: Vec<VerifyingKey> = config
        .trusted_keys
        .iter()
        .filter_map(|k| document::parse_public_key(k).ok())
        .collect();
    let mut problems = Vec::new();
    let mut check = |scope: Scope, text: Option<String>, expected: &str| {
        let text = text?;
        let result =
            document::verify(text.as_bytes(), &keys, config.max_document_bytes).and_then(|d| {
                if d.scope == scope && d.target == expected {
                    Ok(d)
                } else {
                    Err(document::Refusal::WrongTarget {
                        expected: format!("{scope}:{expected}"),
                        got: format!("{}:{}", d.scope, d.target),
                    })
                }
            });
        match result {
            Ok(d) => Some(d),
            Err(e) => {
                problems.push(format!("{} ({scope} document): {e}", file.display()));
                None
            }
        }
    };
    loaded.device = check(Scope::Device, on_disk.device, device_id);
    loaded.group = if config.group.is_empty() {
        None
    } else {
        check(Scope::Group, on_disk.group, &config.group)
    };
    loaded.problems = problems;
    loaded
}
