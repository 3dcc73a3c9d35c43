//! The replay guard: for each scope, the highest document version this
//! board has decided on, and which document is the committed one.
//!
//! A document is decided when the daemon committed it, refused it as an
//! invalid configuration, or rolled it back. From then on a document of that
//! scope must carry a higher version, with one exception: the committed
//! document itself may be applied again (a board that lost its last-good
//! file gets it back from the retained topic). So an older document, validly
//! signed, is refused however the board got here, and a document that was
//! rolled back is not tried again on every boot because the broker still
//! retains it.
//!
//! It is kept apart from the last-good file: losing that file, damage to it,
//! a rotated key or a lowered `fleet.max_document_bytes` (each of which makes
//! the last-good documents unusable) leaves the guard as it was. Two copies,
//! each written atomically and each carrying a CRC, so one damaged copy on
//! flash is not a reset; the marks only grow, taking the highest either copy
//! holds and the last-good documents' own versions.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use crate::change::Scope;

use super::document::{Document, Refusal};

/// The file names inside `fleet.state_dir`: the mark, and its second copy.
pub const FILE_NAMES: [&str; 2] = ["fleet-versions", "fleet-versions.1"];

/// First line of a copy; a new layout gets a new one.
const HEADER: &str = "nodus-fleet-versions 1";

/// The committed document of a scope, named by its signature (unique to
/// its bytes, so a different document with the same version is not it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Its version.
    pub version: u64,
    /// Its base64 signature.
    pub signature: String,
}

/// One scope's mark.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    /// The highest version decided on; 0 before the first.
    pub highest: u64,
    /// The document committed last, if one was.
    pub committed: Option<Committed>,
}

/// Both scopes' marks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Versions {
    group: Mark,
    device: Mark,
}

impl Versions {
    /// The mark of `scope`.
    pub fn mark(&self, scope: Scope) -> &Mark {
        match scope {
            Scope::Group => &self.group,
            Scope::Device => &self.device,
        }
    }

    fn mark_mut(&mut self, scope: Scope) -> &mut Mark {
        match scope {
            Scope::Group => &mut self.group,
            Scope::Device => &mut self.device,
        }
    }

    /// Whether `doc` may be applied: it is the committed document of its
    /// scope, or newer than anything decided on.
    pub fn admits(&self, doc: &Document) -> Result<(), Refusal> {
        let mark = self.mark(doc.scope);
        let is_committed = mark
            .committed
            .as_ref()
            .is_some_and(|c| c.version == doc.version && c.signature == doc.signature());
        if is_committed || doc.version > mark.highest {
            Ok(())
        } else {
            Err(Refusal::NotNewer {
                version: doc.version,
                highest: mark.highest,
            })
        }
    }

    /// The daemon decided on `doc` (`committed`: it now runs). True when the
    /// marks changed and should be stored.
    pub fn decided(&mut self, doc: &Document, committed: bool) -> bool {
        let before = self.clone();
        let mark = self.mark_mut(doc.scope);
        mark.highest = mark.highest.max(doc.version);
        if committed {
            mark.committed = Some(Committed {
                version: doc.version,
                signature: doc.signature().to_owned(),
            });
        }
        *self != before
    }

