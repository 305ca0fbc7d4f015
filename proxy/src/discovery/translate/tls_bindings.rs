//! Which hosts an Ingress's `spec.tls` entries may serve: only those its
//! own rules name. The Secrets themselves are read later, in `certs`, which
//! keeps a Secret's last good certificate across rebuilds.

use k8s_openapi::api::networking::v1::{Ingress, IngressSpec};
use kube::Resource;

use super::{id, Event, TlsBinding, Translated};

/// Adds a [`TlsBinding`] for each `spec.tls` entry of `ing` that names a
/// Secret, and a problem (and an Event) for each host it lists without a
/// rule.
pub(super) fn bind(ing: &Ingress, spec: &IngressSpec, out: &mut Translated) {
    let ing_id = id(&ing.metadata);
    let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
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
}

#[cfg(test)]
mod tests {
    use crate::discovery::translate::fixtures::*;
    use crate::discovery::translate::{translate, ClusterState};

    #[test]
    fn tls_sections_bind_only_the_ingresses_own_hosts() {
        let ing = shop_ingress("i", "2026-01-01T00:00:00Z", port(80))
            .tls(&["Shop.Example.com", "bank.example.com"], Some("good"))
            .tls(&[], Some("all-hosts"))
            .tls(&["bank.example.com"], Some("takeover"))
            .tls(&["shop.example.com"], None);
        let state = ClusterState {
            ingresses: vec![ing.into()],
            services: vec![web_service().into()],
            classes: vec![our_class().into()],
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
}
