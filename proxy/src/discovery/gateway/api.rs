//! Gateway API objects as the API server sends them: GatewayClass,
//! Gateway, HTTPRoute, GRPCRoute and ReferenceGrant of the standard channel
//! (`gateway.networking.k8s.io`, v1), the fields Sluice reads.
//!
//! Our own types, not the `gateway-api` crate's: its releases are built on
//! an older kube (4, with k8s-openapi 0.28) whose `Resource` trait our
//! client cannot use, and they would bring a second k8s-openapi, schemars
//! and kube-derive. These implement `k8s_openapi::Resource` and
//! `Metadata`, which is all kube's `Api` asks.
//!
//! What the spec lets grow (a listener's protocol, a match's type, a
//! filter's type) is kept as the string sent: an object with a value this
//! build does not know must still be read, so that its status can say
//! `UnsupportedValue`, rather than fail the whole list. The defaults the
//! CRDs apply on write are applied here too (`…_or_default` accessors),
//! so that objects built by hand (tests, `kubectl apply --dry-run`) read
//! the same.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

/// The API group of every kind here.
pub const GROUP: &str = "gateway.networking.k8s.io";

macro_rules! resource {
    ($ty:ident, $kind:literal, $version:literal, $plural:literal, $scope:ty) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = concat!("gateway.networking.k8s.io/", $version);
            const GROUP: &'static str = GROUP;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = $version;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = $scope;
        }

        impl k8s_openapi::Metadata for $ty {
            type Ty = ObjectMeta;

            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

// ------------------------------------------------------------ GatewayClass

/// A class of Gateways, and the controller that serves them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayClass {
    pub metadata: ObjectMeta,
    pub spec: GatewayClassSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<GatewayClassStatus>,
}
resource!(
    GatewayClass,
    "GatewayClass",
    "v1",
    "gatewayclasses",
    k8s_openapi::ClusterResourceScope
);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassSpec {
    pub controller_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_ref: Option<ParametersReference>,
}

/// A reference to implementation-specific parameters; Sluice takes none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParametersReference {
    pub group: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The features this controller supports, sorted by name: what the
    /// conformance suite runs when told no features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supported_features: Vec<SupportedFeature>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SupportedFeature {
    pub name: String,
}

// ----------------------------------------------------------------- Gateway

/// Listeners on the addresses of one Gateway.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Gateway {
    pub metadata: ObjectMeta,
    pub spec: GatewaySpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<GatewayStatus>,
}
resource!(
    Gateway,
    "Gateway",
    "v1",
    "gateways",
    k8s_openapi::NamespaceResourceScope
);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    pub gateway_class_name: String,
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// Addresses asked for; Sluice serves on the published Service's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<GatewaySpecAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure: Option<GatewayInfrastructure>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewaySpecAddress {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayInfrastructure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_ref: Option<ParametersReference>,
}

/// One listener: a port, a protocol, maybe a hostname, and which routes
/// may attach.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub port: i32,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP`, `UDP` or a domain-prefixed name.
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<AllowedRoutes>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    /// `Terminate` (the default) or `Passthrough`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_refs: Vec<SecretObjectReference>,
}

impl ListenerTls {
    pub fn mode_or_default(&self) -> &str {
        self.mode.as_deref().unwrap_or("Terminate")
    }
}

/// A Secret (by default) a listener's certificate is in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl SecretObjectReference {
    pub fn group_or_default(&self) -> &str {
        self.group.as_deref().unwrap_or("")
    }

    pub fn kind_or_default(&self) -> &str {
        self.kind.as_deref().unwrap_or("Secret")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AllowedRoutes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<RouteNamespaces>,
    /// Empty: the kinds the protocol carries (HTTPRoute for HTTP and
    /// HTTPS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<RouteGroupKind>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteNamespaces {
    /// `Same` (the default), `All` or `Selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteGroupKind {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub kind: String,
}

impl RouteGroupKind {
    pub fn group_or_default(&self) -> &str {
        self.group.as_deref().unwrap_or(GROUP)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<GatewayStatusAddress>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayStatusAddress {
    /// Always written: the conformance suite ignores addresses without.
    #[serde(rename = "type")]
    pub type_: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub name: String,
    pub supported_kinds: Vec<RouteGroupKind>,
    pub attached_routes: i32,
    pub conditions: Vec<Condition>,
}

// --------------------------------------------------------------- HTTPRoute

/// HTTP routing rules attached to Gateways' listeners. A GRPCRoute is
/// judged and served as the HTTPRoute it amounts to
/// ([`GrpcRoute::as_http`]), its `kind` saying which it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRoute {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: HttpRouteSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RouteStatus>,
    /// Which kind of object this is (never sent by the API server).
    #[serde(skip)]
    pub kind: RouteKind,
}

/// The route kinds served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RouteKind {
    #[default]
    Http,
    Grpc,
}

