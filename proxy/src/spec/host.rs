//! What a route's host matches, with Ingress semantics: exact names, and
//! `*.example.com` wildcards that match exactly one more label.
//!
//! Parsed here once, from a config file or an Ingress rule; the routing
//! snapshot only compares what was parsed.

use std::fmt;

/// What a route's host matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostMatch {
    /// Every host (a rule without a host).
    Any,
    /// One name, lower-case, without port or trailing dot.
    Exact(String),
    /// `*.suffix`: the suffix, lower-case (`example.com` for `*.example.com`).
    Wildcard(String),
}

/// Why a host was refused: the host (trimmed, lower-case) and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host:?}: {reason}")]
pub struct HostError {
    pub host: String,
    pub reason: &'static str,
}

impl HostMatch {
    /// Parses a host as written in config or an Ingress rule.
    pub fn parse(s: &str) -> Result<Self, HostError> {
        let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
        if s.is_empty() || s == "*" {
            return Ok(HostMatch::Any);
        }
        if let Some(suffix) = s.strip_prefix("*.") {
            if suffix.contains('*') {
                return Err(HostError {
                    host: s,
                    reason: WILDCARD,
                });
            }
            if let Err(reason) = check_name(suffix) {
                return Err(HostError { host: s, reason });
            }
            return Ok(HostMatch::Wildcard(suffix.to_owned()));
        }
        if s.contains('*') {
            return Err(HostError {
                host: s,
                reason: WILDCARD,
            });
        }
        match check_name(&s) {
            Ok(()) => Ok(HostMatch::Exact(s)),
            Err(reason) => Err(HostError { host: s, reason }),
        }
    }
}

const WILDCARD: &str = "a wildcard may only be the whole first label";

fn check_name(s: &str) -> Result<(), &'static str> {
    if s.contains(':') {
        return Err("a host has no port");
    }
    if s.len() > 253 {
        return Err("longer than 253 characters");
    }
    for label in s.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("every label must be 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("only letters, digits, '-' and '_' are allowed");
        }
    }
    Ok(())
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMatch::Any => f.write_str("*"),
            HostMatch::Exact(h) => f.write_str(h),
            HostMatch::Wildcard(s) => write!(f, "*.{s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts() {
        assert_eq!(HostMatch::parse("").unwrap(), HostMatch::Any);
        assert_eq!(HostMatch::parse("*").unwrap(), HostMatch::Any);
        assert_eq!(
            HostMatch::parse("API.Example.com.").unwrap(),
            HostMatch::Exact("api.example.com".into())
        );
        assert_eq!(
            HostMatch::parse("*.example.com").unwrap(),
            HostMatch::Wildcard("example.com".into())
        );
        assert!(HostMatch::parse("*.*.example.com").is_err());
        assert!(HostMatch::parse("a*.example.com").is_err());
        assert!(HostMatch::parse("example.com:80").is_err());
        assert!(HostMatch::parse("exa mple.com").is_err());
        assert_eq!(
            HostMatch::parse("A*.example.com").unwrap_err().to_string(),
            "\"a*.example.com\": a wildcard may only be the whole first label"
        );
    }
}
