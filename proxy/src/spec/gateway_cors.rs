//! Gateway API's CORS filter (`HTTPCORSFilter`), as data: the origins a
//! route lets read its answers and the Access-Control-* values, made
//! header values once.
//!
//! Where it differs from ingress-nginx's `enable-cors` ([`super::Cors`]),
//! as the spec and its conformance test say: a preflight is an OPTIONS
//! with `Origin` and `Access-Control-Request-Method`, always answered by
//! the proxy (204 for an allowed origin, 403 for another); an origin's
//! wildcard covers any number of labels and a missing port is the
//! scheme's; with credentials, `*` is never sent back (the origin, the
//! method or the headers asked for are echoed instead).

use http::{header, HeaderMap, HeaderValue};

/// A route's CORS answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayCors {
    /// `None`: every origin (`*`).
    pub origins: Option<Vec<OriginPattern>>,
    /// `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
    /// `None`: any method (`*`).
    pub methods: Option<HeaderValue>,
    /// `None`: any header (`*`); an empty list sends none.
    pub headers: Option<HeaderValue>,
    pub expose: Option<HeaderValue>,
    /// Seconds (the spec's default is 5).
    pub max_age: HeaderValue,
}

/// One allowed origin: `https://www.example.com`, `http://x:8080`, or
/// `https://*.example.com` (any name ending in `.example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    scheme: Box<str>,
    /// Lower case; after the `*.` for a wildcard.
    host: Box<str>,
    wildcard: bool,
    port: u16,
}

/// An origin's parts: scheme, host (lower case) and port (the scheme's
/// when not given). `None` when it is not `scheme://host[:port]`.
fn parts(origin: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (addr, after) = inner.split_once(']')?;
        let port = match after {
            "" => default,
            p => p.strip_prefix(':')?.parse().ok()?,
        };
        (&rest[..addr.len() + 2], port)
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (rest, default),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some((scheme, host.to_ascii_lowercase(), port))
}

impl OriginPattern {
    /// `None` for what is not an origin (the CRD refuses those too).
    pub fn parse(s: &str) -> Option<OriginPattern> {
        let (scheme, host, port) = parts(s)?;
        let (host, wildcard) = match host.strip_prefix("*.") {
            Some(rest) if !rest.contains('*') && !rest.is_empty() => (rest.to_owned(), true),
            _ if host.contains('*') => return None,
            _ => (host, false),
        };
        Some(OriginPattern {
            scheme: scheme.into(),
            host: host.into(),
            wildcard,
            port,
        })
    }

    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if *self.scheme != *scheme || self.port != port {
            return false;
        }
        if !self.wildcard {
            return *self.host == *host;
        }
        host.len() > self.host.len() + 1
            && host.ends_with(&*self.host)
            && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
    }
}

impl GatewayCors {
    /// Whether a request with this `Origin` may read the answer.
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        let Some(list) = &self.origins else {
            return true;
        };
        let Some((scheme, host, port)) = origin.to_str().ok().and_then(parts) else {
            return false;
        };
        list.iter().any(|p| p.matches(&scheme, &host, port))
    }

    /// The headers of an allowed preflight's answer. `method` and `asked`
    /// are the preflight's `Access-Control-Request-Method` and
    /// `-Headers`.
    pub fn preflight_headers(
        &self,
        origin: &HeaderValue,
        method: Option<&HeaderValue>,
        asked: Option<&HeaderValue>,
        h: &mut HeaderMap,
    ) {
        self.response_headers(origin, h);
        match (&self.methods, method) {
            (Some(list), _) => {
                h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, list.clone());
            }
            // Any: the one asked for (`*` means nothing with credentials).
            (None, Some(m)) => {
                h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, m.clone());
            }
            (None, None) => {}
        }
        match (&self.headers, asked) {
            (Some(list), _) if !list.is_empty() => {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, list.clone());
            }
            (None, Some(a)) => {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, a.clone());
            }
            _ => {}
        }
        h.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }

    /// The headers of an allowed request's answer (replacing the
    /// backend's own): the origin echoed, credentials, exposed headers.
    /// (Every answer of the route says `Vary: Origin`: [`vary`].)
    pub fn response_headers(&self, origin: &HeaderValue, h: &mut HeaderMap) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if self.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        } else {
            h.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
        }
        if let Some(e) = &self.expose {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
        }
    }
}

/// `Vary: Origin`, on every answer of a route with CORS, allowed origin or
/// not: the answer depends on it, and a shared cache must not give one
/// origin's answer to another.
pub fn vary(h: &mut HeaderMap) {
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// Whether a request is a CORS preflight: OPTIONS, with `Origin` and
/// `Access-Control-Request-Method`.
pub fn is_preflight(method: &http::Method, h: &HeaderMap) -> bool {
    method == http::Method::OPTIONS
        && h.contains_key(header::ORIGIN)
        && h.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str]) -> GatewayCors {
        GatewayCors {
            origins: Some(
                origins
                    .iter()
                    .map(|o| OriginPattern::parse(o).unwrap())
                    .collect(),
            ),
            credentials: true,
            methods: Some(HeaderValue::from_static("GET, OPTIONS")),
            headers: Some(HeaderValue::from_static("x-header-1, x-header-2")),
            expose: Some(HeaderValue::from_static("x-header-3, x-header-4")),
            max_age: HeaderValue::from_static("3600"),
        }
    }

    #[test]
    fn origins_as_the_conformance_test_has_them() {
        let c = cors(&["https://www.foo.com", "https://*.bar.com"]);
        let allows = |o: &'static str| c.allows(&HeaderValue::from_static(o));
        assert!(allows("https://www.foo.com"));
        assert!(allows("https://WWW.foo.com:443"));
        assert!(allows("https://www.bar.com"));
        assert!(allows("https://xpto.www.bar.com"));
        assert!(!allows("https://bar.com"));
        assert!(!allows("https://foobar.com"));
        assert!(!allows("https://evilbar.com"));
        assert!(!allows("http://www.foo.com"));
        assert!(!allows("https://www.foo.com:8443"));
        assert!(!allows("null"));
        let v6 = cors(&["http://[::1]"]);
        assert!(v6.allows(&HeaderValue::from_static("http://[::1]:80")));
        assert!(!v6.allows(&HeaderValue::from_static("http://[::1]:81")));
        let any = GatewayCors {
            origins: None,
            ..c.clone()
        };
        assert!(any.allows(&HeaderValue::from_static("https://foobar.com:12345")));
        for bad in [
            "www.foo.com",
            "ftp://x",
            "https://",
            "https://a/b",
            "https://a.*.com",
        ] {
            assert_eq!(OriginPattern::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn wildcards_echo_what_was_asked() {
        let c = GatewayCors {
            origins: None,
            credentials: true,
            methods: None,
            headers: None,
            expose: None,
            max_age: HeaderValue::from_static("5"),
        };
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("x"),
        );
        c.preflight_headers(
            &HeaderValue::from_static("https://other.foo.com"),
            Some(&HeaderValue::from_static("PUT")),
            Some(&HeaderValue::from_static("x-header-1, x-header-2")),
            &mut h,
        );
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://other.foo.com"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], "PUT");
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "x-header-1, x-header-2"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "5");
        let c = GatewayCors {
            credentials: false,
            ..c
        };
        let mut h = HeaderMap::new();
        c.response_headers(&HeaderValue::from_static("https://a.example"), &mut h);
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    }
}
