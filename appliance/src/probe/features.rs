//! One function per feature; each loads the tiny program that needs it.

use std::{collections::BTreeMap, fs, path::Path};

use aya::{
    Btf, Ebpf,
    maps::SockHash,
    programs::{
        FEntry, LinkOrder, Program, ProgramType, RawTracePoint, SchedClassifier, SkReuseport,
        SkSkb, TcAttachType, TracePoint, Xdp, XdpMode,
        tc::{self, NlOptions, TcAttachOptions},
    },
    sys::is_program_supported,
};
use aya_obj::btf::BtfKind;

use super::{Feature, FeatureStatus, netns::in_private_netns};
use nodus_common::objects::{Object, probe, probe_ringbuf, probe_sockhash};

use crate::ebpf::{self, error_chain};

type Probed = Result<Option<&'static str>, String>;

pub(super) fn probe_all() -> BTreeMap<Feature, FeatureStatus> {
    let found = probe_with_parsed_btf();
    // The parsed kernel BTF is gone now; give its pages back.
    ebpf::release_freed_memory();
    found
}

fn probe_with_parsed_btf() -> BTreeMap<Feature, FeatureStatus> {
    // Parsed once: vmlinux BTF is megabytes, and three probes need it.
    let vmlinux = Btf::from_sys_fs().map_err(|e| format!("/sys/kernel/btf/vmlinux: {}", err(e)));
    let vmlinux = &vmlinux;
    // Every aya 0.14 load parses the kernel's BTF again (about 27 ms and
    // 22 MiB on the build host, see docs/toolchain.md), so each object is
    // loaded once, one after another, and its programs are shared out.
    let mut probe_obj = load(&probe::OBJECT);
    let mut ringbuf_obj = load(&probe_ringbuf::OBJECT);
    let mut sockhash_obj = load(&probe_sockhash::OBJECT);
    let mut programs = Programs::of(&mut probe_obj);
    let tracepoint_prog = programs.take(probe::programs::probe_tracepoint);
    let reuseport_prog = programs.take(probe::programs::probe_reuseport);
    let fentry_prog = programs.take(probe::programs::probe_fentry);
    let tc_prog = programs.take(probe::programs::probe_tc);
    let xdp_prog = programs.take(probe::programs::probe_xdp);
    // Each probe runs on its own thread: detaching a link waits for an RCU
    // grace period (tens of milliseconds), and run one after another those
    // waits were most of nodus's start-to-READY time.
    let results: Vec<(Feature, Probed)> = std::thread::scope(|s| {
        let jobs: Vec<(Feature, std::thread::ScopedJoinHandle<'_, Probed>)> = vec![
            (Feature::Btf, s.spawn(move || btf(vmlinux))),
            (
                Feature::Tracepoint,
                s.spawn(move || tracepoint(tracepoint_prog?)),
            ),
            (Feature::Ringbuf, s.spawn(|| ringbuf(&mut ringbuf_obj))),
            (
                Feature::SkSkbSockhash,
                s.spawn(|| sockhash(&mut sockhash_obj)),
            ),
            (
                Feature::SkReuseport,
                s.spawn(move || reuseport(reuseport_prog?)),
            ),
            (
                Feature::Fentry,
                s.spawn(move || fentry(fentry_prog?, vmlinux)),
            ),
            (Feature::StructOps, s.spawn(struct_ops)),
        ];
        let net = in_private_netns(|| (tc(tc_prog), xdp(xdp_prog)));
        let mut done: Vec<(Feature, Probed)> = jobs
            .into_iter()
            .map(|(f, h)| {
                (
                    f,
                    h.join()
                        .unwrap_or_else(|_| Err("probe thread panicked".into())),
                )
            })
            .collect();
        match net {
            Ok((t, x)) => {
                done.push((Feature::Tc, t));
                done.push((Feature::Xdp, x));
            }
            Err(e) => {
                let why = format!("cannot create a private network namespace to probe in: {e}");
                done.push((Feature::Tc, Err(why.clone())));
                done.push((Feature::Xdp, Err(why)));
            }
        }
        done
    });
    let mut out: BTreeMap<Feature, FeatureStatus> = results
        .into_iter()
        .map(|(f, r)| {
            let status = match r {
                Ok(mode) => FeatureStatus::yes(mode),
                Err(reason) => FeatureStatus::no(reason),
            };
            (f, status)
        })
        .collect();
    let struct_ops = out.get(&Feature::StructOps).is_some_and(|s| s.available);
    out.insert(Feature::SchedExt, sched_ext(struct_ops, vmlinux));
    out.insert(
        Feature::HardwareCounters,
        match cpu_pmu(Path::new(PMU_DIR)) {
            Ok(pmu) => FeatureStatus::yes(Some(&pmu)),
            Err(why) => FeatureStatus::no(why),
        },
    );
    out
}

/// Where the kernel lists its performance-monitoring units.
const PMU_DIR: &str = "/sys/bus/event_source/devices";

