//! Which Gateway API objects are ours, and how they hold together: the
//! class, each Gateway's listeners, and each HTTPRoute's parents. The
//! verdicts are what the status written back says and what the routes
//! are built from, so that the two never disagree.
//!
//! Pure: the stores' contents in, verdicts out, in a stable order
//! (Gateways and routes by namespace and name).
//!
//! The rules, from the spec (`apis/v1`, v1.6):
//! - The class named by `--gateway-class` is ours when its
//!   `controllerName` is [`CONTROLLER`]; Gateways of it are served.
//! - A listener is accepted when its protocol is HTTP or HTTPS and no
//!   other listener of the Gateway takes the same port with another
//!   protocol, or the same port, protocol and hostname (`Conflicted`).
//!   Its route kinds are the valid ones of `allowedRoutes.kinds`
//!   (HTTPRoute), or HTTPRoute when none is given; an invalid kind is
//!   `ResolvedRefs=False/InvalidRouteKinds`. An HTTPS listener's
//!   certificates must be core Secrets, in its namespace or granted by a
//!   ReferenceGrant, that exist and hold a certificate and a key.
//! - A route's parent reference to one of our Gateways is accepted on the
//!   listeners that its `sectionName` and `port` select (else
//!   `NoMatchingParent`), that allow its kind and namespace (else
//!   `NotAllowedByListeners`), and whose hostname has names in common
//!   with the route's (else `NoMatchingListenerHostname`). A route that
//!   uses a value this build does not support is `UnsupportedValue`.
//! - A route's references resolve when each backend is a Service
//!   (`InvalidKind`), in its namespace or granted (`RefNotPermitted`),
//!   that exists (`BackendNotFound`).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::api::{
    BackendObjectReference, Gateway, GatewayClass, HttpRoute, Listener, NamespaceLabels,
    ParentReference, ReferenceGrant, RouteGroupKind, RouteKind, GROUP,
};
use super::grants::{self, permitted};
use super::hostnames::{intersect, Served};

/// The `controllerName` a GatewayClass names to be served by Sluice.
pub const CONTROLLER: &str = "sluice.dev/gateway-controller";

/// The filter types routes may use (the standard channel's, but
/// extension references).
pub const FILTERS: [&str; 6] = [
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestRedirect",
    "URLRewrite",
    "RequestMirror",
    "CORS",
];

/// The conformance suite's feature names this build serves, for our
/// GatewayClass's `status.supportedFeatures` (the suite runs what it
/// says). Left out: `GatewayPort8080` and the like (every listener is
/// served on Sluice's own listeners, one address for all Gateways),
/// `HTTPRouteNamedRouteRule`, and the experimental channel's.
pub const SUPPORTED_FEATURES: &[&str] = &[
    "GRPCRoute",
    "Gateway",
    "HTTPRoute",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendTimeout",
    "HTTPRouteCORS",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteSchemeRedirect",
];

/// What the verdicts are made from: the stores' contents.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// `--gateway-class`.
    pub class: &'a str,
    pub classes: &'a [Arc<GatewayClass>],
    pub gateways: &'a [Arc<Gateway>],
    pub routes: &'a [Arc<HttpRoute>],
    pub grants: &'a [Arc<ReferenceGrant>],
    pub namespaces: &'a NamespaceLabels,
    pub services: &'a [Arc<Service>],
    /// TLS Secrets, for listeners' certificates.
    pub secrets: &'a [Arc<Secret>],
}

/// One condition, as the status will say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub status: bool,
    /// CamelCase, one of the spec's reasons for the condition's type.
    pub reason: &'static str,
    pub message: String,
}

impl Cond {
    fn yes(reason: &'static str) -> Cond {
        Cond {
            status: true,
            reason,
            message: String::new(),
        }
    }

    fn no(reason: &'static str, message: impl Into<String>) -> Cond {
        Cond {
            status: false,
            reason,
            message: message.into(),
        }
    }
}

/// Everything decided.
#[derive(Debug, Default)]
pub struct Verdicts {
    /// Our GatewayClass, when it is there and names our controller.
    pub class: Option<ClassVerdict>,
    /// The Gateways of our class (none when the class is not accepted).
    pub gateways: Vec<GatewayVerdict>,
    /// The routes with at least one parent among our Gateways.
    pub routes: Vec<RouteVerdict>,
}

#[derive(Debug)]
pub struct ClassVerdict {
    pub class: Arc<GatewayClass>,
    pub accepted: Cond,
}

#[derive(Debug)]
pub struct GatewayVerdict {
    pub gateway: Arc<Gateway>,
    pub listeners: Vec<ListenerVerdict>,
    /// True while one listener at least is valid (`ListenersNotValid`
    /// when some are not).
    pub accepted: Cond,
    pub programmed: Cond,
}

/// The protocols a listener may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Https,
}

#[derive(Debug)]
pub struct ListenerVerdict {
    pub name: String,
    pub port: i32,
    /// `None`: a protocol Sluice does not serve.
    pub protocol: Option<Protocol>,
    /// Lower-case.
    pub hostname: Option<String>,
    pub supported_kinds: Vec<RouteGroupKind>,
    pub accepted: Cond,
    pub resolved_refs: Cond,
    pub conflicted: Cond,
    pub programmed: Cond,
    /// An HTTPS listener's certificate Secrets, as `(namespace, name)`,
    /// when they resolve.
    pub certificates: Vec<(String, String)>,
    /// Routes accepted on this listener.
    pub attached_routes: i32,
    allowed: Allowed,
}

/// Which namespaces' routes a listener takes.
#[derive(Debug, Clone)]
enum Allowed {
    Same,
    All,
    Selector(LabelSelector),
    /// An unknown `from`, or a selector that cannot be read: none.
    None,
}

#[derive(Debug)]
pub struct RouteVerdict {
    pub route: Arc<HttpRoute>,
    pub parents: Vec<ParentVerdict>,
}

#[derive(Debug)]
pub struct ParentVerdict {
    /// As the route gives it (the status echoes it).
    pub parent_ref: ParentReference,
    /// Index into [`Verdicts::gateways`].
    pub gateway: usize,
    pub accepted: Cond,
    pub resolved_refs: Cond,
    /// The listeners (indexes) it is served on, and the names it serves
    /// on each; empty unless accepted.
    pub attached: Vec<(usize, Served)>,
}

