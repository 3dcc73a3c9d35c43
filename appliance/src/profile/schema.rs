//! The board profile file format (TOML). See docs/board-profiles.md for an
//! annotated example. Unknown keys are errors everywhere.

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::board::{CpuList, DeviceLocator};

/// A whole profile, after `include` has been resolved.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Another profile this one extends (a file name next to this one, or the
    /// name of a built-in profile). Tables are merged key by key; arrays of
    /// tables (`node`, `layer`, ...) are replaced when this profile sets them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    /// Who the board is and how to recognise it.
    pub board: Board,
    /// NUMA nodes.
    #[serde(default, rename = "node")]
    pub nodes: Vec<Node>,
    /// CPU clusters (cores sharing an L2 or a DSU).
    #[serde(default, rename = "cluster")]
    pub clusters: Vec<Cluster>,
    /// Cache domains.
    #[serde(default, rename = "cache")]
    pub caches: Vec<Cache>,
    /// Devices whose locality matters.
    #[serde(default, rename = "device")]
    pub devices: Vec<Device>,
    /// Where nodus's own work runs.
    #[serde(default)]
    pub placement: Placement,
    /// Scheduler layers (consumed by the sched_ext scheduler).
    #[serde(default, rename = "layer")]
    pub layers: Vec<Layer>,
    /// IRQ placement per device.
    #[serde(default, rename = "irq")]
    pub irqs: Vec<IrqPlacement>,
    /// Sysctls to set while nodus runs, by dotted name.
    #[serde(default)]
    pub sysctl: BTreeMap<String, String>,
    /// Resource limits for nodus itself.
    #[serde(default)]
    pub limits: Limits,
}

/// `[board]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Profile name, unique among profiles.
    pub name: String,
    /// One line for humans.
    #[serde(default)]
    pub description: String,
    /// How to recognise the board.
    #[serde(default, rename = "match")]
    pub matches: Match,
}

/// `[board.match]`: every criterion given must hold. A profile with none
/// matches only when chosen by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Any of these device-tree `compatible` strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compatible: Vec<String>,
    /// Any of these DMI product names (`/sys/class/dmi/id/product_name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dmi_product: Vec<String>,
    /// Every online CPU's MIDR part number (`CPU part` in /proc/cpuinfo,
    /// e.g. "0xd4f") is one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu_parts: Vec<String>,
    /// The number of online CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<usize>,
}

impl Match {
    /// True when no criterion is set.
    pub fn is_empty(&self) -> bool {
        self.compatible.is_empty()
            && self.dmi_product.is_empty()
            && self.cpu_parts.is_empty()
            && self.cpus.is_none()
    }
}

/// `[[node]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Node number as Linux numbers it.
    pub id: u32,
    /// Its CPUs.
    pub cpus: CpuList,
    /// Expected memory in MiB; checked within 15 % (firmware and the kernel
    /// reserve some). 0 for a memory-less node; omit to not check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
}

/// `[[cluster]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Name used by layers and placement (`big`, `little`, `c0`).
    pub name: String,
    /// Its CPUs.
    pub cpus: CpuList,
    /// Core type, for humans (`Cortex-A720`).
    #[serde(default)]
    pub core: String,
    /// MIDR part number every CPU of the cluster must have (`0xd80`):
    /// checked CPU by CPU, because firmware (DT vs ACPI) may number cores
    /// differently on the same board.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
}

/// `[[cache]]`: a cache shared by a set of CPUs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// 2 or 3 (or 4 for a system-level cache).
    pub level: u8,
    /// CPUs sharing one instance.
    pub cpus: CpuList,
    /// Size in KiB, for humans and placement heuristics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_kib: Option<u64>,
}

/// What a device is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum DeviceKind {
    Nic,
    Npu,
    Gpu,
    Accelerator,
    Storage,
}

/// `[[device]]`: found by sysfs path, network interface or driver name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Name used by `[[irq]]`.
    pub name: String,
    /// What it is.
    pub kind: DeviceKind,
    /// A sysfs device directory (`/sys/bus/pci/devices/0000:01:00.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysfs: Option<String>,
    /// A network interface name (`eth0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// A kernel driver name (`/sys/bus/*/drivers/<driver>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Its character device node (`/dev/accel/accel0`,
    /// `/dev/dri/renderD128`): for an accelerator, how nodus sees a
    /// process start using it (the open), and place it on `node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// The NUMA node it is attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u32>,
    /// Whether a board without it is still this board (a removable card).
    #[serde(default)]
    pub optional: bool,
}

impl Device {
    /// How to find the device in sysfs.
    pub fn locator(&self) -> DeviceLocator<'_> {
        DeviceLocator {
            sysfs: self.sysfs.as_deref(),
            interface: self.interface.as_deref(),
            driver: self.driver.as_deref(),
            dev: self.dev.as_deref(),
        }
    }
}

