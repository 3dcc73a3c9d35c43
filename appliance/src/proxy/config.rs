//! `[proxy]`: the TLS SNI proxy's configuration. Every key is documented,
//! with its default, in `config/defaults.toml`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use nodus_common::proxy::{GUARD_MAX_PREFIXES, MAX_ROUTES};

use crate::proxy::{
    guard::{GuardSettings, parse_prefix},
    resolve::Target,
    routes::NamePattern,
};

/// `[proxy]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Whether the proxy runs at all.
    pub enabled: bool,
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Time a new connection has to deliver its whole ClientHello.
    pub handshake_timeout_ms: u64,
    /// Time a routed connection may move no byte either way before it is
    /// closed.
    pub idle_timeout_ms: u64,
    /// Open connections beyond which new ones are closed at once.
    pub max_connections: usize,
    /// Open connections one source address may hold.
    pub max_per_source: usize,
    /// The route taking hellos no route matches (by name); empty: refuse
    /// them.
    pub default_route: String,
    /// How routed connections' bytes move, unless a route says otherwise.
    pub data_path: DataPath,
    /// Time between health checks (a TCP connect) of every backend; 0:
    /// none (connections alone mark a backend down).
    pub check_interval_ms: u64,
    /// Successful checks in a row that bring a down backend up.
    pub check_rise: u32,
    /// Failed checks or connects in a row that take a backend down.
    pub check_fall: u32,
    /// Name servers for backends given by name (`address:port`); none:
    /// `/etc/resolv.conf`.
    pub nameservers: Vec<SocketAddr>,
    /// Names the resolver's cache holds at most (each for its TTL).
    pub dns_cache_entries: usize,
    /// The XDP guard, `[proxy.guard]`.
    pub guard: GuardSettings,
    /// The routes, `[[proxy.route]]`.
    #[serde(rename = "route")]
    pub routes: Vec<RouteConfig>,
}

/// `[[proxy.route]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// Its name in status and in `default_route`.
    pub name: String,
    /// Server names it takes: exact, or `*.suffix` for any name below.
    pub server_names: Vec<String>,
    /// ALPN protocols it takes; empty: any.
    pub alpn: Vec<String>,
    /// Backends, tried in order: the next when one refuses or times out.
    /// `address:port` or `name:port` (resolved through the resolver).
    pub backends: Vec<String>,
    /// Time to connect to one backend.
    pub connect_timeout_ms: u64,
    /// This route's data path; unset: `proxy.data_path`.
    pub data_path: Option<DataPath>,
    /// Whether each connection to a backend starts with a PROXY protocol
    /// v2 header carrying the client's address.
    pub proxy_protocol: bool,
}

/// How a routed connection's bytes move, both in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataPath {
    /// Both sockets in a sockhash whose sk_skb verdict program redirects
    /// each one's bytes to the other: no wakeup, no syscall per chunk.
    /// Where the kernel refuses it, splice.
    Sockhash,
    /// `splice(2)` through a pipe each way, driven by the proxy's task.
    Splice,
}

impl DataPath {
    /// Its name in the config and in status.
    pub fn name(self) -> &'static str {
        match self {
            DataPath::Sockhash => "sockhash",
            DataPath::Splice => "splice",
        }
    }
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig {
            name: String::new(),
            server_names: Vec::new(),
            alpn: Vec::new(),
            backends: Vec::new(),
            connect_timeout_ms: 2000,
            data_path: None,
            proxy_protocol: false,
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            handshake_timeout_ms: 5000,
            idle_timeout_ms: 600_000,
            max_connections: 10_000,
            max_per_source: 256,
            default_route: String::new(),
            data_path: DataPath::Splice,
            check_interval_ms: 2000,
            check_rise: 2,
            check_fall: 3,
            nameservers: Vec::new(),
            dns_cache_entries: 256,
            guard: GuardSettings::default(),
            routes: vec![RouteConfig {
                name: "demo".into(),
                server_names: vec!["localhost".into(), "*.localhost".into()],
                backends: vec!["127.0.0.1:8444".into()],
                ..RouteConfig::default()
            }],
        }
    }
}

