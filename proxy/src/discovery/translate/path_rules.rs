//! ingress-nginx's path annotations on the routes of an Ingress: which
//! hosts match by regex, each route's regex, rewrite and redirect, and the
//! host-wide redirects (`app-root`, `from-to-www-redirect`) as routes of
//! their own.
//!
//! As ingress-nginx does it (`internal/ingress/controller/template/
//! template.go`, `enforceRegexModifier` and `buildLocation`): if any path
//! of a host, on any Ingress, has `use-regex` or a `rewrite-target` other
//! than itself, every path of that host, whatever Ingress it is on,
//! becomes the case-insensitive regex `~* "^PATH"`, written as the Ingress
//! writes it (no trailing slash cut). Exact and Prefix alike are then
//! prefix matches: a known foot-gun of ingress-nginx, kept because
//! Ingresses written for it count on it.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;

use super::routes::rule_host;
use super::{id, Translated};
use crate::discovery::annotations::Annotated;
use crate::spec::{HostMatch, PathType, Redirect, RegexPath, Rewrite, RouteSpec};

/// The hosts whose paths are all regexes: those with a path, on any main
/// Ingress, that has `use-regex` or is rewritten. A rule without a host
/// makes the catch-all table a regex one.
pub(super) fn regex_hosts(mains: &[(&Arc<Ingress>, Annotated)]) -> HashSet<HostMatch> {
    let mut out = HashSet::new();
    for (ing, notes) in mains {
        let Some(spec) = &ing.spec else { continue };
        let has_rules = spec.rules.as_ref().is_some_and(|r| !r.is_empty());
        for rule in spec.rules.iter().flatten() {
            let Ok(host) = rule_host(rule) else { continue };
            // The default backend is a `/` location on each of its hosts,
            // with the Ingress's annotations.
            let default = (has_rules && spec.default_backend.is_some()).then_some("/");
            let paths = rule
                .http
                .iter()
                .flat_map(|h| &h.paths)
                .map(|p| p.path.as_deref().unwrap_or("/"))
                .chain(default);
            for path in paths {
                if notes.paths.regex_for(path) {
                    out.insert(host.clone());
                    break;
                }
            }
        }
    }
    out
}

/// Gives a route of the Ingress its path rules: its redirect, and on a
/// regex host its regex (from the path as written) and rewrite. `Err`
/// names what does not compile; the route is then left out.
pub(super) fn apply(
    spec: &mut RouteSpec,
    path: &str,
    notes: &Annotated,
    regex_host: bool,
) -> Result<(), String> {
    spec.path_rules.redirect = notes.paths.redirect();
    if !regex_host {
        return Ok(());
    }
    spec.path = path.to_owned();
    spec.path_rules.regex = Some(RegexPath::new(path).map_err(|e| e.to_string())?);
    if let (true, Some(target)) = (notes.paths.rewrites(path), &notes.paths.rewrite_target) {
        let rw = Rewrite::new(path, target.clone()).map_err(|e| e.to_string())?;
        spec.path_rules.rewrite = Some(rw);
    }
    Ok(())
}

/// The host-wide redirects the Ingresses ask for, gathered while their
/// routes are made and added once every Ingress has been read.
#[derive(Debug, Default)]
pub(super) struct HostRedirects {
    /// Hosts that have an `app-root` already: the oldest Ingress's wins.
    app_roots: HashSet<HostMatch>,
    /// A route of each host that asks for `from-to-www-redirect`, in
    /// Ingress order.
    www: Vec<(String, RouteSpec)>,
}

