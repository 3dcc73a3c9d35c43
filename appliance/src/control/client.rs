//! The CLI side of the control socket.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use super::protocol::{Request, Response};

/// Sends one request and waits (up to 10 s) for its reply. Errors are
/// sentences an operator can act on.
pub fn request(socket: &Path, req: &Request) -> Result<serde_json::Value, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach nodus at {}: {e} (is `nodus run` running? is --socket right?)",
            socket.display()
        )
    })?;
    let timeout = Some(Duration::from_secs(10));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| format!("{}: {e}", socket.display()))?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .map_err(|e| format!("no reply from nodus at {}: {e}", socket.display()))?;
    let resp: Response = serde_json::from_str(&reply)
        .map_err(|e| format!("unreadable reply from nodus at {}: {e}", socket.display()))?;
    match (resp.ok, resp.data, resp.error) {
        (true, Some(data), _) => Ok(data),
        (true, None, _) => Ok(serde_json::Value::Null),
        (false, _, e) => Err(e.unwrap_or_else(|| "request failed".into())),
    }
}
