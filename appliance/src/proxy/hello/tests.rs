use super::*;

/// Builds ClientHellos the way clients lay them out.
#[derive(Clone)]
struct Build {
    sni: Option<Vec<u8>>,
    alpn: Vec<&'static str>,
    tls13: bool,
    ech: bool,
    /// Bytes of key share (X25519MLKEM768's is 1,216).
    key_share: usize,
    /// Bytes of a padding extension (Chrome pads its hellos).
    padding: usize,
    grease: bool,
}

impl Default for Build {
    fn default() -> Self {
        Build {
            sni: Some(b"svc.example.com".to_vec()),
            alpn: vec!["h2", "http/1.1"],
            tls13: true,
            ech: false,
            key_share: 32,
            padding: 0,
            grease: true,
        }
    }
}

fn ext(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
}

fn u16_prefixed(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

impl Build {
    /// The handshake message (type, 3-byte length, body).
    fn message(&self) -> Vec<u8> {
        let mut exts = Vec::new();
        if self.grease {
            ext(&mut exts, 0x0a0a, &[]);
        }
        if let Some(name) = &self.sni {
            let mut entry = vec![0u8];
            entry.extend_from_slice(&u16_prefixed(name));
            ext(&mut exts, 0, &u16_prefixed(&entry));
        }
        if !self.alpn.is_empty() {
            let mut list = Vec::new();
            for p in &self.alpn {
                list.push(p.len() as u8);
                list.extend_from_slice(p.as_bytes());
            }
            ext(&mut exts, 16, &u16_prefixed(&list));
        }
        if self.tls13 {
            ext(&mut exts, 43, &[4, 0x03, 0x04, 0x03, 0x03]);
            let mut share = 0x11ecu16.to_be_bytes().to_vec();
            share.extend_from_slice(&u16_prefixed(&vec![0x42; self.key_share]));
            ext(&mut exts, 51, &u16_prefixed(&share));
        }
        if self.ech {
            ext(&mut exts, ECH, &[0, 0, 1, 0, 1, 7, 0, 0, 0, 0]);
        }
        if self.padding > 0 {
            ext(&mut exts, 21, &vec![0; self.padding]);
        }
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0x11; 32]);
        body.push(32);
        body.extend_from_slice(&[0x22; 32]);
        body.extend_from_slice(&u16_prefixed(&[0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f]));
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&u16_prefixed(&exts));
        let mut m = vec![CLIENT_HELLO];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend_from_slice(&body);
        m
    }

    /// The message in records of at most `per_record` bytes.
    fn records(&self, per_record: usize) -> Vec<u8> {
        records(&self.message(), per_record)
    }
}

