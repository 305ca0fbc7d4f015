//! Gateway API's routes on one host: every match of every HTTPRoute rule
//! attached there, each a path (Exact, PathPrefix or a regex) and maybe
//! conditions on the method, headers and query, in the spec's order of
//! precedence:
//!
//! 1. an Exact path before a PathPrefix, a PathPrefix before a regex;
//! 2. the longer path first;
//! 3. a method match first;
//! 4. more header matches first;
//! 5. more query parameter matches first;
//! 6. then the order the routes came in (the oldest HTTPRoute first, by
//!    namespace and name, rule by rule), which the build keeps.
//!
//! A request takes the first whose path and conditions hold. Unlike the
//! Ingress table ([`super::PathTable`], a hash probe per path element), this
//! is a scan: a host's Gateway API rules are tens, and a shorter path whose
//! conditions hold must win over a longer one whose do not, which no
//! index by path alone can tell.

use std::sync::Arc;

use crate::spec::{Conditions, PathType};

/// A request as the rules look at it.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a http::Method,
    pub headers: &'a http::HeaderMap,
    pub query: Option<&'a str>,
}

/// What the rules say of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// This route's index.
    Route(u32),
    /// A rule would look at the method, headers or query, which the caller
    /// did not give (the fast path's lookup): ask again with them.
    NeedsRequest,
    None,
}

#[derive(Debug, Default)]
pub struct Rules {
    candidates: Vec<Candidate>,
    /// Some rule looks at more than the path.
    needs_request: bool,
}

#[derive(Debug)]
struct Candidate {
    kind: Kind,
    /// Exact: the path; Prefix: without its trailing `/` (`""` for `/`).
    path: Box<str>,
    conditions: Arc<Conditions>,
    route: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Exact,
    Prefix,
    Regex,
}

impl Rules {
    /// Adds a match of route `route`. A regex path is in `conditions`.
    pub fn insert(
        &mut self,
        path: &str,
        path_type: PathType,
        conditions: Arc<Conditions>,
        route: u32,
    ) {
        let kind = match (&conditions.path, path_type) {
            (Some(_), _) => Kind::Regex,
            (None, PathType::Exact) => Kind::Exact,
            (None, _) => Kind::Prefix,
        };
        let path = match kind {
            Kind::Prefix => path.trim_end_matches('/'),
            _ => path,
        };
        self.needs_request |= conditions.needs_request();
        self.candidates.push(Candidate {
            kind,
            path: path.into(),
            conditions,
            route,
        });
    }

    /// Puts the matches in the order of precedence (stable: the order they
    /// came in breaks ties).
    pub fn finish(&mut self) {
        self.candidates.sort_by_key(|c| {
            (
                c.kind,
                std::cmp::Reverse(c.path.len()),
                c.conditions.method.is_none(),
                std::cmp::Reverse(c.conditions.headers.len()),
                std::cmp::Reverse(c.conditions.query.len()),
            )
        });
    }