/// Decides everything from `inputs`.
pub fn decide(inputs: &Inputs<'_>) -> Verdicts {
    let mut out = Verdicts::default();
    let Some(class) = inputs
        .classes
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(inputs.class))
    else {
        return out;
    };
    if class.spec.controller_name != CONTROLLER {
        return out;
    }
    let accepted = match &class.spec.parameters_ref {
        None => Cond::yes("Accepted"),
        Some(p) => Cond::no(
            "InvalidParameters",
            format!(
                "parametersRef {}/{}: Sluice takes no parameters",
                p.kind, p.name
            ),
        ),
    };
    let serving = accepted.status;
    out.class = Some(ClassVerdict {
        class: class.clone(),
        accepted,
    });
    if !serving {
        return out;
    }
    let mut gateways: Vec<&Arc<Gateway>> = inputs
        .gateways
        .iter()
        .filter(|g| g.spec.gateway_class_name == inputs.class)
        .collect();
    gateways.sort_by(|a, b| key(&a.metadata).cmp(&key(&b.metadata)));
    out.gateways = gateways.into_iter().map(|g| gateway(g, inputs)).collect();

    let mut routes: Vec<&Arc<HttpRoute>> = inputs.routes.iter().collect();
    routes.sort_by(|a, b| key(&a.metadata).cmp(&key(&b.metadata)));
    for route in routes {
        let ns = route.metadata.namespace.as_deref().unwrap_or("default");
        let parents: Vec<ParentVerdict> = route
            .spec
            .parent_refs
            .iter()
            .filter_map(|p| parent(route, ns, p, &out.gateways, inputs))
            .collect();
        if parents.is_empty() {
            continue;
        }
        // A route counts once on a listener, however many of its
        // references lead there.
        let mut on = std::collections::BTreeSet::new();
        for p in &parents {
            for (l, _) in &p.attached {
                if on.insert((p.gateway, *l)) {
                    out.gateways[p.gateway].listeners[*l].attached_routes += 1;
                }
            }
        }
        out.routes.push(RouteVerdict {
            route: route.clone(),
            parents,
        });
    }
    out
}

/// `(namespace, name)`, the order of everything here.
pub(super) fn key(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (&str, &str) {
    (
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default(),
    )
}

fn gateway(g: &Arc<Gateway>, inputs: &Inputs<'_>) -> GatewayVerdict {
    let ns = g.metadata.namespace.as_deref().unwrap_or("default");
    let mut listeners: Vec<ListenerVerdict> = g
        .spec
        .listeners
        .iter()
        .map(|l| listener(l, ns, inputs))
        .collect();
    conflicts(&mut listeners);
    let valid = listeners.iter().filter(|l| l.accepted.status).count();
    let accepted = if let Some(p) = g
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.parameters_ref.as_ref())
    {
        Cond::no(
            "InvalidParameters",
            format!(
                "infrastructure.parametersRef {}/{}: Sluice takes no parameters",
                p.kind, p.name
            ),
        )
    } else if valid == listeners.len() && valid > 0 {
        Cond::yes("Accepted")
    } else if valid > 0 {
        Cond {
            status: true,
            reason: "ListenersNotValid",
            message: format!(
                "{} of {} listeners are not valid",
                listeners.len() - valid,
                listeners.len()
            ),
        }
    } else {
        Cond::no("ListenersNotValid", "no listener is valid")
    };
    let programmed = if accepted.status {
        Cond::yes("Programmed")
    } else {
        Cond::no("Invalid", accepted.message.clone())
    };
    GatewayVerdict {
        gateway: g.clone(),
        listeners,
        accepted,
        programmed,
    }
}

fn listener(l: &Listener, ns: &str, inputs: &Inputs<'_>) -> ListenerVerdict {
    let protocol = match l.protocol.as_str() {
        "HTTP" => Some(Protocol::Http),
        "HTTPS" => Some(Protocol::Https),
        _ => None,
    };
    let accepted = match protocol {
        Some(_) => Cond::yes("Accepted"),
        None => Cond::no(
            "UnsupportedProtocol",
            format!(
                "protocol {:?} is not served (HTTP and HTTPS are)",
                l.protocol
            ),
        ),
    };
    let allowed_routes = l.allowed_routes.clone().unwrap_or_default();
    let mut supported_kinds = Vec::new();
    let mut invalid_kinds = Vec::new();
    if allowed_routes.kinds.is_empty() {
        for kind in [RouteKind::Http, RouteKind::Grpc] {
            supported_kinds.push(RouteGroupKind {
                group: Some(GROUP.into()),
                kind: kind.name().into(),
            });
        }
    }
    for k in &allowed_routes.kinds {
        let served = [RouteKind::Http, RouteKind::Grpc]
            .iter()
            .any(|kind| k.kind == kind.name());
        if k.group_or_default() == GROUP && served {
            supported_kinds.push(RouteGroupKind {
                group: Some(GROUP.into()),
                kind: k.kind.clone(),
            });
        } else {
            invalid_kinds.push(format!("{}/{}", k.group_or_default(), k.kind));
        }
    }
    let mut certificates = Vec::new();
    let resolved_refs = if !invalid_kinds.is_empty() {
        Cond::no(
            "InvalidRouteKinds",
            format!("route kinds not served: {}", invalid_kinds.join(", ")),
        )
    } else if protocol == Some(Protocol::Https) {
        match listener_certificates(l, ns, inputs) {
            Ok(c) => {
                certificates = c;
                Cond::yes("ResolvedRefs")
            }
            Err(c) => c,
        }
    } else {
        Cond::yes("ResolvedRefs")
    };
    let allowed = match allowed_routes
        .namespaces
        .as_ref()
        .and_then(|n| n.from.as_deref())
        .unwrap_or("Same")
    {
        "Same" => Allowed::Same,
        "All" => Allowed::All,
        "Selector" => match allowed_routes.namespaces.and_then(|n| n.selector) {
            Some(s) => Allowed::Selector(s),
            None => Allowed::None,
        },
        _ => Allowed::None,
    };
    let programmed = if accepted.status && resolved_refs.status {
        Cond::yes("Programmed")
    } else {
        Cond::no(
            "Invalid",
            "the listener is not accepted or its references do not resolve",
        )
    };
    ListenerVerdict {
        name: l.name.clone(),
        port: l.port,
        protocol,
        hostname: l.hostname.as_ref().map(|h| h.to_ascii_lowercase()),
        supported_kinds,
        accepted,
        resolved_refs,
        conflicted: Cond::no("NoConflicts", ""),
        programmed,
        certificates,
        attached_routes: 0,
        allowed,
    }
}

