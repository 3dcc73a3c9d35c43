//! Names for what the kernel counts by number: a file is a device and an
//! inode there, a cgroup is the inode of its directory in cgroup2fs.
//!
//! The kernel keeps no path for an inode, so a file is named by looking
//! where it can be: the files processes map or hold open (from /proc), the
//! file server's docroot and paths the caller names (the same candidates
//! `nodus cache top` ranks). A file found nowhere (closed and not under a
//! named path) keeps its device and inode, `dev 8:1 ino 1234`.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use nodus_common::pagecache::{BLOCK_DEVICE_INO, FileKey};

use crate::pagecache::top;

/// Where cgroup v2 is mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The userspace `st_dev` of a kernel device number (`major << 20 | minor`,
/// the encoding of `super_block::s_dev`).
pub fn user_dev(kernel_dev: u32) -> u64 {
    nix::sys::stat::makedev(
        u64::from(kernel_dev >> 20),
        u64::from(kernel_dev & 0xf_ffff),
    )
}

/// How a file is shown when no path was found; a block device's own cache
/// is named as such.
pub fn unnamed(key: &FileKey) -> String {
    let (major, minor) = (key.dev >> 20, key.dev & 0xf_ffff);
    if key.ino == BLOCK_DEVICE_INO {
        return match block_device_name(major, minor) {
            Some(name) => format!("/dev/{name} (block device: file-system metadata)"),
            None => format!("block device {major}:{minor} (file-system metadata)"),
        };
    }
    format!("dev {major}:{minor} ino {}", key.ino)
}

/// The kernel's name of block device `major:minor` (`vda`, `nvme0n1p2`).
fn block_device_name(major: u32, minor: u32) -> Option<String> {
    let link = std::fs::read_link(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

/// Paths of the files in `wanted`, searched among the processes' open and
/// mapped files, `docroot` and `named`.
pub fn files(
    wanted: &[FileKey],
    docroot: Option<&Path>,
    named: &[PathBuf],
) -> HashMap<FileKey, PathBuf> {
    let mut left: HashMap<(u64, u64), FileKey> = wanted.iter().map(|k| (user_key(k), *k)).collect();
    let mut found = HashMap::new();
    if left.is_empty() {
        return found;
    }
    for path in top::candidates(docroot, named).into_keys() {
        let Ok(m) = std::fs::metadata(&path) else {
            continue;
        };
        if let Some(key) = left.remove(&(m.dev(), m.ino())) {
            found.insert(key, path);
            if left.is_empty() {
                break;
            }
        }
    }
    found
}

/// Every file under `roots`, by (`st_dev`, inode).
pub fn index(roots: &[PathBuf]) -> HashMap<(u64, u64), PathBuf> {
    roots
        .iter()
        .flat_map(|r| walkdir::WalkDir::new(r).into_iter().filter_map(Result::ok))
        .filter(|e| !e.file_type().is_dir())
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some(((m.dev(), m.ino()), e.into_path()))
        })
        .collect()
}

/// (`st_dev`, inode) of a kernel file key.
pub fn user_key(key: &FileKey) -> (u64, u64) {
    (user_dev(key.dev), key.ino)
}

/// The path of `key` among the files process `pid` maps or holds open.
pub fn file_of_process(pid: u32, key: &FileKey) -> Option<PathBuf> {
    let want = user_key(key);
    top::files_of_process(pid)
        .into_iter()
        .find(|p| std::fs::metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == want))
}

/// Paths (relative to the cgroup2 root, `/` for the root) of the cgroups in
/// `wanted`.
pub fn cgroups(wanted: &[u64]) -> HashMap<u64, String> {
    let mut found = HashMap::new();
    for e in walkdir::WalkDir::new(CGROUP_ROOT)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir())
    {
        let Ok(m) = e.metadata() else { continue };
        if wanted.contains(&m.ino()) {
            let rel = e.path().strip_prefix(CGROUP_ROOT).unwrap_or(e.path());
            found.insert(m.ino(), format!("/{}", rel.display()));
            if found.len() == wanted.len() {
                break;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_device_numbers_become_what_stat_reports() {
        // 8:1 (sda1) and 259:3 (an NVMe partition, major above 255).
        assert_eq!(user_dev(8 << 20 | 1), nix::sys::stat::makedev(8, 1));
        assert_eq!(user_dev(259 << 20 | 3), nix::sys::stat::makedev(259, 3));
        let key = FileKey {
            dev: 259 << 20 | 3,
            reserved: 0,
            ino: 42,
        };
        assert_eq!(unnamed(&key), "dev 259:3 ino 42");
    }

    #[test]
    fn a_block_devices_own_cache_is_named_by_the_device() {
        // The device the root file system lives on, if it is a block device.
        let dev = std::fs::metadata("/").unwrap().dev();
        let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
        let key = FileKey {
            dev: (major as u32) << 20 | minor as u32,
            reserved: 0,
            ino: BLOCK_DEVICE_INO,
        };
        let name = unnamed(&key);
        if std::path::Path::new(&format!("/sys/dev/block/{major}:{minor}")).exists() {
            assert!(name.starts_with("/dev/"), "{name}");
        } else {
            assert_eq!(
                name,
                format!("block device {major}:{minor} (file-system metadata)")
            );
        }
        assert!(name.ends_with("file-system metadata)"), "{name}");
    }

    #[test]
    fn finds_a_file_held_open_by_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("held");
        std::fs::write(&path, b"x").unwrap();
        let _held = std::fs::File::open(&path).unwrap();
        let m = std::fs::metadata(&path).unwrap();
        let dev = m.dev();
        let key = FileKey {
            dev: (nix::sys::stat::major(dev) as u32) << 20 | nix::sys::stat::minor(dev) as u32,
            reserved: 0,
            ino: m.ino(),
        };
        let found = files(&[key], None, &[]);
        assert_eq!(found.get(&key), Some(&path));
    }
}
