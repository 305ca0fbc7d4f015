//! From the cluster's objects to routes: which Ingresses are ours, what
//! their rules mean, and which pods stand behind each backend Service.
//!
//! Pure: the watchers hand over what their stores hold, and this returns
//! route specs for [`crate::routing::Snapshot::build`], plus the problems
//! found on the way, each naming the object it concerns. Nothing here is
//! fatal: a broken Ingress loses its own routes, never anyone else's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;

use super::annotations::{self, Annotated};
use crate::balance::Strategy;
use crate::config::Defaults;
use crate::spec::{
    EndpointSpec, HostError, HostMatch, PathType, Protocol, RouteSpec, UpstreamSpec,
};

/// The controller name an IngressClass must carry to be ours.
pub const CONTROLLER: &str = "sluice.dev/ingress-controller";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// Which Ingresses are ours, and what discovered routes start from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The IngressClass name we serve (`--ingress-class`).
    pub class: String,
    /// Serve Ingresses that name no class at all.
    pub watch_without_class: bool,
    pub defaults: Defaults,
}

/// What the stores hold, at one moment.
#[derive(Debug, Default)]
pub struct ClusterState {
    pub ingresses: Vec<Arc<Ingress>>,
    pub classes: Vec<Arc<IngressClass>>,
    pub services: Vec<Arc<Service>>,
    pub slices: Vec<Arc<EndpointSlice>>,
    /// Pod weights, `(namespace, pod)` → weight, for the Services that
    /// ask for them (read from a metadata-only Pod watch).
    pub pod_weights: HashMap<(String, String), u32>,
    /// TLS Secrets (`kubernetes.io/tls`).
    pub secrets: Vec<Arc<Secret>>,
}

/// The routes found, and what was wrong on the way.
#[derive(Debug, Default)]
pub struct Translated {
    /// Oldest Ingress first: a duplicate host and path is won by the
    /// older one when the snapshot is built.
    pub routes: Vec<RouteSpec>,
    pub default_backend: Option<RouteSpec>,
    /// One line each, naming the object.
    pub problems: Vec<String>,
    /// The Ingresses served, as `namespace/name`.
    pub owned: Vec<String>,
    /// Problems to record as Kubernetes Events on the object they concern
    /// (refused or malformed annotations, missing TLS Secrets).
    pub events: Vec<Event>,
    /// The certificates Ingresses ask for, by host, whether or not their
    /// Secrets are there (the last good certificate of a Secret gone
    /// missing keeps serving; see `certs`).
    pub tls: Vec<TlsBinding>,
}

/// A Warning Event to record on an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub object: ObjectReference,
    /// CamelCase, as Kubernetes reasons are: `BadAnnotation`, `BadTLSSecret`.
    pub reason: &'static str,
    pub note: String,
}

impl Event {
    pub fn new(object: ObjectReference, reason: &'static str, note: impl Into<String>) -> Event {
        Event {
            object,
            reason,
            note: note.into(),
        }
    }
}

/// An Ingress's `spec.tls` entry, with the hosts of its rules it names.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsBinding {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    /// The Ingress, for Events about its certificate.
    pub ingress_ref: ObjectReference,
    /// Its index in `spec.tls`, for messages.
    pub entry: usize,
    pub hosts: Vec<String>,
    /// `namespace/name` of the Secret.
    pub secret: String,
}

/// True when `ing` belongs to the class we serve.
///
/// As ingress-nginx reads it: the legacy `kubernetes.io/ingress.class`
/// annotation first (its value must be our class name); then
/// `spec.ingressClassName`, which must name our class, and that
/// IngressClass must exist with our controller; then, with no class at
/// all, only with `--watch-ingress-without-class` or when our IngressClass
/// is the cluster's default.
pub fn owned(ing: &Ingress, classes: &[Arc<IngressClass>], settings: &Settings) -> bool {
    if let Some(name) = annotation(&ing.metadata.annotations, LEGACY_CLASS_ANNOTATION) {
        return name == settings.class;
    }
    let named = ing
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    match named {
        Some(name) => {
            name == settings.class
                && classes
                    .iter()
                    .any(|c| c.metadata.name.as_deref() == Some(name) && is_ours(c))
        }
        None => {
            settings.watch_without_class
                || classes.iter().any(|c| {
                    c.metadata.name.as_deref() == Some(settings.class.as_str())
                        && is_ours(c)
                        && annotation(&c.metadata.annotations, DEFAULT_CLASS_ANNOTATION)
                            == Some("true")
                })
        }
    }
}

