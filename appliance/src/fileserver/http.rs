//! The HTTP/1.1 request-head parser: bytes from the network in, a borrowed
//! [`Request`] or the status code that refuses it out.
//!
//! It never allocates and never trusts a length: every limit (request line,
//! header bytes, header count) is checked on partial input too, so a client
//! cannot make nodus buffer more than the limits allow before it answers.

use crate::fileserver::status::Status;

/// Size limits on a request head, from the config.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest request line (414 beyond).
    pub max_request_line: usize,
    /// Largest header section (431 beyond).
    pub max_header_bytes: usize,
    /// Most header fields (431 beyond).
    pub max_headers: usize,
}

impl Limits {
    /// The most bytes a whole head may take: what a connection must buffer.
    pub fn max_head(&self) -> usize {
        self.max_request_line + self.max_header_bytes + 4
    }
}

/// The methods nodus serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD: the GET headers without the body.
    Head,
}

/// A parsed request head, borrowing the connection's buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request<'a> {
    /// `None` only in `Default`; a parsed request always has one.
    pub method: Option<Method>,
    /// The request target as sent (origin form; absolute form reduced to it).
    pub target: &'a [u8],
    /// HTTP/1.x minor version (0 or 1).
    pub minor: u8,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a [u8]>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a [u8]>,
    /// `Range`.
    pub range: Option<&'a [u8]>,
    /// `If-Range`.
    pub if_range: Option<&'a [u8]>,
    /// `Accept-Encoding`.
    pub accept_encoding: Option<&'a [u8]>,
}

/// Why a head was refused; each maps to one status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Syntax the parser does not accept (400).
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// A well-formed method other than GET and HEAD (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request line exceeds the limit (414).
    #[error("request line too long")]
    UriTooLong,
    /// Header section too large or too many fields (431).
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// The request announces a body (413): a static server takes none.
    #[error("request bodies are not accepted")]
    BodyNotAllowed,
    /// HTTP/2+ or another major version on this port (505).
    #[error("HTTP version not supported")]
    Version,
}

impl RequestError {
    /// The status code that answers it.
    pub fn status(self) -> Status {
        match self {
            RequestError::Malformed(_) => Status::BadRequest,
            RequestError::MethodNotAllowed => Status::MethodNotAllowed,
            RequestError::UriTooLong => Status::UriTooLong,
            RequestError::HeadersTooLarge => Status::HeaderFieldsTooLarge,
            RequestError::BodyNotAllowed => Status::PayloadTooLarge,
            RequestError::Version => Status::VersionNotSupported,
        }
    }
}

/// A complete head and how many bytes it took, or `None` when more input is needed.
pub type Parsed<'a> = Option<(Request<'a>, usize)>;

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn find_lf(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// A line without its `\n` and an optional `\r` before it.
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses one request head from the start of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, RequestError> {
    // RFC 9112 2.2: ignore empty lines before the request line.
    let mut start = 0;
    while start < buf.len() && (buf[start] == b'\r' || buf[start] == b'\n') {
        start += 1;
        if start > 8 {
            return Err(RequestError::Malformed("empty lines before the request"));
        }
    }
    let rest = &buf[start..];
    let window = &rest[..rest.len().min(limits.max_request_line + 2)];
    let Some(lf) = find_lf(window) else {
        if rest.len() > limits.max_request_line + 1 {
            return Err(RequestError::UriTooLong);
        }
        return Ok(None);
    };
    let line = strip_cr(&rest[..lf]);
    if line.len() > limits.max_request_line {
        return Err(RequestError::UriTooLong);
    }
    let mut req = request_line(line)?;
    let head_start = start + lf + 1;
    let Some(consumed) = headers(&buf[head_start..], limits, &mut req)? else {
        return Ok(None);
    };
    Ok(Some((req, head_start + consumed)))
}

fn request_line(line: &[u8]) -> Result<Request<'_>, RequestError> {
    let mut parts = line.split(|&c| c == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed(
            "request line is not METHOD SP TARGET SP VERSION",
        ));
    };
    let minor = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(RequestError::Version);
        }
        _ => return Err(RequestError::Malformed("bad HTTP version")),
    };
    if method.is_empty() || !method.iter().all(|&c| is_tchar(c)) {
        return Err(RequestError::Malformed("bad method"));
    }
    if target.is_empty() || target.iter().any(|&c| c <= b' ' || c == 0x7f) {
        return Err(RequestError::Malformed("bad request target"));
    }
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => return Err(RequestError::MethodNotAllowed),
    };
    Ok(Request {
        method: Some(method),
        target: origin_form(target)?,
        minor,
        keep_alive: minor == 1,
        ..Request::default()
    })
}

