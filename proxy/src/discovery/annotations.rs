//! Annotations on Ingresses and Services, parsed into typed values.
//!
//! Every value is validated and turned into a setting; none is ever pasted
//! into anything. A malformed or unknown annotation in our own namespace
//! (`sluice.dev/`) or ingress-nginx's is reported (the caller logs it and
//! records a Kubernetes Event) and otherwise ignored: it is never fatal.
//! ingress-nginx's snippet annotations inject raw configuration, and are
//! refused.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::balance::Strategy;
use crate::spec::RouteTimeouts;

mod paths;
pub use paths::PathNotes;

const SLUICE: &str = "sluice.dev/";
const NGINX: &str = "nginx.ingress.kubernetes.io/";

/// What an object's annotations say.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Annotated {
    pub strategy: Option<Strategy>,
    /// `sluice.dev/pod-weights: "true"` on a Service: its pods' own
    /// `sluice.dev/weight` annotations weigh them.
    pub pod_weights: bool,
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    /// `proxy-body-size`: `Some(None)` lifts the limit (`0`).
    pub max_request_body: Option<Option<u64>>,
    /// `canary: "true"`: this Ingress's backends take part of the traffic
    /// of another Ingress's identical host and path.
    pub canary: bool,
    /// Requests in `canary_total` sent to the canary.
    pub canary_weight: u32,
    pub canary_total: u32,
    /// `always` / `never` in this header override the weight.
    pub canary_header: Option<http::HeaderName>,
    /// `ssl-redirect: "false"`: plain HTTP is served even for hosts
    /// with a certificate.
    pub ssl_redirect: Option<bool>,
    /// `force-ssl-redirect: "true"`: plain HTTP is redirected even
    /// without a certificate (TLS ends at a LoadBalancer in front).
    pub force_ssl_redirect: bool,
    /// The path annotations: regex paths, rewrite, redirects.
    pub paths: PathNotes,
    /// One line per annotation that was refused or not understood.
    pub problems: Vec<String>,
}

impl Annotated {
    /// The route's redirect setting: `None` follows the certificate.
    pub fn redirect(&self) -> Option<bool> {
        if self.force_ssl_redirect {
            Some(true)
        } else if self.ssl_redirect == Some(false) {
            Some(false)
        } else {
            None
        }
    }

    /// Applies the timeouts the annotations set.
    pub fn apply_timeouts(&self, t: &mut RouteTimeouts) {
        if let Some(d) = self.connect_timeout {
            t.connect = d;
        }
        if let Some(d) = self.read_timeout {
            t.response_header = d;
        }
    }
}

/// Parses the annotations of one object.
pub fn parse(annotations: &Option<BTreeMap<String, String>>) -> Annotated {
    let mut out = Annotated {
        canary_total: 100,
        ..Annotated::default()
    };
    let Some(map) = annotations else {
        return out;
    };
    for (key, value) in map {
        if let Some(name) = key.strip_prefix(SLUICE) {
            sluice(&mut out, key, name, value);
        } else if let Some(name) = key.strip_prefix(NGINX) {
            nginx(&mut out, key, name, value);
        }
    }
    if out.canary_weight > out.canary_total {
        out.problems.push(format!(
            "{NGINX}canary-weight: {} is more than canary-weight-total {}; using all of it",
            out.canary_weight, out.canary_total
        ));
        out.canary_weight = out.canary_total;
    }
    out
}

fn sluice(out: &mut Annotated, key: &str, name: &str, value: &str) {
    match name {
        "load-balance" => match value.trim().parse::<Strategy>() {
            Ok(s) => out.strategy = Some(s),
            Err(_) => out.problems.push(format!(
                "{key}: {value:?} is not round-robin, weighted, ip-hash or least-request"
            )),
        },
        "pod-weights" => match value.trim() {
            "true" => out.pod_weights = true,
            "false" => out.pod_weights = false,
            other => out
                .problems
                .push(format!("{key}: {other:?} is not true or false")),
        },
        // Read from pods, by the weight watcher; nothing to do here.
        "weight" => {}
        "ssl-redirect" => flag(out, key, value, |o, b| o.ssl_redirect = Some(b)),
        "force-ssl-redirect" => flag(out, key, value, |o, b| o.force_ssl_redirect = b),
        _ => out
            .problems
            .push(format!("{key}: unknown annotation, ignored")),
    }
}

