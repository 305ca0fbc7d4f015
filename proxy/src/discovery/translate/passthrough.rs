//! Which hosts ask for TLS passthrough (ingress-nginx's `ssl-passthrough`),
//! as ingress-nginx decides it: the host is the unit, not the Ingress.
//!
//! In ingress-nginx (`controller.go`, `createServers`) one Ingress of a
//! host with the annotation makes the whole server a passthrough server,
//! and its backend is the location for path `/` — whichever Ingress wrote
//! it (the snapshot looks that route up; see `routing::Passthrough`).
//! Canary Ingresses are skipped there and here. The feature is off unless
//! the controller runs with `--enable-ssl-passthrough`; without it the
//! annotation changes nothing, and is reported so that nobody wonders.

use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;
use kube::Resource;

use super::{id, Event, TranslateSettings, Translated};
use crate::discovery::annotations::Annotated;

const KEY: &str = "nginx.ingress.kubernetes.io/ssl-passthrough";

/// Adds to `out.passthrough` the hosts of the main Ingresses that ask for
/// passthrough (each once, lower case), and a problem and an Event for
/// what cannot be honoured.
pub(super) fn collect(
    mains: &[(&Arc<Ingress>, Annotated)],
    settings: &TranslateSettings,
    out: &mut Translated,
) {
    for (ing, notes) in mains {
        if !notes.ssl_passthrough {
            continue;
        }
        let mut report = |p: String| {
            out.problems
                .push(format!("ingress {}: {p}", id(&ing.metadata)));
            out.events
                .push(Event::new(ing.object_ref(&()), "PassthroughIgnored", p));
        };
        if !settings.ssl_passthrough {
            report(format!(
                "{KEY}: ignored, as by ingress-nginx, unless sluice runs with --enable-ssl-passthrough; TLS is terminated"
            ));
            continue;
        }
        let rules = ing.spec.iter().flat_map(|s| s.rules.iter().flatten());
        for rule in rules {
            let host = rule.host.as_deref().unwrap_or("").to_ascii_lowercase();
            if host.is_empty() || host.starts_with("*.") {
                // ingress-nginx compares the SNI with the server name as
                // a string: `_` and `*.x` never match a client's name.
                report(format!(
                    "{KEY}: a rule {} has no exact host for a client's SNI to name; it is not spliced",
                    if host.is_empty() { "without a host".to_owned() } else { format!("for {host}") }
                ));
                continue;
            }
            if !out.passthrough.contains(&host) {
                out.passthrough.push(host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::discovery::translate::fixtures::*;
    use crate::discovery::translate::{translate, ClusterState, TranslateSettings};

    fn state(ingresses: Vec<k8s_openapi::api::networking::v1::Ingress>) -> ClusterState {
        ClusterState {
            ingresses: ingresses.into_iter().map(Into::into).collect(),
            services: vec![web_service().into()],
            slices: vec![web_slice("web-v4", [shop_pod("10.0.0.1", "web-1", ready())]).into()],
            classes: vec![our_class().into()],
            pod_weights: Default::default(),
            secrets: Vec::new(),
            named_secrets: Vec::new(),
            gateway: None,
        }
    }

    fn enabled() -> TranslateSettings {
        TranslateSettings {
            ssl_passthrough: true,
            ..settings()
        }
    }

    #[test]
    fn every_exact_host_of_an_ingress_that_asks_is_spliced_once() {
        let pass = ingress("shop", "pass")
            .created("2026-01-01T00:00:00Z")
            .class("sluice")
            .path("Pass.Example.com", "/", "Prefix", backend("web", port(80)))
            .path("two.example.com", "/", "Prefix", backend("web", port(80)))
            .path(
                "*.wild.example.com",
                "/",
                "Prefix",
                backend("web", port(80)),
            )
            .nginx("ssl-passthrough", "true");
        // Another Ingress of the same host asking again adds nothing.
        let again = ingress("shop", "again")
            .created("2026-01-02T00:00:00Z")
            .class("sluice")
            .path(
                "pass.example.com",
                "/api",
                "Prefix",
                backend("web", port(80)),
            )
            .nginx("ssl-passthrough", "true");
        let plain = shop_ingress("plain", "2026-01-03T00:00:00Z", port(80));
        let off = ingress("shop", "off")
            .created("2026-01-04T00:00:00Z")
            .class("sluice")
            .path("off.example.com", "/", "Prefix", backend("web", port(80)))
            .nginx("ssl-passthrough", "false");
        let t = translate(&state(vec![pass, again, plain, off]), &enabled());
        assert_eq!(t.passthrough, ["pass.example.com", "two.example.com"]);
        // The HTTP routes stay: plain HTTP to these hosts is served as
        // ingress-nginx serves it.
        assert!(t
            .routes
            .iter()
            .any(|r| r.host.to_string() == "two.example.com"));
        assert_eq!(t.problems.len(), 1, "{:?}", t.problems);
        assert!(t.problems[0].contains("*.wild.example.com"));
        assert_eq!(t.events[0].reason, "PassthroughIgnored");
    }

    #[test]
    fn without_the_flag_nothing_is_spliced_and_the_ingress_is_told() {
        let pass =
            shop_ingress("pass", "2026-01-01T00:00:00Z", port(80)).nginx("ssl-passthrough", "true");
        let t = translate(&state(vec![pass]), &settings());
        assert!(t.passthrough.is_empty());
        assert!(
            t.problems[0].contains("--enable-ssl-passthrough"),
            "{:?}",
            t.problems
        );
        assert_eq!(t.routes.len(), 1);
    }

    #[test]
    fn a_canary_never_makes_its_host_spliced() {
        let main = shop_ingress("main", "2026-01-01T00:00:00Z", port(80));
        let canary = shop_ingress("canary", "2026-01-02T00:00:00Z", port(80))
            .nginx("canary", "true")
            .nginx("canary-weight", "50")
            .nginx("ssl-passthrough", "true");
        let t = translate(&state(vec![main, canary]), &enabled());
        assert!(t.passthrough.is_empty());
    }
}