/// An HTTPS listener's certificate Secrets, or the condition saying why
/// they do not resolve.
fn listener_certificates(
    l: &Listener,
    ns: &str,
    inputs: &Inputs<'_>,
) -> Result<Vec<(String, String)>, Cond> {
    let tls = l.tls.as_ref();
    if tls.is_some_and(|t| t.mode_or_default() != "Terminate") {
        return Err(Cond::no(
            "InvalidCertificateRef",
            "an HTTPS listener terminates TLS (mode Passthrough is for TLS listeners)",
        ));
    }
    let refs = tls
        .map(|t| t.certificate_refs.as_slice())
        .unwrap_or_default();
    if refs.is_empty() {
        return Err(Cond::no("InvalidCertificateRef", "no certificateRefs"));
    }
    let mut out = Vec::new();
    for r in refs {
        let secret_ns = r.namespace.as_deref().unwrap_or(ns);
        let id = format!("{}/{}", secret_ns, r.name);
        let target = Target {
            group: r.group_or_default(),
            kind: r.kind_or_default(),
            namespace: secret_ns,
            name: &r.name,
        };
        check(
            ("certificateRef", "Gateway", ns),
            target,
            ("Secret", "InvalidCertificateRef"),
            inputs.grants,
        )?;
        let secret = inputs.secrets.iter().find(|s| {
            s.metadata.namespace.as_deref() == Some(secret_ns)
                && s.metadata.name.as_deref() == Some(r.name.as_str())
        });
        let has = |k: &str| {
            secret
                .and_then(|s| s.data.as_ref())
                .and_then(|d| d.get(k))
                .is_some_and(|v| !v.0.is_empty())
        };
        if secret.is_none() {
            return Err(Cond::no(
                "InvalidCertificateRef",
                format!("certificateRef {id}: no such TLS Secret"),
            ));
        }
        if !has("tls.crt") || !has("tls.key") {
            return Err(Cond::no(
                "InvalidCertificateRef",
                format!("certificateRef {id}: lacks tls.crt or tls.key"),
            ));
        }
        out.push((secret_ns.to_owned(), r.name.clone()));
    }
    Ok(out)
}

/// Marks listeners that share a port with another protocol, or a port,
/// protocol and hostname: none of them is accepted.
fn conflicts(listeners: &mut [ListenerVerdict]) {
    let n = listeners.len();
    for i in 0..n {
        let Some(p) = listeners[i].protocol else {
            continue;
        };
        let mut reason = None;
        for j in (0..n).filter(|&j| j != i) {
            let other = &listeners[j];
            if other.port != listeners[i].port {
                continue;
            }
            match other.protocol {
                Some(q) if q != p => reason = Some(("ProtocolConflict", &other.name)),
                Some(_) if other.hostname == listeners[i].hostname => {
                    reason = reason.or(Some(("HostnameConflict", &other.name)))
                }
                _ => {}
            }
        }
        if let Some((why, with)) = reason {
            let message = format!(
                "conflicts with listener {with} on port {}",
                listeners[i].port
            );
            let l = &mut listeners[i];
            l.conflicted = Cond {
                status: true,
                reason: why,
                message: message.clone(),
            };
            l.accepted = Cond::no("PortUnavailable", message);
            l.programmed = Cond::no("Invalid", "the listener conflicts with another");
        }
    }
}

/// One parent reference's verdict, when it names one of our Gateways.
fn parent(
    route: &HttpRoute,
    ns: &str,
    p: &ParentReference,
    gateways: &[GatewayVerdict],
    inputs: &Inputs<'_>,
) -> Option<ParentVerdict> {
    if p.group_or_default() != GROUP || p.kind_or_default() != "Gateway" {
        return None;
    }
    let gw_ns = p.namespace.as_deref().unwrap_or(ns);
    let index = gateways.iter().position(|g| {
        g.gateway.metadata.namespace.as_deref() == Some(gw_ns)
            && g.gateway.metadata.name.as_deref() == Some(p.name.as_str())
    })?;
    let g = &gateways[index];
    let resolved_refs = route_refs(route, ns, inputs);
    let mut verdict = ParentVerdict {
        parent_ref: p.clone(),
        gateway: index,
        accepted: Cond::yes("Accepted"),
        resolved_refs,
        attached: Vec::new(),
    };
    if let Err(message) = supported(route).and_then(|()| served(route)) {
        verdict.accepted = Cond::no("UnsupportedValue", message);
        return Some(verdict);
    }
    let candidates: Vec<usize> = (0..g.listeners.len())
        .filter(|&i| {
            let l = &g.listeners[i];
            p.section_name.as_deref().is_none_or(|s| s == l.name)
                && p.port.is_none_or(|port| port == l.port)
        })
        .collect();
    if candidates.is_empty() {
        verdict.accepted = Cond::no(
            "NoMatchingParent",
            "no listener of the Gateway has this sectionName and port",
        );
        return Some(verdict);
    }
    let allowed: Vec<usize> = candidates
        .into_iter()
        .filter(|&i| {
            let l = &g.listeners[i];
            l.accepted.status
                && l.supported_kinds
                    .iter()
                    .any(|k| k.kind == route.kind.name())
                && namespace_allowed(&l.allowed, ns, gw_ns, inputs.namespaces)
        })
        .collect();
    if allowed.is_empty() {
        verdict.accepted = Cond::no(
            "NotAllowedByListeners",
            format!(
                "no listener takes {}s from namespace {ns}",
                route.kind.name()
            ),
        );
        return Some(verdict);
    }
    for i in allowed {
        if let Some(served) = intersect(g.listeners[i].hostname.as_deref(), &route.spec.hostnames) {
            verdict.attached.push((i, served));
        }
    }
    if verdict.attached.is_empty() {
        verdict.accepted = Cond::no(
            "NoMatchingListenerHostname",
            "no listener's hostname has a name in common with the route's hostnames",
        );
    }
    Some(verdict)
}

/// Whether a listener takes routes from namespace `ns`.
fn namespace_allowed(allowed: &Allowed, ns: &str, gw_ns: &str, labels: &NamespaceLabels) -> bool {
    match allowed {
        Allowed::Same => ns == gw_ns,
        Allowed::All => true,
        Allowed::None => false,
        Allowed::Selector(s) => {
            // The API server labels every namespace with its own name.
            let mut own = labels.get(ns).cloned().unwrap_or_default();
            own.insert("kubernetes.io/metadata.name".into(), ns.into());
            selects(s, &own)
        }
    }
}

/// A label selector over a set of labels (`In`, `NotIn`, `Exists`,
/// `DoesNotExist`; an unknown operator selects nothing).
pub fn selects(s: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = s
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expression = s.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_label && by_expression
}

