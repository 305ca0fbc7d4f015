//! The rules that send one request to a route's canary before its weight
//! is drawn (ingress-nginx's `canary-by-header`, `-by-header-value`,
//! `-by-header-pattern` and `-by-cookie`), as typed data.
//!
//! They live in the shared vocabulary because discovery makes them and the
//! routing snapshot carries them: the pattern is compiled here, once per
//! translation, and a request only runs the compiled automaton. What a
//! request's headers decide is `routing::canary`'s.

use std::fmt;

/// The largest compiled header pattern accepted: an annotation must not be
/// able to make the proxy build a huge automaton.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// How a request header sends it to the canary, and by which cookie.
/// The default (no cookie, `always` / `never`) is what a canary without
/// these annotations does; the header only counts when the canary names
/// one (`CanarySpec::header`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CanaryRules {
    /// What the canary header's value must be.
    pub header: HeaderRule,
    /// `canary-by-cookie`: a cookie of this name (any case, as nginx's
    /// `$cookie_` finds it) whose value is `always` or `never` decides
    /// after the header and before the weight.
    pub cookie: Option<Box<str>>,
    /// `affinity-canary-behavior: legacy` on the canary Ingress: the
    /// canary ignores the main route's cookie affinity (no request is kept
    /// on it by a cookie, and it sets none). The default, `sticky`, keeps a
    /// session the canary served on the canary.
    pub legacy_affinity: bool,
}

impl CanaryRules {
    /// A request's headers matter beyond `always` / `never` in the canary
    /// header (so the fast path, which keeps no header map, cannot serve
    /// the route).
    pub fn needs_headers(&self) -> bool {
        self.cookie.is_some()
    }
}

/// What the canary header's value does, as ingress-nginx's balancer reads
/// it (`route_to_alternative_balancer`): one of the three, never several.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HeaderRule {
    /// `always` sends to the canary, `never` keeps the request off it, any
    /// other value goes on to the cookie and the weight.
    #[default]
    AlwaysNever,
    /// `canary-by-header-value`: exactly this value (case-sensitive) sends
    /// to the canary; any other, `never` included, goes on to the cookie
    /// and the weight.
    Value(Box<[u8]>),
    /// `canary-by-header-pattern` (only without a value): a value the
    /// pattern finds a match in, anywhere, sends to the canary; any other
    /// goes on to the cookie and the weight.
    Pattern(HeaderPattern),
}

/// A header pattern that does not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("pattern {pattern:?} is not a valid regular expression: {reason}")]
pub struct HeaderPatternError {
    pub pattern: String,
    /// The regex crate's message, on one line.
    pub reason: String,
}

/// `canary-by-header-pattern`, compiled: searched in the header's bytes,
/// unanchored and case-sensitive, as `ngx.re.match(value, pattern)` does.
#[derive(Clone)]
pub struct HeaderPattern {
    source: Box<str>,
    regex: regex::bytes::Regex,
}

impl HeaderPattern {
    pub fn new(pattern: &str) -> Result<HeaderPattern, HeaderPatternError> {
        let regex = regex::bytes::RegexBuilder::new(pattern)
            // PCRE without the `u` flag: `\w` and `.` are about bytes.
            .unicode(false)
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|e| HeaderPatternError {
                pattern: pattern.to_owned(),
                reason: e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            })?;
        Ok(HeaderPattern {
            source: pattern.into(),
            regex,
        })
    }

    /// The pattern as the annotation writes it.
    pub fn source(&self) -> &str {
        &self.source
    }

    #[inline]
    pub fn is_match(&self, value: &[u8]) -> bool {
        self.regex.is_match(value)
    }
}

impl fmt::Debug for HeaderPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HeaderPattern").field(&self.source).finish()
    }
}

/// Two patterns are the same when they are written the same.
impl PartialEq for HeaderPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for HeaderPattern {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_search_unanchored_and_case_sensitive() {
        let p = HeaderPattern::new("(eu|us)-west").unwrap();
        assert!(p.is_match(b"eu-west-1"));
        assert!(p.is_match(b"region=us-west"));
        assert!(!p.is_match(b"EU-WEST"));
        assert!(!p.is_match(b"ap-south"));
        // Bytes that are not UTF-8 are matched, not refused.
        assert!(HeaderPattern::new("^a.b$").unwrap().is_match(b"a\xffb"));
    }

    #[test]
    fn bad_and_huge_patterns_are_errors_naming_them() {
        let e = HeaderPattern::new("(unclosed").unwrap_err();
        assert_eq!(e.pattern, "(unclosed");
        assert!(e.to_string().contains("(unclosed"), "{e}");
        assert!(!e.reason.contains('\n'));
        assert!(HeaderPattern::new("(a{1000}){1000}").is_err());
    }
}
