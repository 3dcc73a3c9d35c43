//! A real mosquitto broker on 127.0.0.1, on a free port, killed on drop.

use std::{
    fs,
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::{free_port, tempdir, tool, wait_for};

/// A running broker.
pub struct Broker {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Broker {
    /// Starts mosquitto with anonymous access on loopback and waits until it accepts.
    pub fn start() -> Broker {
        let dir = tempdir();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
            ),
        )
        .expect("write mosquitto.conf");
        let child = Command::new(tool("mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto");
        wait_for("mosquitto to accept", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Broker { port, dir, child }
    }

    /// A mosquitto client tool (`mosquitto_pub`, `mosquitto_sub`, ...)
    /// already pointed at this broker.
    pub fn client(&self, program: &str) -> Command {
        let mut c = Command::new(tool(program));
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        c
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