/// Memory policy modes (set_mempolicy(2)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemPolicyMode {
    /// The kernel's default (local allocation).
    #[default]
    Default,
    /// Only from `nodes`.
    Bind,
    /// From `nodes` first, elsewhere when full.
    Preferred,
    /// Round-robin across `nodes`.
    Interleave,
    /// From the node of the CPU the thread runs on.
    Local,
}

/// Where one kind of nodus work runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkPlacement {
    /// CPUs (a cpulist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<CpuList>,
    /// Or a cluster by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Or every CPU of these NUMA nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u32>,
    /// Memory policy for its allocations.
    #[serde(default)]
    pub mempolicy: MemPolicyMode,
    /// Nodes the policy uses (default: the node of the CPUs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mem_nodes: Vec<u32>,
}

/// `[placement]`: nodus's own threads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// The async runtime (every component's tasks unless a component has its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<WorkPlacement>,
    /// File-server workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fileserver: Option<WorkPlacement>,
    /// TLS proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<WorkPlacement>,
    /// Telemetry and fleet link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<WorkPlacement>,
    /// eBPF ring-buffer consumers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebpf_events: Option<WorkPlacement>,
}

/// How a layer shares its CPUs (scx_layered's kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerPolicy {
    /// Only this layer's tasks run on its CPUs; they run nowhere else.
    Confined,
    /// Its tasks prefer its CPUs; idle CPUs are lent to others.
    Grouped,
    /// Its tasks run anywhere.
    Open,
}

/// One way to recognise a task for a layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerMatch {
    /// Task `comm` starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm_prefix: Option<String>,
    /// Cgroup path starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_prefix: Option<String>,
    /// Executable path equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// Nice within `[low, high]` (both from -20 to 19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nice: Option<[i32; 2]>,
    /// Effective user id equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The process's workload class, as the numa component measures it:
    /// `latency`, `batch` or `idle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The process opened this `[[device]]` (by name): the layer for an
    /// accelerator's users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// How a layer is recognised: one profile `match` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `comm` starts with this (at most 15 bytes).
    CommPrefix(String),
    /// The cgroup v2 path (from the cgroup root, `/system.slice/...`)
    /// starts with this.
    CgroupPrefix(String),
    /// The executable is this file (the same device and inode).
    Exe(PathBuf),
    /// Nice within `[low, high]`.
    Nice(i32, i32),
    /// The effective uid.
    Uid(u32),
    /// The process's workload class.
    Class(crate::workload::Class),
    /// The process opened the device of this name.
    Device(String),
}

impl LayerMatch {
    /// The rule this entry spells (the first criterion it sets, in the
    /// order of the fields above), or `None` for an empty entry.
    pub fn rule(&self) -> Option<Rule> {
        let m = self;
        if let Some(p) = &m.comm_prefix {
            return Some(Rule::CommPrefix(p.clone()));
        }
        if let Some(p) = &m.cgroup_prefix {
            return Some(Rule::CgroupPrefix(p.clone()));
        }
        if let Some(p) = &m.exe {
            return Some(Rule::Exe(PathBuf::from(p)));
        }
        if let Some([low, high]) = m.nice {
            return Some(Rule::Nice(low, high));
        }
        if let Some(uid) = m.uid {
            return Some(Rule::Uid(uid));
        }
        if let Some(c) = m.class.as_deref().and_then(crate::workload::Class::parse) {
            return Some(Rule::Class(c));
        }
        m.device.clone().map(Rule::Device)
    }
}

/// `[[layer]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Layer name.
    pub name: String,
    /// A task belongs to the first layer with any matching rule.
    #[serde(default, rename = "match")]
    pub matches: Vec<LayerMatch>,
    /// CPUs, or
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<CpuList>,
    /// a cluster by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// How it shares them.
    pub policy: LayerPolicy,
    /// Its wakeups take a CPU of its own from a task of a layer that does
    /// not preempt, at once (scx_layered's `preempt`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preempt: bool,
    /// Time slice in microseconds (default: the kernel's, 20 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice_us: Option<u64>,
    /// A grouped layer is resized by its utilisation between `min_cpus`
    /// (default 1) and all of its CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cpus: Option<u32>,
}

impl Layer {
    /// Its CPUs: its cpulist, or its cluster's CPUs (`None`: neither, or
    /// a cluster the profile does not have).
    pub fn cpu_list(&self, profile: &Profile) -> Option<CpuList> {
        if let Some(c) = &self.cpus {
            return Some(c.clone());
        }
        let name = self.cluster.as_ref()?;
        let c = profile.clusters.iter().find(|c| &c.name == name)?;
        Some(c.cpus.clone())
    }
}

/// `[[irq]]`: route a device's interrupts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrqPlacement {
    /// A `[[device]]` name.
    pub device: String,
    /// To the CPUs of this node, or
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u32>,
    /// to these CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<CpuList>,
}

/// `[limits]`: resource limits nodus sets on itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// RLIMIT_NOFILE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
    /// RLIMIT_MEMLOCK in MiB (for pinned hot files and BPF maps on old kernels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memlock_mib: Option<u64>,
}
