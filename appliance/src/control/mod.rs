//! The control socket: how `nodus status` (and later `nodus ps`) reach the
//! running daemon. A Unix socket, mode 0600, newline-delimited JSON.

mod client;
mod config;
pub mod protocol;
mod server;

pub use client::request;
pub use config::ControlConfig;
pub use server::{ControlServer, ControlStats, Query};
