//! Whether one request goes to its route's canary, exactly as
//! ingress-nginx's balancer decides it (`route_to_alternative_balancer` in
//! `rootfs/etc/nginx/lua/balancer.lua`): the canary header first, then the
//! canary cookie, then the weight's draw. Each of the first two either
//! decides or passes the request on to the next.
//!
//! Without header or cookie rules a pick reads one header at most and
//! allocates nothing; the cookie header is read only when the canary names
//! a cookie. The one allocation is a header sent several times, which
//! nginx reads as its lines joined with `", "`.

use http::HeaderMap;

use super::Canary;
use crate::spec::HeaderRule;

/// What one rule says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Canary,
    Main,
    /// The rule does not decide: on to the next.
    Next,
}

impl Canary {
    /// The request goes to the canary. `headers` is `None` on the fast
    /// path, which serves only routes whose canary needs no header (the
    /// snapshot checks it), so only the weight decides there.
    #[inline]
    pub fn takes(&self, headers: Option<&HeaderMap>) -> bool {
        if let Some(h) = headers {
            if let Some(name) = &self.header {
                match header_verdict(&self.rules.header, h, name) {
                    Verdict::Canary => return true,
                    Verdict::Main => return false,
                    Verdict::Next => {}
                }
            }
            if let Some(cookie) = &self.rules.cookie {
                match cookie_value(h, cookie.as_bytes()) {
                    Some(b"always") => return true,
                    Some(b"never") => return false,
                    _ => {}
                }
            }
        }
        // `math.random(total) <= weight`, a draw in 1..=total.
        self.weight > 0 && fastrand::u32(0..self.total.max(1)) < self.weight
    }
}

/// The canary header's say: nothing when the request does not send it.
fn header_verdict(rule: &HeaderRule, headers: &HeaderMap, name: &http::HeaderName) -> Verdict {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Verdict::Next;
    };
    let Some(second) = values.next() else {
        return value_verdict(rule, first.as_bytes());
    };
    // nginx's `$http_NAME` of a header sent on several lines.
    let mut joined = first.as_bytes().to_vec();
    for v in std::iter::once(second).chain(values) {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(v.as_bytes());
    }
    value_verdict(rule, &joined)
}

fn value_verdict(rule: &HeaderRule, value: &[u8]) -> Verdict {
    match rule {
        HeaderRule::AlwaysNever => match value {
            b"always" => Verdict::Canary,
            b"never" => Verdict::Main,
            _ => Verdict::Next,
        },
        // With a value or a pattern, `never` is just another value.
        HeaderRule::Value(want) if value == &**want => Verdict::Canary,
        HeaderRule::Pattern(p) if p.is_match(value) => Verdict::Canary,
        HeaderRule::Value(_) | HeaderRule::Pattern(_) => Verdict::Next,
    }
}

/// The value of the first cookie called `name` in the request's Cookie
/// headers, in their order, as nginx's `$cookie_NAME` finds it.
pub(super) fn cookie_value<'h>(headers: &'h HeaderMap, name: &[u8]) -> Option<&'h [u8]> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .find_map(|line| find_cookie(line.as_bytes(), name))
}