    /// The route for a request to `path`; `request`, when the caller has
    /// it, for the rules that look at more.
    pub fn lookup(&self, path: &str, request: Option<&RequestView<'_>>) -> Found {
        if self.needs_request && request.is_none() {
            return Found::NeedsRequest;
        }
        for c in &self.candidates {
            let path_holds = match c.kind {
                Kind::Exact => *c.path == *path,
                Kind::Prefix => path
                    .strip_prefix(&*c.path)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
                Kind::Regex => c.conditions.path.as_ref().is_some_and(|r| r.is_match(path)),
            };
            if !path_holds {
                continue;
            }
            let holds = match request {
                Some(r) => c.conditions.hold(r.method, r.headers, r.query),
                // Only without rules that need it.
                None => true,
            };
            if holds {
                return Found::Route(c.route);
            }
        }
        Found::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ValueMatch;

    fn header(name: &'static str, value: &str) -> (http::HeaderName, ValueMatch) {
        (
            http::HeaderName::from_static(name),
            ValueMatch::Exact(value.into()),
        )
    }

    fn cond(
        method: Option<http::Method>,
        headers: &[(&'static str, &str)],
        query: &[(&str, &str)],
    ) -> Arc<Conditions> {
        Arc::new(Conditions {
            method,
            headers: headers.iter().map(|(n, v)| header(n, v)).collect(),
            query: query
                .iter()
                .map(|(n, v)| ((*n).into(), ValueMatch::Exact((*v).into())))
                .collect(),
            path: None,
        })
    }

    fn ask(
        rules: &Rules,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Option<u32> {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let mut h = http::HeaderMap::new();
        for (n, v) in headers {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let method: http::Method = method.parse().unwrap();
        let view = RequestView {
            method: &method,
            headers: &h,
            query,
        };
        match rules.lookup(path, Some(&view)) {
            Found::Route(r) => Some(r),
            Found::None => None,
            Found::NeedsRequest => panic!("asked with the request"),
        }
    }

    /// HTTPRouteMatching: more header matches beat an equal prefix, and a
    /// prefix matches by path element.
    #[test]
    fn the_conformance_matching_cases() {
        let mut r = Rules::default();
        // Rule 1 (route 0): PathPrefix / or header version=one.
        r.insert("/", PathType::Prefix, cond(None, &[], &[]), 0);
        r.insert(
            "/",
            PathType::Prefix,
            cond(None, &[("version", "one")], &[]),
            0,
        );
        // Rule 2 (route 1): PathPrefix /v2 or header version=two.
        r.insert("/v2", PathType::Prefix, cond(None, &[], &[]), 1);
        r.insert(
            "/",
            PathType::Prefix,
            cond(None, &[("version", "two")], &[]),
            1,
        );
        r.finish();
        for (path, headers, want) in [
            ("/", &[][..], 0),
            ("/example", &[], 0),
            ("/", &[("version", "one")], 0),
            ("/v2", &[], 1),
            ("/v2/example", &[], 1),
            ("/", &[("version", "two")], 1),
            ("/v2/", &[], 1),
            ("/v2example", &[], 0),
            ("/foo/v2/example", &[], 0),
        ] {
            assert_eq!(
                ask(&r, "GET", path, headers),
                Some(want),
                "{path} {headers:?}"
            );
        }
    }

    /// HTTPRouteMethodMatching: the path before the method, the method
    /// before headers.
    #[test]
    fn the_conformance_method_cases() {
        use http::Method;
        let mut r = Rules::default();
        let p = |r: &mut Rules, path: &str, c, route| r.insert(path, PathType::Prefix, c, route);
        p(&mut r, "/", cond(Some(Method::POST), &[], &[]), 1);
        p(&mut r, "/", cond(Some(Method::GET), &[], &[]), 2);
        p(&mut r, "/path1", cond(Some(Method::GET), &[], &[]), 1);
        p(
            &mut r,
            "/",
            cond(Some(Method::PUT), &[("version", "one")], &[]),
            2,
        );
        p(
            &mut r,
            "/path2",
            cond(Some(Method::POST), &[("version", "two")], &[]),
            3,
        );
        p(&mut r, "/path3", cond(Some(Method::PATCH), &[], &[]), 1);
        p(
            &mut r,
            "/path4",
            cond(Some(Method::DELETE), &[("version", "three")], &[]),
            1,
        );
        p(&mut r, "/path5", cond(None, &[], &[]), 1);
        p(&mut r, "/", cond(Some(Method::PATCH), &[], &[]), 2);
        p(&mut r, "/", cond(None, &[("version", "four")], &[]), 3);
        r.finish();
        for (method, path, headers, want) in [
            ("POST", "/", &[][..], Some(1)),
            ("GET", "/", &[], Some(2)),
            ("HEAD", "/", &[], None),
            ("GET", "/path1", &[], Some(1)),
            ("PUT", "/", &[("version", "one")], Some(2)),
            ("POST", "/path2", &[("version", "two")], Some(3)),
            ("PATCH", "/path3", &[], Some(1)),
            ("DELETE", "/path4", &[("version", "three")], Some(1)),
            ("PUT", "/", &[], None),
            ("DELETE", "/path4", &[], None),
            ("PATCH", "/path5", &[], Some(1)),
            ("PATCH", "/", &[("version", "four")], Some(2)),
        ] {
            assert_eq!(
                ask(&r, method, path, headers),
                want,
                "{method} {path} {headers:?}"
            );
        }
    }

    /// HTTPRouteQueryParamMatching: the path beats the query, a header
    /// beats the query, and names and values are case-sensitive.
    #[test]
    fn the_conformance_query_cases() {
        let mut r = Rules::default();
        let p = |r: &mut Rules, path: &str, c, route| r.insert(path, PathType::Prefix, c, route);
        p(&mut r, "/", cond(None, &[], &[("animal", "whale")]), 1);
        p(&mut r, "/", cond(None, &[], &[("animal", "dolphin")]), 2);
        p(
            &mut r,
            "/",
            cond(None, &[], &[("animal", "dolphin"), ("color", "blue")]),
            3,
        );
        p(&mut r, "/", cond(None, &[], &[("ANIMAL", "Whale")]), 3);
        p(&mut r, "/path1", cond(None, &[], &[("animal", "whale")]), 1);
        p(
            &mut r,
            "/",
            cond(None, &[("version", "one")], &[("animal", "whale")]),
            2,
        );
        p(
            &mut r,
            "/path2",
            cond(None, &[("version", "two")], &[("animal", "whale")]),
            3,
        );
        p(&mut r, "/path3", cond(None, &[], &[("animal", "shark")]), 1);
        p(
            &mut r,
            "/path4",
            cond(None, &[("version", "three")], &[("animal", "kraken")]),
            1,
        );
        p(&mut r, "/path5", cond(None, &[], &[]), 1);
        p(&mut r, "/", cond(None, &[], &[("animal", "hydra")]), 2);
        p(&mut r, "/", cond(None, &[("version", "four")], &[]), 3);
        r.finish();
        for (path, headers, want) in [
            ("/?animal=whale", &[][..], Some(1)),
            ("/?animal=dolphin", &[], Some(2)),
            ("/?animal=dolphin&color=blue", &[], Some(3)),
            ("/?ANIMAL=Whale", &[], Some(3)),
            ("/?animal=whale&otherparam=irrelevant", &[], Some(1)),
            ("/?animal=dolphin&color=yellow", &[], Some(2)),
            ("/?color=blue", &[], None),
            ("/?animal=dog", &[], None),
            ("/?animal=whaledolphin", &[], None),
            ("/", &[], None),
            ("/path1?animal=whale", &[], Some(1)),
            ("/?animal=whale", &[("version", "one")], Some(2)),
            ("/path2?animal=whale", &[("version", "two")], Some(3)),
            ("/path3?animal=shark", &[], Some(1)),
            ("/path4?animal=kraken", &[("version", "three")], Some(1)),
            ("/?animal=shark", &[], None),
            ("/path4?animal=kraken", &[], None),
            ("/path5?animal=hydra", &[], Some(1)),
            ("/?animal=hydra", &[("version", "four")], Some(3)),
        ] {
            assert_eq!(ask(&r, "GET", path, headers), want, "{path} {headers:?}");
        }
    }

    /// HTTPRoutePathMatchOrder and HTTPRouteExactPathMatching.
    #[test]
    fn exact_before_prefix_and_the_longer_first() {
        let mut r = Rules::default();
        let none = || cond(None, &[], &[]);
        r.insert("/match", PathType::Exact, none(), 1);
        r.insert("/match/exact", PathType::Exact, none(), 2);
        r.insert("/match/exact/one", PathType::Exact, none(), 3);
        r.insert("/match/", PathType::Prefix, none(), 3);
        r.insert("/match/prefix/", PathType::Prefix, none(), 1);
        r.insert("/match/prefix/one", PathType::Prefix, none(), 2);
        r.finish();
        for (path, want) in [
            ("/match/exact/one", Some(3)),
            ("/match/exact", Some(2)),
            ("/match", Some(1)),
            ("/match/prefix/one/any", Some(2)),
            ("/match/prefix/any", Some(1)),
            ("/match/any", Some(3)),
            ("/matchy", None),
            ("/", None),
        ] {
            assert_eq!(ask(&r, "GET", path, &[]), want, "{path}");
        }
        // Nothing here needs more than the path.
        assert_eq!(r.lookup("/match", None), Found::Route(1));
    }

    #[test]
    fn without_the_request_rules_that_need_it_ask_for_it() {
        let mut r = Rules::default();
        r.insert(
            "/",
            PathType::Prefix,
            cond(None, &[("version", "one")], &[]),
            0,
        );
        r.finish();
        assert_eq!(r.lookup("/", None), Found::NeedsRequest);
    }
}
