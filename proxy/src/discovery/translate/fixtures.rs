//! Typed fixtures for the translation tests: the cluster's objects as the
//! k8s-openapi types the watchers hand over, built with struct literals and
//! named for what they are (after kube-rs controller-rs's `fixtures.rs`).
//!
//! Not `json!` blobs: k8s-openapi skips fields it does not know, so a
//! misspelt key (`ingressClasName`) leaves its field unset without a word,
//! and a test can pass for the wrong reason. Here the compiler checks every
//! field.
//!
//! Plain functions make an object from what it cannot do without; the
//! `*Fixture` traits add to it, by value, so an object reads as one chain:
//! `ingress("shop", "web").class("sluice").path("a.example", "/", "Prefix",
//! backend("web", port(80)))`. Most tests use one small cluster, "the
//! shop": Service `shop/web`, its pods, and Ingresses of class `sluice`
//! routing `shop.example.com/` to it.

use k8s_openapi::api::core::v1::{ObjectReference, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressClass, IngressClassSpec,
    IngressRule, IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{TranslateSettings, CONTROLLER};
pub use crate::discovery::slice::Slice;

/// The metadata of `namespace/name` (no namespace: cluster-wide).
fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        ..Default::default()
    }
}

/// An annotation on any object.
pub trait Annotate: kube::Resource + Sized {
    fn with_annotation(mut self, key: &str, value: &str) -> Self {
        self.meta_mut()
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        self
    }
}

impl<K: kube::Resource> Annotate for K {}

// Ingresses.

/// Ingress `namespace/name` with an empty spec: no class, no rules.
pub fn ingress(namespace: &str, name: &str) -> Ingress {
    Ingress {
        metadata: meta(Some(namespace), name),
        spec: Some(IngressSpec::default()),
        ..Default::default()
    }
}

/// What an Ingress fixture can be given.
pub trait IngressFixture {
    /// Its creation time, RFC 3339 (the older Ingress wins a duplicate).
    fn created(self, at: &str) -> Self;
    /// `spec.ingressClassName`.
    fn class(self, name: &str) -> Self;
    /// A path of the rule for `host`: the last rule's when it has that
    /// host, otherwise a new rule. `path_type` is a string, as in the API,
    /// so that a test can give one that is not valid.
    fn path(self, host: &str, path: &str, path_type: &str, backend: IngressBackend) -> Self;
    /// `spec.defaultBackend`.
    fn default_backend(self, backend: IngressBackend) -> Self;
    /// A `spec.tls` entry; no hosts leaves its host list out.
    fn tls(self, hosts: &[&str], secret: Option<&str>) -> Self;
    /// An `nginx.ingress.kubernetes.io/` annotation.
    fn nginx(self, name: &str, value: &str) -> Self;
}

impl IngressFixture for Ingress {
    fn nginx(mut self, name: &str, value: &str) -> Self {
        self.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(format!("nginx.ingress.kubernetes.io/{name}"), value.into());
        self
    }

    fn created(mut self, at: &str) -> Self {
        self.metadata.creation_timestamp = Some(Time(at.parse().expect("an RFC 3339 time")));
        self
    }

    fn class(mut self, name: &str) -> Self {
        spec(&mut self).ingress_class_name = Some(name.into());
        self
    }

    fn path(mut self, host: &str, path: &str, path_type: &str, backend: IngressBackend) -> Self {
        let rules = spec(&mut self).rules.get_or_insert_with(Vec::new);
        if rules.last().is_none_or(|r| r.host.as_deref() != Some(host)) {
            rules.push(IngressRule {
                host: Some(host.into()),
                http: Some(HTTPIngressRuleValue::default()),
            });
        }
        let rule = rules.last_mut().expect("a rule was just pushed");
        rule.http
            .get_or_insert_with(Default::default)
            .paths
            .push(HTTPIngressPath {
                path: Some(path.into()),
                path_type: path_type.into(),
                backend,
            });
        self
    }

    fn default_backend(mut self, backend: IngressBackend) -> Self {
        spec(&mut self).default_backend = Some(backend);
        self
    }

    fn tls(mut self, hosts: &[&str], secret: Option<&str>) -> Self {
        spec(&mut self)
            .tls
            .get_or_insert_with(Vec::new)
            .push(IngressTLS {
                hosts: (!hosts.is_empty()).then(|| hosts.iter().map(|h| h.to_string()).collect()),
                secret_name: secret.map(Into::into),
            });
        self
    }
}

fn spec(ing: &mut Ingress) -> &mut IngressSpec {
    ing.spec.get_or_insert_with(Default::default)
}

/// A backend: Service `service` of the Ingress's namespace, at `port`.
pub fn backend(service: &str, port: ServiceBackendPort) -> IngressBackend {
    IngressBackend {
        service: Some(IngressServiceBackend {
            name: service.into(),
            port: Some(port),
        }),
        ..Default::default()
    }
}

/// A Service port by number.
pub fn port(number: i32) -> ServiceBackendPort {
    ServiceBackendPort {
        number: Some(number),
        name: None,
    }
}

/// A Service port by name.
pub fn port_named(name: &str) -> ServiceBackendPort {
    ServiceBackendPort {
        name: Some(name.into()),
        number: None,
    }
}

