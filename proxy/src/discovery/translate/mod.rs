//! From the cluster's objects to routes: which Ingresses are ours, what
//! their rules mean, and which pods stand behind each backend Service.
//!
//! Pure: the watchers hand over what their stores hold, and this returns
//! route specs for [`crate::routing::Snapshot::build`], plus the problems
//! found on the way, each naming the object it concerns. Nothing here is
//! fatal: a broken Ingress loses its own routes, never anyone else's.
//!
//! This file holds what callers see: the inputs ([`ClusterState`],
//! [`TranslateSettings`]), the outputs ([`Translated`] and what it holds)
//! and [`translate`], which walks the Ingresses in order. The work is done
//! by one file per job, which import one way, `canaries` → `routes` →
//! `endpoints`, with `ownership` and `tls_bindings` beside them:
//!
//! - `ownership`: which Ingresses are ours (IngressClass, default class,
//!   the legacy annotation);
//! - `tls_bindings`: which hosts an Ingress's `spec.tls` entries may serve;
//! - `routes`: rules, paths and backends, the default backend, and the
//!   settings an Ingress's and a Service's annotations give a route;
//! - `canaries`: canary Ingresses joined to the main routes they share;
//! - `endpoints`: EndpointSlices to the endpoints of one Service port;
//! - `path_rules`: ingress-nginx's regex hosts, rewrites and redirects;
//! - `passthrough`: the hosts whose TLS is spliced (`ssl-passthrough`);
//! - `access`: address ranges and basic authentication from the access
//!   annotations and the Secrets they name.

mod access;
mod canaries;
mod endpoints;
mod error_pages;
#[cfg(test)]
mod fixtures;
mod gateway_routes;
mod ownership;
mod passthrough;
mod path_rules;
mod routes;
mod tls_bindings;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

use super::annotations::{self, Annotated};
use crate::config::Defaults;
use crate::spec::RouteSpec;

pub use ownership::{owned, CONTROLLER};

/// Which Ingresses are ours, and what discovered routes start from.
///
/// Named for translation: the crate has other `Settings` (the fast path's,
/// HTTP/2's), and this one is only what [`translate`] reads.
#[derive(Debug, Clone)]
pub struct TranslateSettings {
    /// The IngressClass name we serve (`--ingress-class`).
    pub class: String,
    /// Serve Ingresses that name no class at all.
    pub watch_without_class: bool,
    /// The config's defaults (timeouts, retries, health checks, body
    /// limit), which annotations override per route.
    pub defaults: Defaults,
    /// `--enable-ssl-passthrough`: honour `ssl-passthrough` (ingress-nginx
    /// ignores the annotation without its flag of the same name).
    pub ssl_passthrough: bool,
    /// The controller an IngressClass must name to be ours
    /// (`--controller-name`; ingress-nginx's `k8s.io/ingress-nginx` with
    /// `--adopt-ingress-nginx`).
    pub controller: String,
    /// `--default-backend-service`: `(namespace, name)` of the Service that
    /// answers what no rule matches (ingress-nginx's flag of the same
    /// name); an Ingress's own catch-all `defaultBackend` wins.
    pub default_backend_service: Option<(String, String)>,
    /// The ConfigMap's `custom-http-errors`: the codes every Ingress
    /// without the annotation of the same name has replaced by the
    /// default backend's answer.
    pub custom_http_errors: crate::spec::StatusSet,
    /// What ingress-nginx's controller ConfigMap (or its defaults, with
    /// `--adopt-ingress-nginx`) sets for every Ingress.
    pub controller_config: ControllerConfig,
}

/// What ingress-nginx's controller ConfigMap sets for Ingresses, beyond
/// the route defaults ([`crate::config::Defaults`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// `load-balance`: the strategy of routes that ask for none.
    pub strategy: Option<crate::balance::Strategy>,
    /// `force-ssl-redirect`: every route redirects plain HTTP, unless its
    /// Ingress says `ssl-redirect: "false"`.
    pub force_ssl_redirect: bool,
    /// `allow-snippet-annotations`: off, snippet annotations are refused
    /// whole (ingress-nginx's default since 1.9; sluice alone maps their
    /// header directives).
    pub allow_snippets: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            strategy: None,
            force_ssl_redirect: false,
            allow_snippets: true,
        }
    }
}

/// What the stores hold, at one moment.
#[derive(Debug, Default)]
pub struct ClusterState {
    pub ingresses: Vec<Arc<Ingress>>,
    pub classes: Vec<Arc<IngressClass>>,
    pub services: Vec<Arc<Service>>,
    /// EndpointSlices, as routing reads them.
    pub slices: Vec<Arc<crate::discovery::slice::Slice>>,
    /// Pod weights, `(namespace, pod)` → weight, for the Services that
    /// ask for them (read from a metadata-only Pod watch).
    pub pod_weights: HashMap<(String, String), u32>,
    /// TLS Secrets (`kubernetes.io/tls`).
    pub secrets: Vec<Arc<Secret>>,
    /// The Secrets annotations name (`auth-secret`, `proxy-ssl-secret`),
    /// whatever their type, each watched on its own.
    pub named_secrets: Vec<Arc<Secret>>,
    /// Gateway API, with `--gateway-class`.
    pub gateway: Option<GatewayState>,
}

/// Gateway API's part of the state: what `gateway::attach` decided, and
/// the ReferenceGrants it read (a backend reference across namespaces is
/// checked again as each route is made).
#[derive(Debug)]
pub struct GatewayState {
    pub verdicts: Arc<crate::discovery::gateway::attach::Verdicts>,
    pub grants: Vec<Arc<crate::discovery::gateway::api::ReferenceGrant>>,
}

