//! The proxy's ClientHello reader against real clients: openssl s_client
//! and curl connect to a loopback listener, and what the reader takes from
//! their first bytes (read as the kernel delivers them) is what each was
//! told to send.

mod common;

use std::{
    io::Read,
    net::TcpListener,
    process::{Command, Stdio},
    time::Duration,
};

use nodus::proxy::hello::{Hello, HelloReader, Progress};

/// Starts `client` (given the listener's port) and reads its hello.
fn hello_of(client: impl FnOnce(u16) -> Command) -> Hello {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut child = client(port)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the client");
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = HelloReader::new();
    let mut buf = [0u8; 512];
    let hello = loop {
        let n = conn.read(&mut buf).expect("read the hello");
        assert!(n > 0, "the client closed before its hello was whole");
        match reader.push(&buf[..n]).expect("a routable hello") {
            Progress::NeedMore => continue,
            Progress::Done(h) => break h,
        }
    };
    drop(conn);
    let _ = child.kill();
    let _ = child.wait();
    hello
}

fn openssl(port: u16, args: &[&str]) -> Command {
    let mut c = Command::new(common::tool("openssl"));
    c.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(args);
    c
}

#[test]
fn openssl_names_alpn_and_versions() {
    let h = hello_of(|p| openssl(p, &["-servername", "Board.Example", "-alpn", "h2,http/1.1"]));
    assert_eq!(h.server_name.as_deref(), Some("board.example"));
    assert_eq!(h.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert!(h.tls13);
    let h = hello_of(|p| openssl(p, &["-servername", "old.example", "-tls1_2"]));
    assert_eq!(h.server_name.as_deref(), Some("old.example"));
    assert!(!h.tls13 && h.alpn.is_empty());
    let h = hello_of(|p| openssl(p, &["-noservername"]));
    assert_eq!(h.server_name, None);
}

#[test]
fn curl_is_routed_by_the_name_it_resolves() {
    let h = hello_of(|p| {
        let mut c = Command::new(common::tool("curl"));
        c.args(["-sk", "--max-time", "5", "--resolve"])
            .arg(format!("api.example.test:{p}:127.0.0.1"))
            .arg(format!("https://api.example.test:{p}/"));
        c
    });
    assert_eq!(h.server_name.as_deref(), Some("api.example.test"));
    assert!(h.alpn.iter().any(|a| a == b"http/1.1"), "{h:?}");
}