impl RouteKind {
    /// Its `kind`, as objects and listeners name it.
    pub fn name(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
        }
    }
}
resource!(
    HttpRoute,
    "HTTPRoute",
    "v1",
    "httproutes",
    k8s_openapi::NamespaceResourceScope
);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HttpRouteRule>,
}

/// The Gateway (by default) a route attaches to, and maybe which of its
/// listeners.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

impl ParentReference {
    pub fn group_or_default(&self) -> &str {
        self.group.as_deref().unwrap_or(GROUP)
    }

    pub fn kind_or_default(&self) -> &str {
        self.kind.as_deref().unwrap_or("Gateway")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Empty: one match, of every path (`PathPrefix /`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRouteMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<HttpBackendRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpRouteTimeouts>,
}

// --------------------------------------------------------------- GRPCRoute

/// gRPC routing rules: matches by service and method (the request's
/// path, `/SERVICE/METHOD`) and headers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GrpcRoute {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: GrpcRouteSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RouteStatus>,
}
resource!(
    GrpcRoute,
    "GRPCRoute",
    "v1",
    "grpcroutes",
    k8s_openapi::NamespaceResourceScope
);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<GrpcRouteRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<GrpcRouteMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<HttpBackendRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GrpcRouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<GrpcMethodMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpValueMatch>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GrpcMethodMatch {
    /// `Exact` (the default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

impl GrpcRoute {
    /// The HTTPRoute this route amounts to: a method match is a match of
    /// the path gRPC sends, `/SERVICE/METHOD` (service and method exact:
    /// that path; a service alone: its prefix; a method alone, or
    /// regular expressions: a regular expression of the whole path).
    /// Unknown match types are kept, to be refused as HTTPRoute's are.
    pub fn as_http(&self) -> HttpRoute {
        let path = |m: &GrpcMethodMatch| -> Option<HttpPathMatch> {
            let exact = m.type_.as_deref().unwrap_or("Exact") == "Exact";
            let (service, method) = (m.service.as_deref(), m.method.as_deref());
            let (type_, value) = match (exact, service, method) {
                (_, None, None) => return None,
                (true, Some(s), Some(m)) => ("Exact", format!("/{s}/{m}")),
                (true, Some(s), None) => ("PathPrefix", format!("/{s}")),
                (true, None, Some(m)) => {
                    ("RegularExpression", format!("/[^/]+/{}", regex::escape(m)))
                }
                (false, s, m) => (
                    "RegularExpression",
                    format!("/(?:{})/(?:{})", s.unwrap_or("[^/]+"), m.unwrap_or("[^/]+")),
                ),
            };
            let type_ = match m.type_.as_deref() {
                Some(t) if t != "Exact" && t != "RegularExpression" => t.to_owned(),
                _ => type_.to_owned(),
            };
            Some(HttpPathMatch {
                type_: Some(type_),
                value: Some(value),
            })
        };
        HttpRoute {
            metadata: self.metadata.clone(),
            status: self.status.clone(),
            kind: RouteKind::Grpc,
            spec: HttpRouteSpec {
                parent_refs: self.spec.parent_refs.clone(),
                hostnames: self.spec.hostnames.clone(),
                rules: self
                    .spec
                    .rules
                    .iter()
                    .map(|r| HttpRouteRule {
                        name: r.name.clone(),
                        matches: r
                            .matches
                            .iter()
                            .map(|m| HttpRouteMatch {
                                path: m.method.as_ref().and_then(path),
                                headers: m.headers.clone(),
                                ..HttpRouteMatch::default()
                            })
                            .collect(),
                        filters: r.filters.clone(),
                        backend_refs: r.backend_refs.clone(),
                        timeouts: None,
                    })
                    .collect(),
            },
        }
    }
}

/// What a request must be for a rule: every field given (ANDed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpValueMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<HttpValueMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpPathMatch {
    /// `Exact`, `PathPrefix` (the default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl HttpPathMatch {
    pub fn type_or_default(&self) -> &str {
        self.type_.as_deref().unwrap_or("PathPrefix")
    }

    pub fn value_or_default(&self) -> &str {
        self.value.as_deref().unwrap_or("/")
    }
}

/// A header or query parameter match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpValueMatch {
    /// `Exact` (the default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    pub name: String,
    pub value: String,
}

