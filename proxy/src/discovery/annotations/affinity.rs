//! ingress-nginx's cookie affinity annotations, parsed into typed settings:
//! `affinity`, `affinity-mode`, `affinity-canary-behavior` and the
//! `session-cookie-*` family.
//!
//! Values are checked as ingress-nginx's validators check them
//! (`internal/ingress/annotations/sessionaffinity/main.go`): `affinity`
//! only `cookie`, the mode `balanced` or `persistent`, a cookie name and
//! domain of letters, digits and `-._~/:`, a path of those and `,?&=`,
//! booleans as Go's `ParseBool` reads them. A refused value is a problem
//! naming the annotation, and the setting keeps ingress-nginx's default,
//! as ingress-nginx reads a refused value as unset. Two of its quirks are
//! not copied, and said where they apply: a lower-case `samesite` (which its
//! cookie library silently drops) is written as browsers expect it, and a
//! max-age or expires that is not a whole number is refused rather than
//! half-matched by its unanchored regex.

use super::AS_INGRESS_NGINX;
use crate::spec::{AffinityMode, AffinitySpec, SameSite};

/// What an Ingress's affinity annotations say.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AffinityNotes {
    /// `affinity: cookie`.
    cookie: bool,
    mode: AffinityMode,
    /// `affinity-canary-behavior: legacy` (read on canary Ingresses).
    legacy_canary: bool,
    name: Option<Box<str>>,
    path: Option<Box<str>>,
    domain: Option<Box<str>>,
    max_age: Option<i64>,
    expires: Option<i64>,
    same_site: Option<SameSite>,
    conditional_same_site_none: bool,
    secure: bool,
    change_on_failure: bool,
}

impl AffinityNotes {
    /// The route's affinity for an Ingress path written as `path`; `None`
    /// without `affinity: cookie`. `regex`: the path is a regular
    /// expression (`use-regex`), which makes a poor cookie `Path`: as
    /// ingress-nginx does, it is used as written and a missing
    /// `session-cookie-path` is reported.
    pub fn spec(
        &self,
        path: &str,
        regex: bool,
        problems: &mut Vec<String>,
    ) -> Option<AffinitySpec> {
        if !self.cookie {
            return None;
        }
        if regex && self.path.is_none() {
            problems.push(format!(
                "{}session-cookie-path should be set when use-regex is true: the cookie's Path is the regex {path:?} as written, which browsers match literally{}",
                super::NGINX,
                super::AS_INGRESS_NGINX
            ));
        }
        let mut spec = AffinitySpec::new(self.path.as_deref().unwrap_or(path));
        spec.mode = self.mode;
        if let Some(n) = &self.name {
            spec.name = n.clone();
        }
        spec.domain = self.domain.clone();
        spec.max_age = self.max_age;
        spec.expires = self.expires;
        spec.same_site = self.same_site;
        spec.conditional_same_site_none = self.conditional_same_site_none;
        spec.secure = self.secure;
        spec.change_on_failure = self.change_on_failure;
        Some(spec)
    }

    /// `affinity-canary-behavior: legacy`: this canary Ingress's backend
    /// ignores the main route's cookie affinity.
    pub fn legacy_canary(&self) -> bool {
        self.legacy_canary
    }
}

