//! A real ClientHello as raw bytes: what `openssl s_client` sends first.
//! Shared by the proxy's tests and its bench (`benches/proxy.rs` includes
//! this file), so both route the same hello.

use std::{
    io::Read,
    net::TcpListener,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

/// The first TLS record `openssl` (the binary at that path) sends for
/// `s_client -servername server_name`: its ClientHello.
pub fn capture(openssl: &Path, server_name: &str) -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let mut client = Command::new(openssl)
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", server_name])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client");
    let (mut conn, _) = listener.accept().expect("accept");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut hello = vec![0u8; 5];
    conn.read_exact(&mut hello).expect("record header");
    let len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
    hello.resize(5 + len, 0);
    conn.read_exact(&mut hello[5..]).expect("record body");
    let _ = client.kill();
    let _ = client.wait();
    hello
}
