//! The TLS SNI proxy, in progress: the parts that decide where a
//! connection goes. `hello` reads a ClientHello without terminating TLS,
//! across any number of reads and records; `routes` picks a route from its
//! server name and ALPN. The listener, the kernel data path (sockhash with
//! an sk_skb verdict, splice where that is refused) and the component come
//! next; until then nothing in the daemon uses these.

pub mod hello;
pub mod routes;