fn is_ours(c: &IngressClass) -> bool {
    c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER)
}

fn annotation<'a>(
    annotations: &'a Option<std::collections::BTreeMap<String, String>>,
    key: &str,
) -> Option<&'a str> {
    annotations.as_ref()?.get(key).map(String::as_str)
}

/// `namespace/name`, for messages and keys.
fn id(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or("")
    )
}

/// Builds the routes of every Ingress we own.
pub fn translate(state: &ClusterState, settings: &Settings) -> Translated {
    let mut out = Translated::default();
    let services: HashMap<(&str, &str), &Service> = state
        .services
        .iter()
        .filter_map(|s| {
            Some((
                (
                    s.metadata.namespace.as_deref()?,
                    s.metadata.name.as_deref()?,
                ),
                &**s,
            ))
        })
        .collect();
    let mut slices: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
    for s in &state.slices {
        let (Some(ns), Some(svc)) = (
            s.metadata.namespace.as_deref(),
            annotation(&s.metadata.labels, SERVICE_NAME_LABEL),
        ) else {
            continue;
        };
        slices.entry((ns, svc)).or_default().push(s);
    }
    let cluster = Cluster {
        pod_weights: &state.pod_weights,
        services,
        slices,
    };

    // Oldest first; the name breaks ties, so the order is the same on
    // every replica.
    let mut ingresses: Vec<&Arc<Ingress>> = state
        .ingresses
        .iter()
        .filter(|i| owned(i, &state.classes, settings))
        .collect();
    ingresses.sort_by(|a, b| {
        let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
        ta.cmp(&tb)
            .then_with(|| id(&a.metadata).cmp(&id(&b.metadata)))
    });

    // Main Ingresses first, then canaries, which join the main route of
    // the same host, path and path type.
    let parsed: Vec<(&Arc<Ingress>, Annotated)> = ingresses
        .into_iter()
        .map(|i| (i, annotations::parse(&i.metadata.annotations)))
        .collect();
    let (canaries, mains): (Vec<_>, Vec<_>) = parsed.into_iter().partition(|(_, a)| a.canary);
    let mut fallbacks = Vec::new();
    for (ing, ing_notes) in mains {
        let ing_id = id(&ing.metadata);
        out.owned.push(ing_id.clone());
        let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
        for p in &ing_notes.problems {
            out.problems.push(format!("ingress {ing_id}: {p}"));
            out.events
                .push(Event::new(ing.object_ref(&()), "BadAnnotation", p.clone()));
        }
        let Some(spec) = &ing.spec else { continue };
        // An Ingress's certificate serves only hosts its own rules name:
        // another namespace's Ingress cannot take a host's SNI by naming
        // it in `tls`. Without a host list, the rules' hosts are meant.
        let rule_hosts: Vec<String> = spec
            .rules
            .iter()
            .flatten()
            .filter_map(|r| r.host.as_deref())
            .map(str::to_ascii_lowercase)
            .collect();
        for (ti, tls) in spec.tls.iter().flatten().enumerate() {
            let Some(secret_name) = tls.secret_name.as_deref().filter(|n| !n.is_empty()) else {
                // No Secret: the default certificate serves these hosts.
                continue;
            };
            let hosts = match tls.hosts.as_deref() {
                None | Some([]) => rule_hosts.clone(),
                Some(listed) => {
                    let mut hosts = Vec::new();
                    for h in listed {
                        let h = h.to_ascii_lowercase();
                        if rule_hosts.contains(&h) {
                            hosts.push(h);
                        } else {
                            let p = format!(
                                "tls[{ti}]: host {h} has no rule in this Ingress; its certificate does not serve it"
                            );
                            out.problems.push(format!("ingress {ing_id}: {p}"));
                            out.events
                                .push(Event::new(ing.object_ref(&()), "BadTLSHost", p));
                        }
                    }
                    hosts
                }
            };
            if !hosts.is_empty() {
                out.tls.push(TlsBinding {
                    ingress: ing_id.clone(),
                    ingress_ref: ing.object_ref(&()),
                    entry: ti,
                    hosts,
                    secret: format!("{ns}/{secret_name}"),
                });
            }
        }
        let has_rules = spec.rules.as_ref().is_some_and(|r| !r.is_empty());
        if let (Some(backend), true) = (&spec.default_backend, has_rules) {
            // With rules, an Ingress's default backend serves the paths its
            // own hosts leave unmatched, never other Ingresses' hosts: a
            // `/` rule per host, after every explicit rule.
            let mut hosts: Vec<HostMatch> = Vec::new();
            for rule in spec.rules.iter().flatten() {
                let Ok(host) = rule_host(rule) else {
                    continue;
                };
                if !hosts.contains(&host) {
                    hosts.push(host);
                }
            }
            for host in hosts {
                let host_name = host_label(&host);
                let name = format!("{ing_id}/{host_name}/default-backend");
                if let Some(r) = cluster.route(
                    &name,
                    host,
                    "/",
                    PathType::Prefix,
                    ns,
                    backend,
                    &ing_notes,
                    settings,
                    &mut out.problems,
                ) {
                    fallbacks.push(r);
                }
            }
        } else if let Some(backend) = &spec.default_backend {
            // Without rules, it is the catch-all for everything unmatched.
            if out.default_backend.is_none() {
                let name = format!("{ing_id}/default-backend");
                if let Some(r) = cluster.route(
                    &name,
                    HostMatch::Any,
                    "/",
                    PathType::Prefix,
                    ns,
                    backend,
                    &ing_notes,
                    settings,
                    &mut out.problems,
                ) {
                    out.default_backend = Some(r);
                }
            } else {
                out.problems.push(format!(
                    "ingress {ing_id}: defaultBackend ignored, an older Ingress without rules already sets the catch-all"
                ));
            }
        }
        for (ri, rule) in spec.rules.iter().flatten().enumerate() {
            let host = match rule_host(rule) {
                Ok(h) => h,
                Err(e) => {
                    out.problems
                        .push(format!("ingress {ing_id}: rules[{ri}].host: {e}"));
                    continue;
                }
            };
            let Some(http) = &rule.http else { continue };
            for (pi, path) in http.paths.iter().enumerate() {
                let field = format!("rules[{ri}].http.paths[{pi}]");
                let path_type: PathType = match path.path_type.parse() {
                    Ok(t) => t,
                    Err(e) => {
                        out.problems
                            .push(format!("ingress {ing_id}: {field}.pathType: {e}"));
                        continue;
                    }
                };
                let p = path.path.as_deref().unwrap_or("/");
                if !p.starts_with('/') {
                    out.problems.push(format!(
                        "ingress {ing_id}: {field}.path: {p:?} does not start with /"
                    ));
                    continue;
                }
                let host_name = host_label(&host);
                let name = format!("{ing_id}/{host_name}{p}");
                let normalized = path_type.normalize(p);
                if let Some(r) = cluster.route(
                    &name,
                    host.clone(),
                    &normalized,
                    path_type,
                    ns,
                    &path.backend,
                    &ing_notes,
                    settings,
                    &mut out.problems,
                ) {
                    out.routes.push(r);
                }
            }
        }
    }
    out.routes.extend(fallbacks);
    for (ing, notes) in canaries {
        cluster.attach_canary(ing, &notes, settings, &mut out);
    }
    out
}

