//! Log fields written for people: durations as `10s`, optional values as
//! the value or a word, address lists as `a, b`. Rust's debug formatting
//! (`Some(10s)`, `[127.0.0.1:8080]`) never reaches a log line.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// A duration as humantime writes it: `10s`, `1m 30s`, `250ms`.
pub struct Dur(pub Duration);

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// An optional duration: the duration, or `none`.
pub struct OptDur(pub Option<Duration>);

impl fmt::Display for OptDur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => Dur(d).fmt(f),
            None => f.write_str("none"),
        }
    }
}

/// Addresses separated by `, `, or `none`.
pub struct Addrs<'a>(pub &'a [SocketAddr]);

impl fmt::Display for Addrs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

/// An optional address: the address, or `off`.
pub struct OptAddr(pub Option<SocketAddr>);

impl fmt::Display for OptAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("off"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_for_people() {
        assert_eq!(OptDur(Some(Duration::from_secs(10))).to_string(), "10s");
        assert_eq!(OptDur(None).to_string(), "none");
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let b: SocketAddr = "[::1]:8443".parse().unwrap();
        assert_eq!(Addrs(&[a, b]).to_string(), "127.0.0.1:8080, [::1]:8443");
        assert_eq!(Addrs(&[]).to_string(), "none");
        assert_eq!(OptAddr(None).to_string(), "off");
    }
}
