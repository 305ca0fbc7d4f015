//! The paths of a regex host (ingress-nginx's `use-regex` and
//! `rewrite-target`), tried in the order ingress-nginx writes their
//! locations into nginx.conf, where the first regex that matches wins.
//!
//! ingress-nginx sorts a server's locations by the length of their path,
//! longest first, and paths of equal length by the path itself in
//! descending byte order (`controller.go`, two stable sorts: by path
//! descending, then by length descending); paths equal in both keep the
//! order the Ingresses give them (oldest Ingress first, then rule and path
//! order). The same path with the same type twice is a duplicate, and the
//! first one stays. Only hosts that have regex paths keep such a list, so
//! the lookup of every other host is untouched.

use std::cmp::Ordering;

use crate::spec::{PathType, RegexPath};

/// One regex path and its route.
#[derive(Debug)]
struct Entry {
    path: RegexPath,
    exact: bool,
    route: u32,
}

/// A host's regex paths, in the order they are tried.
#[derive(Debug, Default)]
pub struct RegexPaths {
    entries: Vec<Entry>,
}

/// ingress-nginx's location order: longer paths first, then greater paths
/// (by bytes) first. `Less` means `a` is tried before `b`.
pub fn nginx_order(a: &str, b: &str) -> Ordering {
    b.len()
        .cmp(&a.len())
        .then_with(|| b.as_bytes().cmp(a.as_bytes()))
}

impl RegexPaths {
    /// Adds a path in its place; `false` when the same path with the same
    /// type is already there (the first one stays). Exact and Prefix (or
    /// ImplementationSpecific) of one path are two locations, both prefix
    /// matches on a regex host, and the first in order wins.
    pub fn insert(&mut self, path: RegexPath, path_type: PathType, route: u32) -> bool {
        let exact = path_type == PathType::Exact;
        if self
            .entries
            .iter()
            .any(|e| e.exact == exact && e.path.source() == path.source())
        {
            return false;
        }
        // After every entry that sorts before it or equal to it: stable.
        let at = self
            .entries
            .partition_point(|e| nginx_order(e.path.source(), path.source()) != Ordering::Greater);
        self.entries.insert(at, Entry { path, exact, route });
        true
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The route of the first path that matches.
    #[inline]
    pub fn lookup(&self, path: &str) -> Option<u32> {
        self.entries
            .iter()
            .find(|e| e.path.is_match(path))
            .map(|e| e.route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(rules: &[(&str, PathType)]) -> RegexPaths {
        let mut t = RegexPaths::default();
        for (i, (p, ty)) in rules.iter().enumerate() {
            assert!(t.insert(RegexPath::new(p).unwrap(), *ty, i as u32), "{p}");
        }
        t
    }

    #[test]
    fn ordered_by_length_then_bytes_descending() {
        let mut v = vec![
            "/",
            "/foo/bar",
            "/foo/bar/(.+)",
            "/foo/bar/",
            "/a",
            "/b",
            "/foo.",
        ];
        v.sort_by(|a, b| nginx_order(a, b));
        assert_eq!(
            v,
            [
                "/foo/bar/(.+)",
                "/foo/bar/",
                "/foo/bar",
                "/foo.",
                "/b",
                "/a",
                "/"
            ]
        );
    }

    #[test]
    fn the_documentation_examples() {
        // docs/user-guide/ingress-path-matching.md, "Path Priority".
        let t = paths(&[
            ("/foo/bar", PathType::Prefix),
            ("/foo/bar/", PathType::Prefix),
            ("/foo/bar/(.+)", PathType::ImplementationSpecific),
        ]);
        assert_eq!(t.lookup("/foo/bar/1"), Some(2));
        assert_eq!(t.lookup("/foo/bar/"), Some(1));
        assert_eq!(t.lookup("/foo/bar"), Some(0));
        assert_eq!(t.lookup("/FOO/BAR"), Some(0));
        assert_eq!(t.lookup("/foo"), None);
        // "Warning": the longer regex wins over the exact-looking path.
        let t = paths(&[
            ("/foo/bar/bar", PathType::Prefix),
            ("/foo/bar/[A-Z0-9]{3}", PathType::ImplementationSpecific),
        ]);
        assert_eq!(t.lookup("/foo/bar/bar"), Some(1));
    }

    #[test]
    fn duplicates_keep_the_first_and_types_make_two() {
        let mut t = RegexPaths::default();
        let p = |s| RegexPath::new(s).unwrap();
        assert!(t.insert(p("/a"), PathType::Prefix, 0));
        assert!(!t.insert(p("/a"), PathType::ImplementationSpecific, 1));
        assert!(t.insert(p("/a"), PathType::Exact, 2));
        // Exact is a prefix match on a regex host too; the first stays.
        assert_eq!(t.lookup("/abc"), Some(0));
    }
}
