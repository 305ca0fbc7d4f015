//! Gateway API's path modifier and redirect (HTTPRoute's `URLRewrite` and
//! `RequestRedirect` filters), as typed data built once per rebuild; a
//! request only slices and joins strings.
//!
//! The semantics are the spec's (`HTTPPathModifier`,
//! `HTTPRequestRedirectFilter` in gateway-api's `apis/v1/httproute_types.go`)
//! and what its conformance suite checks: a prefix replaced by whole path
//! elements, the port of a redirect chosen by the scheme when one is set
//! and kept from the listener the client reached when not.

use std::borrow::Cow;

use http::{HeaderValue, StatusCode};

/// `ReplaceFullPath` or `ReplacePrefixMatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathModifier {
    /// The whole path becomes this.
    Full(Box<str>),
    /// The rule's `PathPrefix` match is replaced, path element by path
    /// element: `matched` without its trailing slash ("" for `/`), and
    /// `with` without its own.
    Prefix { matched: Box<str>, with: Box<str> },
}

impl PathModifier {
    /// `ReplacePrefixMatch` of the prefix `matched` (the rule's match).
    pub fn prefix(matched: &str, with: &str) -> PathModifier {
        PathModifier::Prefix {
            matched: matched.trim_end_matches('/').into(),
            with: with.trim_end_matches('/').into(),
        }
    }

    /// The path the modifier makes of `path` (no query). The spec's table:
    /// `/foo/bar` with prefix `/foo` and `/xyz` → `/xyz/bar`; `/foo/` →
    /// `/xyz/`; `/foo` with `` or `/` → `/`.
    pub fn apply<'a>(&'a self, path: &'a str) -> Cow<'a, str> {
        match self {
            PathModifier::Full(p) => Cow::Borrowed(p),
            PathModifier::Prefix { matched, with } => {
                // What the match let through starts with the prefix, by
                // elements; anything else (never routed here) is kept.
                let Some(rest) = path.strip_prefix(&**matched) else {
                    return Cow::Borrowed(path);
                };
                if !rest.is_empty() && !rest.starts_with('/') {
                    return Cow::Borrowed(path);
                }
                match (with.is_empty(), rest.is_empty()) {
                    (true, true) => Cow::Borrowed("/"),
                    (true, false) => Cow::Borrowed(rest),
                    (false, true) => Cow::Borrowed(with),
                    (false, false) => Cow::Owned(format!("{with}{rest}")),
                }
            }
        }
    }
}

/// The URL scheme a redirect names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn parse(s: &str) -> Scheme {
        if s.eq_ignore_ascii_case("https") {
            Scheme::Https
        } else {
            Scheme::Http
        }
    }
}

/// A `RequestRedirect`: what it sets, the rest taken from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRedirect {
    /// 301, 302 (the default), 303, 307 or 308.
    pub status: StatusCode,
    pub scheme: Option<Scheme>,
    pub hostname: Option<Box<str>>,
    pub port: Option<u16>,
    pub path: Option<PathModifier>,
}

impl GatewayRedirect {
    /// The `Location` for a request that came with `scheme`, `host` (its
    /// Host or authority, port included, as sent) and `target` (path and
    /// query). The query is kept.
    ///
    /// The port, as the spec says: the one the filter sets; else, when it
    /// sets a scheme, that scheme's; else the listener's the client
    /// reached — which, with every listener served on one socket, is the
    /// port the client named in Host (the scheme's own when it named
    /// none). It is left out for http on 80 and https on 443.
    pub fn location(&self, scheme: &str, host: Option<&str>, target: &str) -> Option<HeaderValue> {
        let asked = Scheme::parse(scheme);
        let (name, port_sent) = host.map_or(("", None), split_host);
        let to_scheme = self.scheme.unwrap_or(asked);
        let port = match (self.port, self.scheme) {
            (Some(p), _) => p,
            (None, Some(s)) => s.default_port(),
            (None, None) => port_sent.unwrap_or(asked.default_port()),
        };
        let name = self.hostname.as_deref().unwrap_or(name);
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let path = match &self.path {
            Some(m) => m.apply(path),
            None => Cow::Borrowed(path),
        };
        let mut out = String::with_capacity(16 + name.len() + target.len());
        out.push_str(to_scheme.as_str());
        out.push_str("://");
        out.push_str(name);
        if port != to_scheme.default_port() {
            out.push(':');
            out.push_str(&port.to_string());
        }
        out.push_str(&path);
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        HeaderValue::try_from(out).ok()
    }
}

