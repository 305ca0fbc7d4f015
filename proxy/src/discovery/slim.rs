//! What the stores keep of each object: what the translation, the Events
//! and the status writer read. A real API server's objects carry much
//! more — `kubectl apply`'s copy of the whole object in an annotation
//! (a Secret's data among it), managed fields, owner references, a
//! Service's IP families and policies, an endpoint's node, zone and hints —
//! and every watched object of the cluster stays in memory for as long as
//! the proxy runs, so what is not read is dropped as it arrives.

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;

/// The annotation `kubectl apply` keeps its last input in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what discovery never reads.
pub trait Slim {
    fn slim(&mut self);
}

/// Name, namespace, uid, resource version, labels and the other
/// annotations stay: Events name the object by them, slices are tied to
/// their Service by a label, and annotations configure routes.
fn meta(m: &mut ObjectMeta) {
    m.managed_fields = None;
    m.owner_references = None;
    if let Some(a) = &mut m.annotations {
        a.remove(LAST_APPLIED);
    }
}

impl Slim for Ingress {
    fn slim(&mut self) {
        meta(&mut self.metadata);
    }
}

impl Slim for IngressClass {
    fn slim(&mut self) {
        meta(&mut self.metadata);
    }
}

/// A Secret's data is what is read; no annotation of one configures
/// anything.
impl Slim for Secret {
    fn slim(&mut self) {
        meta(&mut self.metadata);
        self.metadata.annotations = None;
        self.string_data = None;
    }
}

/// A pod's annotations give its weight (`sluice.dev/weight`).
impl Slim for PartialObjectMeta<Pod> {
    fn slim(&mut self) {
        meta(&mut self.metadata);
    }
}

/// A Service's ports, type, cluster IP and external name route; its
/// status names the published address. The rest is for kube-proxy.
impl Slim for Service {
    fn slim(&mut self) {
        meta(&mut self.metadata);
        if let Some(s) = &mut self.spec {
            s.selector = None;
            s.cluster_ips = None;
            s.ip_families = None;
            s.ip_family_policy = None;
            s.internal_traffic_policy = None;
            s.external_traffic_policy = None;
            s.session_affinity = None;
            s.session_affinity_config = None;
            s.health_check_node_port = None;
            s.allocate_load_balancer_node_ports = None;
            s.load_balancer_source_ranges = None;
            s.traffic_distribution = None;
        }
    }
}

/// An endpoint's addresses, conditions and pod (kind, namespace, name:
/// its key for ip-hash and its weight) route.
impl Slim for EndpointSlice {
    fn slim(&mut self) {
        meta(&mut self.metadata);
        for e in &mut self.endpoints {
            e.node_name = None;
            e.zone = None;
            e.hints = None;
            e.deprecated_topology = None;
            e.hostname = None;
            if let Some(r) = &mut e.target_ref {
                r.uid = None;
                r.api_version = None;
                r.resource_version = None;
                r.field_path = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_routes_stays() {
        let mut slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "shop",
                "labels": {"kubernetes.io/service-name": "web"},
                "annotations": {LAST_APPLIED: "{}", "keep": "me"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "u"}]},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": "n1", "zone": "z",
                "conditions": {"ready": true},
                "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop", "uid": "p"}}]
        }))
        .unwrap();
        slice.slim();
        let m = &slice.metadata;
        assert_eq!(
            m.labels.as_ref().unwrap()["kubernetes.io/service-name"],
            "web"
        );
        assert_eq!(m.annotations.as_ref().unwrap().len(), 1);
        assert!(m.owner_references.is_none());
        let e = &slice.endpoints[0];
        assert_eq!(e.addresses, ["10.0.0.1"]);
        assert_eq!(e.conditions.as_ref().unwrap().ready, Some(true));
        let r = e.target_ref.as_ref().unwrap();
        assert_eq!(
            (r.kind.as_deref(), r.name.as_deref()),
            (Some("Pod"), Some("web-1"))
        );
        assert_eq!(r.namespace.as_deref(), Some("shop"));
        assert!(r.uid.is_none() && e.node_name.is_none() && e.zone.is_none());

        let mut svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
                "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}}
        }))
        .unwrap();
        svc.slim();
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.9"));
        assert_eq!(spec.ports.as_ref().unwrap().len(), 1);
        assert!(spec.selector.is_none() && spec.cluster_ips.is_none());
        assert!(
            svc.status.is_some(),
            "the status writer reads the published Service's status"
        );
    }
}
