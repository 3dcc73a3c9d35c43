//! The kernel's cpulist format (`0-3,8,10-11`), as sysfs prints it and as
//! profiles and `smp_affinity_list` take it.

use nix::{
    sched::{CpuSet, sched_getaffinity, sched_setaffinity},
    unistd::Pid,
};
use std::{collections::BTreeSet, fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A set of CPU numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CpuList(BTreeSet<u32>);

/// Why a cpulist did not parse.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid cpulist {text:?}: {reason}")]
pub struct CpuListError {
    text: String,
    reason: &'static str,
}

/// Highest CPU number accepted; far above any board, low enough that a typo
/// like `0-4294967295` cannot allocate gigabytes.
const MAX_CPU: u32 = 4095;

impl CpuList {
    /// The CPUs, ascending.
    pub fn cpus(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    /// Number of CPUs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no CPU is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when every CPU listed here is also in `other`.
    pub fn is_subset(&self, other: &CpuList) -> bool {
        self.0.is_subset(&other.0)
    }
}

impl CpuList {
    /// The CPUs the calling thread may run on (empty if the kernel says
    /// nothing).
    pub fn of_current_thread() -> CpuList {
        let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else {
            return CpuList::default();
        };
        (0..CpuSet::count() as u32)
            .filter(|&c| set.is_set(c as usize).unwrap_or(false))
            .collect()
    }

    /// Pins the calling thread (and the threads it creates later) to these
    /// CPUs. CPUs beyond `CPU_SETSIZE` are ignored.
    pub fn pin_current_thread(&self) -> std::io::Result<()> {
        let mut set = CpuSet::new();
        for c in self.cpus() {
            // Beyond CPU_SETSIZE: ignored, as documented.
            let _ = set.set(c as usize);
        }
        sched_setaffinity(Pid::from_raw(0), &set)?;
        Ok(())
    }
}

impl FromIterator<u32> for CpuList {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        CpuList(iter.into_iter().collect())
    }
}

impl FromStr for CpuList {
    type Err = CpuListError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason| CpuListError {
            text: text.to_owned(),
            reason,
        };
        let mut set = BTreeSet::new();
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Ok(CpuList(set));
        }
        for part in trimmed.split(',') {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part.trim(), part.trim()),
            };
            let lo: u32 = lo.parse().map_err(|_| err("not a CPU number"))?;
            let hi: u32 = hi.parse().map_err(|_| err("not a CPU number"))?;
            if lo > hi {
                return Err(err("range runs backwards"));
            }
            if hi > MAX_CPU {
                return Err(err("CPU number above 4095"));
            }
            set.extend(lo..=hi);
        }
        Ok(CpuList(set))
    }
}

impl TryFrom<String> for CpuList {
    type Error = CpuListError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CpuList> for String {
    fn from(c: CpuList) -> String {
        c.to_string()
    }
}

impl fmt::Display for CpuList {
    /// Compact form with ranges, as the kernel prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut iter = self.0.iter().copied().peekable();
        while let Some(start) = iter.next() {
            let mut end = start;
            while iter.peek() == Some(&(end + 1)) {
                end += 1;
                iter.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_singles_and_empty() {
        let c: CpuList = "0-2,5,7-8".parse().unwrap();
        assert_eq!(c.cpus().collect::<Vec<_>>(), vec![0, 1, 2, 5, 7, 8]);
        assert!("".parse::<CpuList>().unwrap().is_empty());
        assert_eq!("3\n".parse::<CpuList>().unwrap().len(), 1);
    }

    #[test]
    fn prints_the_kernel_form() {
        let c: CpuList = "8,0,1,2,3,10,11".parse().unwrap();
        assert_eq!(c.to_string(), "0-3,8,10-11");
    }

    #[test]
    fn refuses_garbage_with_a_reason() {
        for (bad, why) in [
            ("a-3", "not a CPU number"),
            ("3-1", "range runs backwards"),
            ("0-99999", "CPU number above 4095"),
            ("1,,2", "not a CPU number"),
        ] {
            let e = bad.parse::<CpuList>().unwrap_err();
            assert_eq!(e.reason, why, "{bad}");
        }
    }
}
