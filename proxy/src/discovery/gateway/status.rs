//! Writes Gateway API status: our GatewayClass's, each of its Gateways'
//! (with the published Service's address), and each HTTPRoute's entries
//! for our Gateways. Called by the Ingress status writer while it holds
//! the status Lease, after every rebuild.
//!
//! An object is patched only when what `conditions` makes of its verdict
//! differs from the status it holds, transition times aside: our own write
//! comes back through the watch and rebuilds, and that rebuild writes
//! nothing.

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};

use super::api::{Gateway, GatewayClass, GatewayStatusAddress, GrpcRoute, HttpRoute, RouteKind};
use super::attach::{key, Verdicts};
use super::conditions;

/// Writes what differs. `lb` is the published Service's LoadBalancer
/// ingress entries (`{"ip": …}` or `{"hostname": …}`).
pub async fn write(client: &Client, lb: &[Value], v: &Verdicts) {
    let now = Timestamp::now();
    let addresses = gateway_addresses(lb);
    if let Some(c) = &v.class {
        let want = conditions::class_status(c, super::attach::SUPPORTED_FEATURES, now);
        let have = c.class.status.clone().unwrap_or_default();
        if differs(&want, &have) {
            let api: Api<GatewayClass> = Api::all(client.clone());
            let name = c.class.metadata.name.clone().unwrap_or_default();
            patch(&api, "gatewayclass", &name, &name, &want).await;
        }
    }
    for g in &v.gateways {
        let want = conditions::gateway_status(g, &addresses, now);
        let have = g.gateway.status.clone().unwrap_or_default();
        if differs(&want, &have) {
            let (ns, name) = key(&g.gateway.metadata);
            let api: Api<Gateway> = Api::namespaced(client.clone(), ns);
            patch(&api, "gateway", &format!("{ns}/{name}"), name, &want).await;
        }
    }
    for r in &v.routes {
        let want = conditions::route_status(r, now);
        let have = r.route.status.clone().unwrap_or_default();
        if differs(&want, &have) {
            let (ns, name) = key(&r.route.metadata);
            let id = format!("{ns}/{name}");
            match r.route.kind {
                RouteKind::Http => {
                    let api: Api<HttpRoute> = Api::namespaced(client.clone(), ns);
                    patch(&api, "httproute", &id, name, &want).await;
                }
                RouteKind::Grpc => {
                    let api: Api<GrpcRoute> = Api::namespaced(client.clone(), ns);
                    patch(&api, "grpcroute", &id, name, &want).await;
                }
            }
        }
    }
}

/// The Service's LoadBalancer entries as Gateway addresses, each with its
/// type (the conformance suite ignores an address without one).
pub fn gateway_addresses(lb: &[Value]) -> Vec<GatewayStatusAddress> {
    lb.iter()
        .filter_map(|e| {
            if let Some(ip) = e["ip"].as_str() {
                Some(GatewayStatusAddress {
                    type_: "IPAddress".into(),
                    value: ip.into(),
                })
            } else {
                e["hostname"].as_str().map(|h| GatewayStatusAddress {
                    type_: "Hostname".into(),
                    value: h.into(),
                })
            }
        })
        .collect()
}

/// Whether two statuses differ, transition times aside.
fn differs<T: serde::Serialize>(want: &T, have: &T) -> bool {
    let (Ok(a), Ok(b)) = (serde_json::to_value(want), serde_json::to_value(have)) else {
        return true;
    };
    without_times(a) != without_times(b)
}

fn without_times(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| k != "lastTransitionTime")
                .map(|(k, v)| (k, without_times(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_times).collect()),
        other => other,
    }
}

async fn patch<K, S>(api: &Api<K>, kind: &str, id: &str, name: &str, status: &S)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize,
{
    let body = json!({ "status": status });
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => tracing::debug!(kind, object = %id, "Gateway API status updated"),
        Err(e) => {
            tracing::warn!(kind, object = %id, error = %e, "cannot update Gateway API status")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_carry_their_type() {
        let lb = [
            json!({"ip": "203.0.113.7"}),
            json!({"hostname": "lb.example.com"}),
        ];
        let a = gateway_addresses(&lb);
        assert_eq!(
            a.iter()
                .map(|a| (a.type_.as_str(), a.value.as_str()))
                .collect::<Vec<_>>(),
            [("IPAddress", "203.0.113.7"), ("Hostname", "lb.example.com")]
        );
    }

    #[test]
    fn transition_times_alone_are_no_difference() {
        let a = json!({"conditions": [{"type": "Accepted", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        let b = json!({"conditions": [{"type": "Accepted", "lastTransitionTime": "2026-12-04T00:00:00Z"}]});
        assert!(!differs(&a, &b));
        let c = json!({"conditions": [{"type": "Accepted", "status": "False"}]});
        assert!(differs(&a, &c));
    }
}