impl ProxyConfig {
    /// Range checks serde cannot express: `(key, reason)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let key = |k: &str| format!("proxy.{k}");
        let ranges: [(&str, u64, u64, u64); 7] = [
            ("idle_timeout_ms", self.idle_timeout_ms, 100, 86_400_000),
            (
                "handshake_timeout_ms",
                self.handshake_timeout_ms,
                100,
                600_000,
            ),
            ("max_connections", self.max_connections as u64, 1, 1_000_000),
            ("max_per_source", self.max_per_source as u64, 1, 1_000_000),
            ("check_rise", self.check_rise.into(), 1, 100),
            ("check_fall", self.check_fall.into(), 1, 100),
            (
                "dns_cache_entries",
                self.dns_cache_entries as u64,
                1,
                100_000,
            ),
        ];
        for (name, v, lo, hi) in ranges {
            if v < lo || v > hi {
                return Err((key(name), format!("must be between {lo} and {hi}")));
            }
        }
        if self.check_interval_ms != 0 && !(100..=3_600_000).contains(&self.check_interval_ms) {
            return Err((
                key("check_interval_ms"),
                "must be 0 (no checks) or between 100 and 3600000".into(),
            ));
        }
        if let Some(e) = self
            .guard
            .blocklist
            .iter()
            .find_map(|p| parse_prefix(p).err())
        {
            return Err((key("guard.blocklist"), e));
        }
        if self.guard.blocklist.len() > GUARD_MAX_PREFIXES as usize {
            return Err((
                key("guard.blocklist"),
                format!("at most {GUARD_MAX_PREFIXES} prefixes"),
            ));
        }
        if let Some(bad) = self
            .guard
            .interfaces
            .iter()
            .find(|i| i.is_empty() || i.len() > 15 || i.contains('/'))
        {
            return Err((
                key("guard.interfaces"),
                format!("'{bad}' is not an interface name"),
            ));
        }
        if self.routes.len() > MAX_ROUTES as usize {
            return Err((key("route"), format!("at most {MAX_ROUTES} routes")));
        }
        for (i, r) in self.routes.iter().enumerate() {
            let at = |k: &str| key(&format!("route[{i}].{k}"));
            if r.name.is_empty() || self.routes[..i].iter().any(|o| o.name == r.name) {
                return Err((at("name"), "must be set and unique".into()));
            }
            if r.server_names.is_empty() {
                return Err((at("server_names"), "needs at least one name".into()));
            }
            if let Some(bad) = r
                .server_names
                .iter()
                .find(|n| NamePattern::parse(n).is_none())
            {
                return Err((
                    at("server_names"),
                    format!("'{bad}' is neither a name nor *.suffix"),
                ));
            }
            if r.backends.is_empty() {
                return Err((at("backends"), "needs at least one backend".into()));
            }
            if let Some(bad) = r.backends.iter().find(|b| Target::parse(b).is_none()) {
                return Err((
                    at("backends"),
                    format!("'{bad}' is neither address:port nor name:port"),
                ));
            }
            if !(10..=60_000).contains(&r.connect_timeout_ms) {
                return Err((
                    at("connect_timeout_ms"),
                    "must be between 10 and 60000".into(),
                ));
            }
        }
        if !self.default_route.is_empty()
            && !self.routes.iter().any(|r| r.name == self.default_route)
        {
            return Err((key("default_route"), "names no route".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_routes_are_named() {
        assert_eq!(ProxyConfig::default().validate(), Ok(()));
        let mut c = ProxyConfig::default();
        c.routes[0].server_names = vec!["a.*.b".into()];
        assert_eq!(c.validate().unwrap_err().0, "proxy.route[0].server_names");
        let mut c = ProxyConfig::default();
        c.routes.push(c.routes[0].clone());
        assert_eq!(c.validate().unwrap_err().0, "proxy.route[1].name");
        let c = ProxyConfig {
            default_route: "nope".into(),
            ..ProxyConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "proxy.default_route");
        let mut c = ProxyConfig::default();
        c.routes[0].backends.clear();
        assert_eq!(c.validate().unwrap_err().0, "proxy.route[0].backends");
        c.routes[0].backends = vec!["app.internal:8443".into(), "app.internal".into()];
        assert_eq!(c.validate().unwrap_err().0, "proxy.route[0].backends");
        c.routes[0].backends.pop();
        assert_eq!(c.validate(), Ok(()));
        for (interval, fall, bad) in [
            (50, 3, true),
            (0, 3, false),
            (100, 0, true),
            (100, 1, false),
        ] {
            let c = ProxyConfig {
                check_interval_ms: interval,
                check_fall: fall,
                ..ProxyConfig::default()
            };
            assert_eq!(c.validate().is_err(), bad, "{interval} {fall}");
        }
        let mut c = ProxyConfig::default();
        c.guard.blocklist = vec!["10.0.0.0/8".into(), "10.0.0.0/40".into()];
        assert_eq!(c.validate().unwrap_err().0, "proxy.guard.blocklist");
        let mut c = ProxyConfig::default();
        c.guard.interfaces = vec!["a-name-much-too-long".into()];
        assert_eq!(c.validate().unwrap_err().0, "proxy.guard.interfaces");
    }
}
