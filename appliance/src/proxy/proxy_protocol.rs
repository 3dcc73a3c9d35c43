//! The PROXY protocol v2 header a route with `proxy_protocol = true` sends
//! each backend before the client's bytes, so the backend sees the
//! client's address, not the proxy's (HAProxy's `send-proxy-v2`). Built
//! with the `ppp` crate.

use std::{io, net::SocketAddr};

use ppp::v2::{Addresses, Builder, Command, Protocol, Version};

/// The header for a TCP connection from `client` to `local` (the address
/// the client connected to).
pub fn header(client: SocketAddr, local: SocketAddr) -> io::Result<Vec<u8>> {
    // Both addresses in one family: a v4 client of a dual-stack listener
    // arrives as a v4-mapped v6 address.
    let (client, local) = match (client, local) {
        (SocketAddr::V6(c), SocketAddr::V4(l)) => (
            SocketAddr::V6(c),
            SocketAddr::from((l.ip().to_ipv6_mapped(), l.port())),
        ),
        (SocketAddr::V4(c), SocketAddr::V6(l)) => (
            SocketAddr::from((c.ip().to_ipv6_mapped(), c.port())),
            SocketAddr::V6(l),
        ),
        same => same,
    };
    Builder::with_addresses(
        Version::Two | Command::Proxy,
        Protocol::Stream,
        (client, local),
    )
    .build()
}

/// The header a health check sends: the LOCAL command, no addresses (the
/// protocol's way of saying "the proxy itself, checking"), so a backend
/// that expects the protocol does not log each check as a broken header.
pub fn check_header() -> io::Result<Vec<u8>> {
    Builder::with_addresses(
        Version::Two | Command::Local,
        Protocol::Unspecified,
        Addresses::Unspecified,
    )
    .build()
}

#[cfg(test)]
mod tests {
    use ppp::v2::Header;

    use super::*;

    #[test]
    fn the_header_carries_both_addresses() {
        let client: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let local: SocketAddr = "198.51.100.1:443".parse().unwrap();
        let bytes = header(client, local).unwrap();
        assert_eq!(&bytes[..12], b"\r\n\r\n\0\r\nQUIT\n");
        let parsed = Header::try_from(bytes.as_slice()).unwrap();
        assert_eq!(parsed.len(), bytes.len());
        let Addresses::IPv4(a) = parsed.addresses else {
            panic!("{:?}", parsed.addresses)
        };
        assert_eq!(
            (a.source_address, a.source_port, a.destination_port),
            ([192, 0, 2, 7].into(), 40000, 443)
        );
        let v6 = header("[2001:db8::1]:5".parse().unwrap(), local).unwrap();
        assert!(matches!(
            Header::try_from(v6.as_slice()).unwrap().addresses,
            Addresses::IPv6(_)
        ));
        let local = check_header().unwrap();
        let parsed = Header::try_from(local.as_slice()).unwrap();
        assert_eq!(parsed.command, Command::Local);
        assert_eq!(parsed.len(), 16);
    }
}
