//! From an Ingress's rules to routes: hosts, paths and path types, the
//! default backend, and the route each backend gives, with the settings the
//! Ingress's and its Service's annotations ask for (balancing strategy,
//! timeouts, body limit, HTTPS redirect). A rule that cannot be read loses
//! only itself; a Service that is missing gives a route that answers 503.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressRule, IngressSpec};
use kube::Resource;

use super::endpoints::SlicesByService;
use super::path_rules;
use super::{id, ClusterState, Event, TranslateSettings, Translated};
use crate::balance::Strategy;
use crate::discovery::annotations::{self, Annotated, BackendProtocol};
use crate::routing::strip_port;
use crate::spec::{
    EndpointSpec, HostError, HostMatch, PathType, Protocol, RouteSpec, UpstreamSpec, UpstreamTls,
};
use crate::tls::client::{client_config, Verify};
use rustls::pki_types::ServerName;

/// What an Ingress backend is looked up in: the Services, their
/// EndpointSlices and their pods' weights, indexed once per rebuild.
pub(super) struct Backends<'a> {
    pod_weights: &'a HashMap<(String, String), u32>,
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: SlicesByService<'a>,
    /// Secrets by `(namespace, name)`: the TLS ones, and those
    /// annotations name (`proxy-ssl-secret`, `auth-secret`).
    secrets: HashMap<(&'a str, &'a str), &'a Secret>,
    /// The Secrets annotations named, found or not: each is watched on its
    /// own (`discovery/named_secrets.rs`).
    pub(super) wanted: std::cell::RefCell<std::collections::BTreeSet<(String, String)>>,
    /// Hosts whose paths are regexes (ingress-nginx's `use-regex`,
    /// `rewrite-target`), found before any route is made.
    pub(super) regex_hosts: HashSet<HostMatch>,
}

impl<'a> Backends<'a> {
    pub(super) fn index(state: &'a ClusterState) -> Self {
        let services = state
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
        let secrets = state
            .secrets
            .iter()
            .chain(&state.named_secrets)
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
        Backends {
            pod_weights: &state.pod_weights,
            services,
            slices: SlicesByService::index(&state.slices),
            secrets,
            wanted: Default::default(),
            regex_hosts: HashSet::new(),
        }
    }
}

impl<'a> Backends<'a> {
    /// The Service `namespace/name`, if it is there.
    pub(super) fn service(&self, ns: &str, name: &str) -> Option<&'a Service> {
        self.services.get(&(ns, name)).copied()
    }
}

