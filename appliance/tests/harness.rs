//! The test helpers themselves work: a namespace pair passes traffic over its
//! veth, and the mosquitto broker relays a message.

mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{broker::Broker, netns::NetPair, tool, wait_for};

/// Kills the child when the test ends, pass or fail.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn namespace_pair_carries_tcp_over_veth() {
    require_root!();
    let pair = NetPair::new();
    let _server = Reap(
        pair.cmd(&pair.b, "python3")
            .args(["-m", "http.server", "8080", "--bind", &pair.addr_b])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server in b"),
    );
    let url = format!("http://{}:8080/", pair.addr_b);
    let code = wait_for("HTTP across the veth", Duration::from_secs(10), || {
        let out = pair.run(
            &pair.a,
            "curl",
            &["-s", "-o", "/dev/null", "-w", "%{http_code}", &url],
        );
        Some(String::from_utf8_lossy(&out.stdout).into_owned()).filter(|c| c != "000")
    });
    assert_eq!(code, "200");
    // And the machine's own namespace cannot see b's address: nothing leaked out.
    let out = Command::new(tool("ip"))
        .args(["-o", "addr"])
        .output()
        .expect("ip addr");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&pair.addr_b));
}

#[test]
fn broker_relays_a_message() {
    let broker = Broker::start();
    // A subscriber whose TCP connect is refused is started again: seen 2 in
    // 200 runs with both CPUs loaded while the namespace test ran beside
    // this one (never with this test alone), with mosquitto listening and
    // accepting the publisher a moment later; cause not found. Anything else,
    // or refusals past the deadline, fail.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut refusals = Vec::new();
    loop {
        let out = subscribe_while_publishing(&broker);
        let got = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if got == "hello" {
            break;
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            err.contains("Connection refused") && Instant::now() < deadline,
            "mosquitto_sub printed {got:?}: {err}\nearlier refusals: {}\nbroker log:\n{}",
            refusals.len(),
            broker.log()
        );
        refusals.push(err);
    }
}

/// Runs one `mosquitto_sub -C 1`, publishing "hello" until it exits.
fn subscribe_while_publishing(broker: &Broker) -> std::process::Output {
    let sub = broker
        .client("mosquitto_sub")
        .args(["-t", "nodus/test", "-C", "1", "-W", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    // Publish until the subscriber (which may still be connecting) gets one.
    std::thread::scope(|s| {
        let h = s.spawn(|| sub.wait_with_output().expect("sub output"));
        while !h.is_finished() {
            let _ = broker
                .client("mosquitto_pub")
                .args(["-t", "nodus/test", "-m", "hello"])
                .status();
            std::thread::sleep(Duration::from_millis(100));
        }
        h.join().expect("join")
    })
}
