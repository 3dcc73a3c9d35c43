//! Deciding and writing a response head: conditional requests (304), single
//! byte ranges (206/416), and the head bytes themselves.
//!
//! Pure functions over the parsed request and the file's validators, so every
//! rule is unit-tested without a socket.

use std::{cell::RefCell, io::Write as _, time::SystemTime};

use crate::fileserver::{
    date,
    http::{Method, Request},
    resource::Variant,
    status::Status,
};

/// What to send for a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// 304: the client's copy is current.
    NotModified,
    /// 200 with the whole file.
    Full,
    /// 206 with bytes `start..start+len`.
    Partial {
        /// First byte.
        start: u64,
        /// Byte count.
        len: u64,
    },
    /// 416: no byte of the range exists.
    Unsatisfiable,
}

/// Weak comparison of `tag` against an If-None-Match list (RFC 9110 13.1.2).
fn none_match(list: &[u8], tag: &str) -> bool {
    let tag = tag.as_bytes();
    let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
    list.split(|&c| c == b',').any(|t| {
        let t = t.trim_ascii();
        let t = t.strip_prefix(b"W/").unwrap_or(t);
        t == b"*" || t == tag
    })
}

/// Parses a single `bytes=` range against `len`: `Some(Ok((start, len)))`,
/// `Some(Err(()))` when unsatisfiable, `None` when the header is to be
/// ignored (bad syntax, other units, several ranges).
pub fn parse_range(value: &[u8], len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim_ascii().strip_prefix(b"bytes=")?;
    if spec.contains(&b',') {
        return None;
    }
    let dash = spec.iter().position(|&c| c == b'-')?;
    let (a, b) = (spec[..dash].trim_ascii(), spec[dash + 1..].trim_ascii());
    let num = |s: &[u8]| -> Option<u64> {
        if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    if a.is_empty() {
        let suffix = num(b)?;
        if suffix == 0 || len == 0 {
            return Some(Err(()));
        }
        let n = suffix.min(len);
        return Some(Ok((len - n, n)));
    }
    let start = num(a)?;
    let end = if b.is_empty() { None } else { Some(num(b)?) };
    if end.is_some_and(|e| e < start) {
        return None;
    }
    if start >= len {
        return Some(Err(()));
    }
    let last = end.map_or(len - 1, |e| e.min(len - 1));
    Some(Ok((start, last - start + 1)))
}

/// Decides the response for `req` on `v`.
pub fn plan(req: &Request, v: &Variant) -> Plan {
    if let Some(list) = req.if_none_match {
        if none_match(list, &v.etag) {
            return Plan::NotModified;
        }
    } else if let Some(since) = req.if_modified_since.and_then(date::parse)
        && v.mtime <= since
    {
        return Plan::NotModified;
    }
    let Some(range) = req.range.filter(|_| req.method == Some(Method::Get)) else {
        return Plan::Full;
    };
    if let Some(cond) = req.if_range {
        // A strong ETag match or an exact Last-Modified match keeps the range.
        let same = cond == v.etag.as_bytes()
            || (!cond.starts_with(b"\"") && cond == v.last_modified.as_bytes());
        if !same {
            return Plan::Full;
        }
    }
    match parse_range(range, v.len) {
        None => Plan::Full,
        Some(Ok((start, len))) => Plan::Partial { start, len },
        Some(Err(())) => Plan::Unsatisfiable,
    }
}

thread_local! {
    /// The Date header value, reformatted at most once a second per worker.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

fn with_date(f: impl FnOnce(&str)) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != now {
            *d = (now, date::format(now as i64));
        }
        f(&d.1);
    });
}

/// How the response ends the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conn {
    /// The connection stays open.
    pub keep_alive: bool,
    /// The request was HTTP/1.0 (keep-alive must then be announced).
    pub http10: bool,
}

/// Writes a status line, the common headers, `extra` (CRLF-terminated lines)
/// and the blank line into `out`.
pub fn head(out: &mut Vec<u8>, status: Status, length: Option<u64>, extra: &str, conn: Conn) {
    out.extend_from_slice(status.line().as_bytes());
    out.extend_from_slice(b"\r\nServer: nodus\r\nDate: ");
    with_date(|d| out.extend_from_slice(d.as_bytes()));
    out.extend_from_slice(b"\r\n");
    if let Some(n) = length {
        let _ = write!(out, "Content-Length: {n}\r\n");
    }
    out.extend_from_slice(extra.as_bytes());
    match (conn.keep_alive, conn.http10) {
        (false, false) => out.extend_from_slice(b"Connection: close\r\n"),
        (true, true) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        _ => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// A complete error response with a short text body.
pub fn error(out: &mut Vec<u8>, status: Status, conn: Conn, head_only: bool) {
    let body = format!("{}\n", &status.line()["HTTP/1.1 ".len()..]);
    let mut extra = String::from("Content-Type: text/plain; charset=utf-8\r\n");
    if status == Status::MethodNotAllowed {
        extra.push_str("Allow: GET, HEAD\r\n");
    }
    head(out, status, Some(body.len() as u64), &extra, conn);
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
}

#[cfg(test)]
mod tests;
