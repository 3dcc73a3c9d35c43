//! The file server's eBPF: connection steering (sk_reuseport) and kernel-side
//! request counting (TC ingress). Each is optional: when the kernel refuses
//! one, the server runs without it and the component reports why.

use std::{ffi::CString, net::TcpListener};

use aya::{
    Ebpf,
    maps::{Array, MapData, PerCpuArray, ReusePortSockArray},
    programs::{LinkOrder, SchedClassifier, SkReuseport, TcAttach, TcAttachType, tc},
};
use nodus_common::fileserver::{
    METHOD_GET, METHOD_HEAD, METHOD_OTHER, PATH_CLASSES, PATH_OTHER, REQUEST_COUNTERS,
    REUSEPORT_FALLBACK, REUSEPORT_STEERED, TcConfig,
};

use crate::ebpf::{self, error_chain};

fn chain(e: impl std::error::Error) -> String {
    error_chain(&e)
}

fn map<'a>(obj: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map, String> {
    obj.map_mut(name)
        .ok_or_else(|| format!("map {name} missing from the object"))
}

fn take(obj: &mut Ebpf, name: &str) -> Result<aya::maps::Map, String> {
    obj.take_map(name)
        .ok_or_else(|| format!("map {name} missing from the object"))
}

fn sum(map: &PerCpuArray<MapData, u64>, index: u32) -> u64 {
    map.get(&index, 0).map_or(0, |v| v.iter().sum())
}

/// The attached steering program and its counters.
pub struct Steering {
    _obj: Ebpf,
    stats: PerCpuArray<MapData, u64>,
}

impl Steering {
    /// Connections steered to the receiving CPU's worker, and those left to the hash.
    pub fn counts(&self) -> (u64, u64) {
        (
            sum(&self.stats, REUSEPORT_STEERED),
            sum(&self.stats, REUSEPORT_FALLBACK),
        )
    }
}

/// Loads the sk_reuseport program, fills the CPU -> worker table and the
/// socket array, and attaches it to the group of `listeners`.
pub fn steer(listeners: &[TcpListener], cpus: &[Option<u32>]) -> Result<Steering, String> {
    if cpus.iter().all(Option::is_none) {
        return Err("workers are not pinned (fileserver.pin_workers = false)".into());
    }
    let mut obj = Ebpf::load(ebpf::FILESERVER_REUSEPORT).map_err(chain)?;
    {
        let mut slots: Array<&mut MapData, u32> =
            Array::try_from(map(&mut obj, "FS_CPU_SLOT")?).map_err(chain)?;
        for (i, cpu) in cpus.iter().enumerate() {
            if let Some(cpu) = *cpu
                && slots.get(&cpu, 0).map_err(chain)? == 0
            {
                slots.set(cpu, &((i + 1) as u32), 0).map_err(chain)?;
            }
        }
    }
    {
        let mut socks: ReusePortSockArray<&mut MapData> =
            ReusePortSockArray::try_from(map(&mut obj, "FS_SOCKETS")?).map_err(chain)?;
        for (i, l) in listeners.iter().enumerate() {
            socks.set(i as u32, l, 0).map_err(chain)?;
        }
    }
    let stats = PerCpuArray::try_from(take(&mut obj, "FS_STEER_STATS")?).map_err(chain)?;
    let prog: &mut SkReuseport = obj
        .program_mut("fileserver_reuseport")
        .ok_or("program fileserver_reuseport missing")?
        .try_into()
        .map_err(chain)?;
    prog.load().map_err(chain)?;
    let first = listeners.first().ok_or("no listening socket")?;
    prog.attach(first).map_err(chain)?;
    Ok(Steering { _obj: obj, stats })
}

/// The attached classifier and its counters.
pub struct Classifier {
    _obj: Ebpf,
    requests: PerCpuArray<MapData, u64>,
    /// Interfaces it is attached to, with the attach mode.
    pub attached: Vec<String>,
}

/// Names of the classifier's counters, by array index.
fn counter_name(i: u32) -> Option<String> {
    let (method, class) = (i / PATH_CLASSES, i % PATH_CLASSES);
    let m = match method {
        METHOD_GET => "get",
        METHOD_HEAD => "head",
        METHOD_OTHER if class == PATH_OTHER => return Some("kernel_requests.other_method".into()),
        _ => return None,
    };
    let c = ["index", "html", "asset", "image", "other", "suspicious"][class as usize];
    Some(format!("kernel_requests.{m}.{c}"))
}

impl Classifier {
    /// Kernel-side request counts by name.
    pub fn counts(&self) -> Vec<(String, u64)> {
        (0..REQUEST_COUNTERS)
            .filter_map(|i| Some((counter_name(i)?, sum(&self.requests, i))))
            .collect()
    }
}

/// Loads the TC classifier for `port` and attaches it to each interface's
/// ingress (tcx, or clsact on kernels before 6.6). Interfaces that refuse are
/// reported in the error list; the classifier is kept if any accepted.
pub fn classify(interfaces: &[String], port: u16) -> (Option<Classifier>, Vec<String>) {
    let mut errors = Vec::new();
    let result = (|| -> Result<Classifier, String> {
        let mut obj = Ebpf::load(ebpf::FILESERVER_TC).map_err(chain)?;
        {
            let mut cfg: Array<&mut MapData, TcConfig> =
                Array::try_from(map(&mut obj, "FS_TC_CONFIG")?).map_err(chain)?;
            let value = TcConfig {
                port: u32::from(port),
                enabled: 1,
            };
            cfg.set(0, &value, 0).map_err(chain)?;
        }
        let requests = PerCpuArray::try_from(take(&mut obj, "FS_REQUESTS")?).map_err(chain)?;
        let prog: &mut SchedClassifier = obj
            .program_mut("fileserver_tc")
            .ok_or("program fileserver_tc missing")?
            .try_into()
            .map_err(chain)?;
        prog.load().map_err(chain)?;
        let mut attached = Vec::new();
        for iface in interfaces {
            match attach(prog, iface) {
                Ok(mode) => attached.push(format!("{iface} ({mode})")),
                Err(e) => errors.push(format!("tc on {iface}: {e}")),
            }
        }
        if attached.is_empty() {
            return Err("attached to no interface".into());
        }
        Ok(Classifier {
            _obj: obj,
            requests,
            attached,
        })
    })();
    match result {
        Ok(c) => (Some(c), errors),
        Err(e) => {
            errors.push(format!("tc classifier: {e}"));
            (None, errors)
        }
    }
}

fn attach(prog: &mut SchedClassifier, iface: &str) -> Result<&'static str, String> {
    let name = CString::new(iface).map_err(|_| "bad interface name".to_string())?;
    let tcx = TcAttach::Tcx {
        attach_type: TcAttachType::Ingress,
        order: LinkOrder::default(),
    };
    let tcx_err = match prog.attach(&name, tcx) {
        Ok(_) => return Ok("tcx"),
        Err(e) => chain(e),
    };
    // Before 6.6 there is no tcx; a clsact qdisc (kept after stop, empty) works.
    if let Err(e) = tc::qdisc_add_clsact(&name)
        && !matches!(e, tc::TcError::AlreadyAttached)
    {
        return Err(format!("tcx: {tcx_err}; clsact: {e}"));
    }
    let netlink = TcAttach::Netlink {
        parent: TcAttachType::Ingress.into(),
        options: Default::default(),
    };
    prog.attach(&name, netlink)
        .map(|_| "clsact")
        .map_err(|e| format!("tcx: {tcx_err}; clsact: {}", chain(e)))
}