fn nginx(out: &mut Annotated, key: &str, name: &str, value: &str) {
    if name.ends_with("-snippet") || name == "configuration-snippet" {
        out.problems.push(format!(
            "{key}: snippet annotations inject raw configuration and are refused"
        ));
        return;
    }
    if paths::parse(&mut out.paths, key, name, value, &mut out.problems) {
        return;
    }
    match name {
        "upstream-hash-by" => {
            if value.trim() == "$remote_addr" {
                out.strategy = Some(Strategy::IpHash);
            } else {
                out.problems.push(format!(
                    "{key}: only \"$remote_addr\" is supported (hashing by client address)"
                ));
            }
        }
        "load-balance" => match value.trim() {
            "round_robin" => out.strategy = out.strategy.or(Some(Strategy::RoundRobin)),
            "ewma" => out.strategy = out.strategy.or(Some(Strategy::LeastRequest)),
            other => out
                .problems
                .push(format!("{key}: {other:?} is not round_robin or ewma")),
        },
        "canary" => match value.trim() {
            "true" => out.canary = true,
            "false" => out.canary = false,
            other => out
                .problems
                .push(format!("{key}: {other:?} is not true or false")),
        },
        "canary-weight" => match value.trim().parse::<u32>() {
            Ok(n) => out.canary_weight = n,
            Err(_) => out
                .problems
                .push(format!("{key}: {value:?} is not a whole number")),
        },
        "canary-weight-total" => match value.trim().parse::<u32>() {
            Ok(n) if n > 0 => out.canary_total = n,
            _ => out
                .problems
                .push(format!("{key}: {value:?} is not a positive whole number")),
        },
        "canary-by-header" => match http::HeaderName::from_bytes(value.trim().as_bytes()) {
            Ok(h) => out.canary_header = Some(h),
            Err(_) => out
                .problems
                .push(format!("{key}: {value:?} is not a header name")),
        },
        "proxy-body-size" => match crate::config::parse_size(value) {
            Ok(limit) => out.max_request_body = Some(limit),
            Err(e) => out.problems.push(format!("{key}: {e}")),
        },
        "ssl-redirect" => flag(out, key, value, |o, b| {
            o.ssl_redirect = o.ssl_redirect.or(Some(b))
        }),
        "force-ssl-redirect" => flag(out, key, value, |o, b| o.force_ssl_redirect |= b),
        "proxy-connect-timeout" => match seconds(value) {
            Some(d) => out.connect_timeout = Some(d),
            None => out
                .problems
                .push(format!("{key}: {value:?} is not a number of seconds")),
        },
        "proxy-read-timeout" => match seconds(value) {
            Some(d) => out.read_timeout = Some(d),
            None => out
                .problems
                .push(format!("{key}: {value:?} is not a number of seconds")),
        },
        _ => out
            .problems
            .push(format!("{key}: not supported by sluice, ignored")),
    }
}

/// A `"true"` / `"false"` annotation.
fn flag(out: &mut Annotated, key: &str, value: &str, set: impl FnOnce(&mut Annotated, bool)) {
    match value.trim() {
        "true" => set(out, true),
        "false" => set(out, false),
        other => out
            .problems
            .push(format!("{key}: {other:?} is not true or false")),
    }
}

/// A pod's `sluice.dev/weight` that is not a weight.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sluice.dev/weight: {0:?} is not a whole number from 1 to 10000")]
pub struct PodWeightError(pub String);

/// A pod's `sluice.dev/weight`: 1 to 10,000; `None` when unset.
pub fn pod_weight(
    annotations: &Option<BTreeMap<String, String>>,
) -> Result<Option<u32>, PodWeightError> {
    let Some(v) = annotations
        .as_ref()
        .and_then(|a| a.get("sluice.dev/weight"))
    else {
        return Ok(None);
    };
    match v.trim().parse::<u32>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(Some(n)),
        _ => Err(PodWeightError(v.clone())),
    }
}

