//! From HTTPRoutes attached to our Gateways to routes, through the same
//! backends as Ingresses (`routes::Backends::route`): a Service's
//! EndpointSlices, its `sluice.dev/load-balance` annotation, or the
//! HTTPRoute's own.
//!
//! What is served: matches by path (`Exact`, `PathPrefix`,
//! `RegularExpression`), method, headers and query parameters, in the
//! spec's precedence (`routing::rules`), on the names a route's parent
//! attachment serves; a rule's backends by weight, the share of a
//! reference that does not resolve (and every request of a rule with no
//! backend) answered 500; a rule's filters (the header modifiers,
//! RequestRedirect, URLRewrite, RequestMirror, CORS), a backendRef's
//! RequestHeaderModifier, `timeouts`, and `appProtocol: kubernetes.io/h2c`.
//! `attach::served` refuses the rest as `UnsupportedValue`, so that what
//! a route's status says is accepted is what is served.
//!
//! Routes come in the order that breaks the spec's ties between matches
//! (the oldest HTTPRoute first, then by namespace and name, then rule by
//! rule); `routing::rules` sorts them by the rest of its precedence
//! (path, method, headers, query) when the table is built.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{IngressBackend, IngressServiceBackend, ServiceBackendPort};

use super::routes::Backends;
use super::{GatewayState, TranslateSettings, Translated};
use crate::balance::Strategy;
use crate::discovery::annotations;
use http::HeaderValue;

use crate::discovery::gateway::api::{
    BackendObjectReference, CorsFilter, HttpBackendRef, HttpHeader, HttpRoute, HttpRouteFilter,
    HttpRouteMatch, HttpRouteTimeouts, RouteKind,
};
use crate::discovery::gateway::attach;
use crate::discovery::gateway::hostnames::Served;
use crate::spec::{
    Conditions, CorsOrigin, GatewayCors, GatewayRedirect, HeaderEdits, HostMatch, MirrorSpec,
    PathModifier, PathType, Redirect, RouteSpec, Scheme, SplitSpec, UpstreamSpec, ValueMatch,
};

/// What a rule's backends are checked against.
struct Refs<'a> {
    grants: &'a [Arc<crate::discovery::gateway::api::ReferenceGrant>],
    services: &'a [Arc<Service>],
    /// The kind of the route whose references they are.
    kind: RouteKind,
}