fn records(message: &[u8], per_record: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in message.chunks(per_record) {
        out.extend_from_slice(&[HANDSHAKE, 3, 1]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

fn read_all(bytes: &[u8]) -> Result<Progress, HelloError> {
    HelloReader::new().push(bytes)
}

fn done(bytes: &[u8]) -> Hello {
    match read_all(bytes) {
        Ok(Progress::Done(h)) => h,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_whole_hello_gives_name_alpn_and_version() {
    let h = done(&Build::default().records(MAX_RECORD));
    assert_eq!(h.server_name.as_deref(), Some("svc.example.com"));
    assert_eq!(h.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert!(h.tls13 && !h.ech);
}

/// A post-quantum hello (X25519MLKEM768 key share) is over one segment;
/// fed a byte at a time it completes exactly at its last byte, and every
/// byte is kept for the backend.
#[test]
fn a_post_quantum_hello_read_byte_by_byte_completes_at_its_last_byte() {
    let bytes = Build {
        key_share: 1216,
        padding: 300,
        ..Build::default()
    }
    .records(MAX_RECORD);
    assert!(bytes.len() > 1460, "bigger than one Ethernet segment");
    let mut r = HelloReader::new();
    for (i, b) in bytes.iter().enumerate() {
        let p = r.push(std::slice::from_ref(b)).unwrap();
        if i + 1 < bytes.len() {
            assert_eq!(p, Progress::NeedMore, "byte {i}");
        } else {
            assert!(
                matches!(p, Progress::Done(ref h) if h.server_name.as_deref() == Some("svc.example.com"))
            );
        }
    }
    assert_eq!(r.received(), &bytes[..]);
}

/// A hello split over several TLS records (each a few hundred bytes),
/// followed by early data in the same read, is reassembled; the early data
/// stays in what is forwarded.
#[test]
fn a_hello_over_several_records_with_early_data_behind_it() {
    let mut bytes = Build {
        key_share: 1216,
        ..Build::default()
    }
    .records(300);
    let early = [23u8, 3, 3, 0, 3, 1, 2, 3];
    bytes.extend_from_slice(&early);
    let mut r = HelloReader::new();
    let (a, b) = bytes.split_at(700);
    assert_eq!(r.push(a).unwrap(), Progress::NeedMore);
    assert!(matches!(r.push(b).unwrap(), Progress::Done(_)));
    assert!(r.into_received().ends_with(&early));
}

#[test]
fn grease_ech_tls12_and_no_sni_are_routable() {
    let ech = done(
        &Build {
            ech: true,
            sni: Some(b"public.example.net".to_vec()),
            ..Build::default()
        }
        .records(MAX_RECORD),
    );
    assert!(ech.ech);
    assert_eq!(ech.server_name.as_deref(), Some("public.example.net"));
    let tls12 = done(
        &Build {
            tls13: false,
            grease: false,
            ..Build::default()
        }
        .records(MAX_RECORD),
    );
    assert!(!tls12.tls13);
    let anonymous = done(
        &Build {
            sni: None,
            alpn: vec![],
            ..Build::default()
        }
        .records(MAX_RECORD),
    );
    assert_eq!((anonymous.server_name, anonymous.alpn.len()), (None, 0));
    // Names compare in lower case, a trailing dot dropped.
    let upper = done(
        &Build {
            sni: Some(b"SVC.Example.COM.".to_vec()),
            ..Build::default()
        }
        .records(MAX_RECORD),
    );
    assert_eq!(upper.server_name.as_deref(), Some("svc.example.com"));
}

#[test]
fn what_is_not_a_routable_hello_is_a_clear_error() {
    assert_eq!(
        read_all(b"GET / HTTP/1.1\r\n"),
        Err(HelloError::NotTls(b'G'))
    );
    // SSLv2-style hello.
    assert!(matches!(
        read_all(&[0x80, 0x2e, 1, 3, 1, 0]),
        Err(HelloError::NotTls(0x80))
    ));
    // A ServerHello where a ClientHello belongs.
    let mut server = Build::default().message();
    server[0] = 2;
    assert_eq!(
        read_all(&records(&server, MAX_RECORD)),
        Err(HelloError::NotClientHello(2))
    );
    // An alert between two records of one hello.
    let two = Build::default().records(100);
    let mut mixed = two[..105].to_vec();
    mixed.extend_from_slice(&[21, 3, 3, 0, 2, 2, 40]);
    assert_eq!(read_all(&mixed), Err(HelloError::Interleaved(21)));
    // Impossible record lengths and versions.
    assert!(matches!(
        read_all(&[22, 3, 1, 0, 0]),
        Err(HelloError::BadRecord { .. })
    ));
    assert!(matches!(
        read_all(&[22, 3, 1, 0x40, 1]),
        Err(HelloError::BadRecord { .. })
    ));
    assert!(matches!(
        read_all(&[22, 9, 1, 0, 4]),
        Err(HelloError::BadRecord { .. })
    ));
    // A host name with a space or an empty label.
    for name in [&b"a b.example"[..], b"a..b", b"."] {
        let bytes = Build {
            sni: Some(name.to_vec()),
            ..Build::default()
        }
        .records(MAX_RECORD);
        assert!(
            matches!(read_all(&bytes), Err(HelloError::BadServerName(_))),
            "{name:?}"
        );
    }
    // A body that does not parse.
    let mut broken = Build::default().message();
    // The extensions' length, past the version, random, session id,
    // cipher suites and compression methods: claims more than is there.
    broken[4 + 2 + 32 + 33 + 8 + 2..][..2].copy_from_slice(&[0xff, 0xff]);
    assert!(matches!(
        read_all(&records(&broken, MAX_RECORD)),
        Err(HelloError::Malformed(_))
    ));
}

/// A hello declared larger than the limit is refused as soon as its
/// header arrives, before the proxy holds any of the rest.
#[test]
fn an_oversized_hello_is_refused_from_its_header() {
    let declared = MAX_HELLO + 1;
    let mut first = vec![HANDSHAKE, 3, 1, 0, 4, CLIENT_HELLO];
    first.extend_from_slice(&((declared - 4) as u32).to_be_bytes()[1..]);
    assert_eq!(read_all(&first), Err(HelloError::TooLarge(declared)));
}

/// A hello cut into one-byte records is refused once its records pass
/// twice the limit, however it is read.
#[test]
fn tiny_records_cannot_make_the_reader_hold_more() {
    let message = Build {
        padding: 8000,
        ..Build::default()
    }
    .message();
    let bytes = records(&message, 1);
    assert!(matches!(read_all(&bytes), Err(HelloError::TooLarge(_))));
    let mut r = HelloReader::new();
    let mut last = Ok(Progress::NeedMore);
    for chunk in bytes.chunks(1000) {
        last = r.push(chunk);
        if last != Ok(Progress::NeedMore) {
            break;
        }
    }
    assert!(matches!(last, Err(HelloError::TooLarge(_))));
    assert!(r.received().len() <= 2 * MAX_HELLO + 1000);
}

/// A truncated hello is never complete (the proxy's handshake timeout
/// ends it), however it is cut.
#[test]
fn a_truncated_hello_waits_for_more() {
    let bytes = Build::default().records(200);
    for cut in [1, 4, 5, 6, 9, bytes.len() / 2, bytes.len() - 1] {
        assert_eq!(
            read_all(&bytes[..cut]),
            Ok(Progress::NeedMore),
            "cut at {cut}"
        );
    }
}

/// The fuzz target's properties on mutated real layouts, in every test
/// run: any bytes, read in any cuts, give the answer they give read whole,
/// and the reader never holds more than its bound while waiting.
#[test]
fn mutated_hellos_read_in_any_cuts_answer_as_read_whole() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seeds = [
        Build::default().records(MAX_RECORD),
        Build {
            key_share: 1216,
            padding: 300,
            ..Build::default()
        }
        .records(500),
        Build {
            sni: None,
            tls13: false,
            ..Build::default()
        }
        .records(64),
    ];
    for round in 0..3000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        for _ in 0..(next() % 4) {
            let i = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[i] = next() as u8,
                1 => bytes.truncate(i.max(1)),
                _ => bytes.insert(i, next() as u8),
            }
        }
        let whole = read_all(&bytes);
        let step = 1 + (next() as usize) % 700;
        let mut r = HelloReader::new();
        let mut last = Ok(Progress::NeedMore);
        for chunk in bytes.chunks(step) {
            last = r.push(chunk);
            if last != Ok(Progress::NeedMore) {
                break;
            }
            assert!(r.received().len() <= 3 * MAX_HELLO + 5);
        }
        assert_eq!(last, whole, "round {round}, reads of {step}");
    }
}
