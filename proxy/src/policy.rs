//! The proxying rules both HTTP paths follow, written once: which methods
//! may be sent twice, which headers belong to one connection, when the
//! client's X-Forwarded-Proto is believed, how request ids look, and what
//! happens when an upstream closes without answering.
//!
//! The hyper path applies them to header maps, the fast path to bytes, the
//! upstream pool and the core ([`crate::forward`]) decide with them; the
//! rules live here, below all of them, so that no two copies can drift
//! apart.

/// Methods whose request may be sent twice (RFC 9110 9.2.2): after a
/// connection failed under them, they go to another endpoint.
#[inline]
pub fn idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
    )
}

/// Fields that describe one connection and are never forwarded (RFC 9110
/// 7.6.1), lowercase. `Trailer` is not one: it declares the trailer fields.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// True for a [`HOP_BY_HOP`] field name, in any case.
#[inline]
pub fn hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| h.as_bytes().eq_ignore_ascii_case(name))
}

/// Fields a `Connection` token may never remove: routing, framing and the
/// forwarding headers depend on them (removing Host would leave the backend
/// trusting a forged X-Forwarded-Host), lowercase.
pub const PROTECTED: [&str; 9] = [
    "host",
    "date",
    "content-length",
    "content-type",
    "transfer-encoding",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// True for a [`PROTECTED`] field name, in any case.
#[inline]
pub fn protected(name: &[u8]) -> bool {
    PROTECTED
        .iter()
        .any(|h| h.as_bytes().eq_ignore_ascii_case(name))
}

/// The forwarding headers the proxy sets itself; what the client sent in
/// them is replaced (X-Forwarded-For is appended to, never trusted for
/// routing).
pub const FORWARDING: [&str; 3] = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];

/// How the client's address is told upstream. Sluice's default is the
/// chain (nginx's `$proxy_add_x_forwarded_for`, HAProxy's `option
/// forwardfor`, Envoy); ingress-nginx's is the client alone, with
/// X-Real-IP, which `--adopt-ingress-nginx` takes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Forwarding {
    pub forwarded_for: ForwardedFor,
    /// Set X-Real-IP to the real client (what the client sent there is
    /// dropped). Off: X-Real-IP passes through untouched.
    pub real_ip: bool,
}

impl Forwarding {
    /// Whether the real client's address is written (not only the peer's).
    #[inline]
    pub fn needs_real(self) -> bool {
        self.real_ip || self.forwarded_for == ForwardedFor::Replace
    }
}

/// What X-Forwarded-For holds upstream (`forwarded_for` in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedFor {
    /// What the client sent, then its peer (or the address a PROXY header
    /// named). ingress-nginx's `compute-full-forwarded-for: "true"`.
    #[default]
    Append,
    /// The real client alone, whatever the client sent: the peer, or the
    /// one a trusted forwarder's X-Forwarded-For names. ingress-nginx's
    /// default (`$remote_addr`).
    Replace,
}

impl ForwardedFor {
    pub fn parse(s: &str) -> Option<ForwardedFor> {
        match s {
            "append" => Some(ForwardedFor::Append),
            "replace" => Some(ForwardedFor::Replace),
            _ => None,
        }
    }
}

/// The scheme the client used: the connection's own (`conn`), or the one a
/// trusted forwarder (a LoadBalancer that ended TLS) names in
/// X-Forwarded-Proto. Exactly one value is believed: two or more, or an
/// unknown one, and the connection's scheme stands.
#[inline]
pub fn forwarded_proto<'a>(
    conn: &'static str,
    trusted: bool,
    mut values: impl Iterator<Item = &'a [u8]>,
) -> &'static str {
    if !trusted {
        return conn;
    }
    let first = values.next();
    if values.next().is_some() {
        return conn;
    }
    match first {
        Some(v) if v.eq_ignore_ascii_case(b"https") => "https",
        Some(v) if v.eq_ignore_ascii_case(b"http") => "http",
        _ => conn,
    }
}

/// A new X-Request-Id value: 32 random lowercase hex digits (128 bits), as
/// nginx's `$request_id` looks.
#[inline]
pub fn request_id() -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let r = fastrand::u128(..);
    let mut id = [0u8; 32];
    for (i, d) in id.iter_mut().enumerate() {
        *d = HEX[((r >> (i * 4)) & 0xf) as usize];
    }
    id
}

/// What to do with a request whose upstream connection closed (or was
/// reset) before any byte of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterClose {
    /// A pooled connection: the upstream's keep-alive timer closed it as
    /// the request went out. Not the endpoint's fault; the request goes
    /// again on one fresh connection to the same endpoint (never more, so
    /// an upstream that closes on every request does not see it replayed).
    SendFresh,
    /// A fresh connection: the endpoint died under the request (a pod
    /// killed, a crash). Nothing came back, so the request goes to the next
    /// endpoint, as nginx's `proxy_next_upstream error` and HAProxy's
    /// `retry-on empty-response` do.
    NextEndpoint,
    /// The request cannot be sent again: 502.
    Fail,
}

/// The keep-alive race rule. `reused`: the connection came from the pool;
/// `idempotent`: the method may be sent twice; `replayable`: the whole
/// request is still at hand (a bodiless request, or one the fast path
/// buffered).
#[inline]
pub fn after_close(reused: bool, idempotent: bool, replayable: bool) -> AfterClose {
    match (idempotent && replayable, reused) {
        (false, _) => AfterClose::Fail,
        (true, true) => AfterClose::SendFresh,
        (true, false) => AfterClose::NextEndpoint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotent_methods() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(idempotent(m.as_bytes()), "{m}");
            let parsed: http::Method = m.parse().unwrap();
            assert!(parsed.is_idempotent(), "{m} per the http crate");
        }
        for m in ["POST", "PATCH", "CONNECT", "get", "PROPFIND"] {
            assert!(!idempotent(m.as_bytes()), "{m}");
        }
    }

    #[test]
    fn hop_by_hop_in_any_case() {
        assert!(hop_by_hop(b"Connection"));
        assert!(hop_by_hop(b"TE"));
        assert!(hop_by_hop(b"proxy-connection"));
        assert!(!hop_by_hop(b"trailer"));
        assert!(!hop_by_hop(b"host"));
        assert!(protected(b"Host") && protected(b"X-Request-Id"));
        assert!(!protected(b"x-secret"));
    }

    #[test]
    fn forwarded_proto_needs_trust_and_one_value() {
        let one = |v: &'static [u8]| std::iter::once(v);
        assert_eq!(forwarded_proto("http", true, one(b"HTTPS")), "https");
        assert_eq!(forwarded_proto("https", true, one(b"http")), "http");
        assert_eq!(forwarded_proto("http", false, one(b"https")), "http");
        assert_eq!(forwarded_proto("http", true, one(b"ftp")), "http");
        let two: [&[u8]; 2] = [b"https", b"https"];
        assert_eq!(forwarded_proto("http", true, two.into_iter()), "http");
        assert_eq!(forwarded_proto("http", true, std::iter::empty()), "http");
    }

    #[test]
    fn request_ids_are_hex_and_differ() {
        let a = request_id();
        let b = request_id();
        assert!(a
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn keep_alive_race() {
        assert_eq!(after_close(true, true, true), AfterClose::SendFresh);
        assert_eq!(after_close(false, true, true), AfterClose::NextEndpoint);
        assert_eq!(after_close(true, false, true), AfterClose::Fail);
        assert_eq!(after_close(true, true, false), AfterClose::Fail);
        assert_eq!(after_close(false, true, false), AfterClose::Fail);
    }
}