impl Backends<'_> {
    /// Adds the routes of a main (not canary) Ingress: one per path of its
    /// rules to `out`, and the `/` fallbacks its default backend gives its
    /// own hosts to `fallbacks`, which go after every Ingress's rules.
    pub(super) fn add_ingress(
        &self,
        ing: &Ingress,
        spec: &IngressSpec,
        ing_notes: &Annotated,
        settings: &TranslateSettings,
        out: &mut Translated,
        fallbacks: &mut Vec<RouteSpec>,
    ) {
        let ing_id = id(&ing.metadata);
        let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
        let ing_name = ing.metadata.name.as_deref().unwrap_or("");
        let has_rules = spec.rules.as_ref().is_some_and(|r| !r.is_empty());
        // One zone per Ingress, as ingress-nginx names them: a client's
        // requests to any of its paths count together.
        let zone = format!("{ing_id}/{}", ing.metadata.uid.as_deref().unwrap_or(""));
        let limits = ing_notes.limits.limits(&zone);
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
                let regex_host = self.regex_hosts.contains(&host);
                if let Some(mut r) = self.route(
                    &name,
                    host,
                    "/",
                    PathType::Prefix,
                    ns,
                    backend,
                    ing_notes,
                    settings,
                    &mut out.problems,
                ) {
                    r.limits = limits.clone();
                    let problems = &mut out.problems;
                    self.error_pages(&mut r, ns, ing_name, backend, ing_notes, settings, problems);
                    match path_rules::apply(&mut r, "/", ing_notes, regex_host) {
                        Ok(()) => fallbacks.push(r),
                        Err(e) => out.problems.push(format!("ingress {ing_id}: {e}")),
                    }
                }
            }
        } else if let Some(backend) = &spec.default_backend {
            // Without rules, it is the catch-all for everything unmatched.
            if out.default_backend.is_none() {
                let name = format!("{ing_id}/default-backend");
                if let Some(mut r) = self.route(
                    &name,
                    HostMatch::Any,
                    "/",
                    PathType::Prefix,
                    ns,
                    backend,
                    ing_notes,
                    settings,
                    &mut out.problems,
                ) {
                    r.limits = limits.clone();
                    let problems = &mut out.problems;
                    self.error_pages(&mut r, ns, ing_name, backend, ing_notes, settings, problems);
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
                let regex_host = self.regex_hosts.contains(&host);
                if let Some(mut r) = self.route(
                    &name,
                    host.clone(),
                    &normalized,
                    path_type,
                    ns,
                    &path.backend,
                    ing_notes,
                    settings,
                    &mut out.problems,
                ) {
                    r.limits = limits.clone();
                    let problems = &mut out.problems;
                    let b = &path.backend;
                    self.error_pages(&mut r, ns, ing_name, b, ing_notes, settings, problems);
                    // A path that does not compile loses only itself.
                    match path_rules::apply(&mut r, p, ing_notes, regex_host) {
                        Ok(()) => {
                            let mut notes = Vec::new();
                            let affinity = ing_notes.affinity.spec(p, regex_host, &mut notes);
                            r.affinity = affinity.map(Arc::new);
                            let notes = notes.into_iter().map(|n| format!("ingress {ing_id}: {n}"));
                            out.problems.extend(notes);
                            out.routes.push(r)
                        }
                        Err(e) => {
                            let note = format!("{field}.path: {e}; the path is skipped");
                            out.problems.push(format!("ingress {ing_id}: {note}"));
                            out.events
                                .push(Event::new(ing.object_ref(&()), "BadPath", note));
                        }
                    }
                }
            }
        }
    }

    /// One route to an Ingress backend. `None` (with a problem noted) when
    /// the backend is not a Service; a Service that is missing or has no
    /// ready pod gives a route with no endpoints, which answers 503.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn route(
        &self,
        name: &str,
        host: HostMatch,
        path: &str,
        path_type: PathType,
        ns: &str,
        backend: &IngressBackend,
        ing_notes: &Annotated,
        settings: &TranslateSettings,
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
            Some(svc) if ing_notes.service_upstream => {
                service_upstream(ns, svc, port, name, problems)
            }
            Some(svc) => {
                let weights = svc_notes
                    .as_ref()
                    .is_some_and(|n| n.pod_weights)
                    .then_some(self.pod_weights);
                self.slices
                    .endpoints(ns, svc, port, weights, name, problems)
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
                settings
                    .controller_config
                    .strategy
                    .unwrap_or(Strategy::RoundRobin)
            });
        // Routes to one Service port share endpoints (health, pools) by
        // this name; the strategy is part of it so that two Ingresses asking
        // different strategies of one Service do not rebuild each other's
        // balancer on every change.
        let backend_protocol = ing_notes.backend_protocol.unwrap_or(BackendProtocol::Http);
        let suffix = match backend_protocol {
            BackendProtocol::Http => "",
            BackendProtocol::Https => "+https",
            BackendProtocol::Grpc => "+grpc",
            BackendProtocol::Grpcs => "+grpcs",
        };
        let head = ing_notes
            .proxy
            .response_head
            .map(|n| format!("+head{n}"))
            .unwrap_or_default();
        let upstream_name = format!(
            "{ns}/{}:{port_label}#{strategy}{suffix}{head}",
            svc_ref.name
        );
        let (tls, endpoints) = if backend_protocol.tls() {
            match self.upstream_tls(ns, &svc_ref.name, ing_notes, backend_protocol) {
                Ok(tls) => (Some(Arc::new(tls)), endpoints),
                Err(why) => {
                    // Verification was asked for and cannot be had: no
                    // traffic rather than unverified traffic.
                    problems.push(format!("{name}: {why}; the route answers 503"));
                    (None, Vec::new())
                }
            }
        } else {
            (None, endpoints)
        };
        let (access, endpoints) = match self.access(ns, &ing_notes.access) {
            Ok(a) => (a, endpoints),
            Err(why) => {
                problems.push(format!("{name}: {why}; the route answers 503"));
                (Default::default(), Vec::new())
            }
        };
        let mut timeouts = settings.defaults.timeouts;
        ing_notes.apply_timeouts(&mut timeouts);
        let mut retry = settings.defaults.retry;
        ing_notes.proxy.apply(&mut timeouts, &mut retry);
        Some(RouteSpec {
            name: name.into(),
            host,
            path: path.to_owned(),
            path_type,
            upstream: UpstreamSpec {
                name: upstream_name.into(),
                strategy,
                protocol: if backend_protocol.http2() {
                    Protocol::Http2
                } else {
                    Protocol::Http1
                },
                endpoints,
                health: settings.defaults.health,
                max_idle_per_endpoint: settings.defaults.max_idle,
                tls,
                response_head: ing_notes.proxy.response_head,
                names: Vec::new(),
            },
            timeouts,
            retry,
            canary: None,
            max_request_body: ing_notes
                .max_request_body
                .unwrap_or(settings.defaults.max_request_body),
            headers: ing_notes.header_edits(),
            access,
            ssl_redirect: match ing_notes.redirect() {
                // The ConfigMap's force-ssl-redirect, unless the Ingress says
                // otherwise.
                None if settings.controller_config.force_ssl_redirect => Some(true),
                r => r,
            },
            path_rules: Default::default(),
            limits: None,
            affinity: None,
            error_pages: None,
            conditions: None,
            split: Vec::new(),
            mirrors: Vec::new(),
        })
    }
}