/// ingress-nginx's timeouts: whole seconds, 1 to a day.
fn seconds(v: &str) -> Option<Duration> {
    let n: u64 = v.trim().trim_end_matches('s').parse().ok()?;
    (1..=86_400).contains(&n).then(|| Duration::from_secs(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(pairs: &[(&str, &str)]) -> Annotated {
        parse(&Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
    }

    #[test]
    fn ssl_redirect_switches() {
        assert_eq!(of(&[]).redirect(), None);
        assert_eq!(
            of(&[("nginx.ingress.kubernetes.io/ssl-redirect", "false")]).redirect(),
            Some(false)
        );
        assert_eq!(
            of(&[("sluice.dev/ssl-redirect", "false")]).redirect(),
            Some(false)
        );
        assert_eq!(of(&[("sluice.dev/ssl-redirect", "true")]).redirect(), None);
        assert_eq!(
            of(&[("nginx.ingress.kubernetes.io/force-ssl-redirect", "true")]).redirect(),
            Some(true)
        );
        // Ours wins over ingress-nginx's.
        assert_eq!(
            of(&[
                ("nginx.ingress.kubernetes.io/ssl-redirect", "true"),
                ("sluice.dev/ssl-redirect", "false")
            ])
            .redirect(),
            Some(false)
        );
        let bad = of(&[("sluice.dev/ssl-redirect", "nope")]);
        assert_eq!(bad.redirect(), None);
        assert_eq!(bad.problems.len(), 1);
    }

    #[test]
    fn strategies() {
        assert_eq!(
            of(&[("sluice.dev/load-balance", "ip-hash")]).strategy,
            Some(Strategy::IpHash)
        );
        assert_eq!(
            of(&[(
                "nginx.ingress.kubernetes.io/upstream-hash-by",
                "$remote_addr"
            )])
            .strategy,
            Some(Strategy::IpHash)
        );
        assert_eq!(
            of(&[("nginx.ingress.kubernetes.io/load-balance", "ewma")]).strategy,
            Some(Strategy::LeastRequest)
        );
        // Ours wins over ingress-nginx's.
        assert_eq!(
            of(&[
                ("nginx.ingress.kubernetes.io/load-balance", "ewma"),
                ("sluice.dev/load-balance", "weighted")
            ])
            .strategy,
            Some(Strategy::Weighted)
        );
    }

    #[test]
    fn canary() {
        let a = of(&[
            ("nginx.ingress.kubernetes.io/canary", "true"),
            ("nginx.ingress.kubernetes.io/canary-weight", "20"),
            ("nginx.ingress.kubernetes.io/canary-by-header", "X-Canary"),
        ]);
        assert!(a.canary && a.problems.is_empty());
        assert_eq!((a.canary_weight, a.canary_total), (20, 100));
        assert_eq!(a.canary_header.unwrap().as_str(), "x-canary");
        let a = of(&[
            ("nginx.ingress.kubernetes.io/canary", "yes"),
            ("nginx.ingress.kubernetes.io/canary-weight", "150"),
            ("nginx.ingress.kubernetes.io/canary-by-header", "bad header"),
        ]);
        assert!(!a.canary);
        assert_eq!(a.canary_weight, 100);
        assert_eq!(a.problems.len(), 3, "{:?}", a.problems);
    }

    #[test]
    fn timeouts() {
        let a = of(&[
            ("nginx.ingress.kubernetes.io/proxy-connect-timeout", "3"),
            ("nginx.ingress.kubernetes.io/proxy-read-timeout", "120"),
        ]);
        let mut t = crate::spec::DEFAULT_TIMEOUTS;
        a.apply_timeouts(&mut t);
        assert_eq!(t.connect, Duration::from_secs(3));
        assert_eq!(t.response_header, Duration::from_secs(120));
        assert!(a.problems.is_empty());
        let b = of(&[("nginx.ingress.kubernetes.io/proxy-body-size", "8m")]);
        assert_eq!(b.max_request_body, Some(Some(8 << 20)));
        let b = of(&[("nginx.ingress.kubernetes.io/proxy-body-size", "0")]);
        assert_eq!(b.max_request_body, Some(None));
        let b = of(&[("nginx.ingress.kubernetes.io/proxy-body-size", "lots")]);
        assert_eq!(b.max_request_body, None);
        assert_eq!(b.problems.len(), 1);
    }

    #[test]
    fn bad_unknown_and_snippets_are_reported_not_fatal() {
        let a = of(&[
            ("sluice.dev/load-balance", "fastest"),
            ("sluice.dev/colour", "blue"),
            (
                "nginx.ingress.kubernetes.io/configuration-snippet",
                "more_set_headers \"x: y\";",
            ),
            (
                "nginx.ingress.kubernetes.io/server-snippet",
                "location / {}",
            ),
            ("nginx.ingress.kubernetes.io/proxy-read-timeout", "soon"),
            (
                "nginx.ingress.kubernetes.io/upstream-hash-by",
                "$request_uri",
            ),
            ("example.com/other", "x"),
        ]);
        assert_eq!(a.strategy, None);
        assert_eq!(a.read_timeout, None);
        assert_eq!(a.problems.len(), 6, "{:#?}", a.problems);
        assert_eq!(
            a.problems.iter().filter(|p| p.contains("refused")).count(),
            2
        );
    }
}
