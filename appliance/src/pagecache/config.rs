//! `[pagecache]`: the page-cache component's section of the configuration.

use serde::{Deserialize, Serialize};

/// How the page-cache component counts and what it watches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PageCacheConfig {
    /// Run the component at all.
    pub enabled: bool,
    /// Files the kernel keeps hit/miss counts for; the least recently
    /// counted make room.
    pub files: u32,
    /// Processes the kernel keeps counts for.
    pub processes: u32,
    /// Cgroups the kernel keeps counts for.
    pub cgroups: u32,
    /// Seconds between looks at the file server's docroot (its cached
    /// pages, and its files' hits and misses). 0 = never.
    pub docroot_interval_s: u64,
}

impl Default for PageCacheConfig {
    fn default() -> Self {
        PageCacheConfig {
            enabled: true,
            files: 4096,
            processes: 1024,
            cgroups: 256,
            docroot_interval_s: 30,
        }
    }
}

impl PageCacheConfig {
    /// Range checks: `(key, reason)` of the first value out of range.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |key: &str, reason: &str| Err((format!("pagecache.{key}"), reason.to_owned()));
        for (key, v) in [
            ("files", self.files),
            ("processes", self.processes),
            ("cgroups", self.cgroups),
        ] {
            if !(16..=1 << 20).contains(&v) {
                return err(key, "must be between 16 and 1048576");
            }
        }
        if self.docroot_interval_s > 86_400 {
            return err("docroot_interval_s", "must be at most 86400 (a day)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_tables_too_small_or_too_large() {
        assert!(PageCacheConfig::default().validate().is_ok());
        let small = PageCacheConfig {
            files: 8,
            ..PageCacheConfig::default()
        };
        assert_eq!(small.validate().unwrap_err().0, "pagecache.files");
        let large = PageCacheConfig {
            cgroups: 1 << 21,
            ..PageCacheConfig::default()
        };
        assert_eq!(large.validate().unwrap_err().0, "pagecache.cgroups");
    }
}
