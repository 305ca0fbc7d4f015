//! Hostnames as Gateway API compares them: a listener's hostname against
//! a route's (the names a route serves on a listener are their
//! intersection), and a name against a wildcard.
//!
//! A wildcard is `*.` and a suffix, and matches any name of one or more
//! labels before that suffix: `*.example.com` matches `foo.example.com`
//! and `foo.bar.example.com`, never `example.com` (the spec's rule, wider
//! than an Ingress's one-label wildcard).

/// The names a route serves on a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// Every name: neither the listener nor the route names any.
    Any,
    /// These, each lower-case, exact or `*.suffix`.
    Names(Vec<String>),
}

/// Whether `name` (exact, lower-case) falls under `wildcard` (`*.suffix`).
pub fn under(name: &str, wildcard: &str) -> bool {
    let Some(suffix) = wildcard.strip_prefix('*') else {
        return false;
    };
    // `suffix` starts with the dot: one label at least before it.
    name.len() > suffix.len() && name.ends_with(suffix)
}

/// The intersection of a listener's hostname and a route's hostnames;
/// `None` when they have no name in common (the route is then not served
/// on that listener: `NoMatchingListenerHostname`).
///
/// A route name under the listener's wildcard is kept; a route wildcard
/// over the listener's exact name gives the listener's name (the narrower
/// of the two); of two wildcards, the narrower one.
pub fn intersect(listener: Option<&str>, route: &[String]) -> Option<Served> {
    let listener = listener.map(str::to_ascii_lowercase);
    let route: Vec<String> = route.iter().map(|h| h.to_ascii_lowercase()).collect();
    match (listener, route.is_empty()) {
        (None, true) => Some(Served::Any),
        (None, false) => Some(Served::Names(dedup(route))),
        (Some(l), true) => Some(Served::Names(vec![l])),
        (Some(l), false) => {
            let names: Vec<String> = route.iter().filter_map(|r| common(&l, r)).collect();
            (!names.is_empty()).then(|| Served::Names(dedup(names)))
        }
    }
}

/// The narrower of two names when one covers the other.
fn common(listener: &str, route: &str) -> Option<String> {
    let lw = listener.starts_with("*.");
    let rw = route.starts_with("*.");
    let narrower = match (lw, rw) {
        (false, false) => (listener == route).then_some(route),
        (true, false) => under(route, listener).then_some(route),
        (false, true) => under(listener, route).then_some(listener),
        (true, true) => {
            if listener == route || under(&route[2..], listener) {
                Some(route)
            } else if under(&listener[2..], route) {
                Some(listener)
            } else {
                None
            }
        }
    };
    narrower.map(str::to_owned)
}

fn dedup(mut names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_wildcard_covers_one_label_or_more_never_its_own_suffix() {
        assert!(under("foo.wildcard.io", "*.wildcard.io"));
        assert!(under("foo.bar.wildcard.io", "*.wildcard.io"));
        assert!(!under("wildcard.io", "*.wildcard.io"));
        assert!(!under("foowildcard.io", "*.wildcard.io"));
        assert!(!under("foo.wildcard.io", "foo.wildcard.io"));
    }

    /// The cases of the conformance test HTTPRouteHostnameIntersection.
    #[test]
    fn the_conformance_intersections() {
        // listener-1: very.specific.com.
        let l1 = Some("very.specific.com");
        assert_eq!(
            intersect(
                l1,
                &names(&[
                    "non.matching.com",
                    "*.nonmatchingwildcard.io",
                    "very.specific.com"
                ])
            ),
            Some(Served::Names(names(&["very.specific.com"])))
        );
        // A route wildcard over the listener's name: the listener's name
        // only (foo.specific.com is not served).
        assert_eq!(
            intersect(l1, &names(&["non.matching.com", "*.specific.com"])),
            Some(Served::Names(names(&["very.specific.com"])))
        );
        // listener-2: *.wildcard.io.
        let l2 = Some("*.wildcard.io");
        assert_eq!(
            intersect(
                l2,
                &names(&[
                    "non.matching.com",
                    "wildcard.io",
                    "foo.wildcard.io",
                    "bar.wildcard.io",
                    "foo.bar.wildcard.io"
                ])
            ),
            Some(Served::Names(names(&[
                "foo.wildcard.io",
                "bar.wildcard.io",
                "foo.bar.wildcard.io"
            ])))
        );
        // listener-3: *.anotherwildcard.io, and the same wildcard.
        assert_eq!(
            intersect(
                Some("*.anotherwildcard.io"),
                &names(&["*.anotherwildcard.io"])
            ),
            Some(Served::Names(names(&["*.anotherwildcard.io"])))
        );
        // No name in common with any of the three.
        for l in [l1, l2, Some("*.anotherwildcard.io")] {
            assert_eq!(
                intersect(l, &names(&["specific.but.wrong.com", "wildcard.io"])),
                None
            );
        }
        // A listener without a hostname takes the route's names, and the
        // other way round.
        assert_eq!(
            intersect(None, &names(&["First.com", "sub.first.com"])),
            Some(Served::Names(names(&["first.com", "sub.first.com"])))
        );
        assert_eq!(
            intersect(l2, &[]),
            Some(Served::Names(names(&["*.wildcard.io"])))
        );
        assert_eq!(intersect(None, &[]), Some(Served::Any));
    }

    #[test]
    fn of_two_wildcards_the_narrower_is_served() {
        assert_eq!(
            intersect(Some("*.example.com"), &names(&["*.foo.example.com"])),
            Some(Served::Names(names(&["*.foo.example.com"])))
        );
        assert_eq!(
            intersect(Some("*.foo.example.com"), &names(&["*.example.com"])),
            Some(Served::Names(names(&["*.foo.example.com"])))
        );
        assert_eq!(intersect(Some("*.foo.com"), &names(&["*.bar.com"])), None);
    }
}