    /// Reads both copies under `state_dir` and keeps the highest of each
    /// mark. What could not be read is returned to be logged; nothing is an
    /// error (a board without the file starts from nothing).
    pub fn load(state_dir: &Path) -> (Versions, Vec<String>) {
        let mut versions = Versions::default();
        let mut problems = Vec::new();
        for path in paths(state_dir) {
            match fs::read_to_string(&path) {
                Ok(text) => match parse(&text) {
                    Some(copy) => versions.merge(copy),
                    None => problems.push(format!("{}: damaged, ignored", path.display())),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
        (versions, problems)
    }

    /// Takes the higher of each mark (and, on a tie, the committed document
    /// this copy names if the other names none).
    fn merge(&mut self, other: Versions) {
        for scope in Scope::ALL {
            let theirs = other.mark(scope).clone();
            let mine = self.mark_mut(scope);
            let newer_commit = match (&mine.committed, &theirs.committed) {
                (None, Some(_)) => true,
                (Some(m), Some(t)) => t.version > m.version,
                _ => false,
            };
            if newer_commit {
                mine.committed = theirs.committed;
            }
            mine.highest = mine.highest.max(theirs.highest);
        }
    }

    /// Writes both copies, one after the other, each atomically.
    pub fn store(&self, state_dir: &Path) -> io::Result<()> {
        let text = self.render();
        for path in paths(state_dir) {
            crate::durable::write_atomically(&path, text.as_bytes())?;
        }
        Ok(())
    }

    fn render(&self) -> String {
        let mut body = format!("{HEADER}\n");
        for scope in Scope::ALL {
            let m = self.mark(scope);
            let (version, signature) = m.committed.as_ref().map_or(("-".to_owned(), "-"), |c| {
                (c.version.to_string(), c.signature.as_str())
            });
            body.push_str(&format!("{scope} {} {version} {signature}\n", m.highest));
        }
        let crc = crc32fast::hash(body.as_bytes());
        body.push_str(&format!("crc32 {crc:08x}\n"));
        body
    }
}

fn paths(state_dir: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    FILE_NAMES.iter().map(move |n| state_dir.join(n))
}

/// One copy, if it is whole: its header, a line per scope, and a CRC that
/// matches everything before it.
fn parse(text: &str) -> Option<Versions> {
    let at = text.rfind("crc32 ")?;
    let (body, crc) = text.split_at(at);
    let crc = u32::from_str_radix(crc.strip_prefix("crc32 ")?.trim(), 16).ok()?;
    if crc32fast::hash(body.as_bytes()) != crc {
        return None;
    }
    let mut lines = body.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let mut versions = Versions::default();
    for line in lines {
        let fields: Vec<&str> = line.split(' ').collect();
        let [scope, highest, version, signature] = fields[..] else {
            return None;
        };
        let scope = Scope::ALL.into_iter().find(|s| s.to_string() == scope)?;
        let mark = versions.mark_mut(scope);
        mark.highest = highest.parse().ok()?;
        mark.committed = match (version, signature) {
            ("-", "-") => None,
            (v, s) => Some(Committed {
                version: v.parse().ok()?,
                signature: s.to_owned(),
            }),
        };
    }
    Some(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(scope: Scope, version: u64, signature: &str) -> Document {
        Document {
            version,
            scope,
            target: "t".into(),
            overlay: toml::Table::new(),
            text: format!(
                "version = {version}\n{}{signature}\n",
                super::super::document::SIGNATURE_PREFIX
            ),
        }
    }

    #[test]
    fn only_newer_documents_or_the_committed_one_are_admitted() {
        let mut v = Versions::default();
        assert!(v.admits(&doc(Scope::Device, 1, "a")).is_ok());
        v.decided(&doc(Scope::Device, 4, "four"), true);
        // A rolled-back v6 raises the mark but is not committed.
        v.decided(&doc(Scope::Device, 6, "six"), false);
        assert!(
            v.admits(&doc(Scope::Device, 4, "four")).is_ok(),
            "committed"
        );
        assert_eq!(
            v.admits(&doc(Scope::Device, 4, "other")),
            Err(Refusal::NotNewer {
                version: 4,
                highest: 6
            }),
            "same version, another document"
        );
        assert!(
            v.admits(&doc(Scope::Device, 6, "six")).is_err(),
            "rolled back"
        );
        assert!(v.admits(&doc(Scope::Device, 5, "five")).is_err(), "older");
        assert!(v.admits(&doc(Scope::Device, 7, "seven")).is_ok());
        // Scopes are separate.
        assert!(v.admits(&doc(Scope::Group, 1, "g")).is_ok());
    }

    #[test]
    fn marks_only_grow_and_survive_a_damaged_copy() {
        let d = tempfile::tempdir().unwrap();
        let mut v = Versions::default();
        v.decided(&doc(Scope::Group, 3, "g3"), true);
        v.decided(&doc(Scope::Device, 9, "d9"), false);
        v.store(d.path()).unwrap();
        assert_eq!(Versions::load(d.path()), (v.clone(), vec![]));
        // A lower version decided later does not lower the mark.
        assert!(!v.clone().decided(&doc(Scope::Device, 2, "d2"), false));
        // One copy damaged on flash: the other still holds the marks.
        let first = d.path().join(FILE_NAMES[0]);
        let text = fs::read_to_string(&first).unwrap();
        fs::write(&first, text.replace("device 9", "device 1")).unwrap();
        let (loaded, problems) = Versions::load(d.path());
        assert_eq!(loaded, v);
        assert_eq!(problems.len(), 1, "{problems:?}");
        // Both damaged or gone: nothing is trusted, and that is said.
        fs::write(d.path().join(FILE_NAMES[1]), "garbage").unwrap();
        let (loaded, problems) = Versions::load(d.path());
        assert_eq!(loaded, Versions::default());
        assert_eq!(problems.len(), 2);
    }

    #[test]
    fn the_copy_with_the_higher_mark_wins() {
        let d = tempfile::tempdir().unwrap();
        let mut old = Versions::default();
        old.decided(&doc(Scope::Device, 2, "d2"), true);
        old.store(d.path()).unwrap();
        let mut new = old.clone();
        new.decided(&doc(Scope::Device, 5, "d5"), true);
        // A power cut between the two writes: only the first copy is new.
        crate::durable::write_atomically(&d.path().join(FILE_NAMES[0]), new.render().as_bytes())
            .unwrap();
        assert_eq!(Versions::load(d.path()).0, new);
    }
}