/// Adds the routes of every accepted HTTPRoute parent in `gw` to `out`.
pub(super) fn add(
    backends: &Backends<'_>,
    gw: &GatewayState,
    services: &[Arc<Service>],
    settings: &TranslateSettings,
    out: &mut Translated,
) {
    let mut routes: Vec<&attach::RouteVerdict> = gw.verdicts.routes.iter().collect();
    routes.sort_by(|a, b| {
        let created =
            |r: &attach::RouteVerdict| r.route.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a).cmp(&created(b))
    });
    certificates(gw, out);
    for rv in routes {
        let route = &rv.route;
        let ns = route.metadata.namespace.as_deref().unwrap_or("default");
        let name = route.metadata.name.as_deref().unwrap_or("");
        let refs = Refs {
            grants: &gw.grants,
            services,
            kind: route.kind,
        };
        // "httproute" or "grpcroute", in labels and problems.
        let kind = route.kind.name().to_ascii_lowercase();
        // A rule's own `load-balance.RULE` is read for its rule alone.
        let route_wide = route.metadata.annotations.as_ref().map(|a| {
            a.iter()
                .filter(|(k, _)| !k.starts_with(RULE_STRATEGY))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        });
        let notes = annotations::parse(&route_wide);
        let rule_notes: Vec<_> = route
            .spec
            .rules
            .iter()
            .map(|rule| rule_notes(&notes, route, rule.name.as_deref(), out))
            .collect();
        // Each rule's matches and CORS, made once for every parent and
        // listener it is served on (its regexes compiled once).
        let everything = [HttpRouteMatch::default()];
        let prepared: Vec<Prepared<'_>> = route
            .spec
            .rules
            .iter()
            .enumerate()
            .map(|(r, rule)| {
                let matches = if rule.matches.is_empty() {
                    &everything[..]
                } else {
                    &rule.matches[..]
                };
                let matches = matches
                    .iter()
                    .enumerate()
                    .filter_map(|(m, what)| {
                        let (path_type, path) = match &what.path {
                            Some(p) if p.type_or_default() == "Exact" => {
                                (PathType::Exact, p.value_or_default())
                            }
                            Some(p) if p.type_or_default() == "PathPrefix" => {
                                (PathType::Prefix, p.value_or_default())
                            }
                            // A regex: in the conditions.
                            _ => (PathType::Prefix, "/"),
                        };
                        match conditions(what) {
                            Ok(c) => Some((m, path_type, path, Arc::new(c))),
                            Err(e) => {
                                // `attach` refuses what this refuses.
                                out.problems
                                    .push(format!("{kind} {ns}/{name}: rules[{r}]: {e}"));
                                None
                            }
                        }
                    })
                    .collect();
                Prepared {
                    matches,
                    cors: rule
                        .filters
                        .iter()
                        .find_map(|f| f.cors.as_ref())
                        .map(|c| Arc::new(cors(c))),
                }
            })
            .collect();
        // A route attached through two listeners (or two references) with
        // names in common makes each route once.
        let mut made = std::collections::HashSet::new();
        for p in rv.parents.iter().filter(|p| p.accepted.status) {
            for (_, served) in &p.attached {
                let hosts: Vec<HostMatch> = match served {
                    Served::Any => vec![HostMatch::Any],
                    Served::Names(names) => names
                        .iter()
                        .filter_map(|h| match HostMatch::parse(h) {
                            Ok(h) => Some(h),
                            Err(e) => {
                                out.problems
                                    .push(format!("{kind} {ns}/{name}: hostname {e}"));
                                None
                            }
                        })
                        .collect(),
                };
                for (r, rule) in route.spec.rules.iter().enumerate() {
                    let notes = &rule_notes[r];
                    for &(m, path_type, path, ref conditions) in &prepared[r].matches {
                        for host in &hosts {
                            // The same path twice with no conditions: the
                            // first is the one served.
                            let plain = !conditions.needs_request() && conditions.path.is_none();
                            if plain && !made.insert((host.to_string(), path.to_owned(), path_type))
                            {
                                continue;
                            }
                            let label = format!("{kind}/{ns}/{name}/rules/{r}/matches/{m}/{host}");
                            if let Some(spec) = rule_route(
                                backends,
                                &refs,
                                &label,
                                host,
                                path,
                                path_type,
                                ns,
                                &rule.backend_refs,
                                &rule.filters,
                                notes,
                                settings,
                                out,
                            ) {
                                let mut spec = RouteSpec {
                                    conditions: Some(conditions.clone()),
                                    ..spec
                                };
                                header_filters(&rule.filters, &mut spec.headers);
                                path_filters(&rule.filters, &mut spec);
                                spec.access.gateway_cors = prepared[r].cors.clone();
                                if let Some(t) = &rule.timeouts {
                                    timeouts(t, &mut spec.timeouts);
                                }
                                out.routes.push(spec);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A rule's matches (their index, path and conditions) and CORS, as
/// every route made of the rule shares them.
struct Prepared<'r> {
    matches: Vec<(usize, PathType, &'r str, Arc<Conditions>)>,
    cors: Option<Arc<GatewayCors>>,
}

/// The prefix of a rule's own strategy annotation.
const RULE_STRATEGY: &str = "sluice.dev/load-balance.";

/// The route's annotations as they apply to one rule: with
/// `sluice.dev/load-balance.NAME` for a rule named NAME, its strategy
/// instead of the route's `sluice.dev/load-balance`. (A Service's own
/// strategy still wins over both, as it does over an Ingress's.)
fn rule_notes<'a>(
    notes: &'a annotations::Annotated,
    route: &HttpRoute,
    rule: Option<&str>,
    out: &mut Translated,
) -> std::borrow::Cow<'a, annotations::Annotated> {
    let key = rule.map(|r| format!("{RULE_STRATEGY}{r}"));
    let value = key
        .as_ref()
        .and_then(|k| route.metadata.annotations.as_ref()?.get(k));
    let (Some(key), Some(value)) = (key, value) else {
        return std::borrow::Cow::Borrowed(notes);
    };
    match value.trim().parse::<Strategy>() {
        Ok(s) => {
            let mut n = notes.clone();
            n.strategy = Some(s);
            std::borrow::Cow::Owned(n)
        }
        Err(_) => {
            let id = super::id(&route.metadata);
            out.problems.push(format!(
                "{} {id}: {key}: {value:?} is not round-robin, weighted, ip-hash or least-request",
                route.kind.name().to_ascii_lowercase()
            ));
            std::borrow::Cow::Borrowed(notes)
        }
    }
}

/// A rule's RequestHeaderModifier and ResponseHeaderModifier as the
/// route's header edits: `set` replaces every value, `add` appends one,
/// `remove` drops the header, on the request sent upstream and on every
/// answer. (`attach` refuses names and values that are not headers.)
fn header_filters(filters: &[HttpRouteFilter], edits: &mut HeaderEdits) {
    let pairs = |list: &[HttpHeader]| -> Vec<(http::HeaderName, http::HeaderValue)> {
        list.iter()
            .filter_map(|h| {
                Some((
                    http::HeaderName::from_bytes(h.name.as_bytes()).ok()?,
                    http::HeaderValue::from_str(&h.value).ok()?,
                ))
            })
            .collect()
    };
    let names = |list: &[String]| -> Vec<http::HeaderName> {
        list.iter()
            .filter_map(|n| http::HeaderName::from_bytes(n.as_bytes()).ok())
            .collect()
    };
    for f in filters {
        if let Some(m) = &f.request_header_modifier {
            edits.request.extend(pairs(&m.set));
            edits.request_added.extend(pairs(&m.add));
            edits.request_removed.extend(names(&m.remove));
        }
        if let Some(m) = &f.response_header_modifier {
            edits.response.extend(pairs(&m.set));
            edits
                .added
                .extend(pairs(&m.add).into_iter().map(|(n, v)| (n, v, true)));
            edits.response_removed.extend(names(&m.remove));
        }
    }
}

/// A CORS filter as the route's answers (`attach::cors` refuses values
/// that would not parse).
fn cors(c: &CorsFilter) -> GatewayCors {
    let list = |l: &[String]| -> Option<HeaderValue> {
        if l.iter().any(|v| v == "*") {
            return None;
        }
        Some(HeaderValue::from_str(&l.join(", ")).unwrap_or(HeaderValue::from_static("")))
    };
    GatewayCors {
        origins: (!c.allow_origins.iter().any(|o| o == "*")).then(|| {
            c.allow_origins
                .iter()
                .filter_map(|o| CorsOrigin::parse(o))
                .collect()
        }),
        credentials: c.allow_credentials == Some(true),
        methods: list(&c.allow_methods),
        headers: list(&c.allow_headers),
        expose: (!c.expose_headers.is_empty())
            .then(|| list(&c.expose_headers).unwrap_or(HeaderValue::from_static("*"))),
        max_age: HeaderValue::from(c.max_age.unwrap_or(5).max(1)),
    }
}

/// The `appProtocol` of the port of `svc` a backend reference names.
fn app_protocol<'a>(svc: &'a Service, b: &BackendObjectReference) -> Option<&'a str> {
    let port = b.port?;
    svc.spec
        .as_ref()?
        .ports
        .as_ref()?
        .iter()
        .find(|p| p.port == port)?
        .app_protocol
        .as_deref()
}

/// A backend whose Service port says `appProtocol: kubernetes.io/h2c`
/// (Gateway API's HTTPRouteBackendProtocolH2C): HTTP/2 with prior
/// knowledge, over plain TCP. Named apart from the same port spoken to
/// as HTTP/1.1, so the two never share connections.
fn h2c(u: &mut UpstreamSpec) {
    if u.tls.is_none() && u.protocol != crate::spec::Protocol::Http2 {
        u.protocol = crate::spec::Protocol::Http2;
        u.name = format!("{}+h2c", u.name).into();
    }
}

/// What `0s` means for `backendRequest`, which must bound every try: a
/// bound no request reaches.
const NO_LIMIT: std::time::Duration = std::time::Duration::from_secs(365 * 86_400);

/// A rule's `timeouts`: `request` bounds a request from routing to the
/// answer's head, retries included; `backendRequest` each try (the wait
/// for the head, then each read of the body). `0s` turns either off.
/// Without `backendRequest`, a try is bounded by `request` alone (not by
/// the default 60 s, which would cut a longer `request` short).
/// (`attach` refuses a value that does not parse.)
fn timeouts(t: &HttpRouteTimeouts, out: &mut crate::spec::RouteTimeouts) {
    if let Some(d) = t.request.as_deref().and_then(|s| attach::duration(s).ok()) {
        out.request = (!d.is_zero()).then_some(d);
        out.response_header = if d.is_zero() { NO_LIMIT } else { d };
    }
    if let Some(d) = t
        .backend_request
        .as_deref()
        .and_then(|s| attach::duration(s).ok())
    {
        out.response_header = if d.is_zero() { NO_LIMIT } else { d };
    }
}

/// A rule's RequestRedirect and URLRewrite (`attach` refuses a rule with
/// both, a value out of the spec's range, and a prefix replaced on a
/// match that is not a `PathPrefix`).
fn path_filters(filters: &[HttpRouteFilter], spec: &mut RouteSpec) {
    let matched = spec.path.clone();
    let modifier = |m: &crate::discovery::gateway::api::PathModifier| match m.type_.as_str() {
        "ReplaceFullPath" => Some(PathModifier::Full(
            m.replace_full_path.as_deref().unwrap_or("/").into(),
        )),
        "ReplacePrefixMatch" => Some(PathModifier::prefix(
            &matched,
            m.replace_prefix_match.as_deref().unwrap_or("/"),
        )),
        _ => None,
    };
    for f in filters {
        if let Some(r) = &f.request_redirect {
            let redirect = GatewayRedirect {
                status: r
                    .status_code
                    .and_then(|c| http::StatusCode::from_u16(u16::try_from(c).ok()?).ok())
                    .unwrap_or(http::StatusCode::FOUND),
                scheme: r.scheme.as_deref().map(|s| match s {
                    "https" => Scheme::Https,
                    _ => Scheme::Http,
                }),
                hostname: r.hostname.as_deref().map(Into::into),
                port: r.port.and_then(|p| u16::try_from(p).ok()),
                path: r.path.as_ref().and_then(modifier),
            };
            spec.path_rules.redirect = Some(Redirect::Gateway(Box::new(redirect)));
        }
        if let Some(w) = &f.url_rewrite {
            if let Some(h) = w.hostname.as_deref() {
                spec.headers.host = http::HeaderValue::from_str(h).ok();
            }
            spec.path_rules.replace_path = w.path.as_ref().and_then(modifier);
        }
    }
}

/// A match's method, headers (the first of each name only, as the spec
/// says), query parameters and regex path, parsed.
fn conditions(m: &HttpRouteMatch) -> Result<Conditions, String> {
    let value = |type_: &str, v: &str| -> Result<ValueMatch, String> {
        match type_ {
            "RegularExpression" => attach::anchored(v)
                .map(ValueMatch::Regex)
                .map_err(|e| e.to_string()),
            _ => Ok(ValueMatch::Exact(v.into())),
        }
    };
    let mut headers: Vec<(http::HeaderName, ValueMatch)> = Vec::new();
    for h in &m.headers {
        let name = http::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("{:?} is not a header name", h.name))?;
        if headers.iter().all(|(n, _)| *n != name) {
            headers.push((name, value(h.type_or_default(), &h.value)?));
        }
    }
    let mut query: Vec<(Box<str>, ValueMatch)> = Vec::new();
    for q in &m.query_params {
        if query.iter().all(|(n, _)| **n != *q.name) {
            query.push((
                q.name.as_str().into(),
                value(q.type_or_default(), &q.value)?,
            ));
        }
    }
    let path = match &m.path {
        Some(p) if p.type_or_default() == "RegularExpression" => {
            Some(attach::anchored(p.value_or_default()).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let method = match &m.method {
        Some(method) => Some(
            method
                .parse::<http::Method>()
                .map_err(|_| format!("method {method:?}"))?,
        ),
        None => None,
    };
    Ok(Conditions {
        method,
        headers,
        query,
        path,
    })
}

/// The route of one rule's match on one host: to its backend, or split
/// over its backends by weight. A backend whose reference does not
/// resolve keeps its share, answered 500; a rule with no backend to send
/// to (none listed, or every weight 0) answers 500 to every request.
#[allow(clippy::too_many_arguments)]
fn rule_route(
    backends: &Backends<'_>,
    refs: &Refs<'_>,
    label: &str,
    host: &HostMatch,
    path: &str,
    path_type: PathType,
    ns: &str,
    backend_refs: &[HttpBackendRef],
    filters: &[HttpRouteFilter],
    notes: &annotations::Annotated,
    settings: &TranslateSettings,
    out: &mut Translated,
) -> Option<RouteSpec> {
    // One route per backend, and whether its reference resolves.
    let one = |b: &BackendObjectReference, out: &mut Translated| {
        let target_ns = b.namespace.as_deref().unwrap_or(ns);
        let service = attach::backend(refs.kind, ns, b, refs.grants, refs.services).ok();
        let resolves = service.is_some();
        let backend = IngressBackend {
            service: Some(IngressServiceBackend {
                // One that does not resolve is looked up as no Service:
                // no endpoints.
                name: if resolves {
                    b.name.clone()
                } else {
                    String::new()
                },
                port: b.port.map(|n| ServiceBackendPort {
                    name: None,
                    number: Some(n),
                }),
            }),
            resource: None,
        };
        // The status says why a reference does not resolve; the lookup's
        // own "no such Service" would only repeat it.
        let mut problems = Vec::new();
        let spec = backends.route(
            label,
            host.clone(),
            path,
            path_type,
            target_ns,
            &backend,
            notes,
            settings,
            &mut problems,
        );
        if resolves {
            out.problems.extend(problems);
        }
        // gRPC is HTTP/2: a GRPCRoute's backends are spoken to in h2c,
        // as are an HTTPRoute's whose port says so.
        let spec = spec.map(|mut spec| {
            if let Some(svc) = service {
                if refs.kind == RouteKind::Grpc || app_protocol(svc, b) == Some("kubernetes.io/h2c")
                {
                    h2c(&mut spec.upstream);
                }
            }
            spec
        });
        spec.map(|spec| (spec, resolves))
    };
    // Each backend's route, weight, whether it resolves, and its own
    // filters' edits.
    let mut made: Vec<(RouteSpec, u32, bool, HeaderEdits)> = Vec::new();
    for b in backend_refs.iter().filter(|b| b.weight_or_default() > 0) {
        if let Some((spec, resolves)) = one(&b.target, out) {
            let mut edits = HeaderEdits::default();
            header_filters(&b.filters, &mut edits);
            made.push((spec, b.weight_or_default().unsigned_abs(), resolves, edits));
        }
    }
    let spec = match &made[..] {
        [] => {
            let nothing = UpstreamSpec::new(
                format!("{label}#no-backend"),
                Strategy::RoundRobin,
                Vec::new(),
            );
            let mut spec = RouteSpec::new(label, host.clone(), path, path_type, nothing.clone());
            spec.split = vec![SplitSpec {
                upstream: nothing,
                weight: 1,
                unresolved: true,
                headers: HeaderEdits::default(),
            }];
            spec
        }
        [(spec, _, true, edits)] if edits.is_empty() => spec.clone(),
        // Several, one that does not resolve, or one with its own edits
        // (applied after the rule's, as a split of one).
        [(first, ..), ..] => {
            let mut spec = first.clone();
            spec.split = made
                .iter()
                .map(|(s, weight, resolves, edits)| SplitSpec {
                    upstream: s.upstream.clone(),
                    weight: *weight,
                    unresolved: !resolves,
                    headers: edits.clone(),
                })
                .collect();
            spec
        }
    };
    // RequestMirror: to a backend that resolves (one that does not is
    // said in the status, and not mirrored to).
    let mut mirrors = Vec::new();
    for m in filters.iter().filter_map(|f| f.request_mirror.as_ref()) {
        if let Some((spec, true)) = one(&m.backend_ref, out) {
            let (numerator, denominator) = match (m.percent, &m.fraction) {
                (Some(p), _) => (p.clamp(0, 100) as u32, 100),
                (None, Some(f)) => (
                    f.numerator.max(0) as u32,
                    f.denominator.unwrap_or(100).max(1) as u32,
                ),
                (None, None) => (1, 1),
            };
            mirrors.push(MirrorSpec {
                upstream: spec.upstream,
                numerator,
                denominator,
            });
        }
    }
    // A Gateway's HTTP and HTTPS listeners are what they say: plain HTTP
    // is never sent to HTTPS unless a filter says so.
    Some(RouteSpec {
        ssl_redirect: Some(false),
        mirrors,
        ..spec
    })
}

/// The certificates of our Gateways' HTTPS listeners, for the names the
/// listener serves: its hostname, or, without one, every name its routes
/// serve on it.
fn certificates(gw: &GatewayState, out: &mut Translated) {
    use kube::Resource;
    let v = &gw.verdicts;
    for (gi, g) in v.gateways.iter().enumerate() {
        let id = super::id(&g.gateway.metadata);
        for (li, l) in g.listeners.iter().enumerate() {
            if l.protocol != Some(attach::Protocol::Https) || !l.programmed.status {
                continue;
            }
            let hosts: Vec<String> = match &l.hostname {
                Some(h) => vec![h.clone()],
                None => {
                    let mut names = std::collections::BTreeSet::new();
                    for p in v.routes.iter().flat_map(|r| &r.parents) {
                        for (at, served) in &p.attached {
                            if p.gateway == gi && *at == li {
                                if let Served::Names(n) = served {
                                    names.extend(n.iter().cloned());
                                }
                            }
                        }
                    }
                    names.into_iter().collect()
                }
            };
            if hosts.is_empty() {
                continue;
            }
            for (ns, name) in &l.certificates {
                out.tls.push(super::TlsBinding {
                    ingress: id.clone(),
                    ingress_ref: g.gateway.object_ref(&()),
                    entry: li,
                    hosts: hosts.clone(),
                    secret: format!("{ns}/{name}"),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_request_timeout_bounds_each_try_unless_backend_request_does() {
        let base = crate::spec::DEFAULT_TIMEOUTS;
        let of = |request: Option<&str>, backend: Option<&str>| {
            let mut t = base;
            timeouts(
                &HttpRouteTimeouts {
                    request: request.map(Into::into),
                    backend_request: backend.map(Into::into),
                },
                &mut t,
            );
            (t.request, t.response_header)
        };
        let s = Duration::from_secs;
        // Longer than the 60 s default: not cut at 60 s.
        assert_eq!(of(Some("5m"), None), (Some(s(300)), s(300)));
        assert_eq!(of(Some("0s"), None), (None, NO_LIMIT));
        assert_eq!(of(Some("10s"), Some("2s")), (Some(s(10)), s(2)));
        assert_eq!(of(None, Some("0s")), (None, NO_LIMIT));
        assert_eq!(of(None, None), (None, base.response_header));
    }
}
