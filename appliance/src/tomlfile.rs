//! Reading typed TOML with errors an operator can act on: one line naming the
//! file, the key (`node[1].cpus`), the line when known, and the reason.
//! Shared by the config file and board profiles.

use serde::de::DeserializeOwned;

/// A TOML document that is not a valid `T`.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {location}{reason}")]
pub struct TomlError {
    /// The file (or `<embedded defaults>`, `<built-in profile x>`).
    pub source_name: String,
    /// `key daemon.x (line 3): `, `at (line 2): ` or empty.
    pub location: String,
    /// What is wrong.
    pub reason: String,
}

impl TomlError {
    /// An error found after parsing (a validation rule), at `key`.
    pub fn at_key(source_name: &str, key: &str, reason: impl Into<String>) -> TomlError {
        TomlError {
            source_name: source_name.to_owned(),
            location: format!("key {key}: "),
            reason: reason.into(),
        }
    }
}

/// Parses `text` as a `T`; `source_name` names it in errors.
pub fn parse_str<T: DeserializeOwned>(text: &str, source_name: &str) -> Result<T, TomlError> {
    let de = toml::Deserializer::parse(text).map_err(|e| from_toml(source_name, text, "", &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        from_toml(source_name, text, &key, e.inner())
    })
}

/// Parses `text` as a TOML table (for documents merged before typing).
pub fn parse_table(text: &str, source_name: &str) -> Result<toml::Table, TomlError> {
    text.parse::<toml::Table>()
        .map_err(|e| from_toml(source_name, text, "", &e))
}

/// Types an already-merged table; errors carry the key but no line.
pub fn from_table<T: DeserializeOwned>(
    table: toml::Table,
    source_name: &str,
) -> Result<T, TomlError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        TomlError {
            source_name: source_name.to_owned(),
            location: if key.is_empty() || key == "." {
                String::new()
            } else {
                format!("key {key}: ")
            },
            reason: e.inner().to_string().trim().replace('\n', " "),
        }
    })
}

fn from_toml(source_name: &str, text: &str, key: &str, e: &toml::de::Error) -> TomlError {
    let line = e
        .span()
        .map(|s| {
            let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        })
        .unwrap_or_default();
    let location = if key.is_empty() || key == "." {
        if line.is_empty() {
            String::new()
        } else {
            format!("at{line}: ")
        }
    } else {
        format!("key {key}{line}: ")
    };
    TomlError {
        source_name: source_name.to_owned(),
        location,
        reason: e.message().trim().replace('\n', " "),
    }
}
