//! The file server's eBPF in the running kernel: sk_reuseport steering and
//! the TC request classifier, seen through `nodus status`.

mod common;

use std::{fs, time::Duration};

use common::{fileserver::FsDaemon, wait_for};

/// Status once the classifier, which attaches in the background after
/// READY, is in place.
fn attached_status(d: &FsDaemon) -> serde_json::Value {
    wait_for(
        "the TC classifier to attach",
        Duration::from_secs(5),
        || {
            let s = d.status();
            s["stats"]["tc_interfaces"].is_string().then_some(s)
        },
    )
}

#[test]
fn steering_and_kernel_counters() {
    require_root!();
    let d = FsDaemon::start(
        |r| {
            fs::write(r.join("index.html"), "home\n").unwrap();
            fs::write(r.join("a.css"), "x\n").unwrap();
        },
        "workers = 2",
    );
    let s = attached_status(&d);
    assert_eq!(s["health"]["state"], "healthy", "{s}");
    assert_eq!(s["stats"]["tc_interfaces"], "lo (tcx)", "{s}");
    for _ in 0..5 {
        assert_eq!(d.get("/", &[]).status, 200);
    }
    for _ in 0..3 {
        assert_eq!(d.curl(&["-I", &d.url("/a.css")]).status, 200);
    }
    assert_eq!(d.curl(&["--path-as-is", &d.url("/../x")]).status, 400);
    assert_eq!(d.curl(&["-X", "POST", &d.url("/")]).status, 405);
    let st = &d.status()["stats"];
    assert_eq!(st["kernel_requests.get.index"], 5, "{st}");
    assert_eq!(st["kernel_requests.head.asset"], 3, "{st}");
    assert_eq!(st["kernel_requests.get.suspicious"], 1, "{st}");
    assert_eq!(st["kernel_requests.other_method"], 1, "{st}");
    // Every connection went through the steering program, on a CPU with a worker.
    let steered = st["reuseport_steered"].as_u64().unwrap();
    assert_eq!(
        steered,
        st["connections_accepted"].as_u64().unwrap(),
        "{st}"
    );
    assert_eq!(st["reuseport_fallback"], 0, "{st}");
    assert_eq!(st["requests"], 10, "{st}");
    assert!(st["latency_p99_us"].as_i64().unwrap() > 0, "{st}");
}

#[test]
fn without_pinning_steering_degrades_visibly() {
    require_root!();
    let d = FsDaemon::start(
        |r| fs::write(r.join("index.html"), "home\n").unwrap(),
        "pin_workers = false\ntc_interfaces = [\"lo\", \"nodus-no-such-if\"]",
    );
    let s = attached_status(&d);
    assert_eq!(s["health"]["state"], "degraded", "{s}");
    let reason = s["health"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("sk_reuseport steering: workers are not pinned"),
        "{reason}"
    );
    assert!(reason.contains("tc on nodus-no-such-if"), "{reason}");
    // The rest works.
    assert_eq!(d.get("/", &[]).status, 200);
    assert_eq!(s["stats"]["tc_interfaces"], "lo (tcx)");
    let out = common::nodus()
        .args(["status", "--socket"])
        .arg(&d.daemon.socket)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fileserver   degraded"), "{text}");
}

/// A TUN device in a namespace the test owns, its fd held by the test so it
/// can inject packets: an L3 interface (no Ethernet header), like wwan,
/// WireGuard or a VPN's tun.
struct Tun {
    ns: String,
    name: String,
    fd: std::os::fd::OwnedFd,
}

