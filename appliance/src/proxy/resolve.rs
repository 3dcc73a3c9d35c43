//! Backend host names: a route's backend may be `name:port`, resolved when
//! a connection (or a health check) needs it, through hickory-resolver.
//! Its cache keeps each answer for the answer's own TTL (capped at
//! `MAX_TTL`; a TTL of 1 s is honoured, so a DNS change is followed within a
//! second of the record's expiry) and holds at most `proxy.dns_cache_entries`
//! names, least recently used going first: bounded memory whatever names
//! the config lists. Name servers come from `proxy.nameservers`, or
//! `/etc/resolv.conf` (with `/etc/hosts`) when none are given.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use hickory_resolver::{
    TokioResolver,
    config::{NameServerConfig, ResolveHosts, ResolverConfig},
    name_server::TokioConnectionProvider,
    proto::xfer::Protocol,
};

/// The longest an answer is kept, whatever its TTL says.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// Where a backend is: an address, or a name to resolve, with its port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `192.0.2.1:443`, `[2001:db8::1]:443`.
    Addr(SocketAddr),
    /// `app.internal:443`.
    Name {
        /// The host name.
        host: String,
        /// The port.
        port: u16,
    },
}

impl Target {
    /// Parses `address:port` or `name:port`; None for anything else.
    pub fn parse(text: &str) -> Option<Target> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Some(Target::Addr(addr));
        }
        let (host, port) = text.rsplit_once(':')?;
        let port = port.parse().ok()?;
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        // A name's last label is never all digits (that is a bad address).
        let numeric_top = host
            .rsplit('.')
            .next()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
        let valid = host.len() <= 253
            && host.split('.').all(label_ok)
            && !numeric_top
            && host.parse::<IpAddr>().is_err();
        valid.then(|| Target::Name {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// The resolver backends' names go through.
#[derive(Debug)]
pub struct Resolver {
    inner: TokioResolver,
    /// `127.0.0.1:53` or `/etc/resolv.conf`, for status.
    source: String,
}

impl Resolver {
    /// A resolver asking `nameservers` (none: the system's), caching at
    /// most `cache_entries` names.
    pub fn new(nameservers: &[SocketAddr], cache_entries: usize) -> Result<Resolver, String> {
        let (mut builder, source) = if nameservers.is_empty() {
            let builder = TokioResolver::builder_tokio()
                .map_err(|e| format!("reading /etc/resolv.conf: {e}"))?;
            (builder, "/etc/resolv.conf".to_owned())
        } else {
            let mut config = ResolverConfig::new();
            for &ns in nameservers {
                config.add_name_server(NameServerConfig::new(ns, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(ns, Protocol::Tcp));
            }
            let builder =
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
            let listed: Vec<String> = nameservers.iter().map(ToString::to_string).collect();
            (builder, listed.join(", "))
        };
        let opts = builder.options_mut();
        opts.cache_size = cache_entries.max(1);
        opts.positive_min_ttl = None;
        opts.positive_max_ttl = Some(MAX_TTL);
        opts.negative_max_ttl = Some(Duration::from_secs(30));
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        if !nameservers.is_empty() {
            // Explicit servers: their answers only, not /etc/hosts.
            opts.use_hosts_file = ResolveHosts::Never;
        }
        Ok(Resolver {
            inner: builder.build(),
            source,
        })
    }

    /// Where it asks.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The addresses of `host`, each with `port`, from the cache while the
    /// answer's TTL lasts.
    pub async fn addrs(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let found = self
            .inner
            .lookup_ip(host)
            .await
            .map_err(|e| format!("resolving {host}: {e}"))?;
        let addrs: Vec<SocketAddr> = found.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        if addrs.is_empty() {
            return Err(format!("resolving {host}: no address"));
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_addresses_and_names_and_refuse_the_rest() {
        assert_eq!(
            Target::parse("127.0.0.1:8444"),
            Some(Target::Addr("127.0.0.1:8444".parse().unwrap()))
        );
        assert_eq!(
            Target::parse("[::1]:443"),
            Some(Target::Addr("[::1]:443".parse().unwrap()))
        );
        assert_eq!(
            Target::parse("App.Internal.:8443"),
            Some(Target::Name {
                host: "app.internal".into(),
                port: 8443
            })
        );
        assert_eq!(
            Target::parse("app.internal:8443").unwrap().to_string(),
            "app.internal:8443"
        );
        for bad in [
            "app.internal",
            "app.internal:",
            "app.internal:99999",
            "-app:1",
            "a..b:1",
            "a b:1",
            ":443",
            "1.2.3.4.5:1",
            "::1:443",
        ] {
            assert_eq!(Target::parse(bad), None, "{bad}");
        }
    }
}
