//! The test helpers themselves work: a namespace pair passes traffic over its
//! veth, and the mosquitto broker relays a message.

mod common;

use std::{
    process::{Command, Stdio},
    time::Duration,
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
    let sub = broker
        .client("mosquitto_sub")
        .args(["-t", "nodus/test", "-C", "1", "-W", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    // Publish until the subscriber (which may still be connecting) gets one.
    let out = std::thread::scope(|s| {
        let h = s.spawn(|| sub.wait_with_output().expect("sub output"));
        while !h.is_finished() {
            let _ = broker
                .client("mosquitto_pub")
                .args(["-t", "nodus/test", "-m", "hello"])
                .status();
            std::thread::sleep(Duration::from_millis(100));
        }
        h.join().expect("join")
    });
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello",
        "mosquitto_sub: {}\nbroker log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        broker.log()
    );
}
