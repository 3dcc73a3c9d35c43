//! A nodus with only what a file-server test needs: a docroot in a temp dir,
//! a free loopback port, and curl to talk to it.

use std::{
    fs,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use super::{daemon::TempDaemon, free_port, tempdir, tool};

/// A running daemon serving `root`.
pub struct FsDaemon {
    pub daemon: TempDaemon,
    pub root: tempfile::TempDir,
    pub port: u16,
}

/// What curl got.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Got {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

impl FsDaemon {
    /// Starts nodus with `[fileserver]` pointed at a fresh docroot, after
    /// `populate` filled it; `extra` is more `[fileserver]` keys.
    pub fn start(populate: impl FnOnce(&Path), extra: &str) -> FsDaemon {
        let root = tempdir();
        populate(root.path());
        let port = free_port();
        let config = format!(
            "[fileserver]\nlisten = \"127.0.0.1:{port}\"\ndocroot = \"{}\"\n{extra}\n",
            root.path().display()
        );
        let daemon = TempDaemon::start(&config, &[]);
        FsDaemon { daemon, root, port }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A file in the docroot.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// Runs curl with `args` (the URL among them) and returns what it got.
    pub fn curl(&self, args: &[&str]) -> Got {
        let dir = tempdir();
        let (h, b) = (dir.path().join("h"), dir.path().join("b"));
        let out = Command::new(tool("curl"))
            .args(["-s", "--max-time", "10", "-D"])
            .arg(&h)
            .arg("-o")
            .arg(&b)
            .args(["-w", "%{http_code}"])
            .args(args)
            .output()
            .expect("run curl");
        let status = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        Got {
            status,
            headers: fs::read_to_string(&h).unwrap_or_default(),
            body: fs::read(&b).unwrap_or_default(),
        }
    }

    /// GET `path` with extra curl `args`.
    pub fn get(&self, path: &str, args: &[&str]) -> Got {
        let url = self.url(path);
        let mut all: Vec<&str> = args.to_vec();
        all.push(&url);
        self.curl(&all)
    }

    /// Sends raw bytes on a new connection and reads until the server closes
    /// or `wait` passes.
    pub fn raw(&self, bytes: &[u8], wait: Duration) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(wait)).expect("timeout");
        s.write_all(bytes).expect("send");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The fileserver entry of `nodus status --json`.
    pub fn status(&self) -> serde_json::Value {
        super::daemon::component(&self.daemon.status_json(), "fileserver")
    }
}