/// The routes found, and what was wrong on the way.
#[derive(Debug, Default)]
pub struct Translated {
    /// Oldest Ingress first: a duplicate host and path is won by the
    /// older one when the snapshot is built.
    pub routes: Vec<RouteSpec>,
    pub default_backend: Option<RouteSpec>,
    /// One line each, naming the object.
    pub problems: Vec<String>,
    /// The Ingresses served, as `namespace/name`.
    pub owned: Vec<String>,
    /// Problems to record as Kubernetes Events on the object they concern
    /// (refused or malformed annotations, missing TLS Secrets).
    pub events: Vec<Event>,
    /// The certificates Ingresses ask for, by host, whether or not their
    /// Secrets are there (the last good certificate of a Secret gone
    /// missing keeps serving; see `certs`).
    pub tls: Vec<TlsBinding>,
    /// The Secrets annotations name, as `(namespace, name)`, found or not:
    /// the discovery loop watches each.
    pub named_secrets: std::collections::BTreeSet<(String, String)>,
    /// The hosts whose TLS connections are spliced to the backend of
    /// their `/` (lower case, each once).
    pub passthrough: Vec<String>,
}

impl Translated {
    /// Counts `ing` as served, and reports what its annotations got wrong,
    /// as problems and as Events on it.
    fn serve(&mut self, ing: &Ingress, notes: &Annotated) {
        let ing_id = id(&ing.metadata);
        self.owned.push(ing_id.clone());
        for p in &notes.problems {
            self.problems.push(format!("ingress {ing_id}: {p}"));
            self.events
                .push(Event::new(ing.object_ref(&()), "BadAnnotation", p.clone()));
        }
    }
}

/// A Warning Event to record on an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub object: ObjectReference,
    /// CamelCase, as Kubernetes reasons are: `BadAnnotation`, `BadTLSSecret`.
    pub reason: &'static str,
    pub note: String,
}

impl Event {
    pub fn new(object: ObjectReference, reason: &'static str, note: impl Into<String>) -> Event {
        Event {
            object,
            reason,
            note: note.into(),
        }
    }
}

/// An Ingress's `spec.tls` entry, with the hosts of its rules it names.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsBinding {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    /// The Ingress, for Events about its certificate.
    pub ingress_ref: ObjectReference,
    /// Its index in `spec.tls`, for messages.
    pub entry: usize,
    pub hosts: Vec<String>,
    /// `namespace/name` of the Secret.
    pub secret: String,
}

/// Builds the routes of every Ingress we own.
pub fn translate(state: &ClusterState, settings: &TranslateSettings) -> Translated {
    let mut out = Translated::default();
    let mut backends = routes::Backends::index(state);

    // Oldest first; the name breaks ties, so the order is the same on
    // every replica.
    let mut ingresses: Vec<&Arc<Ingress>> = state
        .ingresses
        .iter()
        .filter(|i| owned(i, &state.classes, settings))
        .collect();
    ingresses.sort_by(|a, b| {
        let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
        ta.cmp(&tb)
            .then_with(|| id(&a.metadata).cmp(&id(&b.metadata)))
    });

    // Main Ingresses first, then canaries, which join the main route of
    // the same host, path and path type.
    let parsed: Vec<(&Arc<Ingress>, Annotated)> = ingresses
        .into_iter()
        .map(|i| {
            let mut notes = annotations::parse(&i.metadata.annotations);
            if !settings.controller_config.allow_snippets {
                refuse_snippets(i, &mut notes);
            }
            (i, notes)
        })
        .collect();
    let (canaries, mains): (Vec<_>, Vec<_>) = parsed.into_iter().partition(|(_, a)| a.canary);
    backends.regex_hosts = path_rules::regex_hosts(&mains);
    passthrough::collect(&mains, settings, &mut out);
    let mut host_redirects = path_rules::HostRedirects::default();
    // Default backends of Ingresses with rules: after every explicit rule.
    let mut fallbacks = Vec::new();
    for (ing, notes) in mains {
        out.serve(ing, &notes);
        let Some(spec) = &ing.spec else { continue };
        tls_bindings::bind(ing, spec, &mut out);
        let first = out.routes.len();
        backends.add_ingress(ing, spec, &notes, settings, &mut out, &mut fallbacks);
        host_redirects.note(ing, &notes, first, &mut out);
    }
    out.routes.extend(fallbacks);
    host_redirects.finish(&mut out);
    // HTTPRoutes after every Ingress. On a host that has both, the
    // HTTPRoutes' matches are tried first (`routing::rules`), then the
    // Ingresses' paths.
    if let Some(gw) = &state.gateway {
        gateway_routes::add(&backends, gw, &state.services, settings, &mut out);
    }
    for (ing, notes) in canaries {
        out.serve(ing, &notes);
        canaries::attach(&backends, ing, &notes, settings, &mut out);
    }
    if let (None, Some((ns, name))) = (&out.default_backend, &settings.default_backend_service) {
        out.default_backend =
            backends.default_backend_service(ns, name, settings, &mut out.problems);
    }
    out.named_secrets = backends.wanted.take();
    out
}

/// With `allow-snippet-annotations: "false"`, snippets are refused whole.
fn refuse_snippets(ing: &Ingress, notes: &mut Annotated) {
    for name in ["configuration-snippet", "server-snippet"] {
        let key = format!("nginx.ingress.kubernetes.io/{name}");
        if value_of(&ing.metadata.annotations, &key).is_some() {
            notes.problems.push(format!(
                "{key}: refused: allow-snippet-annotations is false in the controller ConfigMap"
            ));
        }
    }
    notes.snippet = Default::default();
}

/// The value at `key` in an object's annotations or labels.
fn value_of<'a>(map: &'a Option<BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    map.as_ref()?.get(key).map(String::as_str)
}

/// `namespace/name`, for messages and keys.
fn id(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or("")
    )
}
