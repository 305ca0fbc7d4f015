//! ingress-nginx's path annotations, parsed into typed values:
//! `use-regex`, `rewrite-target`, `app-root`, `permanent-redirect` (+
//! `-code`), `temporal-redirect` (+ `-code`) and `from-to-www-redirect`.
//!
//! Values are checked as ingress-nginx's annotation validators check them
//! (`internal/ingress/annotations/{rewrite,redirect}`), and a bad one is a
//! problem naming the annotation, never fatal: a bad redirect code keeps
//! ingress-nginx's default, anything else is ignored.

use http::{HeaderValue, StatusCode};

use crate::spec::{app_root, Redirect, RewriteTarget};

/// What an Ingress's path annotations say.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PathNotes {
    /// `use-regex: "true"`: its paths are regular expressions, and every
    /// path of its hosts becomes one.
    pub use_regex: bool,
    /// `rewrite-target`: the path sent upstream, with `$N` groups.
    pub rewrite_target: Option<RewriteTarget>,
    /// `app-root`: where `/` of its hosts is redirected (302).
    pub app_root: Option<Box<str>>,
    /// `from-to-www-redirect: "true"`: the other name of each of its hosts
    /// (with or without `www.`) is redirected to it.
    pub from_to_www: bool,
    permanent: Option<HeaderValue>,
    permanent_code: Option<StatusCode>,
    temporal: Option<HeaderValue>,
    temporal_code: Option<StatusCode>,
}

impl PathNotes {
    /// The redirect its paths answer with: `temporal-redirect` first (its
    /// code, else 302), then `permanent-redirect` (its code, else 301), as
    /// ingress-nginx's redirect parser reads them.
    pub fn redirect(&self) -> Option<Redirect> {
        if let Some(location) = &self.temporal {
            return Some(Redirect::To {
                status: self.temporal_code.unwrap_or(StatusCode::FOUND),
                location: location.clone(),
            });
        }
        self.permanent.as_ref().map(|location| Redirect::To {
            status: self.permanent_code.unwrap_or(StatusCode::MOVED_PERMANENTLY),
            location: location.clone(),
        })
    }

    /// The path `path` of this Ingress is rewritten: a target is set and
    /// is not the path itself (ingress-nginx's `needsRewrite`).
    pub fn rewrites(&self, path: &str) -> bool {
        self.rewrite_target
            .as_ref()
            .is_some_and(|t| t.as_str() != path)
    }

    /// The path `path` of this Ingress switches its host to regex matching
    /// (ingress-nginx's `enforceRegexModifier`).
    pub fn regex_for(&self, path: &str) -> bool {
        self.use_regex || self.rewrites(path)
    }
}

/// Reads one `nginx.ingress.kubernetes.io/NAME` annotation if it is a path
/// annotation; `false` when it is not one.
pub(super) fn parse(
    notes: &mut PathNotes,
    key: &str,
    name: &str,
    value: &str,
    problems: &mut Vec<String>,
) -> bool {
    let v = value.trim();
    match name {
        "use-regex" => match v {
            "true" => notes.use_regex = true,
            "false" => notes.use_regex = false,
            other => problems.push(format!("{key}: {other:?} is not true or false")),
        },
        "from-to-www-redirect" => match v {
            "true" => notes.from_to_www = true,
            "false" => notes.from_to_www = false,
            other => problems.push(format!("{key}: {other:?} is not true or false")),
        },
        "rewrite-target" => match v.parse::<RewriteTarget>() {
            // An empty target is no rewrite, as in ingress-nginx.
            Ok(t) if t.as_str().is_empty() => notes.rewrite_target = None,
            Ok(t) => notes.rewrite_target = Some(t),
            Err(e) => problems.push(format!("{key}: {e}; ignored")),
        },
        "app-root" => match app_root(v) {
            Ok(root) => notes.app_root = Some(root),
            Err(e) => problems.push(format!("{key}: {e}; ignored")),
        },
        "permanent-redirect" => match redirect_url(v) {
            Ok(url) => notes.permanent = Some(url),
            Err(e) => problems.push(format!("{key}: {e}; ignored")),
        },
        "temporal-redirect" => match redirect_url(v) {
            Ok(url) => notes.temporal = Some(url),
            Err(e) => problems.push(format!("{key}: {e}; ignored")),
        },
        // ingress-nginx takes 300 to 308 for permanent redirects and 300 to
        // 307 for temporal ones; nginx sends a Location only with 301, 302,
        // 303, 307 and 308 (with the others the URL is the body), so those
        // are the ones Sluice takes.
        "permanent-redirect-code" => match redirect_code(v, 308) {
            Ok(code) => notes.permanent_code = Some(code),
            Err(e) => problems.push(format!("{key}: {e}; 301 is used")),
        },
        "temporal-redirect-code" => match redirect_code(v, 307) {
            Ok(code) => notes.temporal_code = Some(code),
            Err(e) => problems.push(format!("{key}: {e}; 302 is used")),
        },
        _ => return false,
    }
    true
}

