//! Choosing the profile for this board: the configured one, or the built-in
//! or on-disk profile whose `[board.match]` fits, and never one that does not
//! fit what was discovered.

use std::path::{Path, PathBuf};

use super::ProfileConfig;
use super::{Origin, Problem, Profile, builtin, check_against, check_structure, load};
use crate::board::Topology;

/// The outcome of selection.
#[derive(Clone, Debug)]
pub struct Chosen {
    /// The profile to apply.
    pub profile: Profile,
    /// Where it came from.
    pub origin: Origin,
    /// Set when the wanted profile could not be used and generic replaced it:
    /// which profile, and exactly why.
    pub fallback: Option<String>,
}

fn generic(fallback: Option<String>) -> Chosen {
    Chosen {
        profile: builtin("generic").unwrap_or_default(),
        origin: Origin::Builtin("generic"),
        fallback,
    }
}

fn describe(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Profiles on disk in `dir` (`*.toml`), sorted by name.
fn on_disk(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Loads `origin` and validates it fully; generic with the reason if it
/// cannot be used.
fn use_profile(origin: Origin, topo: &Topology, root: &Path) -> Chosen {
    match load(&origin) {
        Ok(profile) => {
            let against = check_against(&profile, topo, root);
            fit(profile, origin, against)
        }
        Err(e) => generic(Some(e.to_string())),
    }
}

/// The profile if it has neither structure problems nor the `against` ones
/// (already checked against this board), else generic saying why.
fn fit(profile: Profile, origin: Origin, against: Vec<Problem>) -> Chosen {
    let mut problems = check_structure(&profile);
    problems.extend(against);
    if problems.is_empty() {
        Chosen {
            profile,
            origin,
            fallback: None,
        }
    } else {
        generic(Some(format!(
            "profile {origin} does not fit this board: {}",
            describe(&problems)
        )))
    }
}

/// Picks the profile per `cfg` for the machine described by `topo` (read
/// from `root`, `/` outside tests).
pub fn choose(cfg: &ProfileConfig, topo: &Topology, root: &Path) -> Chosen {
    if let Some(path) = &cfg.path {
        return use_profile(Origin::File(path.clone()), topo, root);
    }
    if cfg.name != "auto" {
        let file = cfg.dir.join(format!("{}.toml", cfg.name));
        let origin = if file.exists() {
            Origin::File(file)
        } else {
            match super::BUILTIN.iter().find(|(n, _)| *n == cfg.name) {
                Some((n, _)) => Origin::Builtin(n),
                None => {
                    return generic(Some(format!(
                        "no profile named {} (built-in or in {})",
                        cfg.name,
                        cfg.dir.display()
                    )));
                }
            }
        };
        return use_profile(origin, topo, root);
    }
    let candidates = on_disk(&cfg.dir)
        .into_iter()
        .map(Origin::File)
        .chain(super::BUILTIN.iter().map(|(n, _)| Origin::Builtin(n)));
    for origin in candidates {
        let Ok(p) = load(&origin) else { continue };
        if p.board.matches.is_empty() {
            continue;
        }
        let against = check_against(&p, topo, root);
        if against
            .iter()
            .all(|problem| !problem.key.starts_with("board.match"))
        {
            return fit(p, origin, against);
        }
    }
    generic(None)
}
