//! An EndpointSlice as routing reads it, and nothing else.
//!
//! Why a type of our own: the slices are most of what discovery stores (a
//! cluster of 1,000 Services with 10 pods each holds 10,000 endpoints),
//! and k8s-openapi's `Endpoint` is about 350 bytes of mostly empty
//! options, with its address a `Vec<String>` (two allocations) and its
//! pod a seven-string `ObjectReference`. Here an endpoint is its parsed
//! address, three conditions and its pod's name: about 70 bytes. Each
//! slice is converted once, as it arrives from the watch, and the store
//! keeps only this (see `watch_as` in the parent module).

use std::borrow::Cow;
use std::net::IpAddr;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::Lookup;

/// The label an EndpointSlice names its Service with.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// An EndpointSlice's routing content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// The store's key (with the namespace).
    name: Box<str>,
    pub namespace: Option<Box<str>>,
    /// The Service the slice belongs to (its `kubernetes.io/service-name`
    /// label); a slice without it routes nothing.
    pub service: Option<Box<str>>,
    pub family: Family,
    pub ports: Box<[SlicePort]>,
    pub endpoints: Box<[SliceEndpoint]>,
}

/// `addressType`: which family a slice's addresses are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    /// `FQDN`, or a type this build does not know: never routed to.
    Other,
}

impl Family {
    /// The family a Service's `ipFamilies` entry or a slice's
    /// `addressType` names.
    pub fn named(name: &str) -> Family {
        match name {
            "IPv4" => Family::V4,
            "IPv6" => Family::V6,
            _ => Family::Other,
        }
    }
}

/// A port of the slice's pods: the Service port's name (empty when the
/// Service has a single unnamed port) at the pods' number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePort {
    pub name: Box<str>,
    pub number: Option<i32>,
}

/// One endpoint: its first address, its conditions, and the pod behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEndpoint {
    /// `None` when the first address is not an IP (it is never routed to).
    pub ip: Option<IpAddr>,
    /// The conditions with the API's defaults applied: unset `ready` is
    /// true, unset `serving` is `ready`, unset `terminating` is false.
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// The pod, when the endpoint's `targetRef` is one.
    pub pod: Option<PodRef>,
}

/// A pod an endpoint names: its key for ip-hash and for its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// `None` when it is the slice's own (as it always is in practice).
    namespace: Option<Box<str>>,
    pub name: Box<str>,
}

impl PodRef {
    /// The pod's namespace: its own, or else the slice's (`slice_ns`).
    pub fn namespace<'a>(&'a self, slice_ns: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(slice_ns)
    }
}

impl From<EndpointSlice> for Slice {
    fn from(s: EndpointSlice) -> Slice {
        let namespace = s.metadata.namespace;
        let service = s
            .metadata
            .labels
            .and_then(|mut l| l.remove(SERVICE_NAME_LABEL))
            .map(String::into_boxed_str);
        let ports = s
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| SlicePort {
                name: p.name.unwrap_or_default().into_boxed_str(),
                number: p.port,
            })
            .collect();
        let endpoints = s
            .endpoints
            .into_iter()
            .map(|e| {
                let c = e.conditions.unwrap_or_default();
                let ready = c.ready.unwrap_or(true);
                let pod = e.target_ref.and_then(|r| {
                    if r.kind.as_deref() != Some("Pod") {
                        return None;
                    }
                    Some(PodRef {
                        namespace: r
                            .namespace
                            .filter(|n| Some(n) != namespace.as_ref())
                            .map(String::into_boxed_str),
                        name: r.name?.into_boxed_str(),
                    })
                });
                SliceEndpoint {
                    ip: e.addresses.first().and_then(|a| a.parse().ok()),
                    ready,
                    serving: c.serving.unwrap_or(ready),
                    terminating: c.terminating.unwrap_or(false),
                    pod,
                }
            })
            .collect();
        Slice {
            name: s.metadata.name.unwrap_or_default().into_boxed_str(),
            namespace: namespace.map(String::into_boxed_str),
            service,
            family: Family::named(&s.address_type),
            ports,
            endpoints,
        }
    }
}

/// What the reflector store keys a slice by: as an EndpointSlice.
impl Lookup for Slice {
    type DynamicType = ();

    fn kind(_: &()) -> Cow<'_, str> {
        "EndpointSlice".into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        "discovery.k8s.io".into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "endpointslices".into()
    }

    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.name))
    }

    fn namespace(&self) -> Option<Cow<'_, str>> {
        self.namespace.as_deref().map(Cow::Borrowed)
    }

    /// Not kept: nothing reads it once the slice is stored.
    fn resource_version(&self) -> Option<Cow<'_, str>> {
        None
    }

    fn uid(&self) -> Option<Cow<'_, str>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_routes_is_kept_and_the_api_defaults_applied() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "shop",
                "labels": {"kubernetes.io/service-name": "web", "other": "x"},
                "annotations": {"a": "b"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"port": 9090}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true},
                 "nodeName": "n1", "zone": "z",
                 "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop", "uid": "u"}},
                {"addresses": ["10.0.0.2"],
                 "targetRef": {"kind": "Pod", "name": "web-2", "namespace": "elsewhere"}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": false, "terminating": true}},
                {"addresses": ["not-an-ip"], "targetRef": {"kind": "Node", "name": "n1"}}
            ]
        }))
        .unwrap();
        let s = Slice::from(slice);
        assert_eq!(Lookup::name(&s).as_deref(), Some("web-abc"));
        assert_eq!(s.namespace.as_deref(), Some("shop"));
        assert_eq!(s.service.as_deref(), Some("web"));
        assert_eq!(s.family, Family::V4);
        assert_eq!(
            &*s.ports,
            [
                SlicePort {
                    name: "http".into(),
                    number: Some(8080)
                },
                SlicePort {
                    name: "".into(),
                    number: Some(9090)
                }
            ]
        );
        let [one, two, three, four] = &*s.endpoints else {
            panic!("{:?}", s.endpoints)
        };
        assert_eq!(one.ip, Some("10.0.0.1".parse().unwrap()));
        assert!(one.ready && one.serving && !one.terminating);
        let pod = one.pod.as_ref().unwrap();
        assert_eq!((pod.namespace("shop"), &*pod.name), ("shop", "web-1"));
        // Unset conditions: ready and serving, by the API's rule.
        assert!(two.ready && two.serving && !two.terminating);
        assert_eq!(two.pod.as_ref().unwrap().namespace("shop"), "elsewhere");
        // Unset serving follows ready.
        assert!(!three.ready && !three.serving && three.terminating);
        assert_eq!(three.pod, None);
        // Not an IP, not a pod.
        assert_eq!((four.ip, &four.pod), (None, &None));
    }

    #[test]
    fn families_by_name() {
        assert_eq!(Family::named("IPv4"), Family::V4);
        assert_eq!(Family::named("IPv6"), Family::V6);
        assert_eq!(Family::named("FQDN"), Family::Other);
    }

    #[test]
    fn an_endpoint_is_a_fraction_of_the_api_object() {
        // The point of the type: keep it small (the size is what 10,000
        // endpoints cost, before their pods' names).
        let ours = std::mem::size_of::<SliceEndpoint>();
        let theirs = std::mem::size_of::<k8s_openapi::api::discovery::v1::Endpoint>();
        assert!(ours * 4 <= theirs, "{ours} bytes against {theirs}");
    }
}