impl Backends<'_> {
    /// The Secret `namespace/name`, noted as wanted whether or not it is
    /// there.
    pub(super) fn secret(&self, ns: &str, name: &str) -> Option<&Secret> {
        self.wanted
            .borrow_mut()
            .insert((ns.to_owned(), name.to_owned()));
        self.secrets.get(&(ns, name)).copied()
    }

    /// The TLS setting for an HTTPS or gRPCS backend, as ingress-nginx's
    /// `proxy-ssl-*` annotations ask: unverified and without SNI unless
    /// told otherwise. The name verified (and sent, with
    /// `proxy-ssl-server-name: on`) is `proxy-ssl-name`, else the
    /// `upstream-vhost`, else the Service's cluster name.
    fn upstream_tls(
        &self,
        ns: &str,
        svc: &str,
        notes: &Annotated,
        protocol: BackendProtocol,
    ) -> Result<UpstreamTls, String> {
        let name = notes
            .proxy_ssl_name
            .clone()
            .or_else(|| {
                notes
                    .upstream_vhost
                    .as_ref()
                    .and_then(|h| h.to_str().ok())
                    .map(|h| strip_port(h).to_owned())
            })
            .unwrap_or_else(|| format!("{svc}.{ns}.svc"));
        let secret = match &notes.proxy_ssl_secret {
            Some((sns, sname)) => {
                let found = self.secret(sns, sname);
                let data = |key: &str| {
                    found
                        .and_then(|s| s.data.as_ref())
                        .and_then(|d| d.get(key))
                        .map(|b| b.0.clone())
                        .filter(|b| !b.is_empty())
                };
                Some(SslSecret {
                    id: format!("{sns}/{sname}"),
                    found: found.is_some(),
                    version: found.and_then(|s| s.metadata.resource_version.clone()),
                    ca: data("ca.crt"),
                    client: data("tls.crt").zip(data("tls.key")),
                })
            }
            None => None,
        };
        let verify = if notes.proxy_ssl_verify {
            match &secret {
                None => return Err("proxy-ssl-verify is on without a proxy-ssl-secret".into()),
                Some(s) if !s.found => return Err(format!("proxy-ssl-secret {}: not found", s.id)),
                Some(SslSecret { ca: Some(ca), .. }) => Verify::Ca(ca.clone()),
                Some(s) => return Err(format!("proxy-ssl-secret {}: lacks ca.crt", s.id)),
            }
        } else {
            Verify::Off
        };
        let client_cert = secret.as_ref().and_then(|s| s.client.as_ref());
        let alpn: &[&[u8]] = if protocol.http2() { &[b"h2"] } else { &[] };
        let mut config = client_config(
            &verify,
            client_cert.map(|(c, k)| (c.as_slice(), k.as_slice())),
            alpn,
        )
        .map_err(|e| match &secret {
            Some(s) => format!("proxy-ssl-secret {}: {e}", s.id),
            None => e.to_string(),
        })?;
        config.enable_sni = notes.proxy_ssl_server_name;
        let named = notes.proxy_ssl_server_name || notes.proxy_ssl_verify;
        let server_name = if named {
            Some(
                ServerName::try_from(name.clone())
                    .map_err(|_| format!("{name:?} is not a name to verify"))?,
            )
        } else {
            None
        };
        let id = format!(
            "{} verify={} sni={} secret={}",
            if protocol.http2() { "h2" } else { "http/1.1" },
            if notes.proxy_ssl_verify { "on" } else { "off" },
            if notes.proxy_ssl_server_name {
                name.as_str()
            } else {
                "-"
            },
            secret
                .as_ref()
                .map(|s| format!("{}@{}", s.id, s.version.as_deref().unwrap_or("")))
                .unwrap_or_else(|| "-".into()),
        );
        Ok(UpstreamTls {
            config: Arc::new(config),
            server_name,
            id: id.into(),
        })
    }
}

