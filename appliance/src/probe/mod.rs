//! `nodus probe`: which eBPF features this kernel actually gives nodus.
//!
//! Found by loading (and where it matters attaching) tiny programs, never by
//! comparing version numbers: vendor kernels backport features and distro
//! configs switch them off, so a version says little. Components use the same
//! report at start to decide whether they are healthy, degraded or unavailable.

mod features;
mod netns;

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use serde::{Deserialize, Serialize};

/// A kernel feature nodus depends on somewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Kernel BTF at /sys/kernel/btf/vmlinux (CO-RE, fentry, struct_ops).
    Btf,
    /// Tracepoint programs (process cache, page-cache fallback).
    Tracepoint,
    /// Ring-buffer maps (every event stream).
    Ringbuf,
    /// TC classifiers via tcx or clsact (file-server request counters).
    Tc,
    /// XDP programs.
    Xdp,
    /// sk_skb verdict programs on a SOCKHASH (proxy splicing).
    SkSkbSockhash,
    /// sk_reuseport programs (file-server connection steering).
    SkReuseport,
    /// fentry programs (page-cache hit counting).
    Fentry,
    /// struct_ops programs (the mechanism behind sched_ext).
    StructOps,
    /// The sched_ext scheduler class (the layered scheduler).
    SchedExt,
    /// Hardware performance counters through perf_event_open (instructions
    /// and cycles: a process's IPC). Absent in most VMs and under TCG.
    HardwareCounters,
}

impl Feature {
    /// Every feature, in report order.
    pub const ALL: [Feature; 11] = [
        Feature::Btf,
        Feature::Tracepoint,
        Feature::Ringbuf,
        Feature::Tc,
        Feature::Xdp,
        Feature::SkSkbSockhash,
        Feature::SkReuseport,
        Feature::Fentry,
        Feature::StructOps,
        Feature::SchedExt,
        Feature::HardwareCounters,
    ];

    /// The name used in JSON and text output.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Btf => "btf",
            Feature::Tracepoint => "tracepoint",
            Feature::Ringbuf => "ringbuf",
            Feature::Tc => "tc",
            Feature::Xdp => "xdp",
            Feature::SkSkbSockhash => "sk_skb_sockhash",
            Feature::SkReuseport => "sk_reuseport",
            Feature::Fentry => "fentry",
            Feature::StructOps => "struct_ops",
            Feature::SchedExt => "sched_ext",
            Feature::HardwareCounters => "hardware_counters",
        }
    }
}

/// The outcome of probing one feature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureStatus {
    /// Whether nodus can use it.
    pub available: bool,
    /// How it is available (e.g. `tcx` or `clsact` for tc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// sched_ext only: `/sys/kernel/sched_ext/state` and the loaded scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Why not, in the kernel's words where it gave any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl FeatureStatus {
    pub(crate) fn yes(mode: Option<&str>) -> Self {
        FeatureStatus {
            available: true,
            mode: mode.map(str::to_owned),
            state: None,
            reason: None,
        }
    }

    pub(crate) fn no(reason: impl Into<String>) -> Self {
        FeatureStatus {
            available: false,
            mode: None,
            state: None,
            reason: Some(reason.into()),
        }
    }
}

/// What `nodus probe` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// `uname -r`, for the reader; never used to decide anything.
    pub kernel: String,
    /// `uname -m`.
    pub machine: String,
    /// One entry per [`Feature`].
    pub features: BTreeMap<Feature, FeatureStatus>,
}

impl ProbeReport {
    /// Probes every feature. Needs CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and
    /// CAP_SYS_ADMIN to say anything useful; without them each feature reports
    /// the permission error the kernel returned.
    pub fn run() -> ProbeReport {
        let (kernel, machine) = uname();
        let mut features = features::probe_all();
        for f in Feature::ALL {
            features
                .entry(f)
                .or_insert_with(|| FeatureStatus::no("not probed"));
        }
        ProbeReport {
            kernel,
            machine,
            features,
        }
    }

    /// Whether `feature` is available.
    pub fn has(&self, feature: Feature) -> bool {
        self.features.get(&feature).is_some_and(|s| s.available)
    }

    /// The human-readable table printed by `nodus probe`.
    pub fn render(&self) -> String {
        let mut out = format!("kernel {} ({})\n", self.kernel, self.machine);
        for (f, s) in &self.features {
            let verdict = if s.available {
                "available"
            } else {
                "unavailable"
            };
            let _ = write!(out, "  {:<17} {verdict}", f.name());
            if let Some(m) = &s.mode {
                let _ = write!(out, " ({m})");
            }
            if let Some(st) = &s.state {
                let _ = write!(out, " state={st}");
            }
            if let Some(r) = &s.reason {
                let _ = write!(out, ": {r}");
            }
            out.push('\n');
        }
        out
    }

    /// One-line summary for the sd-notify STATUS and logs.
    pub fn summary(&self) -> String {
        // Hardware counters are not an eBPF feature: said after them.
        let missing: Vec<&str> = self
            .features
            .iter()
            .filter(|(f, s)| !s.available && **f != Feature::HardwareCounters)
            .map(|(f, _)| f.name())
            .collect();
        let mut summary = if missing.is_empty() {
            "all eBPF features available".to_owned()
        } else {
            format!("eBPF features missing: {}", missing.join(", "))
        };
        if !self.has(Feature::HardwareCounters) {
            summary.push_str("; no hardware counters");
        }
        summary
    }
}

fn uname() -> (String, String) {
    match nix::sys::utsname::uname() {
        Ok(u) => (
            u.release().to_string_lossy().into_owned(),
            u.machine().to_string_lossy().into_owned(),
        ),
        Err(_) => ("unknown".into(), std::env::consts::ARCH.into()),
    }
}

/// Mounts tracefs and bpffs where the kernel expects them if nothing has yet
/// (systemd does this on most images, a busybox init does not). Returns what
/// it mounted. They stay mounted on stop: other tools may be using them.
pub fn ensure_mounts() -> Vec<String> {
    let mut mounted = Vec::new();
    for (fstype, target) in [("tracefs", "/sys/kernel/tracing"), ("bpf", "/sys/fs/bpf")] {
        let target = Path::new(target);
        if !target.is_dir() || is_mountpoint(target) {
            continue;
        }
        let none: Option<&str> = None;
        match nix::mount::mount(
            Some(fstype),
            target,
            Some(fstype),
            nix::mount::MsFlags::empty(),
            none,
        ) {
            Ok(()) => mounted.push(format!("{fstype} at {}", target.display())),
            Err(e) => log::warn!("cannot mount {fstype} at {}: {e}", target.display()),
        }
    }
    mounted
}

fn is_mountpoint(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(4) == Some(&*path.to_string_lossy()))
        })
        .unwrap_or(false)
}
