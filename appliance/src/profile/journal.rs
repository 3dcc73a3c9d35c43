//! The original values of what the profile changed, kept on disk in the
//! runtime directory (tmpfs: it lives as long as the boot, like the values
//! themselves) before the first write.
//!
//! Without it, a crash, an OOM kill or a watchdog kill leaves the board's
//! sysctls and IRQ affinities modified, and the next start would record
//! those modified values as the originals: the true ones would be lost until
//! a reboot. With it, the next start takes the originals from the journal,
//! restores what the new profile no longer changes, and a clean stop removes
//! the file once everything is back. The journal names its boot, so one left
//! on a runtime directory that is not tmpfs is not trusted after a reboot.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// The file's name in the runtime directory.
pub const FILE_NAME: &str = "profile-originals.json";

/// One value as it was before nodus first changed it this boot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Original {
    /// `sysctl kernel.numa_balancing`, `irq 34 (nic0)`.
    pub what: String,
    /// The file written.
    pub path: PathBuf,
    /// What it held.
    pub value: String,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    boot_id: String,
    originals: Vec<Original>,
}

/// The journal of one run: what an earlier run of this boot left, plus what
/// this run recorded.
#[derive(Clone, Debug, Default)]
pub struct Journal {
    /// `None`: not kept on disk (tests, or no runtime directory).
    path: Option<PathBuf>,
    boot_id: String,
    originals: Vec<Original>,
}

/// This boot's id, so a journal from another boot is recognised.
fn current_boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl Journal {
    /// A journal that is not kept on disk.
    pub fn in_memory() -> Journal {
        Journal::default()
    }

    /// Opens the journal at `path`, taking what an earlier run of this boot
    /// left there. What cannot be used is returned as a warning.
    pub fn open(path: &Path) -> (Journal, Option<String>) {
        let boot_id = current_boot_id();
        let mut journal = Journal {
            path: Some(path.to_owned()),
            boot_id: boot_id.clone(),
            originals: Vec::new(),
        };
        let text = match fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return (journal, None),
            Err(e) => return (journal, Some(format!("{}: {e}", path.display()))),
        };
        match serde_json::from_slice::<OnDisk>(&text) {
            Ok(d) if d.boot_id == boot_id => {
                journal.originals = d.originals;
                (journal, None)
            }
            Ok(_) => (journal, None),
            Err(e) => (
                journal,
                Some(format!(
                    "{}: unreadable ({e}); originals of a crashed run are lost",
                    path.display()
                )),
            ),
        }
    }

    /// The original of `path`, if an earlier run (or this one) recorded it.
    pub fn original(&self, path: &Path) -> Option<&str> {
        self.originals
            .iter()
            .find(|o| o.path == path)
            .map(|o| o.value.as_str())
    }

    /// Records `value` as the original of `path` and makes that durable
    /// before the caller writes anything there. The first record of a path
    /// wins: it is the value before nodus touched it this boot.
    pub fn record(&mut self, what: &str, path: &Path, value: &str) -> io::Result<()> {
        if self.original(path).is_some() {
            return Ok(());
        }
        self.originals.push(Original {
            what: what.to_owned(),
            path: path.to_owned(),
            value: value.to_owned(),
        });
        self.save()
    }

    /// Originals whose paths are not in `keep`: an earlier run changed them
    /// and this one will not (its profile differs). Removed from the
    /// journal; the caller puts them back.
    pub fn take_others(&mut self, keep: &[&Path]) -> Vec<Original> {
        let (others, kept) = std::mem::take(&mut self.originals)
            .into_iter()
            .partition(|o| !keep.contains(&o.path.as_path()));
        self.originals = kept;
        others
    }

    /// Puts back an original [`Journal::take_others`] handed out that could
    /// not be restored, so a later run tries again.
    pub fn keep(&mut self, original: Original) -> io::Result<()> {
        self.originals.push(original);
        self.save()
    }

    /// `path` holds its original again: forget it. The file goes when
    /// nothing is left in it.
    pub fn restored(&mut self, path: &Path) -> io::Result<()> {
        self.originals.retain(|o| o.path != path);
        self.save()
    }

    fn save(&self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if self.originals.is_empty() {
            return match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let body = serde_json::to_vec_pretty(&OnDisk {
            boot_id: self.boot_id.clone(),
            originals: self.originals.clone(),
        })
        .map_err(io::Error::other)?;
        crate::durable::write_atomically(path, &body)
    }
}