/// IngressClass `name`, run by `controller`.
pub fn ingress_class(name: &str, controller: &str) -> IngressClass {
    IngressClass {
        metadata: meta(None, name),
        spec: Some(IngressClassSpec {
            controller: Some(controller.into()),
            ..Default::default()
        }),
    }
}

// Services and their pods.

/// Service `namespace/name` with these ports.
pub fn service(
    namespace: &str,
    name: &str,
    ports: impl IntoIterator<Item = ServicePort>,
) -> Service {
    Service {
        metadata: meta(Some(namespace), name),
        spec: Some(ServiceSpec {
            ports: Some(ports.into_iter().collect()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A Service port, `name`, at `port`, to the pods' `target`.
pub fn service_port(name: &str, port: i32, target: IntOrString) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(target),
        ..Default::default()
    }
}

/// What a Service fixture can be given.
pub trait ServiceFixture {
    /// `spec.ipFamilies`, the first of which its endpoints are taken in.
    fn ip_families(self, families: &[&str]) -> Self;
}

impl ServiceFixture for Service {
    fn ip_families(mut self, families: &[&str]) -> Self {
        self.spec.get_or_insert_with(Default::default).ip_families =
            Some(families.iter().map(|f| f.to_string()).collect());
        self
    }
}

/// An EndpointSlice `namespace/name` of Service `service`, of
/// `address_type` (`IPv4`, `IPv6`), with no ports and no endpoints yet.
pub fn endpoint_slice(
    namespace: &str,
    name: &str,
    service: &str,
    address_type: &str,
) -> EndpointSlice {
    let mut metadata = meta(Some(namespace), name);
    metadata.labels = Some([("kubernetes.io/service-name".into(), service.into())].into());
    EndpointSlice {
        metadata,
        address_type: address_type.into(),
        ports: Some(Vec::new()),
        endpoints: Vec::new(),
    }
}

/// What an EndpointSlice fixture can be given.
pub trait SliceFixture {
    /// A port: the Service port's `name`, at the pods' `number`.
    fn port(self, name: &str, number: i32) -> Self;
    fn endpoint(self, endpoint: Endpoint) -> Self;
    /// The slice as the store keeps it.
    fn stored(self) -> std::sync::Arc<Slice>;
}

impl SliceFixture for EndpointSlice {
    fn port(mut self, name: &str, number: i32) -> Self {
        self.ports.get_or_insert_with(Vec::new).push(EndpointPort {
            name: Some(name.into()),
            port: Some(number),
            ..Default::default()
        });
        self
    }

    fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    fn stored(self) -> std::sync::Arc<Slice> {
        Slice::from(self).into()
    }
}

/// Pod `namespace/name` at `ip`, as an EndpointSlice lists it.
pub fn pod_endpoint(
    namespace: &str,
    name: &str,
    ip: &str,
    conditions: EndpointConditions,
) -> Endpoint {
    Endpoint {
        addresses: vec![ip.into()],
        conditions: Some(conditions),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A pod that is ready.
pub fn ready() -> EndpointConditions {
    EndpointConditions {
        ready: Some(true),
        ..Default::default()
    }
}

/// A pod that is not ready yet (starting).
pub fn not_ready() -> EndpointConditions {
    EndpointConditions {
        ready: Some(false),
        ..Default::default()
    }
}

/// A pod shutting down that still serves (a rollout's last moments).
pub fn terminating_but_serving() -> EndpointConditions {
    EndpointConditions {
        ready: Some(false),
        serving: Some(true),
        terminating: Some(true),
    }
}

// The shop.

/// The settings the tests translate with: class `sluice`, the config's
/// defaults.
pub fn settings() -> TranslateSettings {
    TranslateSettings {
        class: "sluice".into(),
        watch_without_class: false,
        defaults: crate::config::DEFAULTS,
        ssl_passthrough: false,
        controller: CONTROLLER.into(),
        default_backend_service: None,
        controller_config: Default::default(),
        custom_http_errors: Default::default(),
    }
}

/// IngressClass `sluice`, ours.
pub fn our_class() -> IngressClass {
    ingress_class("sluice", CONTROLLER)
}

/// Service `shop/web`: `http` 80 → 8080, `admin` 9000 → the pods' port
/// named `admin`.
pub fn web_service() -> Service {
    service(
        "shop",
        "web",
        [
            service_port("http", 80, IntOrString::Int(8080)),
            service_port("admin", 9000, IntOrString::String("admin".into())),
        ],
    )
}

/// An IPv4 EndpointSlice of `shop/web`: `http` on 8080, `admin` on 9090,
/// as the store keeps it.
pub fn web_slice(name: &str, endpoints: impl IntoIterator<Item = Endpoint>) -> Slice {
    let slice = endpoint_slice("shop", name, "web", "IPv4")
        .port("http", 8080)
        .port("admin", 9090);
    endpoints
        .into_iter()
        .fold(slice, SliceFixture::endpoint)
        .into()
}

/// A pod of the shop.
pub fn shop_pod(ip: &str, name: &str, conditions: EndpointConditions) -> Endpoint {
    pod_endpoint("shop", name, ip, conditions)
}

/// Ingress `shop/name` of class `sluice`, created `created`:
/// `shop.example.com/` (Prefix) → `web` at `port`.
pub fn shop_ingress(name: &str, created: &str, port: ServiceBackendPort) -> Ingress {
    ingress("shop", name).created(created).class("sluice").path(
        "shop.example.com",
        "/",
        "Prefix",
        backend("web", port),
    )
}