/// A redirect URL as ingress-nginx's `URLIsValidRegex` and `isValidURL`
/// take it: http or https, letters, digits and `-._~/:,?&=` only (no nginx
/// variables).
fn redirect_url(v: &str) -> Result<HeaderValue, String> {
    let lower = v.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(format!("{v:?} is not an http or https URL"));
    }
    let allowed = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(c, '-' | '.' | '_' | '~' | '/' | ':' | ',' | '?' | '&' | '=')
    };
    if !v.chars().all(allowed) {
        return Err(format!(
            "{v:?} has characters ingress-nginx refuses (letters, digits and -._~/:,?&= only)"
        ));
    }
    HeaderValue::try_from(v).map_err(|_| format!("{v:?} is not a valid Location"))
}

/// A redirect status nginx sends a Location with, up to `max`.
fn redirect_code(v: &str, max: u16) -> Result<StatusCode, String> {
    let n: u16 = v
        .parse()
        .map_err(|_| format!("{v:?} is not a whole number"))?;
    if !(300..=max).contains(&n) {
        return Err(format!("{n} is not a redirect code from 300 to {max}"));
    }
    if !matches!(n, 301 | 302 | 303 | 307 | 308) {
        return Err(format!(
            "nginx sends no Location with {n} (only 301, 302, 303, 307, 308)"
        ));
    }
    StatusCode::from_u16(n).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(pairs: &[(&str, &str)]) -> (PathNotes, Vec<String>) {
        super::super::read_family(parse, pairs)
    }

    #[test]
    fn regex_and_rewrite() {
        let (n, p) = of(&[("use-regex", "true"), ("rewrite-target", "/$2")]);
        assert!(p.is_empty(), "{p:?}");
        assert!(n.use_regex);
        assert_eq!(n.rewrite_target.as_ref().unwrap().as_str(), "/$2");
        // A target equal to the path is no rewrite, and no regex.
        let (n, _) = of(&[("rewrite-target", "/")]);
        assert!(!n.rewrites("/") && !n.regex_for("/"));
        assert!(n.rewrites("/a") && n.regex_for("/a"));
        let (n, p) = of(&[("use-regex", "yes"), ("rewrite-target", "/$uri")]);
        assert!(!n.use_regex && n.rewrite_target.is_none());
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[1].contains("rewrite-target"), "{p:?}");
    }

    #[test]
    fn redirects_and_their_codes() {
        let (n, p) = of(&[("permanent-redirect", "https://new.example.com/x?a=b")]);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            n.redirect(),
            Some(Redirect::To {
                status: StatusCode::MOVED_PERMANENTLY,
                location: HeaderValue::from_static("https://new.example.com/x?a=b"),
            })
        );
        let (n, p) = of(&[
            ("permanent-redirect", "https://a.example.com"),
            ("permanent-redirect-code", "308"),
            ("temporal-redirect", "http://b.example.com/"),
        ]);
        assert!(p.is_empty(), "{p:?}");
        // Temporal first, with its own default.
        assert_eq!(
            n.redirect(),
            Some(Redirect::To {
                status: StatusCode::FOUND,
                location: HeaderValue::from_static("http://b.example.com/"),
            })
        );
        let (n, p) = of(&[
            ("temporal-redirect", "http://b.example.com/"),
            ("temporal-redirect-code", "308"),
            ("permanent-redirect-code", "299"),
        ]);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("temporal-redirect-code") && p[0].contains("302 is used"));
        assert!(p[1].contains("permanent-redirect-code") && p[1].contains("301 is used"));
        assert_eq!(n.redirect().unwrap(), {
            Redirect::To {
                status: StatusCode::FOUND,
                location: HeaderValue::from_static("http://b.example.com/"),
            }
        });
        let (_, p) = of(&[
            ("temporal-redirect-code", "307"),
            ("permanent-redirect-code", "x"),
        ]);
        assert_eq!(p.len(), 1, "{p:?}");
        let (n, p) = of(&[
            ("permanent-redirect", "ftp://x"),
            ("temporal-redirect", "https://a/$request_uri"),
        ]);
        assert_eq!(n.redirect(), None);
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn app_root_and_www() {
        let (n, p) = of(&[("app-root", "/app1"), ("from-to-www-redirect", "true")]);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(n.app_root.as_deref(), Some("/app1"));
        assert!(n.from_to_www);
        let (n, p) = of(&[("app-root", "https://x/app1")]);
        assert!(n.app_root.is_none());
        assert!(p[0].contains("app-root"), "{p:?}");
    }
}