/// A Host value's name and port: `example.com:8080`, `[::1]:8080`,
/// `example.com`. A port that is not a number is part of no name we
/// serve; it is dropped.
fn split_host(host: &str) -> (&str, Option<u16>) {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => {
                let port = host[end + 1..]
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok());
                (&host[..=end], port)
            }
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) => (name, port.parse().ok()),
        None => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_s_prefix_table() {
        // gateway-api's HTTPPathModifier comment, row by row.
        let rows = [
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo/", "/foo", "", "/"),
            ("/foo", "/foo", "", "/"),
            ("/foo/", "/foo", "/", "/"),
            ("/foo", "/foo", "/", "/"),
            // The conformance suite's.
            ("/strip-prefix", "/strip-prefix", "/", "/"),
            ("/strip-prefix/three", "/strip-prefix", "/", "/three"),
            (
                "/prefix/rewrite-path-and-modify-headers/one",
                "/prefix/rewrite-path-and-modify-headers",
                "/prefix",
                "/prefix/one",
            ),
            // A prefix of `/`: everything follows the replacement.
            ("/a/b", "/", "/x", "/x/a/b"),
            ("/", "/", "/x", "/x/"),
        ];
        for (path, matched, with, want) in rows {
            let m = PathModifier::prefix(matched, with);
            assert_eq!(m.apply(path), want, "{path} {matched} {with}");
        }
        assert_eq!(
            PathModifier::Full("/one".into()).apply("/full/one/two"),
            "/one"
        );
    }

    fn redirect() -> GatewayRedirect {
        GatewayRedirect {
            status: StatusCode::FOUND,
            scheme: None,
            hostname: None,
            port: None,
            path: None,
        }
    }

    #[test]
    fn ports_follow_the_scheme_or_the_listener() {
        let at = |r: &GatewayRedirect, scheme, host, target| {
            r.location(scheme, Some(host), target).unwrap()
        };
        let host = GatewayRedirect {
            hostname: Some("example.org".into()),
            ..redirect()
        };
        // HTTPRouteRedirectPortAndScheme, listener on 80.
        assert_eq!(
            at(&host, "http", "10.0.0.1", "/p?q=1"),
            "http://example.org/p?q=1"
        );
        let https = GatewayRedirect {
            scheme: Some(Scheme::Https),
            ..host.clone()
        };
        assert_eq!(
            at(&https, "http", "10.0.0.1", "/p"),
            "https://example.org/p"
        );
        let https_8443 = GatewayRedirect {
            port: Some(8443),
            ..https.clone()
        };
        assert_eq!(
            at(&https_8443, "http", "10.0.0.1", "/p"),
            "https://example.org:8443/p"
        );
        let port_8080 = GatewayRedirect {
            port: Some(8080),
            ..host.clone()
        };
        assert_eq!(
            at(&port_8080, "http", "x", "/p"),
            "http://example.org:8080/p"
        );
        // Listener on 8080: kept without a scheme, dropped with one.
        assert_eq!(
            at(&host, "http", "10.0.0.1:8080", "/p"),
            "http://example.org:8080/p"
        );
        assert_eq!(
            at(&https, "http", "10.0.0.1:8080", "/p"),
            "https://example.org/p"
        );
        let port_80 = GatewayRedirect {
            port: Some(80),
            ..host.clone()
        };
        assert_eq!(
            at(&port_80, "http", "10.0.0.1:8080", "/p"),
            "http://example.org/p"
        );
        // Listener on 443.
        assert_eq!(
            at(&host, "https", "example.org", "/p"),
            "https://example.org/p"
        );
        let http = GatewayRedirect {
            scheme: Some(Scheme::Http),
            ..host.clone()
        };
        assert_eq!(
            at(&http, "https", "example.org", "/p"),
            "http://example.org/p"
        );
        // The request's name, its port cut, when the filter names none.
        let r = redirect();
        assert_eq!(
            at(&r, "http", "Shop.example.com", "/a"),
            "http://Shop.example.com/a"
        );
        assert_eq!(at(&r, "http", "[::1]:81", "/a"), "http://[::1]:81/a");
        assert_eq!(
            at(&https, "http", "[::1]:81", "/a"),
            "https://example.org/a"
        );
        let r = GatewayRedirect {
            path: Some(PathModifier::prefix(
                "/original-prefix",
                "/replacement-prefix",
            )),
            ..redirect()
        };
        assert_eq!(
            at(&r, "http", "h", "/original-prefix/lemon?x"),
            "http://h/replacement-prefix/lemon?x"
        );
    }
}
