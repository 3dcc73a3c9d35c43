//! Replacing a file so that a crash or power cut at any point leaves either
//! the old contents or the new ones, never a torn mix: the fleet's last-good
//! documents and the telemetry spool's compaction both rely on it.

use std::{
    fs,
    io::{self, Write},
    path::Path,
};

/// Writes `bytes` to `target`: to a temporary file in the same directory,
/// fsynced, renamed over `target`, then the directory fsynced so the rename
/// itself survives a power cut. Creates the directory if needed.
pub fn write_atomically(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, target)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
