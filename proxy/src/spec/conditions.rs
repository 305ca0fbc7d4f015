//! What a Gateway API route asks of a request beyond its host and path:
//! a method, headers and query parameters (HTTPRoute's `matches`), all of
//! which must hold. Parsed once, when the route is made; a request is
//! judged against them without allocating.

/// A match's conditions; none at all holds for every request.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub method: Option<http::Method>,
    /// A header (any case) whose value, or one of whose values, matches.
    pub headers: Vec<(http::HeaderName, ValueMatch)>,
    /// A query parameter (exact name) whose first value matches.
    pub query: Vec<(Box<str>, ValueMatch)>,
    /// The whole path, for `RegularExpression` path matches.
    pub path: Option<regex::Regex>,
}

/// How a value is compared.
#[derive(Debug, Clone)]
pub enum ValueMatch {
    Exact(Box<str>),
    /// Gateway API's RegularExpression, anchored by the translation to
    /// match the whole value.
    Regex(regex::Regex),
}

impl ValueMatch {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatch::Exact(v) => **v == *value,
            ValueMatch::Regex(r) => r.is_match(value),
        }
    }
}

impl Conditions {
    /// Whether a request of `method`, with `headers` and the query string
    /// `query` (without its `?`), meets every condition.
    pub fn hold(
        &self,
        method: &http::Method,
        headers: &http::HeaderMap,
        query: Option<&str>,
    ) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        let headers_hold = self.headers.iter().all(|(name, want)| {
            headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| want.matches(v)))
        });
        headers_hold
            && self
                .query
                .iter()
                .all(|(name, want)| first_param(query, name).is_some_and(|v| want.matches(v)))
    }

    /// Whether the request's method, headers or query are looked at (a
    /// path regex is the path's).
    pub fn needs_request(&self) -> bool {
        self.method.is_some() || !self.headers.is_empty() || !self.query.is_empty()
    }
}

/// The first value of parameter `name` in a query string, as it is sent
/// (not percent-decoded); a parameter without `=` has the empty value.
fn first_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        (n == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn every_condition_must_hold() {
        let c = Conditions {
            method: Some(http::Method::GET),
            headers: vec![(
                http::HeaderName::from_static("version"),
                ValueMatch::Exact("two".into()),
            )],
            query: vec![("animal".into(), ValueMatch::Exact("whale".into()))],
            path: None,
        };
        let get = http::Method::GET;
        // Header names in any case; the query's names as sent.
        assert!(c.hold(&get, &headers(&[("Version", "two")]), Some("animal=whale")));
        assert!(!c.hold(
            &http::Method::POST,
            &headers(&[("version", "two")]),
            Some("animal=whale")
        ));
        assert!(!c.hold(&get, &headers(&[("version", "one")]), Some("animal=whale")));
        assert!(!c.hold(&get, &headers(&[("version", "two")]), Some("ANIMAL=whale")));
        assert!(!c.hold(&get, &headers(&[("version", "two")]), None));
        // The first value of a repeated parameter.
        assert!(c.hold(
            &get,
            &headers(&[("version", "two")]),
            Some("x=1&animal=whale&animal=dolphin")
        ));
        assert!(!c.hold(
            &get,
            &headers(&[("version", "two")]),
            Some("animal=dolphin&animal=whale")
        ));
        assert!(Conditions::default().hold(&get, &http::HeaderMap::new(), None));
    }

    #[test]
    fn a_repeated_header_matches_by_any_value() {
        let c = Conditions {
            headers: vec![(
                http::HeaderName::from_static("color"),
                ValueMatch::Regex(regex::Regex::new("^(?:.*bl(ue|ack))$").unwrap()),
            )],
            ..Default::default()
        };
        let get = http::Method::GET;
        assert!(c.hold(
            &get,
            &headers(&[("color", "red"), ("color", "navyblue")]),
            None
        ));
        assert!(!c.hold(&get, &headers(&[("color", "red")]), None));
        assert!(c.needs_request());
        assert!(!Conditions::default().needs_request());
    }
}