impl Tun {
    fn new() -> Tun {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let ns = common::unique("ndst");
        let name = "ndstun0".to_owned();
        let ip = |args: &[&str]| {
            let ok = std::process::Command::new(common::tool("ip"))
                .args(args)
                .status()
                .expect("ip");
            assert!(ok.success(), "ip {args:?}");
        };
        ip(&["netns", "add", &ns]);
        // Created from a thread inside the namespace, so the device is born
        // there and never appears in the machine's own namespace.
        let (path, ifname) = (format!("/var/run/netns/{ns}"), name.clone());
        let fd = std::thread::spawn(move || {
            let netns = fs::File::open(path).expect("netns");
            // SAFETY: setns on this thread only, with an fd we own.
            assert_eq!(
                unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            let tun = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/net/tun")
                .expect("/dev/net/tun");
            // struct ifreq: the name, then the flags.
            let mut req = [0u8; 40];
            req[..ifname.len()].copy_from_slice(ifname.as_bytes());
            let flags = (libc::IFF_TUN | libc::IFF_NO_PI) as u16;
            req[16..18].copy_from_slice(&flags.to_ne_bytes());
            // SAFETY: TUNSETIFF with a properly sized ifreq.
            let rc = unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, req.as_mut_ptr()) };
            assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
            // SAFETY: the fd is ours, moved out of the File.
            unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(tun)) }
        })
        .join()
        .expect("tun thread");
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &ns, "addr", "add", "10.79.0.1/24", "dev", &name]);
        ip(&["-n", &ns, "link", "set", &name, "up"]);
        Tun { ns, name, fd }
    }

    /// Injects one TCP segment carrying `payload` to `port`, as received.
    fn send(&self, v6: bool, port: u16, payload: &[u8]) {
        use std::io::Write;
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&40000u16.to_be_bytes());
        tcp.extend_from_slice(&port.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(payload);
        let mut packet = Vec::new();
        if v6 {
            packet.extend_from_slice(&[0x60, 0, 0, 0]);
            packet.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            packet.extend_from_slice(&[6, 64]);
            packet.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            packet.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        } else {
            packet.extend_from_slice(&[0x45, 0]);
            packet.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
            packet.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0, 10, 79, 0, 2, 10, 79, 0, 1]);
        }
        packet.extend_from_slice(&tcp);
        let mut f = fs::File::from(self.fd.try_clone().unwrap());
        f.write_all(&packet).expect("write to tun");
    }
}

impl Drop for Tun {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .status();
    }
}

/// On an L3 interface (TUN: packets start with the IP header, no Ethernet
/// header) the classifier still finds the request, over IPv4 and IPv6.
#[test]
fn the_classifier_counts_requests_on_an_l3_interface() {
    require_root!();
    let tun = Tun::new();
    let root = common::tempdir();
    fs::write(root.path().join("index.html"), "home\n").unwrap();
    let port = 8480;
    let config = format!(
        "[fileserver]\nlisten = \"0.0.0.0:{port}\"\ndocroot = \"{}\"\ntc_interfaces = [\"{}\"]\n\
         [fleet]\nenabled = false\n",
        root.path().display(),
        tun.name
    );
    let d = common::daemon::TempDaemon::start_in_mount_ns(
        &config,
        &format!("exec ip netns exec {} \"$0\" \"$@\"", tun.ns),
    );
    let stats = || common::daemon::component(&d.status_json(), "fileserver")["stats"].clone();
    wait_for(
        "the TC classifier to attach",
        Duration::from_secs(5),
        || stats()["tc_interfaces"].is_string().then_some(()),
    );
    assert!(
        stats()["tc_interfaces"]
            .as_str()
            .unwrap()
            .contains(&tun.name),
        "{}",
        stats()
    );
    for _ in 0..3 {
        tun.send(false, port, b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    tun.send(true, port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    tun.send(false, port + 1, b"GET /other-port HTTP/1.1\r\n\r\n");
    let st = wait_for("the requests to be counted", Duration::from_secs(5), || {
        let st = stats();
        (st["kernel_requests.get.html"] == 3 && st["kernel_requests.head.index"] == 1).then_some(st)
    });
    assert_eq!(st["kernel_requests.get.other"], 0, "{st}");
}

/// The classifier passes every packet on to the next program on the
/// interface: a second file server's classifier attached after the first
/// still counts its own requests.
#[test]
fn the_classifier_leaves_packets_to_programs_attached_after_it() {
    require_root!();
    let site = |r: &std::path::Path| fs::write(r.join("index.html"), "home\n").unwrap();
    let first = FsDaemon::start(site, "workers = 1");
    attached_status(&first);
    let second = FsDaemon::start(site, "workers = 1");
    attached_status(&second);
    for _ in 0..4 {
        assert_eq!(second.get("/", &[]).status, 200);
    }
    let st = wait_for(
        "the second classifier's counts",
        Duration::from_secs(5),
        || {
            let st = second.status()["stats"].clone();
            (st["kernel_requests.get.index"] == 4).then_some(st)
        },
    );
    assert_eq!(st["requests"], 4, "{st}");
    drop(first);
}
