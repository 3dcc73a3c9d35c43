//! A real `nodus run` process with its own config, control socket and
//! NOTIFY_SOCKET, stopped (SIGTERM) when dropped.

use std::{
    fs,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Child, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use super::{nodus, tempdir, wait_for};

/// A running daemon.
pub struct TempDaemon {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub notify: UnixDatagram,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl TempDaemon {
    /// Starts nodus with `[control] socket` set to a private path plus `extra`
    /// TOML, and waits for READY=1. `env` is added to its environment.
    pub fn start(extra: &str, env: &[(&str, &str)]) -> TempDaemon {
        TempDaemon::start_in(extra, env, None)
    }

    /// Like [`TempDaemon::start`], but run through `sh -c SETUP; exec nodus ...`
    /// inside a private mount namespace, so `setup` can hide or replace
    /// files (a kernel without BTF, say) for this daemon alone.
    pub fn start_in_mount_ns(extra: &str, setup: &str) -> TempDaemon {
        TempDaemon::start_in(extra, &[], Some(setup))
    }

    fn start_in(extra: &str, env: &[(&str, &str)], mount_ns_setup: Option<&str>) -> TempDaemon {
        let dir = tempdir();
        let socket = dir.path().join("control.sock");
        let config = dir.path().join("nodus.toml");
        fs::write(&config, config_text(&socket, extra)).expect("write config");
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let log = dir.path().join("nodus.log");
        let mut d = TempDaemon {
            dir,
            config,
            socket,
            notify,
            child: None,
            log,
        };
        d.launch(env, mount_ns_setup);
        d
    }

    /// Starts nodus again with the same config, control socket and state,
    /// after [`TempDaemon::stop`] (or a kill): what survives a restart.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart: nodus is still running");
        self.launch(&[], None);
    }

    fn launch(&mut self, env: &[(&str, &str)], mount_ns_setup: Option<&str>) {
        let mut command = match mount_ns_setup {
            None => nodus(),
            Some(setup) => {
                let mut c = std::process::Command::new("unshare");
                c.args(["--mount", "--propagation", "private", "sh", "-c"])
                    .arg(format!("{setup} && exec \"$0\" \"$@\""))
                    .arg(nodus().get_program());
                c
            }
        };
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = command
            .args(["run", "--config"])
            .arg(&self.config)
            .env("NOTIFY_SOCKET", self.dir.path().join("notify.sock"))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nodus");
        self.child = Some(child);
        let ready = self.wait_notify("READY=1", Duration::from_secs(10));
        assert!(ready.contains("STATUS="), "READY without STATUS: {ready}");
    }

    /// Waits for a notification datagram containing `needle`; returns it.
    pub fn wait_notify(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.contains(needle) {
                    return msg;
                }
            }
            if let Some(status) = self.try_exit() {
                panic!(
                    "nodus exited ({status}) before {needle}:\n{}",
                    self.log_text()
                );
            }
        }
        panic!("no {needle} within {timeout:?}:\n{}", self.log_text())
    }

    /// Everything nodus wrote to stderr so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's pid.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.pid(), signal) };
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// SIGTERM, then waits up to `timeout` for the exit status.
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let status = wait_for("nodus to exit", timeout, || self.try_exit());
        self.child = None;
        status
    }

    /// `nodus status --json` against this daemon.
    pub fn status_json(&self) -> serde_json::Value {
        let out = nodus()
            .args(["status", "--json", "--socket"])
            .arg(&self.socket)
            .output()
            .expect("run nodus status");
        assert!(
            out.status.success(),
            "nodus status failed: {}\n--- daemon log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// `nodus ps --json ARGS` against this daemon.
    pub fn ps_json(&self, args: &[&str]) -> serde_json::Value {
        let out = nodus()
            .args(["ps", "--json", "--socket"])
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run nodus ps");
        assert!(
            out.status.success(),
            "nodus ps failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("ps JSON")
    }

    /// Rewrites the config file (for SIGHUP tests).
    pub fn rewrite_config(&self, socket: &Path, extra: &str) {
        fs::write(&self.config, config_text(socket, extra)).expect("rewrite config");
    }
}

/// The entry for component `name` in a `nodus status --json` reply.
pub fn component(status: &serde_json::Value, name: &str) -> serde_json::Value {
    status["components"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("component {name} missing from {status}"))
}

fn config_text(socket: &Path, extra: &str) -> String {
    // Daemons of parallel tests must not share the file server's default port.
    let fileserver = if extra.contains("[fileserver]") {
        String::new()
    } else {
        format!(
            "[fileserver]\nlisten = \"127.0.0.1:{}\"\n",
            super::free_port()
        )
    };
    let proxy = if extra.contains("[proxy]") {
        String::new()
    } else {
        format!("[proxy]\nlisten = \"127.0.0.1:{}\"\n", super::free_port())
    };
    // No broker unless the test brings one; never the machine's state dir.
    let fleet = if extra.contains("[fleet]") {
        String::new()
    } else {
        format!(
            "[fleet]\nenabled = false\nstate_dir = \"{}\"\n",
            socket.with_file_name("state").display()
        )
    };
    let log = if extra.contains("[log]") {
        ""
    } else {
        "[log]\ntarget = \"stderr\"\nlevel = \"debug\"\n\n"
    };
    format!(
        "{log}[control]\nsocket = \"{}\"\n\n{fileserver}{proxy}{fleet}{extra}\n",
        socket.display()
    )
}

impl Drop for TempDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
