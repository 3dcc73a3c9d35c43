//! A servable file as the cache holds it: the open descriptor, its metadata
//! and the response headers that depend only on it, computed once, plus its
//! precompressed siblings (`.br`, `.gz`).

use std::{fs::File, os::unix::fs::MetadataExt, sync::Arc};

use crate::fileserver::{date, mime};

/// A content coding nodus serves precompressed siblings for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// `name.br`.
    Br,
    /// `name.gz`.
    Gzip,
}

impl Coding {
    /// Both, in order of preference.
    pub const ALL: [Coding; 2] = [Coding::Br, Coding::Gzip];

    /// The file-name suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Gzip => ".gz",
        }
    }

    /// The `Content-Encoding` / `Accept-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }
}

/// One file on disk, identity or precompressed.
#[derive(Debug)]
pub struct Variant {
    /// Path relative to the docroot: the hot-set key.
    pub key: Arc<[u8]>,
    /// The open file (sendfile reads from it).
    pub file: File,
    /// Size in bytes when opened.
    pub len: u64,
    /// Modification time, Unix seconds (for If-Modified-Since).
    pub mtime: i64,
    /// Strong validator: inode, mtime in ns and size.
    pub etag: String,
    /// `Last-Modified` value.
    pub last_modified: String,
    /// Header lines that depend only on this file, CRLF-terminated.
    pub head: String,
}

/// What a request path resolved to: a file and its precompressed siblings.
#[derive(Debug)]
pub struct Resource {
    /// The file itself.
    pub identity: Arc<Variant>,
    /// Precompressed siblings found next to it.
    pub encoded: Vec<(Coding, Arc<Variant>)>,
    /// Directory (relative) holding the files: what inotify watches.
    pub dir: Vec<u8>,
    /// inotify watches on the directories the files really live in, where
    /// those differ from `dir` (a file reached through a symlink): a change
    /// to the target drops the resource too.
    pub target_watches: Vec<nix::sys::inotify::WatchDescriptor>,
}

impl Variant {
    /// Builds a variant from an open regular file. `content_type_of` names
    /// the file whose extension decides the Content-Type (the identity's).
    pub fn new(
        key: Arc<[u8]>,
        file: File,
        meta: &std::fs::Metadata,
        content_type_of: &[u8],
        coding: Option<Coding>,
        vary: bool,
    ) -> Variant {
        let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
        let tag = coding.map_or("", |c| c.token());
        let etag = format!(
            "\"{:x}-{:x}-{:x}{}{tag}\"",
            meta.ino(),
            mtime_ns,
            meta.len(),
            if tag.is_empty() { "" } else { "-" }
        );
        let last_modified = date::format(meta.mtime());
        let mut head = format!(
            "Content-Type: {}\r\nLast-Modified: {last_modified}\r\nETag: {etag}\r\nAccept-Ranges: bytes\r\n",
            mime::content_type(content_type_of)
        );
        if let Some(c) = coding {
            head.push_str(&format!("Content-Encoding: {}\r\n", c.token()));
        }
        if vary {
            head.push_str("Vary: Accept-Encoding\r\n");
        }
        Variant {
            key,
            file,
            len: meta.len(),
            mtime: meta.mtime(),
            etag,
            last_modified,
            head,
        }
    }
}

/// Whether `accept` (an Accept-Encoding value) allows `token` (q > 0).
pub fn accepts(accept: &[u8], token: &str) -> bool {
    accept.split(|&c| c == b',').any(|item| {
        let mut parts = item.split(|&c| c == b';');
        let name = parts.next().map(trim).unwrap_or_default();
        if !name.eq_ignore_ascii_case(token.as_bytes()) {
            return false;
        }
        !parts.any(|p| {
            let p = trim(p);
            p.len() >= 2
                && p[..2].eq_ignore_ascii_case(b"q=")
                && p[2..].iter().all(|&c| c == b'0' || c == b'.')
        })
    })
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &b[s..e]
}

impl Resource {
    /// The variant to send: a precompressed sibling the client accepts, unless
    /// a Range asks for bytes of the identity.
    pub fn pick(&self, accept: Option<&[u8]>, ranged: bool) -> &Arc<Variant> {
        if let (Some(accept), false) = (accept, ranged) {
            for (coding, v) in &self.encoded {
                if accepts(accept, coding.token()) {
                    return v;
                }
            }
        }
        &self.identity
    }
}

#[cfg(test)]
mod tests {
    use super::accepts;

    #[test]
    fn accept_encoding_tokens_and_q_zero() {
        assert!(accepts(b"gzip, deflate, br", "br"));
        assert!(accepts(b"GZIP;q=0.5", "gzip"));
        assert!(!accepts(b"gzip;q=0, br", "gzip"));
        assert!(!accepts(b"gzip;q=0.000", "gzip"));
        assert!(!accepts(b"deflate", "gzip"));
        assert!(!accepts(b"xgzip", "gzip"));
    }
}