impl HostRedirects {
    /// Notes the host-wide redirects of an Ingress whose routes are
    /// `out.routes[first..]`. An `app-root` is a route of its own for
    /// Exact `/` on each of its hosts, put before every other route: in
    /// nginx it is a server-level `if ($uri = /)`, checked before any
    /// location, so it wins over every Ingress's `/`, regex or not.
    pub(super) fn note(
        &mut self,
        ing: &Ingress,
        notes: &Annotated,
        first: usize,
        out: &mut Translated,
    ) {
        let ing_id = id(&ing.metadata);
        let mut hosts: Vec<RouteSpec> = Vec::new();
        for r in &out.routes[first..] {
            if !hosts.iter().any(|h| h.host == r.host) {
                hosts.push(r.clone());
            }
        }
        if let Some(root) = &notes.paths.app_root {
            for template in &hosts {
                if !self.app_roots.insert(template.host.clone()) {
                    continue;
                }
                let mut r = template.clone();
                r.name = format!("{ing_id}/{}/app-root", template.host).into();
                r.path = "/".into();
                r.path_type = PathType::Exact;
                r.canary = None;
                r.path_rules = Default::default();
                r.path_rules.redirect = Some(Redirect::AppRoot(root.clone()));
                out.routes.insert(0, r);
            }
        }
        if notes.paths.from_to_www {
            for template in hosts {
                self.www.push((ing_id.clone(), template));
            }
        }
    }