/// Reads one `nginx.ingress.kubernetes.io/NAME` annotation if it is one of
/// these; `false` when it is not.
pub(super) fn parse(
    notes: &mut AffinityNotes,
    key: &str,
    name: &str,
    value: &str,
    problems: &mut Vec<String>,
) -> bool {
    let v = value.trim();
    match name {
        "affinity" => match v {
            "cookie" => notes.cookie = true,
            _ => problems.push(format!(
                "{key}: {v:?} is not \"cookie\", the only affinity ingress-nginx has; no affinity{AS_INGRESS_NGINX}"
            )),
        },
        "affinity-mode" => match v {
            "balanced" => notes.mode = AffinityMode::Balanced,
            "persistent" => notes.mode = AffinityMode::Persistent,
            _ => problems.push(format!(
                "{key}: {v:?} is not balanced or persistent; balanced is used{AS_INGRESS_NGINX}"
            )),
        },
        "affinity-canary-behavior" => match v {
            "sticky" => notes.legacy_canary = false,
            "legacy" => notes.legacy_canary = true,
            _ => problems.push(format!(
                "{key}: {v:?} is not sticky or legacy; sticky is used{AS_INGRESS_NGINX}"
            )),
        },
        "session-cookie-name" => {
            if let Some(n) = chars(key, v, "", problems) {
                notes.name = Some(n);
            }
        }
        "session-cookie-path" => {
            if let Some(p) = chars(key, v, ",?&=", problems) {
                notes.path = Some(p);
            }
        }
        "session-cookie-domain" => {
            if let Some(d) = chars(key, v, "", problems) {
                notes.domain = Some(d);
            }
        }
        "session-cookie-max-age" => notes.max_age = seconds(key, v, problems),
        "session-cookie-expires" => notes.expires = seconds(key, v, problems),
        "session-cookie-samesite" => {
            notes.same_site = match v.to_ascii_lowercase().as_str() {
                "strict" => Some(SameSite::Strict),
                "lax" => Some(SameSite::Lax),
                "none" => Some(SameSite::None),
                _ => {
                    problems.push(format!(
                        "{key}: {v:?} is not None, Lax or Strict; no SameSite attribute"
                    ));
                    None
                }
            }
        }
        "session-cookie-conditional-samesite-none" => {
            if let Some(b) = go_bool(key, v, problems) {
                notes.conditional_same_site_none = b;
            }
        }
        "session-cookie-secure" => {
            if let Some(b) = go_bool(key, v, problems) {
                notes.secure = b;
            }
        }
        "session-cookie-change-on-failure" => {
            if let Some(b) = go_bool(key, v, problems) {
                notes.change_on_failure = b;
            }
        }
        // Removed from ingress-nginx (0.24): the cookie's value is a key,
        // not a digest of the endpoint, whatever the hash asked for.
        "session-cookie-hash" => problems.push(format!(
            "{key}: deprecated: the cookie holds a key, not a digest of the endpoint; ignored{AS_INGRESS_NGINX}"
        )),
        _ => return false,
    }
    true
}

/// A value of letters, digits, `-._~/:` and `extra` (ingress-nginx's
/// `BasicCharsRegex`, or `URLIsValidRegex` with `,?&=`); empty is unset.
fn chars(key: &str, v: &str, extra: &str, problems: &mut Vec<String>) -> Option<Box<str>> {
    if v.is_empty() {
        problems.push(format!("{key}: is empty; ignored{AS_INGRESS_NGINX}"));
        return None;
    }
    match v
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "-._~/:".contains(c) || extra.contains(c)))
    {
        Some(c) => {
            problems.push(format!(
                "{key}: {v:?} has {c:?}, which ingress-nginx's validator refuses; ignored{AS_INGRESS_NGINX}"
            ));
            None
        }
        None => Some(v.into()),
    }
}

/// A whole number of seconds, negative allowed (a negative `Max-Age`
/// deletes the cookie, as it would behind ingress-nginx).
fn seconds(key: &str, v: &str, problems: &mut Vec<String>) -> Option<i64> {
    match v.parse::<i64>() {
        Ok(n) => Some(n),
        Err(_) => {
            problems.push(format!(
                "{key}: {v:?} is not a whole number of seconds; ignored{AS_INGRESS_NGINX}"
            ));
            None
        }
    }
}

