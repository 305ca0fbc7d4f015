//! ingress-nginx's custom error pages for one route, as its controller
//! builds them (`controller.go`, `nginx.tmpl`'s `CUSTOM_ERRORS`): the
//! Ingress's `custom-http-errors` (else the ConfigMap's) name the codes;
//! they go to the `default-backend` Service when the annotation sets the
//! codes and that Service has endpoints, else to the global default
//! backend (`--default-backend-service`). A path whose own Service has no
//! endpoints is served by the `default-backend` Service outright.

use std::sync::Arc;

use k8s_openapi::api::networking::v1::{IngressBackend, IngressServiceBackend, ServiceBackendPort};

use super::routes::Backends;
use super::TranslateSettings;
use crate::discovery::annotations::Annotated;
use crate::spec::{ErrorContext, ErrorPagesSpec, HostMatch, PathType, RouteSpec, UpstreamSpec};

impl Backends<'_> {
    /// Gives `route` (made from `backend` of Ingress `ns/ingress`) its
    /// error pages, if any apply.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn error_pages(
        &self,
        route: &mut RouteSpec,
        ns: &str,
        ingress: &str,
        backend: &IngressBackend,
        notes: &Annotated,
        settings: &TranslateSettings,
        problems: &mut Vec<String>,
    ) {
        let codes = notes.errors.codes.unwrap_or(settings.custom_http_errors);
        let empty = route.upstream.endpoints.is_empty();
        // ingress-nginx makes the annotation's upstream only when there
        // are codes or the path has no endpoints, and only from a Service
        // with endpoints of its own.
        let custom = match &notes.errors.backend {
            Some(svc) if !codes.is_empty() || empty => {
                self.named_default_backend(ns, svc, &route.name, settings, problems)
            }
            _ => None,
        };
        let replaces_upstream = empty && custom.is_some();
        if codes.is_empty() && !replaces_upstream {
            return;
        }
        // The ConfigMap's codes (the annotation unset) go to the global
        // default backend whatever `default-backend` says, as nginx's
        // inherited `error_page` does.
        let global = || {
            let (gns, gname) = settings.default_backend_service.as_ref()?;
            // Its problems are the catch-all's, reported there.
            let mut quiet = Vec::new();
            self.default_backend_service(gns, gname, settings, &mut quiet)
                .map(|r| r.upstream)
        };
        let answering = match (&notes.errors.codes, &custom) {
            (Some(_), Some(c)) => Some(c.clone()),
            _ => global(),
        };
        let svc = backend.service.as_ref();
        let port = svc
            .and_then(|s| s.port.as_ref())
            .map(|p| match (&p.name, p.number) {
                (_, Some(n)) if n > 0 => n.to_string(),
                (Some(n), _) => n.clone(),
                _ => String::new(),
            })
            .unwrap_or_default();
        let about = ErrorContext::new(ns, ingress, svc.map_or("", |s| s.name.as_str()), &port);
        if let (true, Some(c)) = (replaces_upstream, custom) {
            route.upstream = c;
        }
        route.error_pages = Some(Arc::new(ErrorPagesSpec {
            codes,
            backend: answering,
            about,
            replaces_upstream,
        }));
    }

    /// The `default-backend` Service's upstream, on its first port (as
    /// ingress-nginx takes it); `None` when it is missing or has no
    /// endpoints, and the global default backend answers instead.
    fn named_default_backend(
        &self,
        ns: &str,
        name: &str,
        route: &str,
        settings: &TranslateSettings,
        problems: &mut Vec<String>,
    ) -> Option<UpstreamSpec> {
        let first = self
            .service(ns, name)
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.ports.as_deref())
            .and_then(|p| p.first());
        let Some(first) = first else {
            problems.push(format!(
                "{route}: default-backend: service {ns}/{name} does not exist or has no port; the global default backend answers"
            ));
            return None;
        };
        let backend = IngressBackend {
            service: Some(IngressServiceBackend {
                name: name.to_owned(),
                port: Some(ServiceBackendPort {
                    name: None,
                    number: Some(first.port),
                }),
            }),
            resource: None,
        };
        // Its own problems (no ready endpoint) are said once, below.
        let mut quiet = Vec::new();
        let upstream = self
            .route(
                route,
                HostMatch::Any,
                "/",
                PathType::Prefix,
                ns,
                &backend,
                &Annotated::default(),
                settings,
                &mut quiet,
            )?
            .upstream;
        if upstream.endpoints.is_empty() {
            problems.push(format!(
                "{route}: default-backend: service {ns}/{name} has no ready endpoint; the global default backend answers"
            ));
            return None;
        }
        Some(upstream)
    }
}

