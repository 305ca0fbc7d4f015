//! ingress-nginx's limit annotations, parsed into typed values:
//! `limit-rps`, `limit-rpm`, `limit-burst-multiplier`,
//! `limit-connections`, `limit-allowlist` (and its old name
//! `limit-whitelist`), and the bandwidth pair `limit-rate` /
//! `limit-rate-after`, which are read but not enforced (reported). The
//! zone, the Ingress's, is named when routes are made
//! ([`LimitNotes::limits`]).

use std::sync::Arc;

use ipnet::IpNet;

use crate::spec::{Rate, RateLimits, BURST_MULTIPLIER, LIMIT_STATUS};

/// What an Ingress's limit annotations say.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LimitNotes {
    /// `limit-rps`: 0 or unset is no limit.
    pub rps: u32,
    /// `limit-rpm`: 0 or unset is no limit.
    pub rpm: u32,
    /// `limit-burst-multiplier`: `None` is ingress-nginx's 5.
    pub burst_multiplier: Option<u32>,
    /// `limit-connections`: 0 or unset is no limit.
    pub connections: u32,
    /// `limit-allowlist` / `limit-whitelist`.
    pub allow: Vec<IpNet>,
}

/// Reads one `nginx.ingress.kubernetes.io/NAME` annotation if it is a
/// limit annotation; `false` when it is not one.
pub(super) fn parse(
    notes: &mut LimitNotes,
    key: &str,
    name: &str,
    value: &str,
    problems: &mut Vec<String>,
) -> bool {
    let v = value.trim();
    // ingress-nginx reads them as whole numbers (`GetIntAnnotation`).
    let mut number = |set: &mut u32| match v.parse::<u32>() {
        Ok(n) => *set = n,
        Err(_) => problems.push(format!("{key}: {v:?} is not a whole number")),
    };
    match name {
        "limit-rps" => number(&mut notes.rps),
        "limit-rpm" => number(&mut notes.rpm),
        "limit-connections" => number(&mut notes.connections),
        "limit-burst-multiplier" => {
            let mut m = 0;
            number(&mut m);
            if v.parse::<u32>().is_ok() {
                notes.burst_multiplier = Some(m);
            }
        }
        "limit-whitelist" | "limit-allowlist" => {
            match v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<IpNet>()
                        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map_err(|_| s)
                })
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(nets) => notes.allow = nets,
                Err(item) => problems.push(format!(
                    "{key}: {item:?} is not an address or CIDR range; no client is exempt"
                )),
            }
        }
        // nginx's limit_rate: not enforced by sluice; said once per
        // Ingress rather than pretended.
        "limit-rate" | "limit-rate-after" => match v.parse::<u64>() {
            Ok(0) => {}
            Ok(_) => problems.push(format!(
                "{key}: bandwidth limits are not enforced by sluice; responses are sent at full speed"
            )),
            Err(_) => problems.push(format!("{key}: {v:?} is not a whole number")),
        },
        _ => return false,
    }
    true
}

impl LimitNotes {
    /// The route limits for an Ingress's zone (`namespace/name/uid`, as
    /// ingress-nginx names its zones), or `None` when nothing is limited.
    pub fn limits(&self, zone: &str) -> Option<Arc<RateLimits>> {
        if self.rps == 0 && self.rpm == 0 && self.connections == 0 {
            return None;
        }
        let multiplier = self.burst_multiplier.unwrap_or(BURST_MULTIPLIER);
        let mut rates = Vec::new();
        if self.rps > 0 {
            rates.push(Rate::per_second(
                self.rps,
                self.rps.saturating_mul(multiplier),
            ));
        }
        if self.rpm > 0 {
            rates.push(Rate::per_minute(
                self.rpm,
                self.rpm.saturating_mul(multiplier),
            ));
        }
        let status = http::StatusCode::from_u16(LIMIT_STATUS)
            .unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE);
        Some(Arc::new(RateLimits {
            zone: zone.into(),
            rates,
            connections: (self.connections > 0).then_some(self.connections),
            allow: self.allow.clone(),
            req_status: status,
            conn_status: status,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn read(pairs: &[(&str, &str)]) -> (LimitNotes, Vec<String>) {
        super::super::read_family(parse, pairs)
    }

    #[test]
    fn rates_with_the_default_burst_multiplier() {
        let (n, p) = read(&[("limit-rps", "5"), ("limit-rpm", "300")]);
        assert!(p.is_empty(), "{p:?}");
        let l = n.limits("shop/web/u1").unwrap();
        assert_eq!(&*l.zone, "shop/web/u1");
        assert_eq!(
            l.rates,
            [
                Rate {
                    interval: Duration::from_millis(200),
                    burst: 25
                },
                Rate {
                    interval: Duration::from_millis(200),
                    burst: 1500
                }
            ]
        );
        assert_eq!(l.connections, None);
        assert_eq!(l.req_status.as_u16(), 503);
    }

    #[test]
    fn connections_multiplier_and_allowlist() {
        let (n, p) = read(&[
            ("limit-connections", "2"),
            ("limit-burst-multiplier", "1"),
            ("limit-rps", "10"),
            ("limit-whitelist", "10.0.0.0/8, 192.168.1.1"),
        ]);
        assert!(p.is_empty(), "{p:?}");
        let l = n.limits("z").unwrap();
        assert_eq!(l.connections, Some(2));
        assert_eq!(l.rates[0].burst, 10);
        assert!(l.exempt("10.2.3.4".parse().unwrap()));
        assert!(l.exempt("192.168.1.1".parse().unwrap()));
        assert!(!l.exempt("192.168.1.2".parse().unwrap()));
    }

    #[test]
    fn nothing_limited_bad_values_and_bandwidth_are_reported() {
        let (n, p) = read(&[("limit-rps", "0"), ("limit-rate", "0")]);
        assert!(p.is_empty() && n.limits("z").is_none());
        let (n, p) = read(&[
            ("limit-rps", "fast"),
            ("limit-allowlist", "office"),
            ("limit-rate", "100"),
            ("limit-rate-after", "1024"),
        ]);
        assert!(n.limits("z").is_none());
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[2].contains("not enforced"), "{p:?}");
        let mut notes = LimitNotes::default();
        assert!(!parse(&mut notes, "k", "limit-other", "1", &mut Vec::new()));
    }
}
