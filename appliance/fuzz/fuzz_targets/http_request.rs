//! Fuzzes everything the file server derives from request bytes: the head
//! parser, path normalization, Range, HTTP dates and Accept-Encoding.
//! Run: `cd appliance/fuzz && cargo +nightly-2026-08-05 fuzz run http_request`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodus::fileserver::{date, http, path, resource, response};

const LIMITS: http::Limits = http::Limits {
    max_request_line: 256,
    max_header_bytes: 1024,
    max_headers: 16,
};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // Pipelined: parse heads one after another like a connection does.
    while let Ok(Some((req, n))) = http::parse(rest, &LIMITS) {
        assert!(n > 0 && n <= rest.len());
        if let Ok(p) = path::normalize(req.target) {
            // Never a way up, never NUL, never absolute.
            assert!(!p.rel.split(|&c| c == b'/').any(|s| s == b".."));
            assert!(!p.rel.contains(&0) && !p.rel.starts_with(b"/"));
        }
        if let Some(r) = req.range
            && let Some(Ok((start, len))) = response::parse_range(r, 1 << 20)
        {
            assert!(len > 0 && start + len <= 1 << 20);
        }
        for v in [req.if_modified_since, req.if_range].into_iter().flatten() {
            if let Some(t) = date::parse(v) {
                assert_eq!(date::parse(date::format(t).as_bytes()), Some(t));
            }
        }
        if let Some(a) = req.accept_encoding {
            let _ = resource::accepts(a, "gzip");
        }
        rest = &rest[n..];
    }
});
