//! ingress-nginx's path rules, as typed data: regex paths (`use-regex`),
//! rewrites (`rewrite-target`) and the redirects a route answers itself
//! (`permanent-redirect`, `temporal-redirect`, `app-root`,
//! `from-to-www-redirect`).
//!
//! Patterns are compiled here, once, when the routes are translated (off
//! the request path); a request only runs the compiled automaton. They are
//! written as ingress-nginx writes them into nginx.conf, so they match the
//! same requests: a regex path `P` is the location `~* "^P"` (case
//! insensitive, anchored at the start only, so a prefix match), and a
//! rewrite is `rewrite "(?i)P" TARGET break;` (unanchored, searched), whose
//! `TARGET` replaces the whole path.

use std::fmt;
use std::str::FromStr;

use http::{HeaderValue, StatusCode};

/// The largest compiled pattern accepted: a path is a short expression, and
/// an Ingress must not be able to make the proxy build a huge automaton.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What a route does beyond matching its path as Ingress path types say:
/// all empty for every route that does not come from ingress-nginx's path
/// annotations.
#[derive(Debug, Clone, Default)]
pub struct PathRules {
    /// The route is on a regex host: its path is a pattern, matched
    /// case-insensitively from the start of the request path.
    pub regex: Option<RegexPath>,
    /// The path sent upstream is rewritten.
    pub rewrite: Option<Rewrite>,
    /// The route answers with a redirect instead of proxying.
    pub redirect: Option<Redirect>,
    /// Gateway API's URLRewrite `path`: the path sent upstream (the query
    /// kept).
    pub replace_path: Option<super::PathModifier>,
}

impl PathRules {
    /// The HTTP/1.1 fast path, which forwards the request head as it came
    /// and answers only the shared refusals, can serve the route: it has
    /// no rewrite and no redirect (a regex match alone is fine, since the
    /// lookup is shared).
    pub fn fast_path(&self) -> bool {
        self.rewrite.is_none() && self.redirect.is_none() && self.replace_path.is_none()
    }
}

/// A path that does not compile as a regular expression.
#[derive(Debug, Clone, thiserror::Error)]
#[error("path {path:?} is not a valid regular expression: {reason}")]
pub struct PathRegexError {
    pub path: String,
    /// The regex crate's message, on one line.
    pub reason: String,
}

fn compile(pattern: &str, path: &str) -> Result<regex::Regex, PathRegexError> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| PathRegexError {
            path: path.to_owned(),
            reason: e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        })
}

/// A regex path, as nginx's `location ~* "^PATH"`: case-insensitive, and
/// anchored at the start only. `^` binds tighter than `|`, exactly as in
/// nginx: `/a|/b` matches paths starting with `/a`, and paths containing
/// `/b` anywhere.
#[derive(Debug, Clone)]
pub struct RegexPath {
    source: Box<str>,
    regex: regex::Regex,
}

impl RegexPath {
    pub fn new(path: &str) -> Result<RegexPath, PathRegexError> {
        Ok(RegexPath {
            source: path.into(),
            regex: compile(&format!("(?i)^{path}"), path)?,
        })
    }

    /// The path as the Ingress writes it (what nginx orders locations by).
    pub fn source(&self) -> &str {
        &self.source
    }

    #[inline]
    pub fn is_match(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }
}

/// `rewrite-target` applied to one path: nginx's `rewrite "(?i)PATH"
/// TARGET break;`.
#[derive(Debug, Clone)]
pub struct Rewrite {
    regex: regex::Regex,
    target: RewriteTarget,
}

impl Rewrite {
    pub fn new(path: &str, target: RewriteTarget) -> Result<Rewrite, PathRegexError> {
        Ok(Rewrite {
            regex: compile(&format!("(?i){path}"), path)?,
            target,
        })
    }

    /// The path and query sent upstream, or `None` when the pattern does
    /// not match (nginx leaves the URI as it is then). As with nginx, the
    /// target replaces the whole path, not only the part matched; `$N` is
    /// the Nth group (empty when it took no part); the query is kept. A
    /// result that does not start with `/` gets one, as a request target
    /// must.
    pub fn apply(&self, path: &str, query: Option<&str>) -> Option<String> {
        let caps = self.regex.captures(path)?;
        let mut out = String::with_capacity(self.target.source.len() + path.len());
        for piece in &self.target.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Group(n) => {
                    if let Some(m) = caps.get(*n) {
                        out.push_str(m.as_str());
                    }
                }
            }
        }
        if !out.starts_with('/') {
            out.insert(0, '/');
        }
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        Some(out)
    }

    pub fn target(&self) -> &RewriteTarget {
        &self.target
    }
}

