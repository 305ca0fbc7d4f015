//! Canary Ingresses (ingress-nginx's `canary` annotations): a canary has
//! no routes of its own; its backends take a share of the traffic of the
//! main route with the same host, path and path type, in its own namespace.

use k8s_openapi::api::networking::v1::Ingress;

use super::routes::{rule_host, Backends};
use super::{id, TranslateSettings, Translated};
use crate::discovery::annotations::Annotated;
use crate::spec::{CanarySpec, PathType};

/// Attaches a canary Ingress's backends to the main routes of the same
/// host, path and path type. A canary with no such main route, or a
/// second canary for one, is reported and ignored.
pub(super) fn attach(
    backends: &Backends<'_>,
    ing: &Ingress,
    notes: &Annotated,
    settings: &TranslateSettings,
    out: &mut Translated,
) {
    let ing_id = id(&ing.metadata);
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
            let raw = path.path.as_deref().unwrap_or("/");
            let normalized = path_type.normalize(raw);
            // Only within the canary's own namespace: another namespace's
            // Ingress must never take a share of this one's traffic.
            let own = format!("{ns}/");
            let Some(main) = out.routes.iter_mut().find(|r| {
                r.name.starts_with(&own)
                    && r.host == host
                    // Paths of regex hosts stay as written.
                    && (r.path == normalized || r.path == raw)
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
            if let Some(r) = backends.route(
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
                main.canary = Some(CanarySpec {
                    upstream: r.upstream,
                    weight: notes.canary_weight,
                    total: notes.canary_total,
                    header: notes.canary_header.clone(),
                    rules: crate::spec::CanaryRules {
                        legacy_affinity: notes.affinity.legacy_canary(),
                        ..notes.canary_rules.rules()
                    },
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::discovery::translate::fixtures::*;
    use crate::discovery::translate::{translate, ClusterState};

    #[test]
    fn canaries_stay_in_their_namespace() {
        let mut canary = shop_ingress("canary", "2026-02-01T00:00:00Z", port(80))
            .with_annotation("nginx.ingress.kubernetes.io/canary", "true");
        canary.metadata.namespace = Some("elsewhere".into());
        let state = ClusterState {
            ingresses: vec![
                shop_ingress("main", "2026-01-01T00:00:00Z", port(80)).into(),
                canary.into(),
            ],
            services: vec![web_service().into()],
            slices: vec![web_slice("web-v4", [shop_pod("10.0.0.1", "web-1", ready())]).into()],
            classes: vec![our_class().into()],
            pod_weights: Default::default(),
            secrets: Vec::new(),
            named_secrets: Vec::new(),
            gateway: None,
        };
        let t = translate(&state, &settings());
        assert!(t.routes[0].canary.is_none());
        assert!(
            t.problems.iter().any(|p| p.contains("in its namespace")),
            "{:?}",
            t.problems
        );
    }
}
