//! From an Ingress's rules to routes: hosts, paths and path types, the
//! default backend, and the route each backend gives, with the settings the
//! Ingress's and its Service's annotations ask for (balancing strategy,
//! timeouts, body limit, HTTPS redirect). A rule that cannot be read loses
//! only itself; a Service that is missing gives a route that answers 503.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressRule, IngressSpec};
use kube::Resource;

use super::endpoints::SlicesByService;
use super::path_rules;
use super::{id, ClusterState, Event, TranslateSettings, Translated};
use crate::balance::Strategy;
use crate::discovery::annotations::{self, Annotated};
use crate::spec::{HostError, HostMatch, PathType, Protocol, RouteSpec, UpstreamSpec};

/// What an Ingress backend is looked up in: the Services, their
/// EndpointSlices and their pods' weights, indexed once per rebuild.
pub(super) struct Backends<'a> {
    pod_weights: &'a HashMap<(String, String), u32>,
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: SlicesByService<'a>,
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
        Backends {
            pod_weights: &state.pod_weights,
            services,
            slices: SlicesByService::index(&state.slices),
            regex_hosts: HashSet::new(),
        }
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
                if let Some(r) = self.route(
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
                    // A path that does not compile loses only itself.
                    match path_rules::apply(&mut r, p, ing_notes, regex_host) {
                        Ok(()) => out.routes.push(r),
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
            path_rules: Default::default(),
        })
    }
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