/// A rule's host: none (or empty) matches any host.
fn rule_host(rule: &k8s_openapi::api::networking::v1::IngressRule) -> Result<HostMatch, HostError> {
    match rule.host.as_deref() {
        None | Some("") => Ok(HostMatch::Any),
        Some(h) => HostMatch::parse(h),
    }
}

/// A host as route names show it: `*` for any.
fn host_label(host: &HostMatch) -> String {
    match host {
        HostMatch::Any => "*".to_owned(),
        h => h.to_string(),
    }
}

struct Cluster<'a> {
    pod_weights: &'a HashMap<(String, String), u32>,
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
}

impl Cluster<'_> {
    /// Attaches a canary Ingress's backends to the main routes of the same
    /// host, path and path type. A canary with no such main route, or a
    /// second canary for one, is reported and ignored.
    fn attach_canary(
        &self,
        ing: &Ingress,
        notes: &Annotated,
        settings: &Settings,
        out: &mut Translated,
    ) {
        let ing_id = id(&ing.metadata);
        out.owned.push(ing_id.clone());
        for p in &notes.problems {
            out.problems.push(format!("ingress {ing_id}: {p}"));
            out.events
                .push(Event::new(ing.object_ref(&()), "BadAnnotation", p.clone()));
        }
        let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
        let Some(spec) = &ing.spec else { return };
        for rule in spec.rules.iter().flatten() {
            let host = match rule_host(rule) {
                Ok(h) => h,
                Err(e) => {
                    out.problems.push(format!("ingress {ing_id}: host: {e}"));
                    continue;
                }
            };
            for path in rule.http.iter().flat_map(|h| &h.paths) {
                let Ok(path_type) = path.path_type.parse::<PathType>() else {
                    out.problems.push(format!(
                        "ingress {ing_id}: pathType {:?} is not valid",
                        path.path_type
                    ));
                    continue;
                };
                let normalized = path_type.normalize(path.path.as_deref().unwrap_or("/"));
                // Only within the canary's own namespace: another namespace's
                // Ingress must never take a share of this one's traffic.
                let own = format!("{ns}/");
                let Some(main) = out.routes.iter_mut().find(|r| {
                    r.name.starts_with(&own)
                        && r.host == host
                        && r.path == normalized
                        && r.path_type == path_type
                }) else {
                    out.problems.push(format!(
                        "ingress {ing_id}: canary for {host}{normalized} has no main Ingress with that host and path in its namespace; ignored"
                    ));
                    continue;
                };
                if main.canary.is_some() {
                    out.problems.push(format!(
                        "ingress {ing_id}: {} already has a canary; ignored",
                        main.name
                    ));
                    continue;
                }
                let name = format!("{}/canary", main.name);
                if let Some(r) = self.route(
                    &name,
                    host.clone(),
                    &normalized,
                    path_type,
                    ns,
                    &path.backend,
                    notes,
                    settings,
                    &mut out.problems,
                ) {
                    main.canary = Some(crate::spec::CanarySpec {
                        upstream: r.upstream,
                        weight: notes.canary_weight,
                        total: notes.canary_total,
                        header: notes.canary_header.clone(),
                    });
                }
            }
        }
    }

    /// One route to an Ingress backend. `None` (with a problem noted) when
    /// the backend is not a Service; a Service that is missing or has no
    /// ready pod gives a route with no endpoints, which answers 503.
    #[allow(clippy::too_many_arguments)]
    fn route(
        &self,
        name: &str,
        host: HostMatch,
        path: &str,
        path_type: PathType,
        ns: &str,
        backend: &IngressBackend,
        ing_notes: &Annotated,
        settings: &Settings,
        problems: &mut Vec<String>,
    ) -> Option<RouteSpec> {
        let Some(svc_ref) = &backend.service else {
            problems.push(format!(
                "{name}: only Service backends are supported (not resource backends)"
            ));
            return None;
        };
        let port = svc_ref.port.as_ref();
        let port_label = match port {
            Some(p) => match (&p.name, p.number) {
                (Some(n), _) if !n.is_empty() => n.clone(),
                (_, Some(n)) => n.to_string(),
                _ => String::new(),
            },
            None => String::new(),
        };
        let svc = self.services.get(&(ns, svc_ref.name.as_str())).copied();
        let svc_notes = svc.map(|s| annotations::parse(&s.metadata.annotations));
        if let Some(n) = &svc_notes {
            for p in &n.problems {
                problems.push(format!("service {ns}/{}: {p}", svc_ref.name));
            }
        }
        let external = svc
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.type_.as_deref())
            == Some("ExternalName");
        let endpoints = match svc {
            Some(_) if external => {
                problems.push(format!(
                    "{name}: service {ns}/{} is an ExternalName Service, which is not supported; the route answers 503",
                    svc_ref.name
                ));
                Vec::new()
            }
            None => {
                problems.push(format!(
                    "{name}: service {ns}/{} does not exist; the route answers 503",
                    svc_ref.name
                ));
                Vec::new()
            }
            Some(svc) => {
                let weights = svc_notes
                    .as_ref()
                    .is_some_and(|n| n.pod_weights)
                    .then_some(self.pod_weights);
                self.endpoints(ns, svc, port, weights, name, problems)
            }
        };
        // The Service's strategy wins over the Ingress's; pod weights mean
        // weighted unless one of them says otherwise.
        let weighted = svc_notes.as_ref().is_some_and(|n| n.pod_weights);
        let strategy = svc_notes
            .as_ref()
            .and_then(|n| n.strategy)
            .or(ing_notes.strategy)
            .unwrap_or(if weighted {
                Strategy::Weighted
            } else {
                Strategy::RoundRobin
            });
        // Routes to one Service port share endpoints (health, pools) by
        // this name; the strategy is part of it so that two Ingresses asking
        // different strategies of one Service do not rebuild each other's
        // balancer on every change.
        let upstream_name = format!("{ns}/{}:{port_label}#{strategy}", svc_ref.name);
        let mut timeouts = settings.defaults.timeouts;
        ing_notes.apply_timeouts(&mut timeouts);
        Some(RouteSpec {
            name: name.into(),
            host,
            path: path.to_owned(),
            path_type,
            upstream: UpstreamSpec {
                name: upstream_name.into(),
                strategy,
                protocol: Protocol::Http1,
                endpoints,
                health: settings.defaults.health,
                max_idle_per_endpoint: settings.defaults.max_idle,
                names: Vec::new(),
            },
            timeouts,
            retry: settings.defaults.retry,
            canary: None,
            max_request_body: ing_notes
                .max_request_body
                .unwrap_or(settings.defaults.max_request_body),
            ssl_redirect: ing_notes.redirect(),
        })
    }

    /// The pods behind a Service port: ready ones, or when none is ready,
    /// those still serving while they terminate (as kube-proxy does), so a
    /// rollout's last moments do not answer 503.
    fn endpoints(
        &self,
        ns: &str,
        svc: &Service,
        port: Option<&k8s_openapi::api::networking::v1::ServiceBackendPort>,
        weights: Option<&HashMap<(String, String), u32>>,
        route: &str,
        problems: &mut Vec<String>,
    ) -> Vec<EndpointSpec> {
        let svc_name = svc.metadata.name.as_deref().unwrap_or("");
        let ports = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_deref())
            .unwrap_or(&[]);
        let svc_port = match port {
            Some(p) => ports.iter().find(|sp| match (&p.name, p.number) {
                (Some(n), _) if !n.is_empty() => sp.name.as_deref() == Some(n.as_str()),
                (_, Some(n)) => sp.port == n,
                _ => false,
            }),
            None if ports.len() == 1 => ports.first(),
            None => None,
        };
        let Some(svc_port) = svc_port else {
            problems.push(format!(
                "{route}: service {ns}/{svc_name} has no such port; the route answers 503"
            ));
            return Vec::new();
        };
        // EndpointSlice ports carry the Service port's name ("" when the
        // Service has a single unnamed port).
        let port_name = svc_port.name.as_deref().unwrap_or("");
        // One address family: the Service's first (IPv4 unless it says
        // otherwise). A dual-stack pod would otherwise be two endpoints
        // under one key, and which one won would change with store order.
        let family = svc
            .spec
            .as_ref()
            .and_then(|s| s.ip_families.as_ref())
            .and_then(|f| f.first())
            .map_or("IPv4", String::as_str);
        let mut ready = Vec::new();
        let mut terminating = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for slice in self.slices.get(&(ns, svc_name)).into_iter().flatten() {
            if slice.address_type != family {
                continue;
            }
            let Some(number) = slice.ports.iter().flatten().find_map(|p| {
                (p.name.as_deref().unwrap_or("") == port_name)
                    .then_some(p.port)
                    .flatten()
            }) else {
                continue;
            };
            let Ok(number) = u16::try_from(number) else {
                continue;
            };
            for e in &slice.endpoints {
                let Some(ip) = e.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else {
                    continue;
                };
                let c = e.conditions.as_ref();
                // An unset condition means true (the API's own rule).
                let is_ready = c.and_then(|c| c.ready).unwrap_or(true);
                let serving = c.and_then(|c| c.serving).unwrap_or(is_ready);
                let is_terminating = c.and_then(|c| c.terminating).unwrap_or(false);
                let addr = SocketAddr::new(ip, number);
                // A pod keeps its key across unrelated changes, so ip-hash
                // keeps its clients on it.
                let key: Arc<str> = match &e.target_ref {
                    Some(r) if r.kind.as_deref() == Some("Pod") && r.name.is_some() => format!(
                        "{}/{}:{number}",
                        r.namespace.as_deref().unwrap_or(ns),
                        r.name.as_deref().unwrap_or("")
                    )
                    .into(),
                    _ => addr.to_string().into(),
                };
                if !seen.insert(key.clone()) {
                    continue;
                }
                let weight = match (weights, &e.target_ref) {
                    (Some(w), Some(r)) if r.kind.as_deref() == Some("Pod") => w
                        .get(&(
                            r.namespace.clone().unwrap_or_else(|| ns.to_owned()),
                            r.name.clone().unwrap_or_default(),
                        ))
                        .copied()
                        .unwrap_or(1),
                    _ => 1,
                };
                let spec = EndpointSpec { addr, weight, key };
                if is_ready && !is_terminating {
                    ready.push(spec);
                } else if serving && is_terminating {
                    terminating.push(spec);
                }
            }
        }
        if ready.is_empty() {
            terminating
        } else {
            ready
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ingress(v: serde_json::Value) -> Arc<Ingress> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn our_class() -> Vec<Arc<IngressClass>> {
        vec![Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "sluice"},
                "spec": {"controller": CONTROLLER}}))
            .unwrap(),
        )]
    }

    fn settings() -> Settings {
        Settings {
            class: "sluice".into(),
            watch_without_class: false,
            defaults: crate::config::DEFAULTS,
        }
    }

    fn web_service() -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"ports": [
                    {"name": "http", "port": 80, "targetPort": 8080},
                    {"name": "admin", "port": 9000, "targetPort": "admin"}
                ]}
            }))
            .unwrap(),
        )
    }

    fn slice(name: &str, endpoints: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "shop",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}],
                "endpoints": endpoints
            }))
            .unwrap(),
        )
    }

    fn pod(ip: &str, name: &str, conditions: serde_json::Value) -> serde_json::Value {
        json!({"addresses": [ip], "conditions": conditions,
               "targetRef": {"kind": "Pod", "name": name, "namespace": "shop"}})
    }

    fn shop_ingress(name: &str, created: &str, port: serde_json::Value) -> Arc<Ingress> {
        ingress(json!({
            "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created},
            "spec": {"ingressClassName": "sluice", "rules": [{
                "host": "shop.example.com",
                "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": port}}}]}
            }]}
        }))
    }

    #[test]
    fn ports_by_number_and_name_reach_the_pods() {
        let state = ClusterState {
            ingresses: vec![
                shop_ingress("by-number", "2026-01-01T00:00:00Z", json!({"number": 80})),
                shop_ingress("by-name", "2026-01-02T00:00:00Z", json!({"name": "admin"})),
            ],
            services: vec![web_service()],
            slices: vec![
                slice(
                    "web-a",
                    json!([pod("10.0.0.1", "web-1", json!({"ready": true}))]),
                ),
                slice("web-b", json!([pod("10.0.0.2", "web-2", json!({}))])),
            ],
            classes: our_class(),
            pod_weights: Default::default(),
            secrets: Vec::new(),
        };
        let t = translate(&state, &settings());
        assert_eq!(t.routes.len(), 2, "{:?}", t.problems);
        let mut addrs: Vec<String> = t.routes[0]
            .upstream
            .endpoints
            .iter()
            .map(|e| e.addr.to_string())
            .collect();
        addrs.sort();
        assert_eq!(addrs, ["10.0.0.1:8080", "10.0.0.2:8080"]);
        assert_eq!(&*t.routes[0].upstream.endpoints[0].key, "shop/web-1:8080");
        assert!(t.routes[1]
            .upstream
            .endpoints
            .iter()
            .all(|e| e.addr.port() == 9090));
        assert_eq!(t.owned, ["shop/by-number", "shop/by-name"]);
    }

    #[test]
    fn terminating_pods_serve_only_when_none_is_ready() {
        let both = json!([
            pod(
                "10.0.0.1",
                "old",
                json!({"ready": false, "serving": true, "terminating": true})
            ),
            pod("10.0.0.2", "new", json!({"ready": true})),
            pod("10.0.0.3", "starting", json!({"ready": false})),
        ]);
        let only_old = json!([
            pod(
                "10.0.0.1",
                "old",
                json!({"ready": false, "serving": true, "terminating": true})
            ),
            pod("10.0.0.3", "starting", json!({"ready": false})),
        ]);
        for (endpoints, want) in [(both, "10.0.0.2:8080"), (only_old, "10.0.0.1:8080")] {
            let state = ClusterState {
                ingresses: vec![shop_ingress(
                    "i",
                    "2026-01-01T00:00:00Z",
                    json!({"number": 80}),
                )],
                services: vec![web_service()],
                slices: vec![slice("s", endpoints)],
                classes: our_class(),
                pod_weights: Default::default(),
                secrets: Vec::new(),
            };
            let t = translate(&state, &settings());
            let eps: Vec<String> = t.routes[0]
                .upstream
                .endpoints
                .iter()
                .map(|e| e.addr.to_string())
                .collect();
            assert_eq!(eps, [want]);
        }
    }

    #[test]
    fn missing_service_or_port_answers_503_and_is_reported() {
        let state = ClusterState {
            ingresses: vec![shop_ingress(
                "a",
                "2026-01-01T00:00:00Z",
                json!({"number": 81}),
            )],
            services: vec![],
            classes: our_class(),
            ..ClusterState::default()
        };
        let t = translate(&state, &settings());
        assert_eq!(t.routes.len(), 1);
        assert!(t.routes[0].upstream.endpoints.is_empty());
        assert!(t.problems[0].contains("does not exist"), "{:?}", t.problems);
        let state = ClusterState {
            services: vec![web_service()],
            ..state
        };
        let t = translate(&state, &settings());
        assert!(t.problems[0].contains("no such port"), "{:?}", t.problems);
    }

    #[test]
    fn classes_decide_what_is_ours() {
        let class = |name: &str, controller: &str, default: bool| -> Arc<IngressClass> {
            let mut v = json!({"metadata": {"name": name}, "spec": {"controller": controller}});
            if default {
                v["metadata"]["annotations"] =
                    json!({"ingressclass.kubernetes.io/is-default-class": "true"});
            }
            Arc::new(serde_json::from_value(v).unwrap())
        };
        let with_class = |c: Option<&str>| {
            let mut v = json!({"metadata": {"name": "x", "namespace": "n"}, "spec": {}});
            if let Some(c) = c {
                v["spec"]["ingressClassName"] = json!(c);
            }
            serde_json::from_value::<Ingress>(v).unwrap()
        };
        let legacy: Ingress = serde_json::from_value(json!({
            "metadata": {"name": "x", "namespace": "n",
                         "annotations": {"kubernetes.io/ingress.class": "sluice"}}
        }))
        .unwrap();
        let s = settings();
        let ours = [class("sluice", CONTROLLER, false)];
        assert!(owned(&with_class(Some("sluice")), &ours, &s));
        // A class name with no IngressClass behind it is not enough.
        assert!(!owned(&with_class(Some("sluice")), &[], &s));
        assert!(owned(&legacy, &ours, &s));
        // The legacy annotation is read first, as ingress-nginx does.
        let mut both = legacy.clone();
        both.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(LEGACY_CLASS_ANNOTATION.into(), "nginx".into());
        both.spec = Some(serde_json::from_value(json!({"ingressClassName": "sluice"})).unwrap());
        assert!(!owned(&both, &ours, &s));
        assert!(!owned(&with_class(Some("nginx")), &ours, &s));
        assert!(!owned(&with_class(None), &ours, &s));
        // A class of that name run by another controller is not ours.
        let theirs = [class("sluice", "k8s.io/ingress-nginx", false)];
        assert!(!owned(&with_class(Some("sluice")), &theirs, &s));
        // No class: ours when our class is the default, or when told so.
        assert!(owned(
            &with_class(None),
            &[class("sluice", CONTROLLER, true)],
            &s
        ));
        let without = Settings {
            watch_without_class: true,
            ..settings()
        };
        assert!(owned(&with_class(None), &ours, &without));
    }

    #[test]
    fn oldest_ingress_comes_first_and_default_backends_stay_home() {
        let backend = json!({"service": {"name": "web", "port": {"number": 80}}});
        let mut young =
            (*shop_ingress("young", "2026-03-01T00:00:00Z", json!({"number": 80}))).clone();
        young.spec.as_mut().unwrap().default_backend =
            serde_json::from_value(backend.clone()).unwrap();
        let catch_all = ingress(json!({
            "metadata": {"name": "catch-all", "namespace": "shop",
                         "creationTimestamp": "2026-02-01T00:00:00Z"},
            "spec": {"ingressClassName": "sluice", "defaultBackend": backend}
        }));
        let state = ClusterState {
            ingresses: vec![
                Arc::new(young),
                catch_all,
                shop_ingress("old", "2026-01-01T00:00:00Z", json!({"number": 80})),
            ],
            services: vec![web_service()],
            classes: our_class(),
            ..ClusterState::default()
        };
        let t = translate(&state, &settings());
        let names: Vec<&str> = t.routes.iter().map(|r| &*r.name).collect();
        // With rules, a default backend is a `/` fallback for the Ingress's
        // own hosts, after every explicit rule.
        assert_eq!(
            names,
            [
                "shop/old/shop.example.com/",
                "shop/young/shop.example.com/",
                "shop/young/shop.example.com/default-backend"
            ]
        );
        // Without rules, it is the catch-all.
        assert_eq!(
            &*t.default_backend.unwrap().name,
            "shop/catch-all/default-backend"
        );
    }

    #[test]
    fn canaries_stay_in_their_namespace_and_dual_stack_keeps_one_family() {
        let mut canary =
            (*shop_ingress("canary", "2026-02-01T00:00:00Z", json!({"number": 80}))).clone();
        canary.metadata.namespace = Some("elsewhere".into());
        canary.metadata.annotations = Some(
            [(
                "nginx.ingress.kubernetes.io/canary".to_owned(),
                "true".to_owned(),
            )]
            .into(),
        );
        let v6: Arc<EndpointSlice> = Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "web-v6", "namespace": "shop",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv6",
                "ports": [{"name": "http", "port": 8080}],
                "endpoints": [pod("fd00::1", "web-1", json!({"ready": true}))]
            }))
            .unwrap(),
        );
        let state = ClusterState {
            ingresses: vec![
                shop_ingress("main", "2026-01-01T00:00:00Z", json!({"number": 80})),
                Arc::new(canary),
            ],
            services: vec![web_service()],
            slices: vec![
                v6,
                slice(
                    "web-v4",
                    json!([pod("10.0.0.1", "web-1", json!({"ready": true}))]),
                ),
            ],
            classes: our_class(),
            pod_weights: Default::default(),
            secrets: Vec::new(),
        };
        let t = translate(&state, &settings());
        assert!(t.routes[0].canary.is_none());
        assert!(
            t.problems.iter().any(|p| p.contains("in its namespace")),
            "{:?}",
            t.problems
        );
        let eps: Vec<String> = t.routes[0]
            .upstream
            .endpoints
            .iter()
            .map(|e| e.addr.to_string())
            .collect();
        assert_eq!(eps, ["10.0.0.1:8080"]);
        // An IPv6 Service takes the IPv6 slice instead.
        let mut v6_service = (*web_service()).clone();
        v6_service.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into()]);
        let state = ClusterState {
            services: vec![Arc::new(v6_service)],
            ..state
        };
        let t = translate(&state, &settings());
        let eps: Vec<String> = t.routes[0]
            .upstream
            .endpoints
            .iter()
            .map(|e| e.addr.to_string())
            .collect();
        assert_eq!(eps, ["[fd00::1]:8080"]);
    }

    #[test]
    fn tls_sections_bind_only_the_ingresses_own_hosts() {
        let mut ing = (*shop_ingress("i", "2026-01-01T00:00:00Z", json!({"number": 80}))).clone();
        ing.spec.as_mut().unwrap().tls = serde_json::from_value(json!([
            {"hosts": ["Shop.Example.com", "bank.example.com"], "secretName": "good"},
            {"secretName": "all-hosts"},
            {"hosts": ["bank.example.com"], "secretName": "takeover"},
            {"hosts": ["shop.example.com"]}
        ]))
        .unwrap();
        let state = ClusterState {
            ingresses: vec![Arc::new(ing)],
            services: vec![web_service()],
            classes: our_class(),
            ..ClusterState::default()
        };
        let t = translate(&state, &settings());
        let got: Vec<(&str, &[String], &str, usize)> = t
            .tls
            .iter()
            .map(|b| (&*b.ingress, &b.hosts[..], &*b.secret, b.entry))
            .collect();
        let shop = ["shop.example.com".to_owned()];
        assert_eq!(
            got,
            [
                ("shop/i", &shop[..], "shop/good", 0),
                ("shop/i", &shop[..], "shop/all-hosts", 1)
            ]
        );
        assert_eq!(t.tls[0].ingress_ref.name.as_deref(), Some("i"));
        // bank.example.com is named twice, and has no rule here.
        assert_eq!(t.events.len(), 2, "{:?}", t.problems);
        assert!(t.events.iter().all(|e| e.reason == "BadTLSHost"));
        assert!(t.problems[0].contains("bank.example.com has no rule"));
    }

    #[test]
    fn bad_rules_lose_only_themselves() {
        let state = ClusterState {
            ingresses: vec![ingress(json!({
                "metadata": {"name": "mixed", "namespace": "shop"},
                "spec": {"ingressClassName": "sluice", "rules": [
                    {"host": "bad host!", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}},
                    {"host": "good.example.com", "http": {"paths": [
                        {"path": "/", "pathType": "Sideways",
                         "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                        {"path": "/ok", "pathType": "Exact",
                         "backend": {"service": {"name": "web", "port": {"number": 80}}}}
                    ]}}
                ]}
            }))],
            services: vec![web_service()],
            classes: our_class(),
            ..ClusterState::default()
        };
        let t = translate(&state, &settings());
        assert_eq!(t.routes.len(), 1);
        assert_eq!(t.routes[0].path, "/ok");
        assert_eq!(t.problems.len(), 2, "{:?}", t.problems);
        assert!(t.problems[0].contains("rules[0].host"));
        assert!(t.problems[1].contains("rules[1].http.paths[0].pathType"));
    }
}
