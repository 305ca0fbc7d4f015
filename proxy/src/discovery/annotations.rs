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

mod access;
mod affinity;
mod canary;
mod cors;
mod errors;
mod external_auth;
mod limits;
mod paths;
mod proxy;
pub mod registry;
mod snippet;
pub use access::{AccessNotes, SecretRef};
pub use affinity::AffinityNotes;
pub use canary::CanaryNotes;
pub use cors::CorsNotes;
pub use errors::ErrorNotes;
pub use external_auth::ExternalAuthNotes;
pub use limits::LimitNotes;
pub use paths::PathNotes;
pub use proxy::ProxyNotes;
use registry::Support;
pub use snippet::SnippetEdits;

const SLUICE: &str = "sluice.dev/";
const NGINX: &str = "nginx.ingress.kubernetes.io/";

/// How a problem ends when its outcome is what ingress-nginx does with the
/// same annotation (a value its validator refuses too, a deprecated key):
/// worth a log line, but an Ingress moved over is served as before, so
/// `sluice migrate` does not count it as a change.
pub const AS_INGRESS_NGINX: &str = ", as ingress-nginx does";

/// Whether `problem` (as [`Annotated::problems`] holds it) leaves the
/// Ingress served as ingress-nginx serves it.
pub fn as_ingress_nginx(problem: &str) -> bool {
    problem.ends_with(AS_INGRESS_NGINX)
}

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
    /// `backend-protocol`: what the pods speak.
    pub backend_protocol: Option<BackendProtocol>,
    /// `proxy-ssl-verify: "on"`: the pods' certificates are verified
    /// against the CA in `proxy_ssl_secret` (off by default, as in
    /// ingress-nginx).
    pub proxy_ssl_verify: bool,
    /// `proxy-ssl-secret`: `namespace/name` of a Secret with `ca.crt`
    /// (and optionally `tls.crt` + `tls.key`, a client certificate).
    pub proxy_ssl_secret: Option<(String, String)>,
    /// `proxy-ssl-name`: the name verified (and sent in SNI when
    /// `proxy-ssl-server-name` is on).
    pub proxy_ssl_name: Option<String>,
    /// `proxy-ssl-server-name: "on"`: SNI is sent.
    pub proxy_ssl_server_name: bool,
    /// `upstream-vhost`: the Host sent to the pods.
    pub upstream_vhost: Option<http::HeaderValue>,
    /// `x-forwarded-prefix`: sent as X-Forwarded-Prefix.
    pub forwarded_prefix: Option<http::HeaderValue>,
    /// `service-upstream: "true"`: the Service's ClusterIP and port are the
    /// one endpoint, instead of its pods.
    pub service_upstream: bool,
    /// The path annotations: regex paths, rewrite, redirects.
    pub paths: PathNotes,
    /// The access annotations: address ranges, basic authentication.
    pub access: AccessNotes,
    /// The header directives of `configuration-snippet` and
    /// `server-snippet`.
    pub snippet: SnippetEdits,
    /// One line per annotation that was refused or not understood.
    pub problems: Vec<String>,
    /// ingress-nginx tuning knobs taken without effect (buffers, logging),
    /// by name: `sluice migrate` lists them.
    pub tuning: Vec<String>,
    /// `canary-by-header-value`, `-pattern` and `canary-by-cookie`.
    pub canary_rules: CanaryNotes,
    /// `ssl-passthrough: "true"`: the host's TLS connections are spliced
    /// to the backend of its `/`, which terminates TLS itself (with
    /// `--enable-ssl-passthrough` only, as in ingress-nginx).
    pub ssl_passthrough: bool,
    /// The limit annotations: request rates, connections, exemptions.
    pub limits: LimitNotes,
    /// `proxy-send-timeout`, `proxy-next-upstream*`, and the tuning
    /// knobs accepted as such.
    pub proxy: ProxyNotes,
    /// `affinity: cookie` and the `session-cookie-*` annotations.
    pub affinity: AffinityNotes,
    /// `custom-http-errors` and `default-backend`.
    pub errors: ErrorNotes,
}

/// What the pods behind an Ingress speak (`backend-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendProtocol {
    /// HTTP/1.1 (also `AUTO_HTTP`, which ingress-nginx serves the same way).
    Http,
    /// HTTP/1.1 over TLS.
    Https,
    /// gRPC: HTTP/2 with prior knowledge (h2c).
    Grpc,
    /// gRPC over TLS (HTTP/2 by ALPN).
    Grpcs,
}