/// Reduces an absolute-form target (`http://host/path`) to its path.
fn origin_form(target: &[u8]) -> Result<&[u8], RequestError> {
    if target.starts_with(b"/") {
        return Ok(target);
    }
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &target[scheme.len()..];
            return Ok(rest
                .iter()
                .position(|&c| c == b'/')
                .map_or(&b"/"[..], |i| &rest[i..]));
        }
    }
    Err(RequestError::Malformed("request target is not a path"))
}

/// Parses header fields up to the blank line; returns the bytes taken.
fn headers<'a>(
    buf: &'a [u8],
    limits: &Limits,
    req: &mut Request<'a>,
) -> Result<Option<usize>, RequestError> {
    let mut at = 0;
    let mut count = 0;
    let mut host = false;
    let mut connection: Option<&[u8]> = None;
    loop {
        let window = &buf[at..buf.len().min(limits.max_header_bytes + 2)];
        let Some(lf) = find_lf(window) else {
            if buf.len() > limits.max_header_bytes + 1 {
                return Err(RequestError::HeadersTooLarge);
            }
            return Ok(None);
        };
        let line = strip_cr(&window[..lf]);
        at += lf + 1;
        if line.is_empty() {
            break;
        }
        count += 1;
        if count > limits.max_headers {
            return Err(RequestError::HeadersTooLarge);
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(RequestError::Malformed("obsolete line folding"));
        }
        let colon = line
            .iter()
            .position(|&c| c == b':')
            .ok_or(RequestError::Malformed("header without ':'"))?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
            return Err(RequestError::Malformed("bad header name"));
        }
        if value.iter().any(|&c| (c < b' ' && c != b'\t') || c == 0x7f) {
            return Err(RequestError::Malformed(
                "control character in a header value",
            ));
        }
        field(name, value, req, &mut host, &mut connection)?;
    }
    if req.minor == 1 && !host {
        return Err(RequestError::Malformed("HTTP/1.1 request without Host"));
    }
    if let Some(c) = connection {
        for token in c.split(|&b| b == b',').map(trim_ows) {
            if token.eq_ignore_ascii_case(b"close") {
                req.keep_alive = false;
            } else if token.eq_ignore_ascii_case(b"keep-alive") && req.minor == 0 {
                req.keep_alive = true;
            }
        }
    }
    Ok(Some(at))
}

fn field<'a>(
    name: &[u8],
    value: &'a [u8],
    req: &mut Request<'a>,
    host: &mut bool,
    connection: &mut Option<&'a [u8]>,
) -> Result<(), RequestError> {
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    if is("host") {
        if *host {
            return Err(RequestError::Malformed("more than one Host"));
        }
        *host = true;
    } else if is("connection") {
        *connection = Some(value);
    } else if is("content-length") {
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(RequestError::Malformed("bad Content-Length"));
        }
        if value.iter().any(|&c| c != b'0') {
            return Err(RequestError::BodyNotAllowed);
        }
    } else if is("transfer-encoding") {
        return Err(RequestError::BodyNotAllowed);
    } else if is("if-none-match") {
        req.if_none_match = Some(value);
    } else if is("if-modified-since") {
        req.if_modified_since = Some(value);
    } else if is("range") {
        req.range = Some(value);
    } else if is("if-range") {
        req.if_range = Some(value);
    } else if is("accept-encoding") {
        req.accept_encoding = Some(value);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
