//! CORS as ingress-nginx answers it (`enable-cors` and `cors-*`), as data:
//! which origins are allowed and the Access-Control-* values, made header
//! values once. Which request gets which header is
//! [`crate::forward::cors`]'s.

use std::sync::LazyLock;

use http::HeaderValue;

/// ingress-nginx's defaults (`internal/ingress/annotations/cors`).
pub const CORS_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
pub const CORS_HEADERS: &str = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization";
pub const CORS_MAX_AGE: i64 = 1_728_000;

/// A route's CORS answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    pub origins: Origins,
    /// Access-Control-Allow-Methods.
    pub methods: HeaderValue,
    /// Access-Control-Allow-Headers.
    pub headers: HeaderValue,
    /// Access-Control-Expose-Headers; `None` sends none.
    pub expose: Option<HeaderValue>,
    /// Access-Control-Allow-Credentials: true (ingress-nginx's default).
    pub credentials: bool,
    /// Access-Control-Max-Age, in seconds.
    pub max_age: HeaderValue,
}

/// `cors-allow-origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// `*` (the default): every request gets the headers, with
    /// `Access-Control-Allow-Origin: *`, Origin or not.
    Any,
    /// Only a request whose Origin matches one, which is echoed back.
    List(Vec<OriginPattern>),
}

/// One allowed origin: `https://app.example.com`, `null`, or with one
/// wildcard label, `https://*.example.com:8443`. Matched without regard
/// to case, as nginx's `~*` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    /// Before the `*`, or the whole origin.
    prefix: Box<str>,
    /// After the `*`, when there is one.
    suffix: Option<Box<str>>,
}

/// ingress-nginx's check of one origin (`corsOriginRegex`).
static ORIGIN: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^([a-z]+://(\*\.)?[A-Za-z0-9\-.]*(:\d+)?|\*|null)?$").expect("valid")
});

impl OriginPattern {
    /// `None` when ingress-nginx would skip it (no scheme, a path, a
    /// wildcard anywhere but the first label).
    pub fn parse(origin: &str) -> Option<OriginPattern> {
        if origin.is_empty() || origin == "*" || !ORIGIN.is_match(origin) {
            return None;
        }
        Some(match origin.split_once('*') {
            Some((prefix, suffix)) => OriginPattern {
                prefix: prefix.into(),
                suffix: Some(suffix.into()),
            },
            None => OriginPattern {
                prefix: origin.into(),
                suffix: None,
            },
        })
    }

    /// Whether the Origin header's value matches. The wildcard stands for
    /// one non-empty label (`[A-Za-z0-9-]+`), as ingress-nginx's regex has
    /// it.
    pub fn matches(&self, origin: &[u8]) -> bool {
        let prefix = self.prefix.as_bytes();
        let Some(suffix) = &self.suffix else {
            return origin.eq_ignore_ascii_case(prefix);
        };
        let suffix = suffix.as_bytes();
        if origin.len() <= prefix.len() + suffix.len() {
            return false;
        }
        let (head, rest) = origin.split_at(prefix.len());
        let (label, tail) = rest.split_at(rest.len() - suffix.len());
        head.eq_ignore_ascii_case(prefix)
            && tail.eq_ignore_ascii_case(suffix)
            && label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
    }
}

impl Cors {
    /// Access-Control-Allow-Origin for a request with this Origin, or
    /// `None` when the request gets no CORS headers at all.
    pub fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match &self.origins {
            Origins::Any => Some(HeaderValue::from_static("*")),
            Origins::List(list) => {
                let o = origin?;
                list.iter()
                    .any(|p| p.matches(o.as_bytes()))
                    .then(|| o.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_patterns() {
        let p = OriginPattern::parse("https://*.example.com").unwrap();
        assert!(p.matches(b"https://app.example.com"));
        assert!(p.matches(b"HTTPS://App.Example.COM"));
        assert!(!p.matches(b"https://example.com"));
        assert!(!p.matches(b"https://.example.com"));
        assert!(!p.matches(b"https://a.b.example.com"));
        assert!(!p.matches(b"http://app.example.com"));
        assert!(!p.matches(b"https://app.example.com.evil.io"));
        let p = OriginPattern::parse("http://localhost:3000").unwrap();
        assert!(p.matches(b"http://localhost:3000"));
        assert!(!p.matches(b"http://localhost:3001"));
        assert!(OriginPattern::parse("null").unwrap().matches(b"null"));
        // ingress-nginx skips these.
        for bad in [
            "example.com",
            "https://example.com/path",
            "https://a.*.com",
            "*",
        ] {
            assert_eq!(OriginPattern::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn allow_origin() {
        let c = |origins| Cors {
            origins,
            methods: HeaderValue::from_static(CORS_METHODS),
            headers: HeaderValue::from_static(CORS_HEADERS),
            expose: None,
            credentials: true,
            max_age: HeaderValue::from_static("1728000"),
        };
        assert_eq!(c(Origins::Any).allow_origin(None).unwrap(), "*");
        let list = c(Origins::List(vec![OriginPattern::parse(
            "https://shop.example.com",
        )
        .unwrap()]));
        let o = HeaderValue::from_static("https://shop.example.com");
        assert_eq!(list.allow_origin(Some(&o)), Some(o));
        assert_eq!(list.allow_origin(None), None);
        assert_eq!(
            list.allow_origin(Some(&HeaderValue::from_static("https://evil.io"))),
            None
        );
    }
}
