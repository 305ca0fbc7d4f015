//! A backend as `--backend` and a route's `backends:` write it: `IP:PORT`
//! or `HOST:PORT` (a DNS name, resolved later), with `=WEIGHT` optional.
//!
//! One parser for both, so that the flag and the file accept the same
//! things and say the same about what they refuse. On the command line clap
//! calls it ([`Backend`] is `FromStr`), so a bad `--backend` is reported in
//! clap's own format; in a file the validator calls the parts and names the
//! field.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

/// The largest weight a backend may have.
pub const MAX_WEIGHT: u32 = 10_000;

/// Where a backend is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Addr(SocketAddr),
    /// A DNS name (lower-case) and a port.
    Name(Arc<str>, u16),
}

/// A backend as written: where, and its weight (1 when not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub target: Target,
    pub weight: u32,
}

/// Why a backend was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("{0:?} is not an IP:PORT address or a HOST:PORT name")]
    Address(String),
    #[error("{0:?} is not a port (1-65535)")]
    Port(String),
    #[error("{0:?} is not a whole number")]
    WeightNotNumber(String),
    #[error("weight {0} is out of range 1..={MAX_WEIGHT}")]
    WeightOutOfRange(u32),
}

impl Target {
    /// `IP:PORT`, or `HOST:PORT` with a DNS name.
    pub fn parse(s: &str) -> Result<Target, BackendError> {
        let s = s.trim();
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Target::Addr(a));
        }
        match s.rsplit_once(':') {
            Some((host, port)) if dns_name(host) => match port.parse::<u16>() {
                Ok(p) if p != 0 => Ok(Target::Name(host.to_ascii_lowercase().into(), p)),
                _ => Err(BackendError::Port(port.to_owned())),
            },
            _ => Err(BackendError::Address(s.to_owned())),
        }
    }
}

/// A weight as written after `=`.
pub fn parse_weight(w: &str) -> Result<u32, BackendError> {
    match w.trim().parse::<u32>() {
        Ok(n) => check_weight(n),
        Err(_) => Err(BackendError::WeightNotNumber(w.to_owned())),
    }
}

/// A weight within 1..=[`MAX_WEIGHT`].
pub fn check_weight(w: u32) -> Result<u32, BackendError> {
    if w == 0 || w > MAX_WEIGHT {
        Err(BackendError::WeightOutOfRange(w))
    } else {
        Ok(w)
    }
}

impl FromStr for Backend {
    type Err = BackendError;

    /// `IP:PORT[=WEIGHT]` or `HOST:PORT[=WEIGHT]`.
    fn from_str(s: &str) -> Result<Backend, BackendError> {
        let (target, weight) = match s.split_once('=') {
            Some((a, w)) => (a, parse_weight(w)?),
            None => (s, 1),
        };
        Ok(Backend {
            target: Target::parse(target)?,
            weight,
        })
    }
}

/// A DNS name a backend may be given by: letters, digits and `-` in dot
/// separated labels, not all of them numbers (`10.0.0.300` is a mistyped
/// address, not a name).
fn dns_name(host: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(label)
        && !host
            .split('.')
            .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_names_and_weights() {
        assert_eq!(
            "127.0.0.1:9001".parse(),
            Ok(Backend {
                target: Target::Addr("127.0.0.1:9001".parse().unwrap()),
                weight: 1
            })
        );
        assert_eq!(
            "Api.Example:80=3".parse(),
            Ok(Backend {
                target: Target::Name("api.example".into(), 80),
                weight: 3
            })
        );
        assert_eq!(
            "[::1]:80".parse::<Backend>().map(|b| b.target),
            Ok(Target::Addr("[::1]:80".parse().unwrap()))
        );
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let e = |s: &str| s.parse::<Backend>().unwrap_err().to_string();
        assert_eq!(
            e("bad_host!:80"),
            "\"bad_host!:80\" is not an IP:PORT address or a HOST:PORT name"
        );
        assert_eq!(
            e("10.0.0.300:80"),
            "\"10.0.0.300:80\" is not an IP:PORT address or a HOST:PORT name"
        );
        assert_eq!(e("svc:0"), "\"0\" is not a port (1-65535)");
        assert_eq!(e("127.0.0.1:1=x"), "\"x\" is not a whole number");
        assert_eq!(e("127.0.0.1:1=0"), "weight 0 is out of range 1..=10000");
        assert_eq!(
            e("127.0.0.1:1=10001"),
            "weight 10001 is out of range 1..=10000"
        );
    }
}