/// The CPU's performance-monitoring unit, if the kernel has one: a PMU
/// that counts retired instructions (`events/instructions` on x86,
/// `events/inst_retired` on arm64), what a process's IPC needs. Read from
/// sysfs, as `perf list` does, rather than by opening a counter: the
/// service unit's system-call filter denies perf_event_open (@debug).
fn cpu_pmu(dir: &Path) -> Result<String, String> {
    let mut seen: Vec<String> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    seen.sort();
    seen.iter()
        .find(|pmu| {
            let events = dir.join(pmu).join("events");
            events.join("instructions").exists() || events.join("inst_retired").exists()
        })
        .cloned()
        .ok_or_else(|| {
            format!(
                "no PMU counting retired instructions in {} (only {})",
                dir.display(),
                seen.join(", ")
            )
        })
}

fn load(object: &Object) -> Result<Ebpf, String> {
    ebpf::load(object).map_err(|e| error_chain(&e))
}

/// The programs of one loaded object, handed out one each to the probes
/// that run side by side; or why the object did not load.
struct Programs<'a> {
    programs: Result<BTreeMap<&'a str, &'a mut Program>, String>,
}

impl<'a> Programs<'a> {
    fn of(obj: &'a mut Result<Ebpf, String>) -> Self {
        Programs {
            programs: match obj {
                Ok(obj) => Ok(obj.programs_mut().collect()),
                Err(e) => Err(e.clone()),
            },
        }
    }

    fn take(&mut self, name: &str) -> Result<&'a mut Program, String> {
        match &mut self.programs {
            Ok(programs) => programs
                .remove(name)
                .ok_or_else(|| format!("program {name} missing from the probe object")),
            Err(e) => Err(e.clone()),
        }
    }
}

/// The program as the kind of program the probe needs.
fn typed<'a, T>(p: &'a mut Program) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut Program, Error = aya::programs::ProgramError>,
{
    p.try_into()
        .map_err(|e: aya::programs::ProgramError| error_chain(&e))
}

fn program<'a, T>(obj: &'a mut Ebpf, name: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut Program, Error = aya::programs::ProgramError>,
{
    typed(
        obj.program_mut(name)
            .ok_or_else(|| format!("program {name} missing from the probe object"))?,
    )
}

fn err(e: impl std::error::Error) -> String {
    error_chain(&e)
}

fn btf(vmlinux: &Result<Btf, String>) -> Probed {
    vmlinux.as_ref().map_err(Clone::clone)?;
    // aya's feature detection loads a minimal BTF blob once per process.
    match aya::features().btf() {
        Some(_) => Ok(None),
        None => Err("the kernel refused to load a BTF blob".into()),
    }
}

/// Tracepoints as the process cache uses them: a raw tracepoint program
/// loaded and attached to `sched_process_exec`.
fn tracepoint(p: &mut Program) -> Probed {
    let p: &mut RawTracePoint = typed(p)?;
    p.load().map_err(err)?;
    let link = p.attach("sched_process_exec").map_err(err)?;
    p.detach(link).map_err(err)?;
    Ok(None)
}

fn ringbuf(obj: &mut Result<Ebpf, String>) -> Probed {
    let obj = obj.as_mut().map_err(|e| e.clone())?;
    let p: &mut TracePoint = program(obj, probe_ringbuf::programs::probe_ringbuf)?;
    p.load().map_err(err)?;
    Ok(None)
}

fn tc(p: Result<&mut Program, String>) -> Probed {
    let p: &mut SchedClassifier = typed(p?)?;
    p.load().map_err(err)?;
    let tcx = TcAttachOptions::TcxOrder(LinkOrder::default());
    match p.attach_with_options("lo", TcAttachType::Ingress, tcx) {
        Ok(link) => {
            p.detach(link).map_err(err)?;
            Ok(Some("tcx"))
        }
        Err(tcx_err) => {
            // Kernels before 6.6 have no tcx; the clsact qdisc still works.
            tc::qdisc_add_clsact("lo")
                .map_err(|e| format!("tcx: {}; clsact: {}", error_chain(&tcx_err), err(e)))?;
            let netlink = TcAttachOptions::Netlink(NlOptions::default());
            let link = p
                .attach_with_options("lo", TcAttachType::Ingress, netlink)
                .map_err(|e| format!("tcx: {}; clsact: {}", error_chain(&tcx_err), err(e)))?;
            p.detach(link).map_err(err)?;
            Ok(Some("clsact"))
        }
    }
}

fn xdp(p: Result<&mut Program, String>) -> Probed {
    let p: &mut Xdp = typed(p?)?;
    p.load().map_err(err)?;
    let link = p.attach("lo", XdpMode::Skb).map_err(err)?;
    p.detach(link).map_err(err)?;
    Ok(Some("generic"))
}

