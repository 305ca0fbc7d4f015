//! Who may speak for the client: the networks trusted to send a PROXY
//! header or X-Forwarded-* headers ([`Trusted`]), and the client an
//! X-Forwarded-For names when a trusted forwarder sent it.
//!
//! A leaf: the PROXY protocol reader and both HTTP paths use it.

use std::net::IpAddr;

use ipnet::IpNet;

/// Networks trusted to speak for the client. For PROXY headers an empty
/// list trusts any peer (the listener is reached only through the
/// LoadBalancer); for X-Forwarded-* it trusts nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trusted(pub Vec<IpNet>);

impl Trusted {
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.is_empty() || self.0.iter().any(|n| n.contains(&ip))
    }

    /// Whether `peer` is a forwarder whose X-Forwarded-* headers are
    /// believed. Unlike PROXY headers, an empty list here trusts nobody.
    pub fn forwards(&self, peer: IpAddr) -> bool {
        !self.0.is_empty() && self.allows(peer)
    }
}

/// The client behind trusted proxies, from X-Forwarded-For (its fields
/// in order): read right to left, trusted hops skipped, the first address
/// that is not trusted is the client (nginx's `real_ip_recursive on`).
/// `None` when the peer itself is not trusted, or the header is missing or
/// not a list of addresses: then the peer is the client. An empty `trusted`
/// trusts nobody here: a forwarded address is taken only from networks
/// named.
pub fn client_from_forwarded<'a>(
    peer: IpAddr,
    fields: impl Iterator<Item = &'a [u8]>,
    trusted: &Trusted,
) -> Option<IpAddr> {
    if !trusted.forwards(peer) {
        return None;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for f in fields {
        for part in f.split(|&b| b == b',') {
            let text = std::str::from_utf8(part).ok()?.trim();
            hops.push(text.parse().ok()?);
        }
    }
    let first = *hops.first()?;
    Some(
        hops.iter()
            .rev()
            .copied()
            .find(|ip| !trusted.allows(*ip))
            .unwrap_or(first),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_from_trusted_peers_only() {
        let lb = Trusted(vec!["10.0.0.0/8".parse().unwrap()]);
        let from = |peer: &str, fields: &[&str]| {
            client_from_forwarded(
                peer.parse().unwrap(),
                fields.iter().map(|f| f.as_bytes()),
                &lb,
            )
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(from("10.0.0.2", &["203.0.113.5"]), ip("203.0.113.5"));
        // Trusted hops on the right are skipped; a spoofed left part is not
        // believed past the first untrusted hop.
        assert_eq!(
            from("10.0.0.2", &["1.1.1.1, 203.0.113.5, 10.0.0.9"]),
            ip("203.0.113.5")
        );
        assert_eq!(
            from("10.0.0.2", &["1.1.1.1", "203.0.113.5"]),
            ip("203.0.113.5")
        );
        assert_eq!(from("10.0.0.2", &["10.0.0.7, 10.0.0.8"]), ip("10.0.0.7"));
        // Untrusted peer, no header, garbage: the peer is the client.
        assert_eq!(from("192.0.2.1", &["203.0.113.5"]), None);
        assert_eq!(from("10.0.0.2", &[]), None);
        assert_eq!(from("10.0.0.2", &["unknown"]), None);
        assert_eq!(
            client_from_forwarded(
                "10.0.0.2".parse().unwrap(),
                [&b"203.0.113.5"[..]].into_iter(),
                &Trusted::default()
            ),
            None
        );
    }
}