/// A `rewrite-target` value: text and `$1`…`$9` groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteTarget {
    source: Box<str>,
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Box<str>),
    Group(usize),
}

impl RewriteTarget {
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// A `rewrite-target` or `app-root` that ingress-nginx would refuse, or
/// that names an nginx variable Sluice does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathValueError {
    #[error("{0:?} has characters ingress-nginx refuses (letters, digits, -._~/: and $N only)")]
    Characters(String),
    #[error("{0:?} names an nginx variable; only $1 to $9 are supported")]
    Variable(String),
    #[error("{0:?} is not a path starting with /")]
    NotAPath(String),
}

/// ingress-nginx's validator for `rewrite-target` and `app-root`
/// (`RegexPathWithCapture`): letters, digits, `-._~/:` and `$`.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '/' | ':' | '$')
}

impl FromStr for RewriteTarget {
    type Err = PathValueError;

    fn from_str(s: &str) -> Result<Self, PathValueError> {
        if !s.chars().all(allowed) {
            return Err(PathValueError::Characters(s.to_owned()));
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '$' {
                text.push(c);
                continue;
            }
            match chars.next() {
                Some(d @ '0'..='9') => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text).into()));
                    }
                    pieces.push(Piece::Group(d as usize - '0' as usize));
                }
                _ => return Err(PathValueError::Variable(s.to_owned())),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.into()));
        }
        Ok(RewriteTarget {
            source: s.into(),
            pieces,
        })
    }
}

impl fmt::Display for RewriteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// An `app-root`: a path (no scheme, no host), ingress-nginx's characters.
pub fn app_root(s: &str) -> Result<Box<str>, PathValueError> {
    if !s.starts_with('/') {
        return Err(PathValueError::NotAPath(s.to_owned()));
    }
    if !s.chars().all(allowed) || s.contains('$') {
        return Err(PathValueError::Characters(s.to_owned()));
    }
    Ok(s.into())
}

/// A redirect a route answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// `permanent-redirect` / `temporal-redirect`: every request of the
    /// route goes to this URL, as it is (nginx's `return CODE URL`: no
    /// path or query appended).
    To {
        status: StatusCode,
        location: HeaderValue,
    },
    /// `app-root`: `/` (and only `/`, whatever the query) gets a 302 to
    /// `SCHEME://HOST` + this path, HOST as the client sent it.
    AppRoot(Box<str>),
    /// `from-to-www-redirect`: the other name of the host (with or without
    /// `www.`) gets a 308 to `SCHEME://TO:PORT` + the request target, a
    /// trailing slash cut, as ingress-nginx's `ngx_srv_redirect.lua`
    /// writes it.
    FromToWww { to: Box<str> },
    /// Gateway API's RequestRedirect filter.
    Gateway(Box<super::GatewayRedirect>),
}

/// ingress-nginx's `http-redirect-code`, the code of its www redirects.
pub const WWW_REDIRECT_STATUS: StatusCode = StatusCode::PERMANENT_REDIRECT;