    /// Adds the `from-to-www-redirect` routes: for each exact host `H`
    /// that asks, `www.H` (or, for `www.H`, `H`) answers every path with
    /// a 308 to `H`, unless some Ingress has rules for that name itself
    /// (ingress-nginx's `BuildRedirects` then skips it, with a warning).
    pub(super) fn finish(self, out: &mut Translated) {
        let served: HashSet<HostMatch> = out.routes.iter().map(|r| r.host.clone()).collect();
        let mut done: HashSet<String> = HashSet::new();
        for (ing_id, template) in self.www {
            let HostMatch::Exact(to) = &template.host else {
                continue;
            };
            let from = match to.strip_prefix("www.") {
                Some(bare) => bare.to_owned(),
                None => format!("www.{to}"),
            };
            let Ok(from_host) = HostMatch::parse(&from) else {
                continue;
            };
            if served.contains(&from_host) {
                out.problems.push(format!(
                    "ingress {ing_id}: from-to-www-redirect: {from} has rules of its own; no redirect from it to {to}"
                ));
                continue;
            }
            if !done.insert(to.to_string()) {
                continue;
            }
            let mut r = template.clone();
            r.name = format!("{ing_id}/{from}/from-to-www-redirect").into();
            r.host = from_host;
            r.path = "/".into();
            r.path_type = PathType::Prefix;
            r.canary = None;
            r.path_rules = Default::default();
            r.path_rules.redirect = Some(Redirect::FromToWww {
                to: to.as_str().into(),
            });
            out.routes.push(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::discovery::translate::fixtures::*;
    use crate::discovery::translate::{translate, ClusterState};
    use crate::spec::{PathType, Redirect};

    const NGINX: &str = "nginx.ingress.kubernetes.io/";

    fn state(ingresses: Vec<k8s_openapi::api::networking::v1::Ingress>) -> ClusterState {
        ClusterState {
            ingresses: ingresses.into_iter().map(Into::into).collect(),
            services: vec![web_service().into()],
            classes: vec![our_class().into()],
            ..ClusterState::default()
        }
    }

    fn web() -> k8s_openapi::api::networking::v1::IngressBackend {
        backend("web", port(80))
    }

    #[test]
    fn one_regex_ingress_switches_its_whole_host() {
        let plain = ingress("shop", "plain")
            .created("2026-01-01T00:00:00Z")
            .class("sluice")
            .path("a.example.com", "/static/", "Prefix", web())
            .path("b.example.com", "/static/", "Prefix", web());
        let regex = ingress("shop", "regex")
            .created("2026-02-01T00:00:00Z")
            .class("sluice")
            .with_annotation(&format!("{NGINX}rewrite-target"), "/$2")
            .path(
                "a.example.com",
                "/api(/|$)(.*)",
                "ImplementationSpecific",
                web(),
            );
        let t = translate(&state(vec![plain, regex]), &settings());
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        let by_name = |n: &str| t.routes.iter().find(|r| &*r.name == n).unwrap();
        // Same host: a regex too, written as the Ingress has it.
        let a = by_name("shop/plain/a.example.com/static/");
        assert_eq!(a.path, "/static/");
        assert_eq!(a.path_rules.regex.as_ref().unwrap().source(), "/static/");
        assert!(a.path_rules.rewrite.is_none());
        // Another host: untouched.
        let b = by_name("shop/plain/b.example.com/static/");
        assert_eq!(b.path, "/static");
        assert!(b.path_rules.regex.is_none());
        let api = by_name("shop/regex/a.example.com/api(/|$)(.*)");
        let rw = api.path_rules.rewrite.as_ref().unwrap();
        assert_eq!(rw.apply("/API/v1", Some("x=1")).as_deref(), Some("/v1?x=1"));
    }

    #[test]
    fn a_path_that_does_not_compile_loses_only_itself() {
        let ing = ingress("shop", "bad")
            .class("sluice")
            .with_annotation(&format!("{NGINX}use-regex"), "true")
            .path("a.example.com", "/ok/.*", "ImplementationSpecific", web())
            .path("a.example.com", "/broken(", "ImplementationSpecific", web());
        let t = translate(&state(vec![ing]), &settings());
        assert_eq!(t.routes.len(), 1);
        assert_eq!(t.routes[0].path, "/ok/.*");
        assert_eq!(t.problems.len(), 1, "{:?}", t.problems);
        let p = &t.problems[0];
        assert!(
            p.contains("shop/bad") && p.contains("paths[1].path") && p.contains("/broken("),
            "{p}"
        );
        assert_eq!(t.events.len(), 1);
        assert_eq!(t.events[0].reason, "BadPath");
    }

    #[test]
    fn redirects_app_root_and_www() {
        let moved = ingress("shop", "moved")
            .created("2026-01-01T00:00:00Z")
            .class("sluice")
            .with_annotation(
                &format!("{NGINX}permanent-redirect"),
                "https://new.example.com",
            )
            .with_annotation(&format!("{NGINX}permanent-redirect-code"), "308")
            .path("old.example.com", "/", "Prefix", web());
        let app = ingress("shop", "app")
            .created("2026-02-01T00:00:00Z")
            .class("sluice")
            .with_annotation(&format!("{NGINX}app-root"), "/app1")
            .with_annotation(&format!("{NGINX}from-to-www-redirect"), "true")
            .path("example.com", "/", "Exact", web())
            .path("example.com", "/app1", "Prefix", web());
        let t = translate(&state(vec![moved, app]), &settings());
        let names: Vec<&str> = t.routes.iter().map(|r| &*r.name).collect();
        assert_eq!(
            names,
            [
                "shop/app/example.com/app-root",
                "shop/moved/old.example.com/",
                "shop/app/example.com/",
                "shop/app/example.com/app1",
                "shop/app/www.example.com/from-to-www-redirect",
            ]
        );
        assert_eq!(
            t.routes[0].path_rules.redirect,
            Some(Redirect::AppRoot("/app1".into()))
        );
        assert_eq!(
            (t.routes[0].path.as_str(), t.routes[0].path_type),
            ("/", PathType::Exact)
        );
        match &t.routes[1].path_rules.redirect {
            Some(Redirect::To { status, location }) => {
                assert_eq!(status.as_u16(), 308);
                assert_eq!(location, "https://new.example.com");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            t.routes[4].path_rules.redirect,
            Some(Redirect::FromToWww {
                to: "example.com".into()
            })
        );
    }

    #[test]
    fn no_www_redirect_from_a_host_with_rules() {
        let app = ingress("shop", "app")
            .class("sluice")
            .with_annotation(&format!("{NGINX}from-to-www-redirect"), "true")
            .path("www.example.com", "/", "Prefix", web())
            .path("example.com", "/", "Prefix", web());
        let t = translate(&state(vec![app]), &settings());
        assert_eq!(t.routes.len(), 2);
        assert_eq!(t.problems.len(), 2, "{:?}", t.problems);
    }
}
