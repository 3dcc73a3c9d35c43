use std::{fs::File, sync::Arc};

use super::*;

fn variant(len: u64, mtime: i64) -> Variant {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.txt");
    std::fs::write(&path, vec![b'x'; len as usize]).unwrap();
    let file = File::open(&path).unwrap();
    let meta = file.metadata().unwrap();
    let mut v = Variant::new(Arc::from(&b"f.txt"[..]), file, &meta, b"f.txt", None, false);
    v.mtime = mtime;
    v.last_modified = date::format(mtime);
    v
}

fn req<'a>() -> Request<'a> {
    Request {
        method: Some(Method::Get),
        target: b"/f.txt",
        minor: 1,
        keep_alive: true,
        ..Request::default()
    }
}

#[test]
fn if_none_match_wins_over_if_modified_since() {
    let v = variant(10, 1_000_000);
    let etag = v.etag.clone();
    let mut r = req();
    r.if_none_match = Some(etag.as_bytes());
    assert_eq!(plan(&r, &v), Plan::NotModified);
    let list = format!("\"other\", W/{etag}");
    r.if_none_match = Some(list.as_bytes());
    assert_eq!(plan(&r, &v), Plan::NotModified, "weak comparison");
    r.if_none_match = Some(b"\"other\"");
    let since = date::format(2_000_000);
    r.if_modified_since = Some(since.as_bytes());
    assert_eq!(plan(&r, &v), Plan::Full, "IMS ignored when INM present");
    r.if_none_match = Some(b"*");
    assert_eq!(plan(&r, &v), Plan::NotModified);
}

#[test]
fn if_modified_since() {
    let v = variant(10, 1_000_000);
    let mut r = req();
    let same = date::format(1_000_000);
    r.if_modified_since = Some(same.as_bytes());
    assert_eq!(plan(&r, &v), Plan::NotModified);
    let older = date::format(999_999);
    r.if_modified_since = Some(older.as_bytes());
    assert_eq!(plan(&r, &v), Plan::Full);
    r.if_modified_since = Some(b"yesterday");
    assert_eq!(plan(&r, &v), Plan::Full);
}

#[test]
fn ranges() {
    assert_eq!(parse_range(b"bytes=0-0", 10), Some(Ok((0, 1))));
    assert_eq!(parse_range(b"bytes=2-", 10), Some(Ok((2, 8))));
    assert_eq!(parse_range(b"bytes=-3", 10), Some(Ok((7, 3))));
    assert_eq!(parse_range(b"bytes=-30", 10), Some(Ok((0, 10))));
    assert_eq!(parse_range(b"bytes=5-100", 10), Some(Ok((5, 5))));
    assert_eq!(parse_range(b"bytes=10-", 10), Some(Err(())));
    assert_eq!(parse_range(b"bytes=-0", 10), Some(Err(())));
    assert_eq!(parse_range(b"bytes=0-", 0), Some(Err(())));
    assert_eq!(parse_range(b"bytes=5-2", 10), None);
    assert_eq!(parse_range(b"bytes=0-1,3-4", 10), None, "multiple: ignored");
    assert_eq!(parse_range(b"items=0-1", 10), None);
    assert_eq!(parse_range(b"bytes=x-1", 10), None);
}

#[test]
fn range_plans_and_if_range() {
    let v = variant(10, 1_000_000);
    let mut r = req();
    r.range = Some(b"bytes=2-3");
    assert_eq!(plan(&r, &v), Plan::Partial { start: 2, len: 2 });
    r.if_range = Some(b"\"stale\"");
    assert_eq!(plan(&r, &v), Plan::Full);
    let etag = v.etag.clone();
    r.if_range = Some(etag.as_bytes());
    assert_eq!(plan(&r, &v), Plan::Partial { start: 2, len: 2 });
    r.if_range = None;
    r.range = Some(b"bytes=20-");
    assert_eq!(plan(&r, &v), Plan::Unsatisfiable);
    r.method = Some(Method::Head);
    assert_eq!(plan(&r, &v), Plan::Full, "HEAD ignores Range");
}

#[test]
fn heads() {
    let mut out = Vec::new();
    let conn = Conn {
        keep_alive: false,
        http10: false,
    };
    error(&mut out, Status::MethodNotAllowed, conn, false);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nAllow: GET, HEAD\r\n"));
    assert!(text.contains("\r\nConnection: close\r\n"));
    assert!(text.ends_with("\r\n\r\n405 Method Not Allowed\n"));
    let mut out = Vec::new();
    let conn = Conn {
        keep_alive: true,
        http10: true,
    };
    head(&mut out, Status::Ok, Some(5), "", conn);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Content-Length: 5\r\nConnection: keep-alive\r\n\r\n"));
}
