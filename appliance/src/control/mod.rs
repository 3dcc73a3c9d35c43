//! The control socket: how `nodus status` (and later `nodus ps`) reach the
//! running daemon. A Unix socket, mode 0600, newline-delimited JSON.

mod client;
pub mod protocol;
mod server;

pub use client::request;
pub use server::{ControlServer, Query};