/// Go's `strconv.ParseBool`, which ingress-nginx reads booleans with.
fn go_bool(key: &str, v: &str, problems: &mut Vec<String>) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => {
            problems.push(format!(
                "{key}: {v:?} is not true or false; ignored{AS_INGRESS_NGINX}"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notes(pairs: &[(&str, &str)]) -> (AffinityNotes, Vec<String>) {
        super::super::read_family(parse, pairs)
    }

    #[test]
    fn nothing_without_affinity_cookie() {
        let (n, p) = notes(&[("session-cookie-name", "route")]);
        assert!(p.is_empty());
        assert_eq!(n.spec("/", false, &mut Vec::new()), None);
        let (n, p) = notes(&[("affinity", "Cookie")]);
        assert_eq!(p.len(), 1, "case-sensitive, as ingress-nginx's validator");
        assert_eq!(n.spec("/", false, &mut Vec::new()), None);
    }

    #[test]
    fn defaults_are_ingress_nginx_s() {
        let (n, p) = notes(&[("affinity", "cookie")]);
        assert!(p.is_empty());
        let s = n.spec("/app", false, &mut Vec::new()).unwrap();
        assert_eq!(s, AffinitySpec::new("/app"));
        assert_eq!(&*s.name, "INGRESSCOOKIE");
        assert_eq!(s.mode, AffinityMode::Balanced);
        assert!(!s.secure && !s.change_on_failure);
    }

    #[test]
    fn every_setting_is_read() {
        let (n, p) = notes(&[
            ("affinity", " cookie "),
            ("affinity-mode", "persistent"),
            ("session-cookie-name", "route"),
            ("session-cookie-path", "/shop"),
            ("session-cookie-domain", ".example.com"),
            ("session-cookie-max-age", "172800"),
            ("session-cookie-expires", "-1"),
            ("session-cookie-samesite", "lax"),
            ("session-cookie-conditional-samesite-none", "True"),
            ("session-cookie-secure", "t"),
            ("session-cookie-change-on-failure", "1"),
        ]);
        assert!(p.is_empty(), "{p:?}");
        let s = n.spec("/ignored", false, &mut Vec::new()).unwrap();
        assert_eq!(s.mode, AffinityMode::Persistent);
        assert_eq!(&*s.name, "route");
        assert_eq!(&*s.path, "/shop");
        assert_eq!(s.domain.as_deref(), Some(".example.com"));
        assert_eq!((s.max_age, s.expires), (Some(172_800), Some(-1)));
        assert_eq!(s.same_site, Some(SameSite::Lax));
        assert!(s.conditional_same_site_none && s.secure && s.change_on_failure);
    }

    #[test]
    fn refused_values_keep_the_defaults_and_are_reported() {
        let (n, p) = notes(&[
            ("affinity", "cookie"),
            ("affinity-mode", "sticky"),
            ("session-cookie-name", "a b"),
            ("session-cookie-path", "/a;b"),
            ("session-cookie-max-age", "abc12"),
            ("session-cookie-samesite", "sometimes"),
            ("session-cookie-secure", "yes"),
            ("session-cookie-hash", "sha1"),
        ]);
        assert_eq!(p.len(), 7, "{p:?}");
        assert!(p
            .iter()
            .all(|l| l.starts_with("nginx.ingress.kubernetes.io/")));
        let s = n.spec("/", false, &mut Vec::new()).unwrap();
        assert_eq!(s, AffinitySpec::new("/"));
    }

    #[test]
    fn regex_paths_want_a_cookie_path() {
        let (n, _) = notes(&[("affinity", "cookie")]);
        let mut problems = Vec::new();
        let s = n.spec("/api/v[0-9]+", true, &mut problems).unwrap();
        assert_eq!(&*s.path, "/api/v[0-9]+");
        assert_eq!(problems.len(), 1);
        let (n, _) = notes(&[("affinity", "cookie"), ("session-cookie-path", "/api")]);
        let mut problems = Vec::new();
        assert_eq!(
            &*n.spec("/api/v[0-9]+", true, &mut problems).unwrap().path,
            "/api"
        );
        assert!(problems.is_empty());
    }

    #[test]
    fn canary_behavior() {
        let (n, p) = notes(&[("affinity-canary-behavior", "legacy")]);
        assert!(p.is_empty() && n.legacy_canary());
        let (n, p) = notes(&[("affinity-canary-behavior", "other")]);
        assert!(p.len() == 1 && !n.legacy_canary());
    }
}