/// The values a route uses that this build does not serve, named.
fn supported(route: &HttpRoute) -> Result<(), String> {
    for (r, rule) in route.spec.rules.iter().enumerate() {
        for m in &rule.matches {
            if let Some(p) = &m.path {
                let t = p.type_or_default();
                if !matches!(t, "Exact" | "PathPrefix" | "RegularExpression") {
                    return Err(format!("rules[{r}]: path match type {t:?}"));
                }
            }
            for h in m.headers.iter().chain(&m.query_params) {
                let t = h.type_or_default();
                if !matches!(t, "Exact" | "RegularExpression") {
                    return Err(format!("rules[{r}]: match type {t:?} for {}", h.name));
                }
                if t == "RegularExpression" {
                    anchored(&h.value).map_err(|e| format!("rules[{r}]: {}: {e}", h.name))?;
                }
            }
            for h in &m.headers {
                http::HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| format!("rules[{r}]: {:?} is not a header name", h.name))?;
            }
            if let Some(p) = &m.path {
                if p.type_or_default() == "RegularExpression" {
                    anchored(p.value_or_default()).map_err(|e| format!("rules[{r}]: path: {e}"))?;
                }
            }
            if let Some(method) = &m.method {
                if !matches!(
                    method.as_str(),
                    "GET"
                        | "HEAD"
                        | "POST"
                        | "PUT"
                        | "DELETE"
                        | "CONNECT"
                        | "OPTIONS"
                        | "TRACE"
                        | "PATCH"
                ) {
                    return Err(format!("rules[{r}]: method {method:?}"));
                }
            }
        }
        let has = |t: &str| rule.filters.iter().any(|f| f.type_ == t);
        if has("RequestRedirect") && has("URLRewrite") {
            return Err(format!(
                "rules[{r}]: RequestRedirect and URLRewrite cannot be used together"
            ));
        }
        // ReplacePrefixMatch replaces what a PathPrefix matched.
        let replaces_prefix = rule.filters.iter().any(|f| {
            let path = f
                .request_redirect
                .as_ref()
                .and_then(|r| r.path.as_ref())
                .or(f.url_rewrite.as_ref().and_then(|w| w.path.as_ref()));
            path.is_some_and(|p| p.type_ == "ReplacePrefixMatch")
        });
        let prefix_only = rule.matches.iter().all(|m| {
            m.path
                .as_ref()
                .is_none_or(|p| p.type_or_default() == "PathPrefix")
        });
        if replaces_prefix && !prefix_only {
            return Err(format!(
                "rules[{r}]: ReplacePrefixMatch needs every match's path to be a PathPrefix"
            ));
        }
        if let Some(t) = &rule.timeouts {
            let request = t.request.as_deref().map(duration).transpose();
            let backend = t.backend_request.as_deref().map(duration).transpose();
            let (request, backend) = match (request, backend) {
                (Ok(r), Ok(b)) => (r, b),
                (Err(e), _) | (_, Err(e)) => return Err(format!("rules[{r}]: timeouts: {e}")),
            };
            if let (Some(req), Some(b)) = (request, backend) {
                if !req.is_zero() && b > req {
                    return Err(format!(
                        "rules[{r}]: timeouts: backendRequest is longer than request"
                    ));
                }
            }
        }
        let backend_filters = rule.backend_refs.iter().flat_map(|b| &b.filters);
        for f in rule.filters.iter().chain(backend_filters) {
            if !FILTERS.contains(&f.type_.as_str()) {
                return Err(format!("rules[{r}]: filter type {:?}", f.type_));
            }
            filter_values(f).map_err(|e| format!("rules[{r}]: {}: {e}", f.type_))?;
            let modifiers = f
                .request_header_modifier
                .iter()
                .chain(&f.response_header_modifier);
            for m in modifiers {
                for h in m.set.iter().chain(&m.add) {
                    let (Ok(name), Ok(_)) = (
                        http::HeaderName::from_bytes(h.name.as_bytes()),
                        http::HeaderValue::from_str(&h.value),
                    ) else {
                        return Err(format!(
                            "rules[{r}]: {}: {:?} is not a header",
                            f.type_, h.name
                        ));
                    };
                    // The message's framing and the connection are the
                    // proxy's: set by a route, they would let one request
                    // smuggle another onto a pooled connection.
                    if crate::policy::HOP_BY_HOP.contains(&name.as_str())
                        || name == http::header::CONTENT_LENGTH
                    {
                        return Err(format!(
                            "rules[{r}]: {}: {:?} is a connection header, which cannot be set",
                            f.type_, h.name
                        ));
                    }
                }
                for n in &m.remove {
                    http::HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
                        format!("rules[{r}]: {}: {n:?} is not a header name", f.type_)
                    })?;
                }
            }
        }
    }
    Ok(())
}