impl HttpValueMatch {
    pub fn type_or_default(&self) -> &str {
        self.type_.as_deref().unwrap_or("Exact")
    }
}

/// One filter; `type_` says which of the fields is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteFilter {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<RequestRedirect>,
    #[serde(
        default,
        rename = "urlRewrite",
        skip_serializing_if = "Option::is_none"
    )]
    pub url_rewrite: Option<UrlRewrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirror>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_ref: Option<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsFilter>,
}

/// `HTTPCORSFilter` (standard channel since v1.5).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CorsFilter {
    #[serde(default)]
    pub allow_origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeaderFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HttpHeader>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HttpHeader>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UrlRewrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
}

/// How a redirect or a rewrite changes the path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathModifier {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_full_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirror {
    pub backend_ref: BackendObjectReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<Fraction>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fraction {
    pub numerator: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denominator: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocalObjectReference {
    pub group: String,
    pub kind: String,
    pub name: String,
}

/// A Service (by default) a rule sends to, its share, and filters of its
/// own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpBackendRef {
    #[serde(flatten)]
    pub target: BackendObjectReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
}

impl HttpBackendRef {
    pub fn weight_or_default(&self) -> i32 {
        self.weight.unwrap_or(1)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BackendObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

impl BackendObjectReference {
    pub fn group_or_default(&self) -> &str {
        self.group.as_deref().unwrap_or("")
    }

    pub fn kind_or_default(&self) -> &str {
        self.kind.as_deref().unwrap_or("Service")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteTimeouts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}

/// A route's status: one entry per parent, per controller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteStatus {
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    pub parent_ref: ParentReference,
    pub controller_name: String,
    pub conditions: Vec<Condition>,
}

// ---------------------------------------------------------- ReferenceGrant

/// Lets objects of other namespaces refer to objects of this one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferenceGrant {
    pub metadata: ObjectMeta,
    pub spec: ReferenceGrantSpec,
}
// v1beta1: served by every Gateway API release to date (v1 only from
// v1.5), and the same object.
resource!(
    ReferenceGrant,
    "ReferenceGrant",
    "v1beta1",
    "referencegrants",
    k8s_openapi::NamespaceResourceScope
);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferenceGrantSpec {
    pub from: Vec<ReferenceGrantFrom>,
    pub to: Vec<ReferenceGrantTo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferenceGrantFrom {
    pub group: String,
    pub kind: String,
    pub namespace: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferenceGrantTo {
    pub group: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Labels by namespace name, for `allowedRoutes.namespaces.selector`.
pub type NamespaceLabels = BTreeMap<String, BTreeMap<String, String>>;

#[cfg(test)]
mod tests {
    use super::*;

    /// An HTTPRoute of the conformance suite's shape reads whole, its
    /// defaults filled by the accessors, and a filter type this build
    /// does not know is kept as sent.
    #[test]
    fn a_conformance_shaped_route_reads_with_its_defaults() {
        let yaml = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: matching
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
    sectionName: http
  hostnames: ["example.com"]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /v2}
    - headers: [{name: version, value: two}]
      queryParams: [{type: RegularExpression, name: animal, value: "^wh"}]
      method: GET
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Header-Set, value: v}]
        remove: [X-Header-Remove]
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /one}}
    - type: SomethingNew
    backendRefs:
    - name: infra-backend-v2
      port: 8080
      weight: 30
    timeouts: {request: 500ms}
"#;
        let r: HttpRoute = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(r.metadata.name.as_deref(), Some("matching"));
        let parent = &r.spec.parent_refs[0];
        assert_eq!(
            (parent.group_or_default(), parent.kind_or_default()),
            (GROUP, "Gateway")
        );
        assert_eq!(parent.section_name.as_deref(), Some("http"));
        let rule = &r.spec.rules[0];
        let path = rule.matches[0].path.as_ref().unwrap();
        assert_eq!(
            (path.type_or_default(), path.value_or_default()),
            ("PathPrefix", "/v2")
        );
        let second = &rule.matches[1];
        assert!(second.path.is_none());
        assert_eq!(second.headers[0].type_or_default(), "Exact");
        assert_eq!(
            second.query_params[0].type_or_default(),
            "RegularExpression"
        );
        assert_eq!(second.method.as_deref(), Some("GET"));
        assert_eq!(rule.filters[0].type_, "RequestHeaderModifier");
        let set = &rule.filters[0]
            .request_header_modifier
            .as_ref()
            .unwrap()
            .set;
        assert_eq!(set[0].name, "X-Header-Set");
        let rewrite = rule.filters[1].url_rewrite.as_ref().unwrap();
        assert_eq!(
            rewrite
                .path
                .as_ref()
                .unwrap()
                .replace_prefix_match
                .as_deref(),
            Some("/one")
        );
        assert_eq!(rule.filters[2].type_, "SomethingNew");
        let backend = &rule.backend_refs[0];
        assert_eq!(
            (
                backend.target.kind_or_default(),
                backend.target.group_or_default(),
                backend.target.port,
                backend.weight_or_default()
            ),
            ("Service", "", Some(8080), 30)
        );
        assert_eq!(
            rule.timeouts.as_ref().unwrap().request.as_deref(),
            Some("500ms")
        );
    }

    #[test]
    fn a_gateway_and_a_grant_read_as_sent() {
        let yaml = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: same-namespace-with-https-listener, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: sluice
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    hostname: "*.wildcard.org"
    allowedRoutes:
      namespaces:
        from: Selector
        selector: {matchLabels: {gateway-conformance: backend}}
      kinds: [{kind: HTTPRoute}]
    tls:
      certificateRefs:
      - {group: "", kind: Secret, name: tls-validity-checks-certificate, namespace: gateway-conformance-infra}
"#;
        let g: Gateway = serde_yaml::from_str(yaml).unwrap();
        let l = &g.spec.listeners[0];
        assert_eq!((l.port, l.protocol.as_str()), (443, "HTTPS"));
        assert_eq!(l.hostname.as_deref(), Some("*.wildcard.org"));
        let allowed = l.allowed_routes.as_ref().unwrap();
        assert_eq!(allowed.kinds[0].group_or_default(), GROUP);
        let ns = allowed.namespaces.as_ref().unwrap();
        assert_eq!(ns.from.as_deref(), Some("Selector"));
        let labels = ns.selector.as_ref().unwrap().match_labels.as_ref().unwrap();
        assert_eq!(labels["gateway-conformance"], "backend");
        let tls = l.tls.as_ref().unwrap();
        assert_eq!(tls.mode_or_default(), "Terminate");
        assert_eq!(tls.certificate_refs[0].kind_or_default(), "Secret");

        let grant: ReferenceGrant = serde_yaml::from_str(
            r#"
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: reference-grant, namespace: gateway-conformance-web-backend}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: gateway-conformance-infra}]
  to: [{group: "", kind: Service, name: web-backend}]
