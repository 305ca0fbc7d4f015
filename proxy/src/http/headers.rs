//! Header rewriting between client and upstream: hop-by-hop headers out,
//! forwarding headers in.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::policy;
use crate::spec::HeaderEdits;

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// [`policy::HOP_BY_HOP`] as header names, for cheap comparisons.
static HOP_BY_HOP: [HeaderName; 8] = [
    HeaderName::from_static(policy::HOP_BY_HOP[0]),
    HeaderName::from_static(policy::HOP_BY_HOP[1]),
    HeaderName::from_static(policy::HOP_BY_HOP[2]),
    HeaderName::from_static(policy::HOP_BY_HOP[3]),
    HeaderName::from_static(policy::HOP_BY_HOP[4]),
    HeaderName::from_static(policy::HOP_BY_HOP[5]),
    HeaderName::from_static(policy::HOP_BY_HOP[6]),
    HeaderName::from_static(policy::HOP_BY_HOP[7]),
];

/// Removes hop-by-hop headers, including those the Connection header names.
/// Most messages carry none, so one pass over the names decides whether
/// any removal (a hash probe each) is needed at all.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        // Every Connection field, every token. Collected first: the names
        // borrow from the map.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .filter(|n| !policy::protected(n.as_str().as_bytes()))
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    for h in &HOP_BY_HOP {
        headers.remove(h);
    }
}

/// The Upgrade value when a request asks to switch to WebSocket. Other
/// upgrades (h2c above all, a smuggling vector) are treated as plain
/// requests: their Upgrade header is stripped like any hop-by-hop header.
pub fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let upgrade = headers.get(header::UPGRADE)?;
    if !upgrade.as_bytes().eq_ignore_ascii_case(b"websocket") {
        return None;
    }
    let wants = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    wants.then(|| upgrade.clone())
}

/// Puts back what an upgrade needs after hop-by-hop stripping.
pub fn restore_upgrade(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, upgrade);
}

/// Adds X-Forwarded-For (appended to, or replaced by the real client's
/// address, as `forwarding` says), -Proto and -Host (set), and X-Real-IP
/// when asked. `client_ip` is the peer's address (or a PROXY header's),
/// `real` the client's behind trusted forwarders.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    real: &HeaderValue,
    forwarding: crate::policy::Forwarding,
    proto: &'static str,
    host: Option<&HeaderValue>,
) {
    if forwarding.real_ip {
        headers.insert(X_REAL_IP.clone(), real.clone());
    }
    let xff = if forwarding.forwarded_for == crate::policy::ForwardedFor::Replace {
        Some(real.clone())
    } else {
        let mut prior = headers.get_all(&X_FORWARDED_FOR).iter().peekable();
        if prior.peek().is_none() {
            Some(client_ip.clone())
        } else {
            let mut v = Vec::with_capacity(64);
            for (i, p) in prior.enumerate() {
                if i > 0 {
                    v.extend_from_slice(b", ");
                }
                v.extend_from_slice(p.as_bytes());
            }
            v.extend_from_slice(b", ");
            v.extend_from_slice(client_ip.as_bytes());
            HeaderValue::from_bytes(&v).ok()
        }
    };
    if let Some(xff) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), xff);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    match host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
        // Never pass on what the client claimed.
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// The route's own edits ([`HeaderEdits`]), after the forwarding
/// headers: a Host of its choosing, X-Forwarded-Prefix.
pub fn apply_edits(headers: &mut HeaderMap, edits: &HeaderEdits) {
    if edits.is_empty() {
        return;
    }
    if let Some(host) = &edits.host {
        headers.insert(header::HOST, host.clone());
    }
    if let Some(prefix) = &edits.forwarded_prefix {
        headers.insert(X_FORWARDED_PREFIX.clone(), prefix.clone());
    }
    for (n, v) in &edits.request {
        headers.insert(n.clone(), v.clone());
    }
    for (n, v) in &edits.request_added {
        headers.append(n.clone(), v.clone());
    }
    for n in &edits.request_removed {
        headers.remove(n);
    }
}

