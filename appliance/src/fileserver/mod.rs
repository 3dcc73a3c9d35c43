//! The static file server: HTTP/1.1 GET and HEAD from a document
//! root, faster than a tuned nginx on the same board.
//!
//! One job per module: [`http`] parses request heads, [`path`] turns targets
//! into files without leaving the root, [`cache`] keeps files open and
//! invalidates them on change, [`hotset`] decides which stay resident and
//! [`resident`] keeps them so, [`response`] decides and writes heads,
//! [`conn`] drives a connection, [`server`] runs the pinned workers, [`bpf`]
//! attaches the eBPF, and [`component`] is what the supervisor runs.
//! Design notes and the limits table: `docs/fileserver.md`.

pub mod bpf;
pub mod cache;
pub mod component;
pub mod config;
pub mod conn;
pub mod date;
pub mod hotset;
pub mod http;
pub mod mime;
pub mod path;
pub mod resident;
pub mod resource;
pub mod response;
pub mod server;
pub mod stats;
pub mod status;

pub use component::Fileserver;
pub use config::FileserverConfig;
