//! From EndpointSlices to the endpoints of one Service port: which pods
//! serve (ready, or terminating but still serving), on which port number
//! (a Service port by number or by name), in one address family, each with
//! a key that stays the pod's across unrelated changes.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::ServiceBackendPort;

use crate::discovery::slice::{Family, Slice};
use crate::spec::EndpointSpec;

/// The EndpointSlices of each Service, by `(namespace, service)`.
pub(super) struct SlicesByService<'a>(HashMap<(&'a str, &'a str), Vec<&'a Slice>>);

impl<'a> SlicesByService<'a> {
    /// Groups the slices by the Service their label names; a slice without
    /// a namespace or that label is left out.
    pub(super) fn index(slices: &'a [Arc<Slice>]) -> Self {
        let mut by_service: HashMap<(&str, &str), Vec<&Slice>> = HashMap::new();
        for s in slices {
            let (Some(ns), Some(svc)) = (s.namespace.as_deref(), s.service.as_deref()) else {
                continue;
            };
            by_service.entry((ns, svc)).or_default().push(s);
        }
        SlicesByService(by_service)
    }

    /// The pods behind a Service port: ready ones, or when none is ready,
    /// those still serving while they terminate (as kube-proxy does), so a
    /// rollout's last moments do not answer 503.
    pub(super) fn endpoints(
        &self,
        ns: &str,
        svc: &Service,
        port: Option<&ServiceBackendPort>,
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
            .map_or(Family::V4, |f| Family::named(f));
        let mut ready = Vec::new();
        let mut terminating = Vec::new();
        let mut seen = HashSet::new();
        for slice in self.0.get(&(ns, svc_name)).into_iter().flatten() {
            if slice.family != family || family == Family::Other {
                continue;
            }
            let Some(number) = slice
                .ports
                .iter()
                .find_map(|p| (*p.name == *port_name).then_some(p.number).flatten())
            else {
                continue;
            };
            let Ok(number) = u16::try_from(number) else {
                continue;
            };
            for e in &slice.endpoints {
                let Some(ip) = e.ip else {
                    continue;
                };
                let addr = SocketAddr::new(ip, number);
                // A pod keeps its key across unrelated changes, so ip-hash
                // keeps its clients on it.
                let key: Arc<str> = match &e.pod {
                    Some(pod) => format!("{}/{}:{number}", pod.namespace(ns), pod.name).into(),
                    None => addr.to_string().into(),
                };
                if !seen.insert(key.clone()) {
                    continue;
                }
                let weight = match (weights, &e.pod) {
                    (Some(w), Some(pod)) => w
                        // A lookup by borrowed parts would need a key type
                        // of its own; this runs once per endpoint per
                        // rebuild, and only for Services with pod weights.
                        .get(&(pod.namespace(ns).to_owned(), pod.name.to_string()))
                        .copied()
                        .unwrap_or(1),
                    _ => 1,
                };
                let spec = EndpointSpec { addr, weight, key };
                if e.ready && !e.terminating {
                    ready.push(spec);
                } else if e.serving && e.terminating {
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
    use k8s_openapi::api::discovery::v1::EndpointConditions;

    use crate::discovery::translate::fixtures::*;
    use crate::discovery::translate::{translate, ClusterState, Translated};

    /// The addresses of the first route's endpoints, in their order.
    fn first_route_addrs(t: &Translated) -> Vec<String> {
        t.routes[0]
            .upstream
            .endpoints
            .iter()
            .map(|e| e.addr.to_string())
            .collect()
    }

    #[test]
    fn ports_by_number_and_name_reach_the_pods() {
        let state = ClusterState {
            ingresses: vec![
                shop_ingress("by-number", "2026-01-01T00:00:00Z", port(80)).into(),
                shop_ingress("by-name", "2026-01-02T00:00:00Z", port_named("admin")).into(),
            ],
            services: vec![web_service().into()],
            slices: vec![
                web_slice("web-a", [shop_pod("10.0.0.1", "web-1", ready())]).into(),
                // Conditions unset: ready, by the API's rule.
                web_slice(
                    "web-b",
                    [shop_pod("10.0.0.2", "web-2", EndpointConditions::default())],
                )
                .into(),
            ],
            classes: vec![our_class().into()],
            pod_weights: Default::default(),
            secrets: Vec::new(),
            named_secrets: Vec::new(),
            gateway: None,
        };
        let t = translate(&state, &settings());
        assert_eq!(t.routes.len(), 2, "{:?}", t.problems);
        let mut addrs = first_route_addrs(&t);
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
        let both = vec![
            shop_pod("10.0.0.1", "old", terminating_but_serving()),
            shop_pod("10.0.0.2", "new", ready()),
            shop_pod("10.0.0.3", "starting", not_ready()),
        ];
        let only_old = vec![
            shop_pod("10.0.0.1", "old", terminating_but_serving()),
            shop_pod("10.0.0.3", "starting", not_ready()),
        ];
        for (endpoints, want) in [(both, "10.0.0.2:8080"), (only_old, "10.0.0.1:8080")] {
            let state = ClusterState {
                ingresses: vec![shop_ingress("i", "2026-01-01T00:00:00Z", port(80)).into()],
                services: vec![web_service().into()],
                slices: vec![web_slice("s", endpoints).into()],
                classes: vec![our_class().into()],
                pod_weights: Default::default(),
                secrets: Vec::new(),
                named_secrets: Vec::new(),
                gateway: None,
            };
            let t = translate(&state, &settings());
            assert_eq!(first_route_addrs(&t), [want]);
        }
    }

    #[test]
    fn dual_stack_keeps_one_family() {
        let v6 = endpoint_slice("shop", "web-v6", "web", "IPv6")
            .port("http", 8080)
            .endpoint(shop_pod("fd00::1", "web-1", ready()));
        let state = ClusterState {
            ingresses: vec![shop_ingress("main", "2026-01-01T00:00:00Z", port(80)).into()],
            services: vec![web_service().into()],
            slices: vec![
                v6.stored(),
                web_slice("web-v4", [shop_pod("10.0.0.1", "web-1", ready())]).into(),
            ],
            classes: vec![our_class().into()],
            pod_weights: Default::default(),
            secrets: Vec::new(),
            named_secrets: Vec::new(),
            gateway: None,
        };
        let t = translate(&state, &settings());
        assert_eq!(first_route_addrs(&t), ["10.0.0.1:8080"]);
        // An IPv6 Service takes the IPv6 slice instead.
        let state = ClusterState {
            services: vec![web_service().ip_families(&["IPv6"]).into()],
            ..state
        };
        let t = translate(&state, &settings());
        assert_eq!(first_route_addrs(&t), ["[fd00::1]:8080"]);
    }
}
