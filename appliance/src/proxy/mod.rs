//! The TLS SNI proxy: routes TLS connections by the server name and ALPN
//! of their ClientHello, without terminating TLS. `hello` reads a
//! ClientHello across any number of reads and records; `routes` picks a
//! route from its server name and ALPN; `backends` keeps each route's
//! backends and their health; `proxy_protocol` tells a backend the
//! client's address; `guard` is the XDP program that drops SYN floods and
//! blocklisted sources on the listening interface; `splice` and `sockhash` are the two
//! data paths, both in the kernel (pipes and `splice(2)`; a sockhash whose
//! sk_skb verdict program redirects each socket's bytes to its peer);
//! `component` listens, applies the limits and ties them together;
//! `relay` is what both share (bytes moved, the idle timeout of
//! `proxy.idle_timeout_ms`); `tcp` reads the socket facts the sockhash
//! path needs from the kernel;
//! `config` is its `[proxy]` section.

pub mod backends;
pub mod component;
pub mod config;
pub mod guard;
pub mod hello;
pub mod proxy_protocol;
pub mod relay;
pub mod resolve;
pub mod routes;
pub mod sockhash;
pub mod splice;
pub mod tcp;

pub use component::{Proxy, ProxyStats};
pub use config::ProxyConfig;