impl Backends<'_> {
    /// `--default-backend-service`'s catch-all: the Service's only port
    /// (or the one named `http`), answering what no rule matches.
    pub(super) fn default_backend_service(
        &self,
        ns: &str,
        name: &str,
        settings: &TranslateSettings,
        problems: &mut Vec<String>,
    ) -> Option<RouteSpec> {
        let port = self
            .services
            .get(&(ns, name))
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.ports.as_deref())
            .filter(|p| p.len() > 1)
            .map(|_| k8s_openapi::api::networking::v1::ServiceBackendPort {
                name: Some("http".into()),
                number: None,
            });
        let backend = IngressBackend {
            service: Some(k8s_openapi::api::networking::v1::IngressServiceBackend {
                name: name.to_owned(),
                port,
            }),
            resource: None,
        };
        self.route(
            "default-backend-service",
            HostMatch::Any,
            "/",
            PathType::Prefix,
            ns,
            &backend,
            &Annotated::default(),
            settings,
            problems,
        )
    }
}

/// What `proxy-ssl-secret` names, as found.
struct SslSecret {
    /// `namespace/name`.
    id: String,
    found: bool,
    /// Its `resourceVersion`: a new version makes new connections.
    version: Option<String>,
    ca: Option<Vec<u8>>,
    /// `tls.crt` and `tls.key`: a client certificate.
    client: Option<(Vec<u8>, Vec<u8>)>,
}

/// ingress-nginx's `service-upstream`: the Service's ClusterIP and port as
/// the one endpoint, leaving the balancing to kube-proxy. A headless
/// Service has no ClusterIP to send to: its route answers 503.
fn service_upstream(
    ns: &str,
    svc: &Service,
    port: Option<&k8s_openapi::api::networking::v1::ServiceBackendPort>,
    route: &str,
    problems: &mut Vec<String>,
) -> Vec<EndpointSpec> {
    let svc_name = svc.metadata.name.as_deref().unwrap_or("");
    let spec = svc.spec.as_ref();
    let ip = spec
        .and_then(|s| s.cluster_ip.as_deref())
        .filter(|ip| *ip != "None")
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
    let Some(ip) = ip else {
        problems.push(format!(
            "{route}: service-upstream: service {ns}/{svc_name} has no ClusterIP; the route answers 503"
        ));
        return Vec::new();
    };
    let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or(&[]);
    let found = match port {
        Some(p) => ports.iter().find(|sp| match (&p.name, p.number) {
            (Some(n), _) if !n.is_empty() => sp.name.as_deref() == Some(n.as_str()),
            (_, Some(n)) => sp.port == n,
            _ => false,
        }),
        None if ports.len() == 1 => ports.first(),
        None => None,
    };
    let Some(p) = found.and_then(|p| u16::try_from(p.port).ok()) else {
        problems.push(format!(
            "{route}: service {ns}/{svc_name} has no such port; the route answers 503"
        ));
        return Vec::new();
    };
    let addr = std::net::SocketAddr::new(ip, p);
    vec![EndpointSpec {
        addr,
        weight: 1,
        key: format!("service {ns}/{svc_name} {addr}").into(),
    }]
}

