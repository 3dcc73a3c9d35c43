//! The TLS SNI proxy: routes TLS connections by the server name and ALPN
//! of their ClientHello, without terminating TLS. `hello` reads a ClientHello without terminating TLS,
//! across any number of reads and records; `routes` picks a route from its
//! server name and ALPN; `splice` moves a routed connection's bytes both
//! ways through pipes in the kernel (the data path where a sockhash is
//! refused); `component` listens, applies the limits and ties them
//! together; `config` is its `[proxy]` section. The sockhash data path and
//! the XDP guard come next.

pub mod component;
pub mod config;
pub mod hello;
pub mod routes;
pub mod sockhash;
pub mod splice;

pub use component::{Proxy, ProxyStats};
pub use config::ProxyConfig;