"#,
        )
        .unwrap();
        assert_eq!(grant.spec.from[0].kind, "HTTPRoute");
        assert_eq!(grant.spec.to[0].name.as_deref(), Some("web-backend"));
    }

    /// What kube's `Api` builds its URLs from.
    #[test]
    fn the_kinds_name_their_api() {
        use k8s_openapi::Resource;
        assert_eq!(HttpRoute::API_VERSION, "gateway.networking.k8s.io/v1");
        assert_eq!(HttpRoute::URL_PATH_SEGMENT, "httproutes");
        assert_eq!(GatewayClass::KIND, "GatewayClass");
        assert_eq!(
            ReferenceGrant::API_VERSION,
            "gateway.networking.k8s.io/v1beta1"
        );
    }

    #[test]
    fn a_grpc_route_is_the_http_route_of_its_paths() {
        let g: GrpcRoute = serde_yaml::from_str(
            "metadata: {name: g, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches:
    - method: {service: a.B, method: Say}
    - method: {service: a.B}
    - method: {method: Say.x}
    - method: {type: RegularExpression, service: 'a\\..*'}
    - headers: [{name: x, value: y}]
    backendRefs: [{name: s, port: 80}]
",
        )
        .unwrap();
        let h = g.as_http();
        assert_eq!(h.kind, RouteKind::Grpc);
        assert_eq!(h.kind.name(), "GRPCRoute");
        let paths: Vec<Option<(String, String)>> = h.spec.rules[0]
            .matches
            .iter()
            .map(|m| {
                m.path.as_ref().map(|p| {
                    (
                        p.type_or_default().to_owned(),
                        p.value_or_default().to_owned(),
                    )
                })
            })
            .collect();
        let p = |t: &str, v: &str| Some((t.to_owned(), v.to_owned()));
        assert_eq!(
            paths,
            [
                p("Exact", "/a.B/Say"),
                p("PathPrefix", "/a.B"),
                p("RegularExpression", "/[^/]+/Say\\.x"),
                p("RegularExpression", "/(?:a\\..*)/(?:[^/]+)"),
                None,
            ]
        );
        assert_eq!(h.spec.rules[0].matches[4].headers[0].name, "x");
        assert_eq!(h.spec.rules[0].backend_refs[0].target.name, "s");
    }
}