/// A rule's host: none (or empty) matches any host.
pub(super) fn rule_host(rule: &IngressRule) -> Result<HostMatch, HostError> {
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

#[cfg(test)]
mod tests {
    use crate::discovery::translate::fixtures::*;
    use crate::discovery::translate::{translate, ClusterState};

    fn one_route(
        ing: k8s_openapi::api::networking::v1::Ingress,
    ) -> crate::discovery::translate::Translated {
        let mut svc = web_service();
        svc.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.7".into());
        let state = ClusterState {
            ingresses: vec![ing.into()],
            services: vec![svc.into()],
            slices: vec![web_slice("web-1", [shop_pod("10.0.0.1", "web-1", ready())]).into()],
            classes: vec![our_class().into()],
            ..ClusterState::default()
        };
        translate(&state, &settings())
    }

    #[test]
    fn the_controller_configmap_sets_every_ingress() {
        use crate::discovery::translate::ControllerConfig;
        let ing = shop_ingress("a", "2026-01-01T00:00:00Z", port(80))
            .nginx("configuration-snippet", "more_set_headers \"X-A: b\";");
        let state = ClusterState {
            ingresses: vec![ing.into()],
            services: vec![web_service().into()],
            classes: vec![our_class().into()],
            ..ClusterState::default()
        };
        let plain = translate(&state, &settings());
        assert_eq!(plain.routes[0].ssl_redirect, None);
        assert_eq!(plain.routes[0].headers.response.len(), 1);
        let mut s = settings();
        s.controller_config = ControllerConfig {
            strategy: Some(crate::balance::Strategy::LeastRequest),
            force_ssl_redirect: true,
            allow_snippets: false,
        };
        let t = translate(&state, &s);
        let r = &t.routes[0];
        assert_eq!(r.upstream.strategy, crate::balance::Strategy::LeastRequest);
        assert_eq!(r.ssl_redirect, Some(true));
        assert!(
            r.headers.response.is_empty(),
            "a snippet applied: {:?}",
            r.headers
        );
        assert!(
            t.problems
                .iter()
                .any(|p| p.contains("allow-snippet-annotations is false")),
            "{:?}",
            t.problems
        );
    }

    #[test]
    fn backend_protocols_and_their_tls() {
        use crate::spec::Protocol;
        let plain = one_route(shop_ingress("a", "2026-01-01T00:00:00Z", port(80)));
        let u = &plain.routes[0].upstream;
        assert_eq!((u.protocol, u.tls.is_none()), (Protocol::Http1, true));
        for (value, protocol, tls, alpn) in [
            ("HTTPS", Protocol::Http1, true, vec![]),
            ("grpc", Protocol::Http2, false, vec![]),
            ("GRPCS", Protocol::Http2, true, vec![b"h2".to_vec()]),
            ("AUTO_HTTP", Protocol::Http1, false, vec![]),
        ] {
            let t = one_route(
                shop_ingress("a", "2026-01-01T00:00:00Z", port(80))
                    .nginx("backend-protocol", value),
            );
            assert!(t.problems.is_empty(), "{value}: {:?}", t.problems);
            let u = &t.routes[0].upstream;
            assert_eq!((u.protocol, u.tls.is_some()), (protocol, tls), "{value}");
            assert_eq!(u.endpoints.len(), 1);
            if let Some(tls) = &u.tls {
                assert_eq!(tls.config.alpn_protocols, alpn, "{value}");
                // ingress-nginx's defaults: no verification, no SNI.
                assert!(tls.server_name.is_none() && !tls.config.enable_sni);
            }
        }
        let t = one_route(
            shop_ingress("a", "2026-01-01T00:00:00Z", port(80))
                .nginx("backend-protocol", "HTTPS")
                .nginx("proxy-ssl-server-name", "on")
                .nginx("upstream-vhost", "internal.shop:8443"),
        );
        let tls = t.routes[0].upstream.tls.as_ref().unwrap();
        assert!(tls.config.enable_sni);
        assert_eq!(
            tls.server_name
                .as_ref()
                .map(|n| n.to_str().into_owned())
                .as_deref(),
            Some("internal.shop")
        );
        assert_eq!(
            t.routes[0].headers.host.as_ref().unwrap(),
            "internal.shop:8443"
        );
        // FCGI is refused by name, and the pods are spoken to in HTTP.
        let t = one_route(
            shop_ingress("a", "2026-01-01T00:00:00Z", port(80)).nginx("backend-protocol", "FCGI"),
        );
        assert!(t.problems[0].contains("not supported"), "{:?}", t.problems);
        assert!(t.routes[0].upstream.tls.is_none());
    }

    #[test]
    fn verification_asked_for_and_impossible_answers_503() {
        let t = one_route(
            shop_ingress("a", "2026-01-01T00:00:00Z", port(80))
                .nginx("backend-protocol", "HTTPS")
                .nginx("proxy-ssl-verify", "on")
                .nginx("proxy-ssl-secret", "shop/ca"),
        );
        assert!(t.routes[0].upstream.endpoints.is_empty());
        assert!(
            t.problems.iter().any(|p| p.contains("shop/ca: not found")),
            "{:?}",
            t.problems
        );
    }

    #[test]
    fn service_upstream_sends_to_the_cluster_ip() {
        let t = one_route(
            shop_ingress("a", "2026-01-01T00:00:00Z", port(80))
                .nginx("service-upstream", "true")
                .nginx("x-forwarded-prefix", "/shop"),
        );
        let eps = &t.routes[0].upstream.endpoints;
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].addr, "10.96.0.7:80".parse().unwrap());
        assert_eq!(
            t.routes[0].headers.forwarded_prefix.as_ref().unwrap(),
            "/shop"
        );
    }

    #[test]
    fn missing_service_or_port_answers_503_and_is_reported() {
        let state = ClusterState {
            ingresses: vec![shop_ingress("a", "2026-01-01T00:00:00Z", port(81)).into()],
            services: vec![],
            classes: vec![our_class().into()],
            ..ClusterState::default()
        };
        let t = translate(&state, &settings());
        assert_eq!(t.routes.len(), 1);
        assert!(t.routes[0].upstream.endpoints.is_empty());
        assert!(t.problems[0].contains("does not exist"), "{:?}", t.problems);
        let state = ClusterState {
            services: vec![web_service().into()],
            ..state
        };
        let t = translate(&state, &settings());
        assert!(t.problems[0].contains("no such port"), "{:?}", t.problems);
    }

    #[test]
    fn oldest_ingress_comes_first_and_default_backends_stay_home() {
        let young = shop_ingress("young", "2026-03-01T00:00:00Z", port(80))
            .default_backend(backend("web", port(80)));
        let catch_all = ingress("shop", "catch-all")
            .created("2026-02-01T00:00:00Z")
            .class("sluice")
            .default_backend(backend("web", port(80)));
        let state = ClusterState {
            ingresses: vec![
                young.into(),
                catch_all.into(),
                shop_ingress("old", "2026-01-01T00:00:00Z", port(80)).into(),
            ],
            services: vec![web_service().into()],
            classes: vec![our_class().into()],
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
    fn bad_rules_lose_only_themselves() {
        let mixed = ingress("shop", "mixed")
            .class("sluice")
            .path("bad host!", "/", "Prefix", backend("web", port(80)))
            .path(
                "good.example.com",
                "/",
                "Sideways",
                backend("web", port(80)),
            )
            .path("good.example.com", "/ok", "Exact", backend("web", port(80)));
        let state = ClusterState {
            ingresses: vec![mixed.into()],
            services: vec![web_service().into()],
            classes: vec![our_class().into()],
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
