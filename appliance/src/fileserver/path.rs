//! From a request target to a file under the document root, without ever
//! leaving it.
//!
//! Two independent walls: [`normalize`] decodes and normalizes the path
//! lexically (percent-decoding once, refusing NUL, bad escapes, `..` that
//! would climb above the root and hidden names), and [`open_beneath`] opens
//! it with `openat2(RESOLVE_BENEATH)`, so the kernel itself refuses any
//! symlink or race that would resolve outside the root.

use std::{
    ffi::OsStr,
    fs::File,
    io,
    os::{fd::OwnedFd, unix::ffi::OsStrExt},
};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};

/// Why a target cannot name a file.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Malformed: bad percent-escape, NUL, or a `..` escaping the root (400).
    #[error("bad path: {0}")]
    Bad(&'static str),
    /// A name nodus never serves (dot files) (404).
    #[error("hidden path")]
    Hidden,
}

/// A normalized path relative to the document root.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RelPath {
    /// Segments joined by `/`, no leading or trailing slash; empty for the root.
    pub rel: Vec<u8>,
    /// The target ended in `/` (or was the root): it names a directory.
    pub dir: bool,
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes the path part of `target` (query and fragment dropped).
fn decode(target: &[u8]) -> Result<Vec<u8>, PathError> {
    let end = target
        .iter()
        .position(|&c| c == b'?' || c == b'#')
        .unwrap_or(target.len());
    let path = &target[..end];
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let c = path[i];
        if c == b'%' {
            let (Some(h), Some(l)) = (
                path.get(i + 1).copied().and_then(hex),
                path.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(PathError::Bad("bad percent-escape"));
            };
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    if out.contains(&0) {
        return Err(PathError::Bad("NUL in path"));
    }
    Ok(out)
}

/// Decodes and normalizes a request target (which starts with `/`).
pub fn normalize(target: &[u8]) -> Result<RelPath, PathError> {
    let decoded = decode(target)?;
    if decoded.first() != Some(&b'/') {
        return Err(PathError::Bad("path does not start with /"));
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    for seg in decoded.split(|&c| c == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                if segments.pop().is_none() {
                    return Err(PathError::Bad("path climbs above the root"));
                }
            }
            s if s[0] == b'.' && s != b".well-known" => return Err(PathError::Hidden),
            s => segments.push(s),
        }
    }
    let last = decoded.rsplit(|&c| c == b'/').next().unwrap_or_default();
    let dir = segments.is_empty() || decoded.ends_with(b"/") || last == b"." || last == b"..";
    Ok(RelPath {
        rel: segments.join(&b'/'),
        dir,
    })
}

/// How [`open_beneath`] may resolve symlinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symlinks {
    /// Only symlinks that stay inside the root (RESOLVE_BENEATH).
    Inside,
    /// Any symlink, also ones leaving the root (never /proc magic links).
    Anywhere,
}

/// Opens `rel` (relative, may be empty for the root itself) under the
/// directory `root`, read-only and non-blocking (a FIFO must not hang a
/// worker), refusing any resolution outside `root` unless allowed.
pub fn open_beneath(root: &OwnedFd, rel: &[u8], symlinks: Symlinks) -> io::Result<File> {
    let name = if rel.is_empty() { &b"."[..] } else { rel };
    let resolve = match symlinks {
        Symlinks::Inside => ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        Symlinks::Anywhere => ResolveFlag::RESOLVE_NO_MAGICLINKS,
    };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)
        .resolve(resolve);
    // A NUL inside the name is refused by nix as EINVAL, like any bad name.
    Ok(File::from(openat2(root, OsStr::from_bytes(name), how)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(t: &str) -> (String, bool) {
        let p = normalize(t.as_bytes()).unwrap_or_else(|e| panic!("{t}: {e}"));
        (String::from_utf8(p.rel).unwrap(), p.dir)
    }

    #[test]
    fn normalizes() {
        assert_eq!(ok("/"), (String::new(), true));
        assert_eq!(ok("/a/b.html"), ("a/b.html".into(), false));
        assert_eq!(ok("/a//./b/"), ("a/b".into(), true));
        assert_eq!(ok("/a/../b?x=/../../etc"), ("b".into(), false));
        assert_eq!(ok("/a/%62.txt"), ("a/b.txt".into(), false));
        assert_eq!(ok("/sp%20ace"), ("sp ace".into(), false));
        assert_eq!(ok("/a/.."), (String::new(), true));
        assert_eq!(ok("/.well-known/x"), (".well-known/x".into(), false));
    }

    #[test]
    fn traversal_corpus_never_escapes() {
        for t in [
            "/..",
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/a/%2e%2e/%2e%2e/etc",
            "/..%2f..%2fetc",
            "/./../",
        ] {
            assert!(
                matches!(normalize(t.as_bytes()), Err(PathError::Bad(_))),
                "{t} was accepted"
            );
        }
        for t in ["/%00", "/a%00.html", "/%zz", "/%4", "/%"] {
            assert!(normalize(t.as_bytes()).is_err(), "{t} was accepted");
        }
        assert_eq!(normalize(b"/.git/config"), Err(PathError::Hidden));
        assert_eq!(normalize(b"/a/%2ehtpasswd"), Err(PathError::Hidden));
    }

    #[test]
    fn double_encoding_is_decoded_once() {
        // %252e%252e is the literal file name "%2e%2e", harmless under the root.
        assert_eq!(ok("/%252e%252e/x"), ("%2e%2e/x".into(), false));
    }
}
