//! What the proxy knows of a client connection, and of the host a request
//! names: both HTTP paths read it.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;

use crate::policy;

/// What the proxy knows of the client connection a request came on.
#[derive(Debug, Clone)]
pub struct Client {
    pub peer: SocketAddr,
    /// `http` or `https`, for X-Forwarded-Proto.
    pub proto: &'static str,
    /// The client's address as a header value, made once per connection
    /// for X-Forwarded-For; each request clones it (a reference count).
    pub peer_ip: HeaderValue,
    /// Peers whose X-Forwarded-For names the client.
    pub forwarders: Option<Arc<crate::forwarded::Trusted>>,
    /// The header they name the client in.
    pub client_header: http::HeaderName,
    /// How the client's address is written upstream.
    pub forwarding: policy::Forwarding,
}

impl Client {
    pub fn new(peer: SocketAddr, proto: &'static str) -> Self {
        let peer_ip = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Client {
            peer,
            proto,
            peer_ip,
            forwarders: None,
            client_header: super::headers::X_FORWARDED_FOR.clone(),
            forwarding: policy::Forwarding::default(),
        }
    }

    /// The real client's address: the peer's, or behind a trusted
    /// forwarder the one its X-Forwarded-For names.
    pub fn address(&self, headers: &http::HeaderMap) -> std::net::IpAddr {
        self.forwarders
            .as_deref()
            .and_then(|t| {
                crate::forwarded::client_from_forwarded(
                    self.peer.ip(),
                    headers
                        .get_all(&self.client_header)
                        .iter()
                        .map(HeaderValue::as_bytes),
                    t,
                )
            })
            .unwrap_or(self.peer.ip())
    }

    /// The real client's address as a header value, for X-Forwarded-For
    /// and X-Real-IP when [`policy::Forwarding`] writes it: the peer's,
    /// made once per connection, unless a forwarder named another.
    pub fn address_value(&self, real: std::net::IpAddr) -> HeaderValue {
        if !self.forwarding.needs_real() || real == self.peer.ip() {
            return self.peer_ip.clone();
        }
        HeaderValue::from_str(&real.to_string()).unwrap_or_else(|_| self.peer_ip.clone())
    }

    /// The scheme the client used: the connection's, or the one a trusted
    /// forwarder (a LoadBalancer that ended TLS) names in
    /// X-Forwarded-Proto.
    pub fn scheme(&self, headers: &http::HeaderMap) -> &'static str {
        let trusted = self
            .forwarders
            .as_deref()
            .is_some_and(|t| t.forwards(self.peer.ip()));
        if !trusted {
            // Not even a header lookup: most clients come straight.
            return self.proto;
        }
        policy::forwarded_proto(
            self.proto,
            trusted,
            headers
                .get_all(&super::headers::X_FORWARDED_PROTO)
                .iter()
                .map(HeaderValue::as_bytes),
        )
    }
}

/// The 308 that sends a plain HTTP request to HTTPS, same host and target.
/// `port` is where clients reach HTTPS: 443 (the LoadBalancer's) leaves it
/// out of the URL.
pub(crate) fn https_redirect(host: &str, port: u16, target: &str) -> Option<HeaderValue> {
    let host = crate::routing::strip_port(host);
    let location = if port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{port}{target}")
    };
    HeaderValue::try_from(location).ok()
}

/// A Host value: a name or IPv4 literal, or a bracketed IPv6 literal, then
/// an optional `:port` of digits. No userinfo (`user@`), nothing else: what
/// is routed on must be exactly what the backend is told.
pub fn valid_host(h: &[u8]) -> bool {
    if h.is_empty() || h.len() > 262 {
        return false;
    }
    let (host, port) = if h[0] == b'[' {
        let Some(end) = h.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &h[1..end];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.' || b == b'%')
        {
            return false;
        }
        (&h[..=end], &h[end + 1..])
    } else {
        match h.iter().position(|&b| b == b':') {
            Some(i) => (&h[..i], &h[i..]),
            None => (h, &h[h.len()..]),
        }
    };
    let port_ok = port.is_empty()
        || (port.len() >= 2
            && port.len() <= 6
            && port[0] == b':'
            && port[1..].iter().all(u8::is_ascii_digit));
    let host_ok = match host.first() {
        None => false,
        Some(b'[') => true,
        Some(_) => host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')),
    };
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::valid_host;

    #[test]
    fn hosts_are_checked_strictly() {
        for ok in [
            "a.example.com",
            "a.example.com:8080",
            "127.0.0.1:80",
            "[::1]:8080",
            "x_y",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a.example.com:1@evil.com",
            "a.example.com:evil.com",
            "user@a.com",
            "a.com:",
            "a.com:1234567",
            "[::1",
            "[]:80",
            "a.com/x",
            ":80",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }
}
