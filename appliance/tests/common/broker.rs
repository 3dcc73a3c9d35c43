//! A real mosquitto broker on 127.0.0.1, on a free port, killed on drop;
//! it can be stopped and started again on the same port (outage tests) and
//! serve TLS with client certificates made by openssl for the test.

use std::{
    fs,
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::{free_port, tempdir, tool, wait_for};

/// A running (or stopped) broker.
pub struct Broker {
    pub port: u16,
    pub dir: tempfile::TempDir,
    conf: PathBuf,
    child: Option<Child>,
}

impl Broker {
    /// Anonymous access on loopback, no persistence.
    pub fn start() -> Broker {
        Broker::start_with(|port, _| {
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        })
    }

    /// Like [`Broker::start`], but keeping sessions and their queued QoS 1
    /// messages across a stop and start, so a persistent subscriber misses
    /// nothing published while it reconnects.
    pub fn start_persistent() -> Broker {
        Broker::start_with(|port, dir| {
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\nmax_queued_messages 100000\n\
                 max_inflight_messages 100\n",
                dir.display()
            )
        })
    }

    /// A broker whose config `conf(port, dir)` writes; `port` is the one
    /// [`Broker::start`] waits on.
    pub fn start_with(conf: impl Fn(u16, &Path) -> String) -> Broker {
        let dir = tempdir();
        // mosquitto started as root drops to its own user, which must still
        // write its log and persistence file here.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
        let path = dir.path().join("mosquitto.conf");
        let mut b = Broker {
            port: 0,
            dir,
            conf: path,
            child: None,
        };
        // A port found free can be taken before mosquitto binds it; then
        // mosquitto exits and another port is tried.
        let mut failures = Vec::new();
        for _ in 0..3 {
            b.port = free_port();
            fs::write(
                &b.conf,
                conf(b.port, b.dir.path())
                    + &format!("log_dest file {}/mosquitto.log\n", b.dir.path().display()),
            )
            .expect("write mosquitto.conf");
            match b.try_start() {
                Ok(()) => return b,
                Err(e) => failures.push(e),
            }
        }
        panic!("mosquitto did not start:\n{}", failures.join("\n"));
    }

    /// Starts the broker again (same port, same config) and waits until it accepts.
    pub fn restart(&mut self) {
        if let Err(e) = self.try_start() {
            panic!("mosquitto did not restart: {e}");
        }
    }

    /// Spawns mosquitto and waits until it accepts on `self.port`, or says
    /// why not (with its log) if it exits first.
    fn try_start(&mut self) -> Result<(), String> {
        let mut child = Command::new(tool("mosquitto"))
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto");
        let port = self.port;
        let started = wait_for("mosquitto to accept", Duration::from_secs(10), || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(status));
            }
            accepts(port).then_some(Ok(()))
        });
        match started {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(status) => Err(format!(
                "mosquitto on port {port} exited ({status}); its log:\n{}",
                self.log()
            )),
        }
    }

    /// Stops the broker cleanly (SIGTERM: persistent state is saved).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    /// A mosquitto client tool (`mosquitto_pub`, `mosquitto_sub`, ...)
    /// already pointed at this broker.
    pub fn client(&self, program: &str) -> Command {
        let mut c = Command::new(tool(program));
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        c
    }

    /// What mosquitto logged so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Publishes `payload` retained with QoS 1.
    pub fn publish_retained(&self, topic: &str, payload: &[u8]) {
        let file = self.dir.path().join("payload");
        fs::write(&file, payload).expect("write payload");
        let status = self
            .client("mosquitto_pub")
            .args(["-q", "1", "-r", "-t", topic, "-f"])
            .arg(&file)
            .status()
            .expect("mosquitto_pub");
        assert!(status.success(), "mosquitto_pub to {topic} failed");
    }

    /// The retained message on `topic`, if any (within 2 s).
    pub fn retained(&self, topic: &str) -> Option<String> {
        let out = self
            .client("mosquitto_sub")
            .args(["-t", topic, "-C", "1", "-W", "2", "--retained-only"])
            .output()
            .expect("mosquitto_sub");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    }
}

/// Whether something listens on 127.0.0.1:`port`. A connect to a port
/// nobody listens on can still succeed when the kernel picks that same port
/// as the source (TCP simultaneous open to itself); that is not a broker.
fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1))
        .and_then(|s| s.local_addr())
        .is_ok_and(|local| local.port() != port)
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made
/// with openssl in `dir`.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TlsFiles {
    pub fn generate(dir: &Path) -> TlsFiles {
        let run = |args: &[&str]| {
            let out = Command::new(tool("openssl"))
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=nodus test CA"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&ca);
        for (name, subject, ext) in [
            (
                "server",
                "/CN=127.0.0.1",
                "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            ),
            (
                "client",
                "/CN=board-under-test",
                "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
            ),
        ] {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let pem = format!("{name}.pem");
            let extfile = format!("{name}.ext");
            fs::write(dir.join(&extfile), ext).expect("write ext");
            let mut req = vec!["req", "-new", "-subj", subject];
            req.extend(ec);
            req.extend(["-keyout", &key, "-out", &csr]);
            run(&req);
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &extfile,
            ]);
        }
        // mosquitto started as root drops to its own user: let it read them.
        use std::os::unix::fs::PermissionsExt;
        let readable = |p: &Path, mode| fs::set_permissions(p, fs::Permissions::from_mode(mode));
        readable(dir, 0o755).expect("chmod dir");
        for f in ["ca.pem", "server.pem", "server.key"] {
            readable(&dir.join(f), 0o644).expect("chmod");
        }
        TlsFiles {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }
}
