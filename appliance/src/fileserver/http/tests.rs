use super::*;

const LIMITS: Limits = Limits {
    max_request_line: 64,
    max_header_bytes: 256,
    max_headers: 4,
};

fn parse_all(b: &[u8]) -> Result<Parsed<'_>, RequestError> {
    parse(b, &LIMITS)
}

#[test]
fn simple_get() {
    let raw = b"GET /a.html?x=1 HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"x\"\r\n\r\nrest";
    let (req, n) = parse_all(raw).unwrap().unwrap();
    assert_eq!(n, raw.len() - 4);
    assert_eq!(req.method, Some(Method::Get));
    assert_eq!(req.target, b"/a.html?x=1");
    assert!(req.keep_alive);
    assert_eq!(req.if_none_match, Some(&b"\"x\""[..]));
}

#[test]
fn partial_heads_need_more() {
    let raw = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    for cut in 0..raw.len() {
        assert_eq!(parse_all(&raw[..cut]), Ok(None), "cut at {cut}");
    }
}

#[test]
fn pipelined_requests_parse_one_at_a_time() {
    let raw = b"HEAD /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.0\r\n\r\n";
    let (a, n) = parse_all(raw).unwrap().unwrap();
    assert_eq!(a.method, Some(Method::Head));
    let (b, m) = parse_all(&raw[n..]).unwrap().unwrap();
    assert_eq!((b.target, b.minor, b.keep_alive), (&b"/b"[..], 0, false));
    assert_eq!(n + m, raw.len());
}

#[test]
fn connection_tokens() {
    let (r, _) = parse_all(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!r.keep_alive);
    let (r, _) = parse_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(r.keep_alive);
}

#[test]
fn absolute_form_is_reduced_to_its_path() {
    let (r, _) = parse_all(b"GET http://h/x/y HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(r.target, b"/x/y");
}

fn err(raw: &[u8]) -> u16 {
    match parse_all(raw) {
        Err(e) => e.status().code(),
        Ok(x) => panic!("{:?} accepted: {x:?}", String::from_utf8_lossy(raw)),
    }
}

#[test]
fn each_refusal_has_its_status() {
    assert_eq!(err(b"POST / HTTP/1.1\r\nHost: h\r\n\r\n"), 405);
    assert_eq!(err(b"DELETE / HTTP/1.1\r\n"), 405);
    assert_eq!(err(b"G(T / HTTP/1.1\r\n"), 400);
    assert_eq!(err(b"GET  / HTTP/1.1\r\n"), 400);
    assert_eq!(err(b"GET / HTTP/1.1 extra\r\n"), 400);
    assert_eq!(err(b"GET foo HTTP/1.1\r\n"), 400);
    assert_eq!(err(b"GET / HTTX/1.1\r\n"), 400);
    assert_eq!(err(b"GET / HTTP/2.0\r\n"), 505);
    assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n"), 400, "no Host");
    assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"), 400);
    assert_eq!(err(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
    assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n"), 400);
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"),
        413
    );
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n"),
        400
    );
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
        413
    );
    let long = [b"GET /".as_slice(), &[b'a'; 100], b" HTTP/1.1\r\n"].concat();
    assert_eq!(err(&long), 414);
    assert_eq!(
        err(&[b"GET /".as_slice(), &[b'a'; 100]].concat()),
        414,
        "partial"
    );
    let many = b"GET / HTTP/1.1\r\nHost: h\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\n\r\n";
    assert_eq!(err(many), 431);
    let big = [b"GET / HTTP/1.1\r\nHost: h\r\nX: ".as_slice(), &[b'v'; 300]].concat();
    assert_eq!(err(&big), 431, "partial");
}

#[test]
fn content_length_zero_is_fine() {
    assert!(parse_all(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").is_ok());
}

#[test]
fn never_panics_on_arbitrary_bytes() {
    // A cheap, deterministic stand-in for the fuzz target: mutate valid heads.
    let seed = b"GET /a%20b.html HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\n\r\n";
    let mut x = 0x1234_5678_u64;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut b = seed.to_vec();
        let pos = (x % b.len() as u64) as usize;
        b[pos] = (x >> 32) as u8;
        let cut = ((x >> 16) % (b.len() as u64 + 1)) as usize;
        let _ = parse_all(&b[..cut]);
    }
}
