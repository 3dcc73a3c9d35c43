//! The control-socket protocol: one JSON object per line each way.
//!
//! Newline-delimited JSON so that `socat - UNIX:/run/nodus/control.sock` and a
//! shell script can talk to the daemon as easily as `nodus status` does.

use serde::{Deserialize, Serialize};

pub use crate::status::StatusReport;

/// Longest request line accepted; anything longer is refused, not buffered.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A request, `{"cmd":"status"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The daemon's and every component's state.
    Status {},
    /// The numa component's last look (`nodus top`): null before the
    /// first look or with the component off.
    Numa {},
    /// Processes from the process cache (`nodus ps`).
    Ps {
        /// Include exited processes still retained.
        #[serde(default)]
        exited: bool,
        /// Only this pid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// Only command names starting with this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comm: Option<String>,
    },
}

/// A reply: `{"ok":true,"data":...}` or `{"ok":false,"error":"..."}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The result, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// Why not, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A successful reply carrying `data`.
    pub fn data(data: impl Serialize) -> Response {
        match serde_json::to_value(data) {
            Ok(v) => Response {
                ok: true,
                data: Some(v),
                error: None,
            },
            Err(e) => Response::error(format!("cannot encode reply: {e}")),
        }
    }

    /// A failed reply.
    pub fn error(msg: impl Into<String>) -> Response {
        Response {
            ok: false,
            data: None,
            error: Some(msg.into()),
        }
    }
}
