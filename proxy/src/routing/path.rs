//! Path matching with Ingress semantics.
//!
//! Exact matches the whole path. Prefix matches by path element: `/foo`
//! matches `/foo` and `/foo/bar` but not `/foobar`, and a trailing slash in
//! the rule is ignored. The longest match wins, Exact before Prefix.
//! A lookup is one hash probe per path element, never a scan of the rules,
//! so ten thousand rules cost what ten do.
//!
//! A host with ingress-nginx regex paths also keeps them in a list
//! ([`RegexPaths`]), tried between the exact rules and the prefix rules,
//! where nginx tries regex locations; other hosts never look at it.

use rustc_hash::FxHashMap;

use super::regex::RegexPaths;
use super::rules::Rules;
use crate::spec::{PathType, RegexPath};

/// The path with `.` and `..` segments resolved (RFC 3986 5.2.4), or `None`
/// when it has none (the common case, found without allocating).
///
/// Routing on `/public/../admin` as if it were under `/public` would let a
/// client reach a route by a path the backend resolves elsewhere, so the
/// proxy routes on, and forwards, the resolved path (as ingress-nginx
/// does). `..` never climbs above the root.
pub fn resolve_dots(path: &str) -> Option<String> {
    if !path.contains("/.") || !path.split('/').any(|s| s == "." || s == "..") {
        return None;
    }
    let body = path.strip_prefix('/').unwrap_or(path);
    let segments: Vec<&str> = body.split('/').collect();
    let last = segments.len().saturating_sub(1);
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                out.pop();
                trailing_slash = i == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut resolved = String::with_capacity(path.len());
    for s in &out {
        resolved.push('/');
        resolved.push_str(s);
    }
    if trailing_slash || resolved.is_empty() {
        resolved.push('/');
    }
    Some(resolved)
}

/// What [`normalize`] made of a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Normalized {
    /// Already normal (the common case, found without allocating).
    Same,
    /// The normal form, to route on and forward.
    Changed(String),
    /// A `%` not followed by two hex digits: a bad request (400), as nginx
    /// answers it.
    Invalid,
}