/// A filter's RequestRedirect and URLRewrite values, within the spec's
/// ranges (its CRD validates them too; an API server without the
/// validation must not make us serve something else).
fn filter_values(f: &super::api::HttpRouteFilter) -> Result<(), String> {
    let path = |p: &super::api::PathModifier| -> Result<(), String> {
        let value = match p.type_.as_str() {
            "ReplaceFullPath" => p.replace_full_path.as_deref(),
            "ReplacePrefixMatch" => p.replace_prefix_match.as_deref(),
            t => return Err(format!("path type {t:?}")),
        };
        match value {
            Some(v) if v.is_empty() || v.starts_with('/') => http::uri::PathAndQuery::from_str(v)
                .ok()
                .filter(|pq| pq.query().is_none())
                .map(|_| ())
                .ok_or_else(|| format!("{v:?} is not a path")),
            Some(v) => Err(format!("{v:?} is not a path starting with /")),
            None => Err(format!("{} has no value", p.type_)),
        }
    };
    let hostname = |h: &str| -> Result<(), String> {
        match crate::spec::HostMatch::parse(h) {
            Ok(crate::spec::HostMatch::Exact(_)) => Ok(()),
            _ => Err(format!("hostname {h:?} is not a precise hostname")),
        }
    };
    if let Some(r) = &f.request_redirect {
        if let Some(s) = r.scheme.as_deref() {
            if !matches!(s, "http" | "https") {
                return Err(format!("scheme {s:?}"));
            }
        }
        if let Some(c) = r.status_code {
            if !matches!(c, 301 | 302 | 303 | 307 | 308) {
                return Err(format!("statusCode {c}"));
            }
        }
        if let Some(p) = r.port {
            if !(1..=65535).contains(&p) {
                return Err(format!("port {p}"));
            }
        }
        r.hostname.as_deref().map(hostname).transpose()?;
        r.path.as_ref().map(path).transpose()?;
    }
    if let Some(w) = &f.url_rewrite {
        w.hostname.as_deref().map(hostname).transpose()?;
        w.path.as_ref().map(path).transpose()?;
    }
    if let Some(c) = &f.cors {
        cors(c)?;
    }
    if let Some(m) = &f.request_mirror {
        match (m.percent, &m.fraction) {
            (Some(_), Some(_)) => return Err("both percent and fraction".into()),
            (Some(p), None) if !(0..=100).contains(&p) => return Err(format!("percent {p}")),
            (None, Some(fr)) => {
                let d = fr.denominator.unwrap_or(100);
                if fr.numerator < 0 || d < 1 || fr.numerator > d {
                    return Err(format!("fraction {}/{d}", fr.numerator));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A CORS filter's values: origins that are origins, `*` alone when it is
/// in a list, methods and header names that are tokens, a positive
/// max-age.
pub fn cors(c: &super::api::CorsFilter) -> Result<(), String> {
    let alone = |list: &[String], what: &str| {
        if list.len() > 1 && list.iter().any(|v| v == "*") {
            Err(format!("{what}: * must stand alone"))
        } else {
            Ok(())
        }
    };
    alone(&c.allow_origins, "allowOrigins")?;
    alone(&c.allow_methods, "allowMethods")?;
    alone(&c.allow_headers, "allowHeaders")?;
    for o in c.allow_origins.iter().filter(|o| *o != "*") {
        if crate::spec::CorsOrigin::parse(o).is_none() {
            return Err(format!("allowOrigins: {o:?} is not scheme://host[:port]"));
        }
    }
    for m in c.allow_methods.iter().filter(|m| *m != "*") {
        m.parse::<http::Method>()
            .map_err(|_| format!("allowMethods: {m:?}"))?;
    }
    for h in c
        .allow_headers
        .iter()
        .chain(&c.expose_headers)
        .filter(|h| *h != "*")
    {
        http::HeaderName::from_bytes(h.as_bytes())
            .map_err(|_| format!("{h:?} is not a header name"))?;
    }
    if c.allow_credentials == Some(true) && c.expose_headers.iter().any(|h| h == "*") {
        return Err("exposeHeaders: * with allowCredentials".into());
    }
    if let Some(a) = c.max_age {
        if a < 1 {
            return Err(format!("maxAge {a}"));
        }
    }
    Ok(())
}

/// A Gateway API duration (GEP-2257): one to four `<1-5 digits><unit>`
/// pieces, units `h`, `m`, `s` and `ms` (`1h30m`, `500ms`, `0s`).
pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{s:?} is not a duration like 10s, 500ms or 1h30m");
    let mut rest = s;
    let mut total = std::time::Duration::ZERO;
    let mut pieces = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 || pieces == 4 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (std::time::Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (std::time::Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (std::time::Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (std::time::Duration::from_secs(1), 1)
        } else {
            return Err(bad());
        };
        rest = &rest[len..];
        total += unit * n as u32;
        pieces += 1;
    }
    if pieces == 0 {
        return Err(bad());
    }
    Ok(total)
}

/// A Gateway API regular expression, matched against the whole value
/// (as Envoy's implementations do).
pub fn anchored(re: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{re})$"))
}

/// What the spec allows and this build does not serve (extension
/// references, filters on a backendRef but RequestHeaderModifier):
/// refused as `UnsupportedValue`, so that an accepted route is one served
/// as the spec says.
fn served(route: &HttpRoute) -> Result<(), String> {
    for (r, rule) in route.spec.rules.iter().enumerate() {
        let served_here: &[&str] = match route.kind {
            RouteKind::Http => &FILTERS,
            // GRPCRoute's filters.
            RouteKind::Grpc => &[
                "RequestHeaderModifier",
                "ResponseHeaderModifier",
                "RequestMirror",
            ],
        };
        if let Some(f) = rule
            .filters
            .iter()
            .find(|f| !served_here.contains(&f.type_.as_str()))
        {
            return Err(format!("rules[{r}]: filter {} is not served yet", f.type_));
        }
        if let Some(f) = rule
            .backend_refs
            .iter()
            .flat_map(|b| &b.filters)
            .find(|f| f.type_ != "RequestHeaderModifier")
        {
            return Err(format!(
                "rules[{r}]: backendRefs' filter {} is not served yet",
                f.type_
            ));
        }
    }
    Ok(())
}

/// Whether every backend (and mirror) of a route resolves.
fn route_refs(route: &HttpRoute, ns: &str, inputs: &Inputs<'_>) -> Cond {
    let mirrors = route
        .spec
        .rules
        .iter()
        .flat_map(|r| {
            r.filters
                .iter()
                .chain(r.backend_refs.iter().flat_map(|b| &b.filters))
        })
        .filter_map(|f| f.request_mirror.as_ref())
        .map(|m| &m.backend_ref);
    let backends = route
        .spec
        .rules
        .iter()
        .flat_map(|r| &r.backend_refs)
        .map(|b| &b.target);
    for b in backends.chain(mirrors) {
        if let Err(c) = backend(route.kind, ns, b, inputs.grants, inputs.services) {
            return c;
        }
    }
    Cond::yes("ResolvedRefs")
}

/// The Service a backend reference of a route (of `kind`) in namespace
/// `ns` names, or the condition saying why it does not resolve.
pub fn backend<'a>(
    kind: RouteKind,
    ns: &str,
    b: &BackendObjectReference,
    grants: &[Arc<ReferenceGrant>],
    services: &'a [Arc<Service>],
) -> Result<&'a Arc<Service>, Cond> {
    let target_ns = b.namespace.as_deref().unwrap_or(ns);
    let target = Target {
        group: b.group_or_default(),
        kind: b.kind_or_default(),
        namespace: target_ns,
        name: &b.name,
    };
    check(
        ("backendRef", kind.name(), ns),
        target,
        ("Service", "InvalidKind"),
        grants,
    )?;
    let id = format!("{target_ns}/{}", b.name);
    services
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some(target_ns)
                && s.metadata.name.as_deref() == Some(b.name.as_str())
        })
        .ok_or_else(|| {
            Cond::no(
                "BackendNotFound",
                format!("backendRef {id}: no such Service"),
            )
        })
}

/// The object a reference names, its defaults applied.
#[derive(Debug, Clone, Copy)]
struct Target<'a> {
    group: &'a str,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
}

