//! Two network namespaces joined by a veth pair, made and removed by the test,
//! so network tests never touch the machine's own interfaces.

use std::process::{Command, Output};

use super::{tool, unique};

/// Namespaces `a` (10.x.y.1) and `b` (10.x.y.2) with a veth between them.
pub struct NetPair {
    pub a: String,
    pub b: String,
    pub addr_a: String,
    pub addr_b: String,
}

fn ip(args: &[&str]) {
    let out = Command::new(tool("ip"))
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NetPair {
    /// Creates both namespaces, the veth pair and their addresses, all up.
    pub fn new() -> NetPair {
        super::require_root();
        let a = unique("ndsa");
        let b = unique("ndsb");
        let subnet = std::process::id() % 250 + 1;
        let pair = NetPair {
            addr_a: format!("10.77.{subnet}.1"),
            addr_b: format!("10.77.{subnet}.2"),
            a,
            b,
        };
        ip(&["netns", "add", &pair.a]);
        ip(&["netns", "add", &pair.b]);
        ip(&[
            "link", "add", "veth0", "netns", &pair.a, "type", "veth", "peer", "name", "veth0",
            "netns", &pair.b,
        ]);
        for (ns, addr) in [(&pair.a, &pair.addr_a), (&pair.b, &pair.addr_b)] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "veth0",
            ]);
            ip(&["-n", ns, "link", "set", "veth0", "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }

    /// A command that will run inside namespace `ns`.
    pub fn cmd(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new(tool("ip"));
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// Runs `program args` in `ns` to completion.
    pub fn run(&self, ns: &str, program: &str, args: &[&str]) -> Output {
        self.cmd(ns, program)
            .args(args)
            .output()
            .expect("ip netns exec")
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
