//! The TLS SNI proxy, in progress: the parts that decide where a
//! connection goes. `hello` reads a ClientHello without terminating TLS,
//! across any number of reads and records; `routes` picks a route from its
//! server name and ALPN; `splice` moves a routed connection's bytes both
//! ways through pipes in the kernel (the data path where a sockhash is
//! refused). The listener, the sockhash path and the component come next;
//! until then nothing in the daemon uses these.

pub mod hello;
pub mod routes;
pub mod splice;
