//! Reading profiles: files, `include` chains and the profiles built into the
//! binary (so a bare `nodus run` recognises the boards nodus ships for).

use std::{
    fs,
    path::{Path, PathBuf},
};

use super::Profile;
use crate::tomlfile::{self, TomlError};

/// `(name, text)` for each named file in `board-profiles/`.
macro_rules! builtin_profiles {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../board-profiles/", $name, ".toml")))),*]
    };
}

/// Profiles compiled into the binary, by name: every file in `board-profiles/`
/// (a test keeps the two in step).
pub const BUILTIN: &[(&str, &str)] = builtin_profiles![
    "generic",
    "qemu-virt-numa",
    "nvidia-grace-superchip",
    "nvidia-jetson-agx-thor",
    "radxa-orion-o6",
];

/// Deepest `include` chain accepted.
const MAX_INCLUDE_DEPTH: usize = 4;

/// Why a profile could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("profile {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        source: std::io::Error,
    },
    /// Not a valid profile.
    #[error("profile {0}")]
    Invalid(#[from] TomlError),
    /// An `include` that cannot be followed.
    #[error("profile {from}: key include: {reason}")]
    Include {
        /// The including profile.
        from: String,
        /// Why.
        reason: String,
    },
}

/// Where a profile came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Compiled in.
    Builtin(&'static str),
    /// A file.
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Builtin(n) => write!(f, "<built-in {n}>"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

fn text_of(origin: &Origin) -> Result<String, LoadError> {
    match origin {
        Origin::Builtin(name) => BUILTIN
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| (*t).to_owned())
            .ok_or_else(|| LoadError::Include {
                from: origin.to_string(),
                reason: format!("no built-in profile {name}"),
            }),
        Origin::File(path) => fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.clone(),
            source,
        }),
    }
}

/// Loads the profile at `origin`, following `include`.
pub fn load(origin: &Origin) -> Result<Profile, LoadError> {
    let table = merged_table(origin, 0, &mut Vec::new())?;
    let name = origin.to_string();
    if table.get("include").is_none() {
        // No include: type the text itself so errors carry line numbers.
        return Ok(tomlfile::parse_str(&text_of(origin)?, &name)?);
    }
    let mut profile: Profile = tomlfile::from_table(table, &name)?;
    profile.include = None;
    Ok(profile)
}

/// Loads a built-in profile by name.
pub fn builtin(name: &str) -> Option<Profile> {
    let (name, _) = BUILTIN.iter().find(|(n, _)| *n == name)?;
    load(&Origin::Builtin(name)).ok()
}

/// The table of `origin` with its includes merged underneath it.
fn merged_table(
    origin: &Origin,
    depth: usize,
    seen: &mut Vec<Origin>,
) -> Result<toml::Table, LoadError> {
    let name = origin.to_string();
    if seen.contains(origin) {
        return Err(LoadError::Include {
            from: name,
            reason: "include cycle".into(),
        });
    }
    if depth > MAX_INCLUDE_DEPTH {
        return Err(LoadError::Include {
            from: name,
            reason: format!("includes nested deeper than {MAX_INCLUDE_DEPTH}"),
        });
    }
    seen.push(origin.clone());
    let mut table = tomlfile::parse_table(&text_of(origin)?, &name)?;
    let Some(include) = table.remove("include") else {
        return Ok(table);
    };
    let include = include.as_str().ok_or_else(|| LoadError::Include {
        from: name.clone(),
        reason: "must be a string".into(),
    })?;
    let base_origin = resolve_include(origin, include);
    let mut base = merged_table(&base_origin, depth + 1, seen)?;
    merge(&mut base, table);
    base.insert("include".into(), toml::Value::String(include.to_owned()));
    Ok(base)
}

/// `include = "x"` names `x.toml` next to the including file if it exists,
/// else the built-in profile `x`.
fn resolve_include(from: &Origin, include: &str) -> Origin {
    if let Origin::File(path) = from {
        let dir = path.parent().unwrap_or(Path::new("."));
        let file = dir.join(format!("{include}.toml"));
        if file.exists() {
            return Origin::File(file);
        }
        let file = dir.join(include);
        if file.exists() {
            return Origin::File(file);
        }
    }
    match BUILTIN.iter().find(|(n, _)| *n == include) {
        Some((n, _)) => Origin::Builtin(n),
        None => Origin::File(PathBuf::from(include)),
    }
}

/// Tables merge key by key; everything else (arrays included) is replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}