#[cfg(test)]
mod tests {
    use crate::discovery::translate::fixtures::*;
    use crate::discovery::translate::{translate, ClusterState, TranslateSettings};
    use crate::spec::StatusSet;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    /// `shop/web` (with or without a ready pod), `shop/errors` (ready) and
    /// `ops/global` (ready), the Ingress given.
    fn state(ing: k8s_openapi::api::networking::v1::Ingress, web_ready: bool) -> ClusterState {
        let errors = service(
            "shop",
            "errors",
            [service_port("http", 8000, IntOrString::Int(8000))],
        );
        let global = service(
            "ops",
            "global",
            [service_port("http", 80, IntOrString::Int(8080))],
        );
        let mut slices = vec![
            endpoint_slice("shop", "errors-1", "errors", "IPv4")
                .port("http", 8000)
                .endpoint(shop_pod("10.0.1.1", "errors-1", ready()))
                .stored(),
            endpoint_slice("ops", "global-1", "global", "IPv4")
                .port("http", 8080)
                .endpoint(shop_pod("10.0.2.1", "global-1", ready()))
                .stored(),
        ];
        if web_ready {
            slices.push(web_slice("web-1", [shop_pod("10.0.0.1", "web-1", ready())]).into());
        }
        ClusterState {
            ingresses: vec![ing.into()],
            services: vec![web_service().into(), errors.into(), global.into()],
            slices,
            classes: vec![our_class().into()],
            ..ClusterState::default()
        }
    }

    fn with_global(codes: &str) -> TranslateSettings {
        TranslateSettings {
            default_backend_service: Some(("ops".into(), "global".into())),
            custom_http_errors: StatusSet::parse_list(codes).unwrap(),
            ..settings()
        }
    }

    fn addr(u: &crate::spec::UpstreamSpec) -> String {
        u.endpoints[0].addr.to_string()
    }

    #[test]
    fn the_annotation_sends_its_codes_to_its_service() {
        let ing = shop_ingress("a", "2026-01-01T00:00:00Z", port(80))
            .nginx("custom-http-errors", "404,503")
            .nginx("default-backend", "errors");
        let t = translate(&state(ing, true), &with_global(""));
        let pages = t.routes[0].error_pages.as_ref().unwrap();
        assert_eq!(pages.codes.iter().collect::<Vec<_>>(), [404, 503]);
        assert_eq!(addr(pages.backend.as_ref().unwrap()), "10.0.1.1:8000");
        assert!(!pages.replaces_upstream);
        let about = &pages.about;
        let s = |v: &Option<http::HeaderValue>| v.as_ref().unwrap().to_str().unwrap().to_owned();
        assert_eq!(
            [
                &about.namespace,
                &about.ingress,
                &about.service,
                &about.port
            ]
            .map(s),
            ["shop", "a", "web", "80"]
        );
        assert_eq!(addr(&t.routes[0].upstream), "10.0.0.1:8080");
    }

    #[test]
    fn the_configmap_codes_go_to_the_global_backend() {
        // Even with default-backend set: nginx's inherited error_page.
        let ing =
            shop_ingress("a", "2026-01-01T00:00:00Z", port(80)).nginx("default-backend", "errors");
        let t = translate(&state(ing, true), &with_global("502"));
        let pages = t.routes[0].error_pages.as_ref().unwrap();
        assert_eq!(pages.codes.iter().collect::<Vec<_>>(), [502]);
        assert_eq!(addr(pages.backend.as_ref().unwrap()), "10.0.2.1:8080");
        // Without codes anywhere, nothing.
        let plain = shop_ingress("a", "2026-01-01T00:00:00Z", port(80));
        let t = translate(&state(plain, true), &with_global(""));
        assert!(t.routes[0].error_pages.is_none());
    }

    #[test]
    fn a_service_without_endpoints_is_served_by_the_default_backend() {
        let ing =
            shop_ingress("a", "2026-01-01T00:00:00Z", port(80)).nginx("default-backend", "errors");
        let t = translate(&state(ing, false), &settings());
        let r = &t.routes[0];
        assert_eq!(addr(&r.upstream), "10.0.1.1:8000");
        assert!(r.error_pages.as_ref().unwrap().replaces_upstream);
        // A default-backend Service without endpoints of its own: the
        // route answers 503, as before.
        let ing =
            shop_ingress("a", "2026-01-01T00:00:00Z", port(80)).nginx("default-backend", "nope");
        let t = translate(&state(ing, false), &settings());
        assert!(t.routes[0].upstream.endpoints.is_empty());
        assert!(t.routes[0].error_pages.is_none());
        assert!(
            t.problems.iter().any(|p| p.contains("shop/nope")),
            "{:?}",
            t.problems
        );
    }
}