/// nginx's reading of one Cookie line (`ngx_http_parse_multi_header_lines`):
/// pairs are split at `;` or `,`, spaces before a name are skipped, the
/// name is compared without regard to ASCII case, spaces may surround the
/// `=`, and the value runs to the next `;` (a `,` or a trailing space is
/// part of it).
fn find_cookie<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let skip_spaces = |mut at: usize| {
        while line.get(at) == Some(&b' ') {
            at += 1;
        }
        at
    };
    let mut at = skip_spaces(0);
    while at < line.len() {
        let rest = &line[at..];
        if rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name) {
            at = skip_spaces(at + name.len());
            if line.get(at) == Some(&b'=') {
                let start = skip_spaces(at + 1);
                let end = line[start..]
                    .iter()
                    .position(|&b| b == b';')
                    .map_or(line.len(), |n| start + n);
                return Some(&line[start..end]);
            }
            // nginx steps over the byte that was not `=` before looking
            // for the next separator.
            at += 1;
        }
        while at < line.len() {
            let b = line[at];
            at += 1;
            if b == b';' || b == b',' {
                break;
            }
        }
        at = skip_spaces(at);
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::{HeaderMap, HeaderName, HeaderValue};

    use super::*;
    use crate::balance::Strategy;
    use crate::spec::{
        CanaryRules, EndpointSpec, HeaderPattern, HealthPolicy, Protocol, UpstreamSpec,
    };
    use crate::upstream::{EndpointReuse, Upstream};

    fn canary(weight: u32, header: Option<&str>, rules: CanaryRules) -> Canary {
        let spec = UpstreamSpec {
            name: "canary".into(),
            strategy: Strategy::RoundRobin,
            protocol: Protocol::Http1,
            endpoints: vec![EndpointSpec::new("127.0.0.1:1".parse().unwrap(), 1)],
            health: HealthPolicy::default(),
            max_idle_per_endpoint: 1,
            tls: None,
            response_head: None,
            names: Vec::new(),
        };
        Canary {
            upstream: Arc::new(Upstream::build(&spec, &EndpointReuse::default())),
            weight,
            total: 100,
            header: header.map(|h| HeaderName::from_bytes(h.as_bytes()).unwrap()),
            rules,
        }
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    fn cookie(line: &str, name: &str) -> Option<String> {
        find_cookie(line.as_bytes(), name.as_bytes())
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    }

    fn rules(header: HeaderRule, cookie: Option<&str>) -> CanaryRules {
        CanaryRules {
            header,
            cookie: cookie.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn always_and_never_decide_before_the_weight() {
        let all = canary(100, Some("x-canary"), CanaryRules::default());
        let none = canary(0, Some("x-canary"), CanaryRules::default());
        assert!(none.takes(Some(&headers(&[("x-canary", b"always")]))));
        assert!(!all.takes(Some(&headers(&[("x-canary", b"never")]))));
        // Any other value, another case included, leaves it to the weight.
        assert!(all.takes(Some(&headers(&[("x-canary", b"Never")]))));
        assert!(!none.takes(Some(&headers(&[("x-canary", b"ALWAYS")]))));
        assert!(!none.takes(Some(&headers(&[("x-canary", b"")]))));
        // Without headers (the fast path) only the weight counts.
        assert!(all.takes(None) && !none.takes(None));
    }

    #[test]
    fn a_header_value_replaces_always_and_never() {
        let r = rules(HeaderRule::Value((*b"blue").into()), None);
        let none = canary(0, Some("x-canary"), r.clone());
        let all = canary(100, Some("x-canary"), r);
        assert!(none.takes(Some(&headers(&[("x-canary", b"blue")]))));
        assert!(!none.takes(Some(&headers(&[("x-canary", b"Blue")]))));
        assert!(!none.takes(Some(&headers(&[("x-canary", b"always")]))));
        // `never` no longer keeps a request off: the weight decides.
        assert!(all.takes(Some(&headers(&[("x-canary", b"never")]))));
    }

    #[test]
    fn a_pattern_searches_the_value() {
        let p = HeaderPattern::new("(eu|us)-west").unwrap();
        let none = canary(0, Some("x-region"), rules(HeaderRule::Pattern(p), None));
        assert!(none.takes(Some(&headers(&[("x-region", b"eu-west-1")]))));
        assert!(!none.takes(Some(&headers(&[("x-region", b"ap-south-1")]))));
        assert!(!none.takes(Some(&headers(&[("x-region", b"always")]))));
    }

    #[test]
    fn a_repeated_header_is_its_lines_joined() {
        let r = rules(HeaderRule::Value((*b"a, b").into()), None);
        let c = canary(0, Some("x-canary"), r);
        assert!(c.takes(Some(&headers(&[("x-canary", b"a"), ("x-canary", b"b")]))));
        let plain = canary(0, Some("x-canary"), CanaryRules::default());
        assert!(!plain.takes(Some(&headers(&[
            ("x-canary", b"always"),
            ("x-canary", b"always")
        ]))));
    }

    #[test]
    fn precedence_is_header_then_cookie_then_weight() {
        let r = rules(HeaderRule::AlwaysNever, Some("canary"));
        let all = canary(100, Some("x-canary"), r.clone());
        let none = canary(0, Some("x-canary"), r);
        let req = |h: &'static [u8], c: &'static [u8]| {
            let mut v = b"canary=".to_vec();
            v.extend_from_slice(c);
            headers(&[("x-canary", h), ("cookie", Box::leak(v.into_boxed_slice()))])
        };
        assert!(!all.takes(Some(&req(b"never", b"always"))));
        assert!(none.takes(Some(&req(b"always", b"never"))));
        assert!(!all.takes(Some(&req(b"other", b"never"))));
        assert!(none.takes(Some(&req(b"other", b"always"))));
        assert!(all.takes(Some(&req(b"other", b"other"))));
        assert!(!none.takes(Some(&req(b"other", b"other"))));
        // A cookie without a header rule.
        let cookie_only = canary(0, None, rules(HeaderRule::AlwaysNever, Some("canary")));
        assert!(cookie_only.takes(Some(&headers(&[("cookie", b"canary=always")]))));
        assert!(!cookie_only.takes(Some(&headers(&[("x-canary", b"always")]))));
    }

    #[test]
    fn cookies_are_found_as_nginx_finds_them() {
        assert_eq!(cookie("canary=always", "canary").as_deref(), Some("always"));
        assert_eq!(
            cookie("a=1; canary=never; b=2", "canary").as_deref(),
            Some("never")
        );
        assert_eq!(
            cookie("a=1;canary=always", "canary").as_deref(),
            Some("always")
        );
        assert_eq!(
            cookie("  a=1;   canary = always;b", "canary").as_deref(),
            Some("always")
        );
        // The first one wins; names are compared without case.
        assert_eq!(
            cookie("Canary=never; canary=always", "canary").as_deref(),
            Some("never")
        );
        // A longer or shorter name is another cookie.
        assert_eq!(cookie("canary2=always; xcanary=always", "canary"), None);
        assert_eq!(cookie("canar=always", "canary"), None);
        // The value runs to `;`: a trailing space or a comma stays in it.
        assert_eq!(
            cookie("canary=always ; b=1", "canary").as_deref(),
            Some("always ")
        );
        assert_eq!(
            cookie("canary=always,b=1", "canary").as_deref(),
            Some("always,b=1")
        );
        // `,` separates pairs too; an empty value is a value.
        assert_eq!(
            cookie("a=1, canary=always", "canary").as_deref(),
            Some("always")
        );
        assert_eq!(cookie("canary=", "canary").as_deref(), Some(""));
        assert_eq!(cookie("", "canary"), None);
        assert_eq!(cookie("canary", "canary"), None);
    }

    #[test]
    fn cookies_are_looked_for_in_every_cookie_header() {
        let h = headers(&[("cookie", b"a=1; b=2"), ("cookie", b"canary=always")]);
        assert_eq!(cookie_value(&h, b"canary"), Some(&b"always"[..]));
        let c = canary(0, None, rules(HeaderRule::AlwaysNever, Some("canary")));
        assert!(c.takes(Some(&h)));
        assert!(!c.takes(Some(&headers(&[("cookie", b"canary=Always")]))));
    }
}