/// HTTP/2 clients may split Cookie into several fields; an HTTP/1.1
/// upstream must get them as one, joined with "; " (RFC 9113 8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(header::COOKIE).iter();
    let (Some(_), Some(_)) = (cookies.next(), cookies.next()) else {
        return;
    };
    let mut joined = Vec::with_capacity(256);
    for (i, c) in headers.get_all(header::COOKIE).iter().enumerate() {
        if i > 0 {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(c.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

/// Adds X-Request-Id when the client sent none ([`policy::request_id`]).
pub fn ensure_request_id(headers: &mut HeaderMap) {
    if headers.contains_key(&X_REQUEST_ID) {
        return;
    }
    thread_local! {
        /// Ids are cut from a shared chunk: one allocation per 128 ids.
        static CHUNK: std::cell::RefCell<bytes::BytesMut> =
            std::cell::RefCell::new(bytes::BytesMut::new());
    }
    let id = CHUNK.with(|c| {
        let mut c = c.borrow_mut();
        if c.capacity() < 32 {
            *c = bytes::BytesMut::with_capacity(32 * 128);
        }
        c.extend_from_slice(&policy::request_id());
        c.split().freeze()
    });
    if let Ok(v) = HeaderValue::from_maybe_shared(id) {
        headers.insert(X_REQUEST_ID.clone(), v);
    }
}

/// The Date header for now, made once a second per thread.
pub fn date() -> http::HeaderValue {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHED: RefCell<(u64, http::HeaderValue)> =
            const { RefCell::new((u64::MAX, http::HeaderValue::from_static(""))) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            let v = http::HeaderValue::from_str(&httpdate::fmt_http_date(now))
                .unwrap_or_else(|_| http::HeaderValue::from_static(""));
            *c = (secs, v);
        }
        c.1.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_is_an_http_date() {
        let d = date();
        assert!(
            httpdate::parse_http_date(d.to_str().unwrap()).is_ok(),
            "{d:?}"
        );
    }
    use crate::policy::{ForwardedFor, Forwarding};

    #[test]
    fn strips_named_and_fixed_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("2.2.2.2"));
        let peer = HeaderValue::from_static("127.0.0.9");
        let chain = h.clone();
        let a_com = HeaderValue::from_static("a.com");
        add_forwarded(
            &mut h,
            &peer,
            &peer,
            Forwarding::default(),
            "http",
            Some(&a_com),
        );
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 127.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "a.com");
        assert!(!h.contains_key("x-real-ip"));
        let mut h = HeaderMap::new();
        let v6 = HeaderValue::from_static("::1");
        add_forwarded(&mut h, &v6, &v6, Forwarding::default(), "https", None);
        assert_eq!(h["x-forwarded-for"], "::1");

        // ingress-nginx's: the real client alone, in both headers.
        let nginx = Forwarding {
            forwarded_for: ForwardedFor::Replace,
            real_ip: true,
        };
        let mut h = chain;
        h.insert("x-real-ip", HeaderValue::from_static("6.6.6.6"));
        let real = HeaderValue::from_static("2.2.2.2");
        add_forwarded(&mut h, &peer, &real, nginx, "http", None);
        assert_eq!(h["x-forwarded-for"], "2.2.2.2");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-real-ip"], "2.2.2.2");
        assert_eq!(h.get_all("x-real-ip").iter().count(), 1);
    }

    #[test]
    fn request_id_is_added_once() {
        let mut h = HeaderMap::new();
        ensure_request_id(&mut h);
        let id = h["x-request-id"].clone();
        assert_eq!(id.len(), 32);
        ensure_request_id(&mut h);
        assert_eq!(h["x-request-id"], id);
    }

    #[test]
    fn connection_tokens_never_remove_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("a.com"));
        h.append(header::CONNECTION, HeaderValue::from_static("host"));
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("x-one, content-length"),
        );
        h.insert("x-one", HeaderValue::from_static("1"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        h.insert(header::TRAILER, HeaderValue::from_static("x-checksum"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h["host"], "a.com");
        assert_eq!(h["content-length"], "0");
        assert_eq!(h["trailer"], "x-checksum");
        assert!(!h.contains_key("x-one"));
        assert!(!h.contains_key("connection"));
    }

    #[test]
    fn h2_cookies_are_joined() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
        let mut one = HeaderMap::new();
        one.insert(header::COOKIE, HeaderValue::from_static("a=1"));
        join_cookies(&mut one);
        assert_eq!(one[header::COOKIE], "a=1");
    }

    #[test]
    fn forged_forwarded_host_is_dropped() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-host", HeaderValue::from_static("evil.com"));
        let peer = HeaderValue::from_static("127.0.0.1");
        add_forwarded(&mut h, &peer, &peer, Forwarding::default(), "http", None);
        assert!(!h.contains_key("x-forwarded-host"));
    }

    #[test]
    fn only_websocket_upgrades() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, HTTP2-Settings"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(upgrade_of(&h).is_none());
    }

    #[test]
    fn detects_upgrade() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(upgrade_of(&h).is_none());
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert_eq!(upgrade_of(&h).unwrap(), "websocket");
    }
}
