//! What many fields share: addresses, durations, sizes, limits read by
//! the same functions as their flags, and lists of networks. Each reports
//! a wrong value at its field and gives a default in its place, so that
//! checking goes on.

use std::net::SocketAddr;
use std::time::Duration;

use super::Validator;
use crate::config::value::{parse_cidr, parse_size, ValueError};

impl Validator {
    pub(super) fn addr(&mut self, field: &str, s: &str) -> Option<SocketAddr> {
        match s.trim().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(field, format!("{s:?} is not an IP:port address"));
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        field: &str,
        s: Option<&String>,
        default: Duration,
    ) -> Duration {
        let Some(s) = s else { return default };
        match humantime::parse_duration(s.trim()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.error(field, "must be greater than zero");
                default
            }
            Err(e) => {
                self.error(
                    field,
                    format!("{s:?} is not a duration like 5s or 250ms ({e})"),
                );
                default
            }
        }
    }

    /// A duration that may be absent (no bound): `base` when not given.
    pub(super) fn optional_duration(
        &mut self,
        field: &str,
        s: Option<&String>,
        base: Option<Duration>,
    ) -> Option<Duration> {
        match s {
            Some(_) => Some(self.duration(field, s, Duration::from_secs(60))),
            None => base,
        }
    }

    /// A limit, read by the same function its command-line flag uses;
    /// the default, and an error naming the field, when it is wrong.
    pub(super) fn limit<T>(
        &mut self,
        field: &str,
        s: Option<&str>,
        parse: fn(&str) -> Result<T, ValueError>,
        default: T,
    ) -> T {
        match s.map(parse) {
            None => default,
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                self.error(field, e);
                default
            }
        }
    }

    pub(super) fn size(
        &mut self,
        field: &str,
        s: Option<&String>,
        default: Option<u64>,
    ) -> Option<u64> {
        let Some(s) = s else { return default };
        parse_size(s).unwrap_or_else(|e| {
            self.error(field.trim_start_matches('.'), e);
            default
        })
    }

    /// The `tls:` block. Only paths here: the files are read (and a bad
    /// A list of networks; each bad entry is an error naming its index.
    pub(super) fn networks(&mut self, field: &str, list: &[String]) -> Vec<ipnet::IpNet> {
        let mut nets = Vec::new();
        for (i, c) in list.iter().enumerate() {
            match parse_cidr(c) {
                Ok(n) => nets.push(n),
                Err(e) => self.error(format!("{field}[{i}]"), e),
            }
        }
        nets
    }
}
