//! What the stores keep of each object: what the translation, the Events
//! and the status writer read. A real API server's objects carry much
//! more — `kubectl apply`'s copy of the whole object in an annotation
//! (a Secret's data among it), managed fields, owner references, a
//! Service's IP families and policies — and every watched object of the
//! cluster stays in memory for as long as the proxy runs, so what is not
//! read is dropped as it arrives. EndpointSlices, most of what is stored,
//! go further: each becomes a `slice::Slice`, a type of our own.

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
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

/// A namespace's labels are what listeners select routes by.
impl Slim for PartialObjectMeta<Namespace> {
    fn slim(&mut self) {
        meta(&mut self.metadata);
        self.metadata.annotations = None;
    }
}

/// Gateway API's objects: read whole (their status too, which the status
/// writer compares with what it would write).
macro_rules! slim_meta {
    ($($ty:ty),*) => {
        $(impl Slim for $ty {
            fn slim(&mut self) {
                meta(&mut self.metadata);
            }
        })*
    };
}
slim_meta!(
    crate::discovery::gateway::api::GatewayClass,
    crate::discovery::gateway::api::Gateway,
    crate::discovery::gateway::api::HttpRoute,
    crate::discovery::gateway::api::GrpcRoute,
    crate::discovery::gateway::api::ReferenceGrant
);

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_service_keeps_what_routes_and_status_read() {
        let mut svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop",
                "annotations": {LAST_APPLIED: "{}", "keep": "me"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Deployment", "name": "web", "uid": "u"}]},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
                "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}}
        }))
        .unwrap();
        svc.slim();
        assert_eq!(svc.metadata.annotations.as_ref().unwrap().len(), 1);
        assert!(svc.metadata.owner_references.is_none());
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