impl BackendProtocol {
    /// ingress-nginx's spelling, any case (it upper-cases the value).
    fn parse(v: &str) -> Result<Self, &'static str> {
        match v.trim().to_ascii_uppercase().as_str() {
            "HTTP" | "AUTO_HTTP" => Ok(BackendProtocol::Http),
            "HTTPS" => Ok(BackendProtocol::Https),
            "GRPC" => Ok(BackendProtocol::Grpc),
            "GRPCS" => Ok(BackendProtocol::Grpcs),
            "FCGI" | "AJP" => Err("is not supported by sluice (HTTP, HTTPS, GRPC and GRPCS are)"),
            _ => Err("is not HTTP, HTTPS, AUTO_HTTP, GRPC or GRPCS"),
        }
    }

    /// Over TLS.
    pub fn tls(self) -> bool {
        matches!(self, BackendProtocol::Https | BackendProtocol::Grpcs)
    }

    /// Over HTTP/2.
    pub fn http2(self) -> bool {
        matches!(self, BackendProtocol::Grpc | BackendProtocol::Grpcs)
    }
}

impl Annotated {
    /// The header edits the annotations ask for.
    pub fn header_edits(&self) -> crate::spec::HeaderEdits {
        crate::spec::HeaderEdits {
            host: self.upstream_vhost.clone(),
            forwarded_prefix: self.forwarded_prefix.clone(),
            request: self.snippet.request.clone(),
            response: self.snippet.response.clone(),
            added: self.snippet.added.clone(),
            ..Default::default()
        }
    }

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
            "{NGINX}canary-weight: {} is more than canary-weight-total {}; using all of it{AS_INGRESS_NGINX}",
            out.canary_weight, out.canary_total
        ));
        out.canary_weight = out.canary_total;
    }
    out.canary_rules
        .finish(out.canary_header.is_some(), NGINX, &mut out.problems);
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
    if name == "configuration-snippet" || name == "server-snippet" {
        let (edits, refused) = snippet::parse(value);
        for r in refused {
            out.problems.push(format!(
                "{key}: refused {r}; the rest of the snippet applies"
            ));
        }
        out.snippet.request.extend(edits.request);
        out.snippet.response.extend(edits.response);
        out.snippet.added.extend(edits.added);
        return;
    }
    if name.ends_with("-snippet") {
        out.problems.push(format!(
            "{key}: snippet annotations inject raw configuration and are refused"
        ));
        return;
    }
    if paths::parse(&mut out.paths, key, name, value, &mut out.problems) {
        return;
    }
    if access::parse(&mut out.access, key, name, value, &mut out.problems) {
        return;
    }
    if canary::parse(&mut out.canary_rules, key, name, value, &mut out.problems) {
        return;
    }
    if limits::parse(&mut out.limits, key, name, value, &mut out.problems) {
        return;
    }
    if proxy::parse(&mut out.proxy, key, name, value, &mut out.problems) {
        return;
    }
    if external_auth::parse(
        &mut out.access.external,
        key,
        name,
        value,
        &mut out.problems,
    ) || cors::parse(&mut out.access.cors, key, name, value, &mut out.problems)
    {
        return;
    }
    if affinity::parse(&mut out.affinity, key, name, value, &mut out.problems) {
        return;
    }
    if errors::parse(&mut out.errors, key, name, value, &mut out.problems) {
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
        // ingress-nginx's balancer draws in 1..=100 unless the total is
        // larger: a smaller total is ignored, which surprises, so it is said.
        "canary-weight-total" => match value.trim().parse::<u32>() {
            Ok(n) if n >= 100 => out.canary_total = n,
            Ok(n) if n > 0 => out.problems.push(format!(
                "{key}: {n} is below 100: ignored, weights stay out of 100{AS_INGRESS_NGINX}"
            )),
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
        "backend-protocol" => match BackendProtocol::parse(value) {
            Ok(p) => out.backend_protocol = Some(p),
            Err(why) => out.problems.push(format!("{key}: {value:?} {why}")),
        },
        "proxy-ssl-verify" => on_off(out, key, value, |o, b| o.proxy_ssl_verify = b),
        "proxy-ssl-server-name" => on_off(out, key, value, |o, b| o.proxy_ssl_server_name = b),
        "proxy-ssl-secret" => match value.trim().split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                out.proxy_ssl_secret = Some((ns.to_owned(), name.to_owned()))
            }
            _ => out
                .problems
                .push(format!("{key}: {value:?} is not namespace/name")),
        },
        "proxy-ssl-name" => match rustls::pki_types::ServerName::try_from(value.trim()) {
            Ok(_) => out.proxy_ssl_name = Some(value.trim().to_owned()),
            Err(_) => out.problems.push(format!(
                "{key}: {value:?} is not a DNS name or an IP address"
            )),
        },
        "upstream-vhost" => match host_value(value) {
            Some(v) => out.upstream_vhost = Some(v),
            None => out
                .problems
                .push(format!("{key}: {value:?} is not a host name")),
        },
        "x-forwarded-prefix" => match http::HeaderValue::from_str(value.trim()) {
            Ok(v) if !value.trim().is_empty() => out.forwarded_prefix = Some(v),
            _ => out
                .problems
                .push(format!("{key}: {value:?} is not a header value")),
        },
        "service-upstream" => flag(out, key, value, |o, b| o.service_upstream = b),
        "ssl-passthrough" => flag(out, key, value, |o, b| o.ssl_passthrough = b),
        "proxy-read-timeout" => match seconds(value) {
            Some(d) => out.read_timeout = Some(d),
            None => out
                .problems
                .push(format!("{key}: {value:?} is not a number of seconds")),
        },
        // The rest as the registry says: tuning knobs are taken silently,
        // and everything else is reported.
        _ => match registry::lookup(name) {
            Some(a) if a.support == Support::Tuning => out.tuning.push(name.to_owned()),
            Some(a) if a.support == Support::Refused => out
                .problems
                .push(format!("{key}: refused ({}), ignored", a.note)),
            Some(a) => out.problems.push(format!(
                "{key}: not supported by sluice yet ({}), ignored",
                a.note
            )),
            None => out
                .problems
                .push(format!("{key}: not supported by sluice, ignored")),
        },
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

