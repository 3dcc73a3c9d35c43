//! Where a device the board profile names lives in sysfs.
//!
//! A profile may name a device by its sysfs path, its network interface or
//! the kernel driver bound to it; every user of a device (IRQ placement,
//! the NPU-locality check) needs the same answer, so it is found here once.

use std::path::{Path, PathBuf};

/// How a device is named: the first of these that is set wins.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceLocator<'a> {
    /// A sysfs device directory (`/sys/bus/pci/devices/0000:01:00.0`).
    pub sysfs: Option<&'a str>,
    /// A network interface name (`eth0`).
    pub interface: Option<&'a str>,
    /// A kernel driver name (`/sys/bus/*/drivers/<driver>`).
    pub driver: Option<&'a str>,
    /// A character device node (`/dev/accel/accel0`): its sysfs directory
    /// is `/sys/dev/char/<major>:<minor>`.
    pub dev: Option<&'a str>,
}

/// The major and minor number of the character device node at `path`, if
/// it is one.
pub fn char_device_number(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(path).ok()?;
    if !m.file_type().is_char_device() {
        return None;
    }
    let rdev = m.rdev();
    Some((
        nix::sys::stat::major(rdev) as u32,
        nix::sys::stat::minor(rdev) as u32,
    ))
}

impl DeviceLocator<'_> {
    /// The device's sysfs directory under `root`, if it exists on this machine.
    pub fn sysfs_dir(&self, root: &Path) -> Option<PathBuf> {
        if let Some(s) = self.sysfs {
            let p = root.join(s.trim_start_matches('/'));
            return p.exists().then_some(p);
        }
        if let Some(i) = self.interface {
            let p = root.join("sys/class/net").join(i);
            return p.exists().then_some(p);
        }
        if let Some(d) = self.dev {
            let (major, minor) = char_device_number(&root.join(d.trim_start_matches('/')))?;
            let p = root.join(format!("sys/dev/char/{major}:{minor}"));
            return p.exists().then_some(p);
        }
        let driver = self.driver?;
        let buses = std::fs::read_dir(root.join("sys/bus")).ok()?;
        for bus in buses.flatten() {
            let dir = bus.path().join("drivers").join(driver);
            if let Ok(entries) = std::fs::read_dir(&dir) {
                // Bound devices are symlinks into the device tree; the one other
                // symlink a driver directory has is `module`.
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_symlink()) && e.file_name() != "module" {
                        return Some(e.path());
                    }
                }
            }
        }
        None
    }
}