fn sockhash(obj: &mut Result<Ebpf, String>) -> Probed {
    let obj = obj.as_mut().map_err(|e| e.clone())?;
    let map = obj
        .take_map(probe_sockhash::maps::PROBE_SOCKS)
        .ok_or("map PROBE_SOCKS missing from the probe object")?;
    let socks: SockHash<_, u32> = SockHash::try_from(map).map_err(err)?;
    let p: &mut SkSkb = program(obj, probe_sockhash::programs::probe_verdict)?;
    p.load().map_err(err)?;
    let link = p.attach(socks.fd()).map_err(err)?;
    p.detach(link).map_err(err)?;
    Ok(None)
}

fn reuseport(p: &mut Program) -> Probed {
    let p: &mut SkReuseport = typed(p)?;
    p.load().map_err(err)?;
    let sock = reuseport_listener().map_err(|e| format!("loopback listener: {e}"))?;
    p.attach(&sock).map_err(err)?;
    SkReuseport::detach(&sock).map_err(err)?;
    Ok(None)
}

/// A TCP listener on 127.0.0.1, port chosen by the kernel, with SO_REUSEPORT.
fn reuseport_listener() -> std::io::Result<std::os::fd::OwnedFd> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_reuse_port(true)?;
    s.bind(&std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)).into())?;
    s.listen(1)?;
    Ok(s.into())
}

/// `bpf_fentry_test1` exists in every kernel with BPF test_run, never inlined,
/// precisely so that tracing programs can be tested against it.
fn fentry(p: &mut Program, vmlinux: &Result<Btf, String>) -> Probed {
    let btf = vmlinux
        .as_ref()
        .map_err(|e| format!("needs kernel BTF: {e}"))?;
    let p: &mut FEntry = typed(p)?;
    p.load("bpf_fentry_test1", btf).map_err(err)?;
    let link = p.attach().map_err(err)?;
    p.detach(link).map_err(err)?;
    Ok(None)
}

fn struct_ops() -> Probed {
    match is_program_supported(ProgramType::StructOps) {
        Ok(true) => Ok(None),
        Ok(false) => Err("the kernel does not know BPF_PROG_TYPE_STRUCT_OPS".into()),
        Err(e) => Err(err(e)),
    }
}

/// sched_ext needs struct_ops, the `sched_ext_ops` type in kernel BTF (it is
/// what a scheduler's struct_ops map is checked against) and the sched_ext
/// sysfs interface; its state says whether a scheduler is loaded now.
fn sched_ext(struct_ops: bool, vmlinux: &Result<Btf, String>) -> FeatureStatus {
    let state = fs::read_to_string("/sys/kernel/sched_ext/state")
        .ok()
        .map(|s| s.trim().to_owned());
    let ops = fs::read_to_string("/sys/kernel/sched_ext/root/ops")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let in_btf = vmlinux.as_ref().is_ok_and(|b| {
        b.id_by_type_name_kind("sched_ext_ops", BtfKind::Struct)
            .is_ok()
    });
    let mut missing = Vec::new();
    if !struct_ops {
        missing.push("struct_ops programs are unavailable".to_owned());
    }
    if !in_btf {
        missing.push(
            "kernel BTF has no `struct sched_ext_ops` (built without CONFIG_SCHED_CLASS_EXT)"
                .to_owned(),
        );
    }
    if state.is_none() {
        missing.push("/sys/kernel/sched_ext is absent".to_owned());
    }
    if missing.is_empty() {
        let mut s = FeatureStatus::yes(None);
        s.state = Some(match (state, ops) {
            (Some(st), Some(ops)) => format!("{st} ({ops})"),
            (Some(st), None) => st,
            (None, _) => "unknown".into(),
        });
        s
    } else {
        FeatureStatus::no(missing.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_pmu_is_one_counting_retired_instructions() {
        let dir = tempfile::tempdir().expect("tempdir");
        for pmu in ["software", "tracepoint", "kprobe"] {
            fs::create_dir_all(dir.path().join(pmu)).expect("mkdir");
        }
        let none = cpu_pmu(dir.path()).expect_err("no CPU PMU");
        assert!(none.contains("only kprobe, software, tracepoint"), "{none}");
        fs::create_dir_all(dir.path().join("armv8_pmuv3_0/events")).expect("mkdir");
        fs::write(
            dir.path().join("armv8_pmuv3_0/events/inst_retired"),
            "event=0x08",
        )
        .unwrap();
        assert_eq!(cpu_pmu(dir.path()), Ok("armv8_pmuv3_0".into()));
        fs::create_dir_all(dir.path().join("cpu/events")).expect("mkdir");
        fs::write(dir.path().join("cpu/events/instructions"), "event=0xc0").unwrap();
        assert_eq!(
            cpu_pmu(dir.path()),
            Ok("armv8_pmuv3_0".into()),
            "the first by name"
        );
        assert!(cpu_pmu(&dir.path().join("absent")).is_err());
    }
}