/// How each family of annotations (`access.rs`, `paths.rs`, ...) reads one
/// `nginx.ingress.kubernetes.io/NAME`: `false` when NAME is not its own.
#[cfg(test)]
type Family<N> = fn(&mut N, &str, &str, &str, &mut Vec<String>) -> bool;

/// For the families' tests: `pairs` (names without the prefix) read by one
/// family's parser, which must claim each; its notes and problems.
#[cfg(test)]
fn read_family<N: Default>(parse: Family<N>, pairs: &[(&str, &str)]) -> (N, Vec<String>) {
    let mut notes = N::default();
    let mut problems = Vec::new();
    for (name, value) in pairs {
        let key = format!("{NGINX}{name}");
        assert!(
            parse(&mut notes, &key, name, value, &mut problems),
            "{name}"
        );
    }
    (notes, problems)
}

/// An `"on"` / `"off"` annotation (ingress-nginx's proxy-ssl-* spell
/// their switches as nginx does; `true` / `false` are taken too).
fn on_off(out: &mut Annotated, key: &str, value: &str, set: impl FnOnce(&mut Annotated, bool)) {
    match value.trim() {
        "on" | "true" => set(out, true),
        "off" | "false" => set(out, false),
        other => out
            .problems
            .push(format!("{key}: {other:?} is not on or off")),
    }
}

/// A host (with an optional port) fit for a Host header.
fn host_value(v: &str) -> Option<http::HeaderValue> {
    let v = v.trim();
    let ok = !v.is_empty()
        && v.len() <= 261
        && v.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
        });
    ok.then(|| http::HeaderValue::from_str(v).ok()).flatten()
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
    fn canary_weight_total_below_100_is_ignored_as_ingress_nginx_does() {
        let a = of(&[
            ("nginx.ingress.kubernetes.io/canary", "true"),
            ("nginx.ingress.kubernetes.io/canary-weight", "25"),
            ("nginx.ingress.kubernetes.io/canary-weight-total", "50"),
        ]);
        assert_eq!((a.canary_weight, a.canary_total), (25, 100));
        assert!(a.problems[0].contains("below 100"), "{:?}", a.problems);
        let a = of(&[
            ("nginx.ingress.kubernetes.io/canary-weight", "30"),
            ("nginx.ingress.kubernetes.io/canary-weight-total", "200"),
        ]);
        assert_eq!((a.canary_weight, a.canary_total), (30, 200));
        assert!(a.problems.is_empty(), "{:?}", a.problems);
        let a = of(&[("nginx.ingress.kubernetes.io/canary-weight-total", "100")]);
        assert!(a.problems.is_empty(), "{:?}", a.problems);
    }

    #[test]
    fn canary_rules_are_read() {
        let a = of(&[
            ("nginx.ingress.kubernetes.io/canary", "true"),
            ("nginx.ingress.kubernetes.io/canary-by-header", "X-Canary"),
            ("nginx.ingress.kubernetes.io/canary-by-header-value", "blue"),
            (
                "nginx.ingress.kubernetes.io/canary-by-cookie",
                "canary_user",
            ),
        ]);
        assert!(a.problems.is_empty(), "{:?}", a.problems);
        let r = a.canary_rules.rules();
        assert_eq!(r.header, crate::spec::HeaderRule::Value((*b"blue").into()));
        assert_eq!(r.cookie.as_deref(), Some("canary_user"));
        let a = of(&[("nginx.ingress.kubernetes.io/canary-by-header-pattern", "^a")]);
        assert!(
            a.problems[0].contains("has no effect without"),
            "{:?}",
            a.problems
        );
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
                "more_set_headers \"x: y\"; rewrite ^ /x;",
            ),
            (
                "nginx.ingress.kubernetes.io/server-snippet",
                "location / {}",
            ),
            (
                "nginx.ingress.kubernetes.io/modsecurity-snippet",
                "SecRuleEngine On",
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
        assert_eq!(a.problems.len(), 7, "{:#?}", a.problems);
        assert_eq!(
            a.problems.iter().filter(|p| p.contains("refused")).count(),
            3
        );
        // The snippet's header directive applies; its rewrite does not.
        assert_eq!(a.header_edits().response.len(), 1);
    }
}
