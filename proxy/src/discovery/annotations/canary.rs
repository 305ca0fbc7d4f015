//! ingress-nginx's finer canary annotations, parsed into typed rules:
//! `canary-by-header-value`, `canary-by-header-pattern` and
//! `canary-by-cookie` (`canary`, `canary-weight`, `-weight-total` and
//! `-by-header` are read beside the other annotations).
//!
//! Values are checked as ingress-nginx's validators check them
//! (`internal/ingress/annotations/canary/main.go`: a value and a cookie
//! name of letters, digits and `-._~/:` once spaces are removed, a pattern
//! of those and regex punctuation). A refused value is a problem naming
//! the annotation, and the canary keeps its other rules, as ingress-nginx
//! reads a refused value as unset. The pattern is compiled here, once per
//! translation; one the regex crate cannot compile is refused the same way.

use super::AS_INGRESS_NGINX;
use crate::spec::{CanaryRules, HeaderPattern, HeaderRule};

/// What an Ingress's finer canary annotations say.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CanaryNotes {
    /// `canary-by-header-value`.
    header_value: Option<Box<[u8]>>,
    /// `canary-by-header-pattern`, compiled.
    header_pattern: Option<HeaderPattern>,
    /// `canary-by-cookie`.
    cookie: Option<Box<str>>,
}

impl CanaryNotes {
    /// The rules, combined as ingress-nginx's balancer combines them: a
    /// header value, else a header pattern, else `always` / `never`.
    pub fn rules(&self) -> CanaryRules {
        let header = match (&self.header_value, &self.header_pattern) {
            (Some(v), _) => HeaderRule::Value(v.clone()),
            (None, Some(p)) => HeaderRule::Pattern(p.clone()),
            (None, None) => HeaderRule::AlwaysNever,
        };
        CanaryRules {
            header,
            cookie: self.cookie.clone(),
            legacy_affinity: false,
        }
    }

    /// Reports what ingress-nginx silently ignores once every annotation is
    /// read: a value or pattern without `canary-by-header`, and a pattern
    /// beside a value.
    pub(super) fn finish(&self, has_header: bool, nginx: &str, problems: &mut Vec<String>) {
        let has_value = self.header_value.is_some();
        if !has_header && (has_value || self.header_pattern.is_some()) {
            let which = if has_value { "value" } else { "pattern" };
            problems.push(format!(
                "{nginx}canary-by-header-{which}: has no effect without {nginx}canary-by-header{AS_INGRESS_NGINX}"
            ));
        } else if has_value && self.header_pattern.is_some() {
            problems.push(format!(
                "{nginx}canary-by-header-pattern: ignored, since {nginx}canary-by-header-value is set{AS_INGRESS_NGINX}"
            ));
        }
    }
}

/// Reads one `nginx.ingress.kubernetes.io/NAME` annotation if it is one of
/// these; `false` when it is not.
pub(super) fn parse(
    notes: &mut CanaryNotes,
    key: &str,
    name: &str,
    value: &str,
    problems: &mut Vec<String>,
) -> bool {
    let v = value.trim();
    match name {
        "canary-by-header-value" => match basic(key, v) {
            // A header value holds no control bytes, which `basic` refuses.
            Ok(()) => notes.header_value = Some(v.as_bytes().into()),
            Err(e) => problems.push(e),
        },
        "canary-by-cookie" => match basic(key, v) {
            Ok(()) => notes.cookie = Some(v.into()),
            Err(e) => problems.push(e),
        },
        "canary-by-header-pattern" => {
            if v.is_empty() {
                problems.push(format!("{key}: is empty; ignored{AS_INGRESS_NGINX}"));
            } else if let Some(c) = v.chars().find(|&c| !pattern_char(c)) {
                problems.push(format!(
                    "{key}: {v:?} has {c:?}, which ingress-nginx's validator refuses; ignored{AS_INGRESS_NGINX}"
                ));
            } else {
                match HeaderPattern::new(v) {
                    Ok(p) => notes.header_pattern = Some(p),
                    Err(e) => problems.push(format!("{key}: {e}; ignored")),
                }
            }
        }
        _ => return false,
    }
    true
}

/// ingress-nginx's `BasicCharsRegex`, spaces removed first.
fn basic(key: &str, v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err(format!("{key}: is empty; ignored"));
    }
    match v.chars().find(|&c| c != ' ' && !basic_char(c)) {
        Some(c) => Err(format!(
            "{key}: {v:?} has {c:?}, which ingress-nginx's validator refuses; ignored{AS_INGRESS_NGINX}"
        )),
        None => Ok(()),
    }
}

fn basic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~/:".contains(c)
}

/// ingress-nginx's `IsValidRegex`: basic characters and regex punctuation.
fn pattern_char(c: char) -> bool {
    basic_char(c) || r"^$[](){}*+?|&=\".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NGINX: &str = "nginx.ingress.kubernetes.io/";

    fn read(pairs: &[(&str, &str)]) -> (CanaryNotes, Vec<String>) {
        super::super::read_family(parse, pairs)
    }

    #[test]
    fn value_wins_over_pattern() {
        let (n, p) = read(&[
            ("canary-by-header-value", " blue "),
            ("canary-by-header-pattern", "^b"),
            ("canary-by-cookie", "canary_user"),
        ]);
        assert!(p.is_empty(), "{p:?}");
        let r = n.rules();
        assert_eq!(r.header, HeaderRule::Value((*b"blue").into()));
        assert_eq!(r.cookie.as_deref(), Some("canary_user"));
        let mut p = Vec::new();
        n.finish(true, NGINX, &mut p);
        assert!(p[0].contains("canary-by-header-pattern: ignored"), "{p:?}");
    }

    #[test]
    fn a_pattern_alone_is_compiled() {
        let (n, p) = read(&[("canary-by-header-pattern", "^(eu|us)-west$")]);
        assert!(p.is_empty(), "{p:?}");
        match n.rules().header {
            HeaderRule::Pattern(p) => assert!(p.is_match(b"eu-west")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refused_values_leave_the_other_rules() {
        let (n, p) = read(&[
            ("canary-by-header-value", "a,b"),
            ("canary-by-header-pattern", "(unclosed"),
            ("canary-by-cookie", "bad;name"),
        ]);
        assert_eq!(n.rules(), CanaryRules::default());
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with(&format!("{NGINX}canary-by-header-value: ")));
        assert!(p[1].contains("canary-by-header-pattern") && p[1].contains("(unclosed"));
        assert!(p[2].contains("canary-by-cookie"));
        // Characters ingress-nginx's validator refuses in a pattern.
        let (n, p) = read(&[("canary-by-header-pattern", "a b#")]);
        assert!(
            n.header_pattern.is_none() && p[0].contains("refuses"),
            "{p:?}"
        );
    }

    #[test]
    fn a_value_without_the_header_is_reported() {
        let (n, _) = read(&[("canary-by-header-value", "blue")]);
        let mut p = Vec::new();
        n.finish(false, NGINX, &mut p);
        assert!(p[0].contains("has no effect without"), "{p:?}");
    }

    #[test]
    fn other_annotations_are_not_these() {
        let mut n = CanaryNotes::default();
        assert!(!parse(&mut n, "k", "canary-weight", "1", &mut Vec::new()));
    }
}