/// Checks a reference (`what`, from an object of kind `from.1` in
/// namespace `from.2`) to a core object of kind `want.0`: of another kind,
/// `want.1`; across namespaces without a grant, `RefNotPermitted`.
fn check(
    from: (&str, &str, &str),
    to: Target<'_>,
    want: (&str, &'static str),
    grants: &[Arc<ReferenceGrant>],
) -> Result<(), Cond> {
    let (what, from_kind, ns) = from;
    let id = format!("{}/{}", to.namespace, to.name);
    if !to.group.is_empty() || to.kind != want.0 {
        return Err(Cond::no(
            want.1,
            format!("{what} {id}: {}/{} is not a {}", to.group, to.kind, want.0),
        ));
    }
    let allowed = permitted(
        grants,
        grants::From {
            group: GROUP,
            kind: from_kind,
            namespace: ns,
        },
        grants::To {
            group: "",
            kind: want.0,
            namespace: to.namespace,
            name: to.name,
        },
    );
    if !allowed {
        return Err(Cond::no(
            "RefNotPermitted",
            format!(
                "{what} {id}: no ReferenceGrant in {} lets {from_kind}s of {ns} use it",
                to.namespace
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: serde::de::DeserializeOwned>(s: &str) -> Arc<T> {
        Arc::new(serde_yaml::from_str(s).unwrap())
    }

    fn class() -> Arc<GatewayClass> {
        yaml("metadata: {name: sluice}\nspec: {controllerName: sluice.dev/gateway-controller}")
    }

    fn service(ns: &str, name: &str) -> Arc<Service> {
        let mut s = Service::default();
        s.metadata.namespace = Some(ns.into());
        s.metadata.name = Some(name.into());
        Arc::new(s)
    }

    fn services() -> Vec<Arc<Service>> {
        ["infra-backend-v1", "infra-backend-v2", "infra-backend-v3"]
            .into_iter()
            .map(|n| service("infra", n))
            .chain([service("web", "web-backend")])
            .collect()
    }

    struct World {
        classes: Vec<Arc<GatewayClass>>,
        gateways: Vec<Arc<Gateway>>,
        routes: Vec<Arc<HttpRoute>>,
        grants: Vec<Arc<ReferenceGrant>>,
        namespaces: NamespaceLabels,
        services: Vec<Arc<Service>>,
        secrets: Vec<Arc<Secret>>,
    }

    impl World {
        fn new(gateways: &[&str], routes: &[&str]) -> World {
            World {
                classes: vec![class()],
                gateways: gateways.iter().map(|g| yaml(g)).collect(),
                routes: routes.iter().map(|r| yaml(r)).collect(),
                grants: Vec::new(),
                namespaces: NamespaceLabels::new(),
                services: services(),
                secrets: Vec::new(),
            }
        }

        fn decide(&self) -> Verdicts {
            decide(&Inputs {
                class: "sluice",
                classes: &self.classes,
                gateways: &self.gateways,
                routes: &self.routes,
                grants: &self.grants,
                namespaces: &self.namespaces,
                services: &self.services,
                secrets: &self.secrets,
            })
        }
    }

    fn route_parent<'a>(v: &'a Verdicts, name: &str) -> &'a ParentVerdict {
        let r = v
            .routes
            .iter()
            .find(|r| r.route.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no verdict for route {name}"));
        &r.parents[0]
    }

    fn listener<'a>(v: &'a Verdicts, gw: &str, name: &str) -> &'a ListenerVerdict {
        v.gateways
            .iter()
            .find(|g| g.gateway.metadata.name.as_deref() == Some(gw))
            .and_then(|g| g.listeners.iter().find(|l| l.name == name))
            .unwrap()
    }

    #[test]
    fn only_our_class_is_served() {
        let gw = "metadata: {name: g, namespace: infra}\nspec: {gatewayClassName: sluice, listeners: [{name: http, port: 80, protocol: HTTP}]}";
        let mut w = World::new(&[gw], &[]);
        let v = w.decide();
        assert!(v.class.as_ref().unwrap().accepted.status);
        assert_eq!(v.gateways.len(), 1);
        w.classes = vec![yaml(
            "metadata: {name: sluice}\nspec: {controllerName: example.com/other}",
        )];
        let v = w.decide();
        assert!(v.class.is_none() && v.gateways.is_empty());
        w.classes = vec![yaml(
            "metadata: {name: sluice}\nspec: {controllerName: sluice.dev/gateway-controller, parametersRef: {group: x, kind: Y, name: z}}",
        )];
        let v = w.decide();
        assert_eq!(v.class.unwrap().accepted.reason, "InvalidParameters");
        assert!(v.gateways.is_empty());
    }

    /// HTTPRouteHostnameIntersection's status: the route with no name in
    /// common is not accepted, and each listener counts the routes on it.
    #[test]
    fn hostname_intersection_counts_and_refuses_as_the_conformance_test() {
        let gw = r#"
metadata: {name: httproute-hostname-intersection, namespace: infra}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: listener-1, port: 80, protocol: HTTP, hostname: very.specific.com}
  - {name: listener-2, port: 80, protocol: HTTP, hostname: "*.wildcard.io"}
  - {name: listener-3, port: 80, protocol: HTTP, hostname: "*.anotherwildcard.io"}
"#;
        let route = |name: &str, hosts: &str| {
            format!(
                "metadata: {{name: {name}, namespace: infra}}\nspec: {{parentRefs: [{{name: httproute-hostname-intersection, namespace: infra}}], hostnames: {hosts}, rules: [{{backendRefs: [{{name: infra-backend-v1, port: 8080}}]}}]}}"
            )
        };
        let routes = [
            route("s1", "[non.matching.com, '*.nonmatchingwildcard.io', very.specific.com]"),
            route("s2", "[non.matching.com, wildcard.io, foo.wildcard.io, bar.wildcard.io, foo.bar.wildcard.io]"),
            route("s3", "[non.matching.com, '*.specific.com']"),
            route("s4", "['*.anotherwildcard.io']"),
            route("s5", "[specific.but.wrong.com, wildcard.io]"),
        ];
        let refs: Vec<&str> = routes.iter().map(String::as_str).collect();
        let v = World::new(&[gw], &refs).decide();
        let g = "httproute-hostname-intersection";
        assert_eq!(listener(&v, g, "listener-1").attached_routes, 2);
        assert_eq!(listener(&v, g, "listener-2").attached_routes, 1);
        assert_eq!(listener(&v, g, "listener-3").attached_routes, 1);
        let s5 = route_parent(&v, "s5");
        assert_eq!(
            (s5.accepted.status, s5.accepted.reason),
            (false, "NoMatchingListenerHostname")
        );
        let s3 = route_parent(&v, "s3");
        assert!(s3.accepted.status);
        assert_eq!(
            s3.attached,
            vec![(0, Served::Names(vec!["very.specific.com".into()]))]
        );
        assert!(s3.resolved_refs.status);
        assert_eq!(v.gateways[0].accepted.reason, "Accepted");
    }

    /// GatewayInvalidRouteKind: an unknown kind is refused, the valid
    /// ones listed; no kind valid, none listed.
    #[test]
    fn invalid_route_kinds_are_refused_and_left_out() {
        let only = "metadata: {name: only, namespace: infra}\nspec: {gatewayClassName: sluice, listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: InvalidRoute}]}}]}";
        let both = "metadata: {name: both, namespace: infra}\nspec: {gatewayClassName: sluice, listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: InvalidRoute}, {kind: HTTPRoute}]}}]}";
        let v = World::new(&[only, both], &[]).decide();
        let l = listener(&v, "only", "http");
        assert_eq!(
            (l.resolved_refs.status, l.resolved_refs.reason),
            (false, "InvalidRouteKinds")
        );
        assert!(l.supported_kinds.is_empty());
        let l = listener(&v, "both", "http");
        assert_eq!(l.resolved_refs.reason, "InvalidRouteKinds");
        assert_eq!(
            l.supported_kinds,
            vec![RouteGroupKind {
                group: Some(GROUP.into()),
                kind: "HTTPRoute".into()
            }]
        );
    }

    /// GatewayWithAttachedRoutes: a listener whose certificate is missing
    /// is not programmed, and still counts the route attached to it;
    /// a route whose names miss the listener's is not accepted.
    #[test]
    fn routes_attach_to_a_listener_whose_certificate_is_missing() {
        let tls = r#"
metadata: {name: unresolved, namespace: infra}
spec:
  gatewayClassName: sluice
  listeners:
  - name: tls
    port: 443
    protocol: HTTPS
    tls: {mode: Terminate, certificateRefs: [{group: "", kind: Secret, name: does-not-exist}]}
"#;
        let two = "metadata: {name: two, namespace: infra}\nspec: {gatewayClassName: sluice, listeners: [{name: http, port: 80, protocol: HTTP, hostname: foo.example.com}]}";
        let r4 = "metadata: {name: http-route-4, namespace: infra}\nspec: {parentRefs: [{name: unresolved, sectionName: tls}], rules: [{backendRefs: [{name: does-not-exist, port: 8080}]}]}";
        let r2 =
            "metadata: {name: http-route-2, namespace: infra}\nspec: {parentRefs: [{name: two}]}";
        let r3 =
            "metadata: {name: http-route-3, namespace: infra}\nspec: {parentRefs: [{name: two}]}";
        let no = "metadata: {name: http-route-not-accepted, namespace: infra}\nspec: {parentRefs: [{name: two}], hostnames: [not-accepted.test.com]}";
        let v = World::new(&[tls, two], &[r4, r2, r3, no]).decide();
        let l = listener(&v, "unresolved", "tls");
        assert_eq!(
            (
                l.resolved_refs.status,
                l.resolved_refs.reason,
                l.programmed.status
            ),
            (false, "InvalidCertificateRef", false)
        );
        assert_eq!(l.attached_routes, 1);
        let p = route_parent(&v, "http-route-4");
        assert!(p.accepted.status);
        assert_eq!(
            (p.resolved_refs.status, p.resolved_refs.reason),
            (false, "BackendNotFound")
        );
        assert_eq!(listener(&v, "two", "http").attached_routes, 2);
        assert_eq!(
            route_parent(&v, "http-route-not-accepted").accepted.reason,
            "NoMatchingListenerHostname"
        );
    }

    #[test]
    fn parents_are_refused_for_section_namespace_and_kind() {
        let gw = "metadata: {name: same-namespace, namespace: infra}\nspec: {gatewayClassName: sluice, listeners: [{name: http, port: 80, protocol: HTTP}]}";
        let sel = "metadata: {name: backend-namespaces, namespace: infra}\nspec: {gatewayClassName: sluice, listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {gateway-conformance: backend}}}}}]}";
        let wrong_section = "metadata: {name: a, namespace: infra}\nspec: {parentRefs: [{name: same-namespace, sectionName: http1}]}";
        let other_ns = "metadata: {name: b, namespace: web}\nspec: {parentRefs: [{name: same-namespace, namespace: infra}]}";
        let selected = "metadata: {name: c, namespace: web}\nspec: {parentRefs: [{name: backend-namespaces, namespace: infra}], rules: [{backendRefs: [{name: web-backend, port: 8080}]}]}";
        let not_gateway = "metadata: {name: d, namespace: infra}\nspec: {parentRefs: [{name: x, kind: Service, group: ''}]}";
        let mut w = World::new(
            &[gw, sel],
            &[wrong_section, other_ns, selected, not_gateway],
        );
        w.namespaces.insert(
            "web".into(),
            [("gateway-conformance".to_string(), "backend".to_string())].into(),
        );
        let v = w.decide();
        assert_eq!(route_parent(&v, "a").accepted.reason, "NoMatchingParent");
        let b = route_parent(&v, "b");
        assert_eq!(
            (b.accepted.reason, b.resolved_refs.status),
            ("NotAllowedByListeners", true)
        );
        assert!(route_parent(&v, "c").accepted.status);
        assert!(v
            .routes
            .iter()
            .all(|r| r.route.metadata.name.as_deref() != Some("d")));
        // The label gone, the selector no longer takes the route.
        w.namespaces.clear();
        let v = w.decide();
        assert_eq!(
            route_parent(&v, "c").accepted.reason,
            "NotAllowedByListeners"
        );
    }

    #[test]
    fn backends_resolve_by_kind_grant_and_existence() {
        let gw = "metadata: {name: g, namespace: infra}\nspec: {gatewayClassName: sluice, listeners: [{name: http, port: 80, protocol: HTTP}]}";
        let route = |name: &str, backend: &str| {
            format!("metadata: {{name: {name}, namespace: infra}}\nspec: {{parentRefs: [{{name: g}}], rules: [{{backendRefs: [{backend}]}}]}}")
        };
        let routes = [
            route(
                "kind",
                "{group: unknownkind.example.com, kind: NonExistent, name: x, port: 8080}",
            ),
            route("cross", "{name: web-backend, namespace: web, port: 8080}"),
            route("missing", "{name: nonexistent, port: 8080}"),
            route("fine", "{name: infra-backend-v1, port: 8080}"),
        ];
        let refs: Vec<&str> = routes.iter().map(String::as_str).collect();
        let mut w = World::new(&[gw], &refs);
        let reasons = |v: &Verdicts| -> Vec<&'static str> {
            ["kind", "cross", "missing", "fine"]
                .iter()
                .map(|n| route_parent(v, n).resolved_refs.reason)
                .collect()
        };
        let v = w.decide();
        assert_eq!(
            reasons(&v),
            [
                "InvalidKind",
                "RefNotPermitted",
                "BackendNotFound",
                "ResolvedRefs"
            ]
        );
        assert!(v.routes.iter().all(|r| r.parents[0].accepted.status));
        w.grants.push(yaml(
            "metadata: {name: g, namespace: web}\nspec: {from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}], to: [{group: '', kind: Service}]}",
        ));
        assert_eq!(
            route_parent(&w.decide(), "cross").resolved_refs.reason,
            "ResolvedRefs"
        );
    }

    #[test]
    fn conflicting_and_unsupported_listeners_are_not_accepted() {
        let gw = r#"
metadata: {name: g, namespace: infra}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: a, port: 80, protocol: HTTP, hostname: x.com}
  - {name: b, port: 80, protocol: HTTP, hostname: x.com}
  - {name: c, port: 80, protocol: HTTP}
  - {name: d, port: 9000, protocol: INVALID}
"#;
        let v = World::new(&[gw], &[]).decide();
        let g = &v.gateways[0];
        assert_eq!(g.listeners[0].conflicted.reason, "HostnameConflict");
        assert!(!g.listeners[0].accepted.status && !g.listeners[1].accepted.status);
        assert!(g.listeners[2].accepted.status && !g.listeners[2].conflicted.status);
        assert_eq!(g.listeners[3].accepted.reason, "UnsupportedProtocol");
        assert_eq!(
            (g.accepted.status, g.accepted.reason),
            (true, "ListenersNotValid")
        );
        let only_invalid = "metadata: {name: h, namespace: infra}\nspec: {gatewayClassName: sluice, listeners: [{name: x, port: 80, protocol: INVALID}]}";
        let v = World::new(&[only_invalid], &[]).decide();
        assert_eq!(
            (v.gateways[0].accepted.status, v.gateways[0].accepted.reason),
            (false, "ListenersNotValid")
        );
    }

    #[test]
    fn an_unknown_filter_is_an_unsupported_value() {
        let gw = "metadata: {name: g, namespace: infra}\nspec: {gatewayClassName: sluice, listeners: [{name: http, port: 80, protocol: HTTP}]}";
        let r = "metadata: {name: r, namespace: infra}\nspec: {parentRefs: [{name: g}], rules: [{filters: [{type: SomethingNew}]}]}";
        let v = World::new(&[gw], &[r]).decide();
        let p = route_parent(&v, "r");
        assert_eq!(
            (p.accepted.status, p.accepted.reason),
            (false, "UnsupportedValue")
        );
        assert_eq!(v.gateways[0].listeners[0].attached_routes, 0);
    }

    #[test]
    fn durations_are_gep_2257_s() {
        let ms = |n| std::time::Duration::from_millis(n);
        for (s, want) in [
            ("500ms", ms(500)),
            ("0s", ms(0)),
            ("10s", ms(10_000)),
            ("1h30m", ms(5_400_000)),
            ("1h1m1s1ms", ms(3_661_001)),
            ("99999ms", ms(99_999)),
        ] {
            assert_eq!(duration(s), Ok(want), "{s}");
        }
        for s in [
            "",
            "1",
            "s",
            "1.5s",
            "100000ms",
            "1h1m1s1ms1ms",
            "1us",
            "-1s",
            "1 s",
        ] {
            assert!(duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn redirects_and_rewrites_out_of_the_spec_are_unsupported_values() {
        let gw = "metadata: {name: g, namespace: infra}\nspec: {gatewayClassName: sluice, listeners: [{name: http, port: 80, protocol: HTTP}]}";
        let route = |rule: &str| {
            format!("metadata: {{name: r, namespace: infra}}\nspec: {{parentRefs: [{{name: g}}], rules: [{rule}]}}")
        };
        let judged = |rule: &str| {
            let v = World::new(&[gw], &[&route(rule)]).decide();
            let p = route_parent(&v, "r");
            (
                p.accepted.status,
                p.accepted.reason,
                p.accepted.message.clone(),
            )
        };
        let fine = [
            "{filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 301, port: 8443, hostname: example.org}}]}",
            "{matches: [{path: {type: PathPrefix, value: /a}}], filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]}",
            "{filters: [{type: URLRewrite, urlRewrite: {hostname: example.org, path: {type: ReplaceFullPath, replaceFullPath: /x}}}]}",
            // No match is the PathPrefix `/`.
            "{filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}]}",
            "{timeouts: {request: 0s, backendRequest: 2s}}",
            "{timeouts: {request: 2s, backendRequest: 500ms}}",
        ];
        for rule in fine {
            assert!(judged(rule).0, "{rule}: {:?}", judged(rule));
        }
        let refused = [
            ("{filters: [{type: RequestRedirect, requestRedirect: {statusCode: 305}}]}", "statusCode 305"),
            ("{filters: [{type: RequestRedirect, requestRedirect: {scheme: ftp}}]}", "scheme \"ftp\""),
            ("{filters: [{type: RequestRedirect, requestRedirect: {port: 0}}]}", "port 0"),
            ("{filters: [{type: RequestRedirect, requestRedirect: {hostname: '*.example.org'}}]}", "precise hostname"),
            ("{filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath}}}]}", "has no value"),
            ("{filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: x}}}]}", "starting with /"),
            ("{filters: [{type: URLRewrite, urlRewrite: {path: {type: Other, replaceFullPath: /x}}}]}", "path type"),
            ("{timeouts: {request: 1.5s}}", "not a duration"),
            (
                "{filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: Transfer-Encoding, value: chunked}]}}]}",
                "connection header",
            ),
            (
                "{backendRefs: [{name: infra-backend-v1, port: 8080, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: content-length, value: '0'}]}}]}]}",
                "connection header",
            ),
            ("{timeouts: {request: 1s, backendRequest: 2s}}", "longer than request"),
            (
                "{filters: [{type: URLRewrite, urlRewrite: {hostname: a.example}}, {type: RequestRedirect, requestRedirect: {hostname: b.example}}]}",
                "cannot be used together",
            ),
            (
                "{matches: [{path: {type: Exact, value: /a}}], filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]}",
                "PathPrefix",
            ),
        ];
        for (rule, why) in refused {
            let (status, reason, message) = judged(rule);
            assert_eq!((status, reason), (false, "UnsupportedValue"), "{rule}");
            assert!(message.contains(why), "{rule}: {message}");
        }
    }

    #[test]
    fn selectors_take_labels_and_expressions() {
        let labels: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
        let s: LabelSelector = serde_yaml::from_str(
            "{matchLabels: {a: '1'}, matchExpressions: [{key: b, operator: DoesNotExist}, {key: a, operator: In, values: ['1', '2']}]}",
        )
        .unwrap();
        assert!(selects(&s, &labels));
        let s: LabelSelector =
            serde_yaml::from_str("{matchExpressions: [{key: a, operator: NotIn, values: ['1']}]}")
                .unwrap();
        assert!(!selects(&s, &labels));
    }
}