/// The path in its normal form (RFC 3986 6.2.2): percent-escapes of
/// unreserved characters (letters, digits, `-._~`) decoded, the hex digits
/// of the other escapes in upper case, then dot segments resolved, `%2e`
/// ones included ([`resolve_dots`]).
///
/// Routing on the raw path would let `/%61dmin` or `/public/%2e%2e/admin`
/// past a route for `/admin`, while the backend, which decodes, serves
/// `/admin`. The proxy routes on, and forwards, the normal form, so the
/// route and the backend see the same path. Escapes of reserved characters
/// (`%2F` above all) stay escaped: they are not the same path (RFC 3986
/// 2.2), and Envoy's default keeps them as well.
pub fn normalize(path: &str) -> Normalized {
    if !path.as_bytes().contains(&b'%') {
        return match resolve_dots(path) {
            Some(r) => Normalized::Changed(r),
            None => Normalized::Same,
        };
    }
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            // Up to the next escape, copied as it is.
            let end = b[i..]
                .iter()
                .position(|&c| c == b'%')
                .map_or(b.len(), |n| i + n);
            out.push_str(&path[i..end]);
            i = end;
            continue;
        }
        let (Some(&h), Some(&l)) = (b.get(i + 1), b.get(i + 2)) else {
            return Normalized::Invalid;
        };
        let (Some(hi), Some(lo)) = (hex(h), hex(l)) else {
            return Normalized::Invalid;
        };
        let c = hi << 4 | lo;
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c as char);
        } else {
            out.push('%');
            out.push(h.to_ascii_uppercase() as char);
            out.push(l.to_ascii_uppercase() as char);
        }
        i += 3;
    }
    let out = match resolve_dots(&out) {
        Some(r) => r,
        None => out,
    };
    if out == path {
        Normalized::Same
    } else {
        Normalized::Changed(out)
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The paths of one host, mapped to route indices.
#[derive(Debug, Default)]
pub struct PathTable {
    exact: FxHashMap<Box<str>, u32>,
    prefix: FxHashMap<Box<str>, u32>,
    /// Route for the `/` prefix, kept apart: it matches everything.
    root: Option<u32>,
    /// Longest prefix rule in bytes: longer path elements are skipped.
    longest_prefix: usize,
    /// Regex paths (ingress-nginx's `use-regex`), in nginx's order.
    regex: RegexPaths,
    /// Gateway API's routes on this host (`rules`), looked at before the
    /// rest; boxed, as most hosts have none.
    rules: Option<Box<Rules>>,
}

impl PathTable {
    /// Adds a rule; `false` when the same path and type is already there
    /// (the first one stays).
    pub fn insert(&mut self, path: &str, path_type: PathType, route: u32) -> bool {
        let path = path_type.normalize(path);
        match path_type {
            PathType::Exact => {
                if self.exact.contains_key(path.as_str()) {
                    return false;
                }
                self.exact.insert(path.into(), route);
            }
            PathType::Prefix | PathType::ImplementationSpecific => {
                if path == "/" {
                    if self.root.is_some() {
                        return false;
                    }
                    self.root = Some(route);
                } else {
                    if self.prefix.contains_key(path.as_str()) {
                        return false;
                    }
                    self.longest_prefix = self.longest_prefix.max(path.len());
                    self.prefix.insert(path.into(), route);
                }
            }
        }
        true
    }

    /// Adds a regex path; `false` when the same path and type is already
    /// there (the first one stays).
    pub fn insert_regex(&mut self, path: RegexPath, path_type: PathType, route: u32) -> bool {
        self.regex.insert(path, path_type, route)
    }

    /// Adds a Gateway API route's match (see `rules`); every one is kept,
    /// the earlier winning ties.
    pub fn insert_rule(
        &mut self,
        path: &str,
        path_type: PathType,
        conditions: std::sync::Arc<crate::spec::Conditions>,
        route: u32,
    ) {
        self.rules
            .get_or_insert_with(Default::default)
            .insert(path, path_type, conditions, route);
    }

    /// Puts the Gateway API matches in their order, once all are in.
    pub fn finish(&mut self) {
        if let Some(r) = &mut self.rules {
            r.finish();
        }
    }

    /// Gateway API's routes on this host, if any.
    #[inline]
    pub fn rules(&self) -> Option<&Rules> {
        self.rules.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
            && self.prefix.is_empty()
            && self.root.is_none()
            && self.regex.is_empty()
            && self.rules.is_none()
    }

    /// The route for a request path (without query).
    #[inline]
    pub fn lookup(&self, path: &str) -> Option<u32> {
        if !self.exact.is_empty() {
            if let Some(&r) = self.exact.get(path) {
                return Some(r);
            }
        }
        // As nginx: exact locations, then regex ones in order, then the
        // longest prefix.
        if !self.regex.is_empty() {
            if let Some(r) = self.regex.lookup(path) {
                return Some(r);
            }
        }
        if !self.prefix.is_empty() {
            // Try the whole path (minus a trailing slash), then cut one path
            // element at a time.
            let mut candidate = path.trim_end_matches('/');
            while candidate.len() > 1 {
                if candidate.len() <= self.longest_prefix {
                    if let Some(&r) = self.prefix.get(candidate) {
                        return Some(r);
                    }
                }
                match candidate.rfind('/') {
                    Some(i) => candidate = candidate[..i].trim_end_matches('/'),
                    None => break,
                }
            }
        }
        self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rules: &[(&str, PathType)]) -> PathTable {
        let mut t = PathTable::default();
        for (i, (p, ty)) in rules.iter().enumerate() {
            assert!(t.insert(p, *ty, i as u32));
        }
        t
    }

    #[test]
    fn prefix_matches_by_element() {
        let t = table(&[("/foo", PathType::Prefix)]);
        assert_eq!(t.lookup("/foo"), Some(0));
        assert_eq!(t.lookup("/foo/"), Some(0));
        assert_eq!(t.lookup("/foo/bar"), Some(0));
        assert_eq!(t.lookup("/foobar"), None);
        assert_eq!(t.lookup("/"), None);
        assert_eq!(t.lookup("/fo"), None);
    }

    #[test]
    fn trailing_slash_in_rule_is_ignored() {
        let t = table(&[("/foo/", PathType::Prefix)]);
        assert_eq!(t.lookup("/foo"), Some(0));
        assert_eq!(t.lookup("/foo/x"), Some(0));
    }

    #[test]
    fn longest_match_wins_and_exact_first() {
        let t = table(&[
            ("/", PathType::Prefix),
            ("/a", PathType::Prefix),
            ("/a/b", PathType::ImplementationSpecific),
            ("/a/b", PathType::Exact),
        ]);
        assert_eq!(t.lookup("/a/b"), Some(3));
        assert_eq!(t.lookup("/a/b/"), Some(2));
        assert_eq!(t.lookup("/a/b/c"), Some(2));
        assert_eq!(t.lookup("/a/bc"), Some(1));
        assert_eq!(t.lookup("/a"), Some(1));
        assert_eq!(t.lookup("/z"), Some(0));
        assert_eq!(t.lookup("/"), Some(0));
    }

    #[test]
    fn exact_is_exact() {
        let t = table(&[("/x", PathType::Exact)]);
        assert_eq!(t.lookup("/x"), Some(0));
        assert_eq!(t.lookup("/x/"), None);
        assert_eq!(t.lookup("/x/y"), None);
    }

    #[test]
    fn duplicates_keep_the_first() {
        let mut t = PathTable::default();
        assert!(t.insert("/a", PathType::Prefix, 0));
        assert!(!t.insert("/a/", PathType::ImplementationSpecific, 1));
        assert_eq!(t.lookup("/a"), Some(0));
    }

    #[test]
    fn dot_segments_are_resolved() {
        assert_eq!(resolve_dots("/a/b"), None);
        assert_eq!(resolve_dots("/a/.hidden/b"), None);
        assert_eq!(resolve_dots("/public/../admin").as_deref(), Some("/admin"));
        assert_eq!(resolve_dots("/a/./b").as_deref(), Some("/a/b"));
        assert_eq!(resolve_dots("/a/b/..").as_deref(), Some("/a/"));
        assert_eq!(resolve_dots("/a/.").as_deref(), Some("/a/"));
        assert_eq!(
            resolve_dots("/../../etc/passwd").as_deref(),
            Some("/etc/passwd")
        );
        assert_eq!(resolve_dots("/..").as_deref(), Some("/"));
        assert_eq!(resolve_dots("/a/../b/").as_deref(), Some("/b/"));
    }

    #[test]
    fn paths_are_normalized_before_routing() {
        let changed = |p: &str| match normalize(p) {
            Normalized::Changed(n) => n,
            other => panic!("{p:?}: {other:?}"),
        };
        assert_eq!(normalize("/a/b?"), Normalized::Same);
        assert_eq!(normalize("/a%2Fb"), Normalized::Same);
        assert_eq!(normalize("/caf%C3%A9"), Normalized::Same);
        // Unreserved characters decoded: the same path (RFC 3986 6.2.2.2).
        assert_eq!(changed("/%61dmin"), "/admin");
        assert_eq!(changed("/%41%2d%5F%7e%30"), "/A-_~0");
        // Other escapes kept, in upper case.
        assert_eq!(changed("/a%2fb"), "/a%2Fb");
        assert_eq!(changed("/caf%c3%a9"), "/caf%C3%A9");
        // Encoded dots are dots: resolved after decoding.
        assert_eq!(changed("/public/%2e%2e/admin"), "/admin");
        assert_eq!(changed("/public/%2E./admin"), "/admin");
        assert_eq!(changed("/a/%2e/b"), "/a/b");
        assert_eq!(changed("/public/../admin"), "/admin");
        // Broken escapes are refused.
        for bad in ["/%", "/%4", "/%zz", "/a%2", "/%g1"] {
            assert_eq!(normalize(bad), Normalized::Invalid, "{bad:?}");
        }
        // The normal form is normal.
        for p in ["/%61dmin", "/a%2fb/%2e%2e/c", "/x/%7E/./y"] {
            assert_eq!(normalize(&changed(p)), Normalized::Same, "{p:?}");
        }
    }

    #[test]
    fn regex_paths_come_between_exact_and_prefix() {
        let mut t = table(&[("/", PathType::Prefix), ("/x", PathType::Exact)]);
        let rx = RegexPath::new("/a.c").unwrap();
        assert!(t.insert_regex(rx.clone(), PathType::Prefix, 2));
        assert!(!t.insert_regex(rx, PathType::ImplementationSpecific, 3));
        assert_eq!(t.lookup("/x"), Some(1));
        assert_eq!(t.lookup("/ABC/d"), Some(2));
        assert_eq!(t.lookup("/abcdef"), Some(2));
        assert_eq!(t.lookup("/z"), Some(0));
    }

    #[test]
    fn repeated_slashes_do_not_loop() {
        let t = table(&[("/a", PathType::Prefix)]);
        assert_eq!(t.lookup("/a//b///"), Some(0));
        assert_eq!(t.lookup("//"), None);
        assert_eq!(t.lookup(""), None);
    }
}