impl Redirect {
    /// The status and `Location` for one request. `scheme` is the one the
    /// client used; `host` its Host (or authority) as sent, port included;
    /// `target` the path and query.
    pub fn answer(
        &self,
        scheme: &str,
        host: Option<&str>,
        target: &str,
    ) -> Option<(StatusCode, HeaderValue)> {
        match self {
            Redirect::To { status, location } => Some((*status, location.clone())),
            Redirect::AppRoot(root) => {
                let location = format!("{scheme}://{}{root}", host.unwrap_or(""));
                Some((StatusCode::FOUND, HeaderValue::try_from(location).ok()?))
            }
            Redirect::FromToWww { to } => {
                // The port the client reached, as nginx's `$server_port`
                // names it (ingress-nginx listens on 80 and 443 itself).
                let port = host
                    .and_then(|h| h.rsplit_once(':'))
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .unwrap_or(if scheme == "https" { 443 } else { 80 });
                let target = target.strip_suffix('/').unwrap_or(target);
                let location = format!("{scheme}://{to}:{port}{target}");
                Some((WWW_REDIRECT_STATUS, HeaderValue::try_from(location).ok()?))
            }
            Redirect::Gateway(r) => Some((r.status, r.location(scheme, host, target)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(path: &str, target: &str) -> Rewrite {
        Rewrite::new(path, target.parse().unwrap()).unwrap()
    }

    #[test]
    fn regex_paths_are_case_insensitive_prefixes() {
        let p = RegexPath::new("/foo/bar/[A-Z0-9]{3}").unwrap();
        assert!(p.is_match("/foo/bar/abc"));
        assert!(p.is_match("/FOO/bar/ABCdef"));
        assert!(!p.is_match("/x/foo/bar/abc"));
        assert!(!p.is_match("/foo/bar/ab"));
        // `^` binds tighter than `|`, as in nginx's `~* "^/a|/b"`.
        let p = RegexPath::new("/a|/b").unwrap();
        assert!(p.is_match("/a/x"));
        assert!(p.is_match("/x/b"));
        assert!(!p.is_match("/x/a"));
        let e = RegexPath::new("/foo(").unwrap_err();
        assert_eq!(e.path, "/foo(");
        assert!(!e.reason.contains('\n'), "{e}");
    }

    #[test]
    fn captures_replace_the_whole_path_and_keep_the_query() {
        // The ingress-nginx documentation's example.
        let r = rewrite("/something(/|$)(.*)", "/$2");
        assert_eq!(r.apply("/something", None).as_deref(), Some("/"));
        assert_eq!(r.apply("/something/", None).as_deref(), Some("/"));
        assert_eq!(
            r.apply("/something/new", Some("a=1&b")).as_deref(),
            Some("/new?a=1&b")
        );
        assert_eq!(r.apply("/SomeThing/New", None).as_deref(), Some("/New"));
        // Not a substitution of the matched part: the rest goes too.
        let r = rewrite("/api", "/v2");
        assert_eq!(r.apply("/api/users", None).as_deref(), Some("/v2"));
        // Groups that took no part are empty; text around groups is kept.
        let r = rewrite("/(a)?(b)", "/x$1-$2/$9end");
        assert_eq!(r.apply("/b", None).as_deref(), Some("/x-b/end"));
        // No leading slash in the result: one is added.
        let r = rewrite("/app/(.*)", "$1");
        assert_eq!(r.apply("/app/z", None).as_deref(), Some("/z"));
        assert_eq!(r.apply("/other", None), None);
    }

    #[test]
    fn targets_are_validated_as_ingress_nginx_does() {
        assert!("/$1".parse::<RewriteTarget>().is_ok());
        assert!("/a-b_c.d~e:f/$12".parse::<RewriteTarget>().is_ok());
        assert_eq!(
            "/x?y".parse::<RewriteTarget>(),
            Err(PathValueError::Characters("/x?y".into()))
        );
        assert_eq!(
            "/$host".parse::<RewriteTarget>(),
            Err(PathValueError::Variable("/$host".into()))
        );
        assert_eq!(app_root("/app1").as_deref(), Ok("/app1"));
        assert!(app_root("app1").is_err());
        assert!(app_root("https://x/app").is_err());
        assert!(app_root("/a b").is_err());
    }

    #[test]
    fn redirect_locations() {
        let to = Redirect::To {
            status: StatusCode::MOVED_PERMANENTLY,
            location: HeaderValue::from_static("https://new.example.com/x"),
        };
        assert_eq!(
            to.answer("http", Some("a"), "/p?q").unwrap(),
            (
                StatusCode::MOVED_PERMANENTLY,
                HeaderValue::from_static("https://new.example.com/x")
            )
        );
        let root = Redirect::AppRoot("/app1".into());
        assert_eq!(
            root.answer("http", Some("Shop.example.com:8080"), "/?a=1")
                .unwrap(),
            (
                StatusCode::FOUND,
                HeaderValue::from_static("http://Shop.example.com:8080/app1")
            )
        );
        let www = Redirect::FromToWww {
            to: "example.com".into(),
        };
        let at = |scheme, host, target| www.answer(scheme, Some(host), target).unwrap().1;
        assert_eq!(
            at("http", "www.example.com", "/a/b/"),
            "http://example.com:80/a/b"
        );
        assert_eq!(
            at("https", "www.example.com", "/a?x=/"),
            "https://example.com:443/a?x="
        );
        assert_eq!(
            at("http", "www.example.com:8080", "/"),
            "http://example.com:8080"
        );
        assert_eq!(at("http", "[::1]", "/a"), "http://example.com:80/a");
        assert_eq!(at("http", "[::1]:81", "/a"), "http://example.com:81/a");
    }
}
