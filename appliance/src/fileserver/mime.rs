//! Content-Type by file extension: the types a static site on an appliance
//! actually ships. Unknown extensions are `application/octet-stream`, so a
//! browser downloads rather than guesses.

/// The Content-Type for a file name.
pub fn content_type(name: &[u8]) -> &'static str {
    let ext = match name.iter().rposition(|&c| c == b'.') {
        Some(i) if i + 1 < name.len() => &name[i + 1..],
        _ => return "application/octet-stream",
    };
    let mut lower = [0u8; 8];
    if ext.len() > lower.len() {
        return "application/octet-stream";
    }
    for (d, s) in lower.iter_mut().zip(ext) {
        *d = s.to_ascii_lowercase();
    }
    match &lower[..ext.len()] {
        b"html" | b"htm" => "text/html; charset=utf-8",
        b"css" => "text/css; charset=utf-8",
        b"js" | b"mjs" => "text/javascript; charset=utf-8",
        b"json" | b"map" => "application/json",
        b"txt" | b"md" => "text/plain; charset=utf-8",
        b"csv" => "text/csv; charset=utf-8",
        b"xml" => "application/xml",
        b"svg" => "image/svg+xml",
        b"png" => "image/png",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"gif" => "image/gif",
        b"webp" => "image/webp",
        b"avif" => "image/avif",
        b"ico" => "image/x-icon",
        b"woff" => "font/woff",
        b"woff2" => "font/woff2",
        b"ttf" => "font/ttf",
        b"wasm" => "application/wasm",
        b"pdf" => "application/pdf",
        b"zip" => "application/zip",
        b"gz" => "application/gzip",
        b"tar" => "application/x-tar",
        b"mp4" => "video/mp4",
        b"webm" => "video/webm",
        b"mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn by_extension_case_insensitive() {
        assert_eq!(content_type(b"index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type(b"A.CSS"), "text/css; charset=utf-8");
        assert_eq!(
            content_type(b"app.min.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(b"logo.png"), "image/png");
        assert_eq!(content_type(b"firmware.bin"), "application/octet-stream");
        assert_eq!(content_type(b"README"), "application/octet-stream");
        assert_eq!(content_type(b"trailingdot."), "application/octet-stream");
    }
}
