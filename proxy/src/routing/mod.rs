//! The routing snapshot: every route, host table, upstream and balancer,
//! built whole off the request path and published with one `ArcSwap::store`.
//!
//! A request does one `load()`, one host lookup and one path lookup (a hash
//! probe per path element). Static config and Kubernetes discovery both feed
//! the same [`Snapshot::build`] with [`RouteSpec`]s.

mod affinity;
mod canary;
mod host;
mod passthrough;
mod path;
mod regex;
mod rules;

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::metrics::{Metrics, RouteMetrics};
pub use crate::spec::{HostMatch, PathType};
use crate::spec::{RetryPolicy, RouteSpec, RouteTimeouts, ServerHeader};
use crate::tls::CertTable;
use crate::upstream::{EndpointReuse, Upstream};
pub use affinity::{key_hash, key_text, Affinity, Cookie, Pins};
pub use host::strip_port;
pub use passthrough::Passthrough;
pub use path::{normalize, resolve_dots, Normalized, PathTable};
pub use rules::{Found, RequestView};

/// The live snapshot, shared by the listeners, the admin listener and the
/// sources that rebuild it: swapped whole, read once per request.
pub type Live = Arc<ArcSwap<Snapshot>>;

/// One route, ready to serve.
#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    pub host: HostMatch,
    pub path: String,
    pub path_type: PathType,
    pub upstream: Arc<Upstream>,
    /// A second upstream taking part of the traffic (ingress-nginx's
    /// canary Ingress).
    pub canary: Option<Canary>,
    /// The largest request body accepted (413 beyond); `None`: no limit.
    pub max_request_body: Option<u64>,
    /// Plain HTTP requests get a 308 to HTTPS instead of an answer.
    pub https_redirect: bool,
    /// `Strict-Transport-Security` for its HTTPS responses.
    pub hsts: Option<http::HeaderValue>,
    /// What its answers say in `Server`.
    pub server_header: ServerHeader,
    pub timeouts: RouteTimeouts,
    pub retry: RetryPolicy,
    /// Shared with the previous table's route of the same name: its
    /// counters, once resolved, stay resolved across rebuilds, so that
    /// the first requests after a change do not take the metric family's
    /// lock (which the rebuild takes too, on the config thread).
    pub metrics: Arc<RouteMetrics>,
    /// What changes in the request headers sent upstream.
    pub headers: crate::spec::HeaderEdits,
    /// Who may use it: address ranges, basic authentication.
    pub access: crate::spec::Access,
    /// The HTTP/1.1 fast path may serve it: every upstream speaks plain
    /// HTTP/1.1 (h2c and TLS upstreams are hyper's), no canary is chosen by
    /// a header or a cookie and no header is edited (the fast path keeps no header
    /// map). Decided when the snapshot is built, so the fast path reads one
    /// flag per request.
    pub fast_path: bool,
    /// ingress-nginx's rewrite and redirects (`spec::PathRules`).
    pub path_rules: crate::spec::PathRules,
    /// Per-client rate and connection limits, shared by the routes of one
    /// Ingress and kept across rebuilds (`crate::limit`).
    pub limiter: Option<Arc<crate::limit::Limiter>>,
    /// ingress-nginx's cookie affinity (`affinity.rs`); such routes are
    /// the hyper path's.
    pub affinity: Option<Affinity>,
    /// ingress-nginx's custom error pages; such routes are the hyper
    /// path's.
    pub error_pages: Option<ErrorPages>,
    /// Gateway API's backends by weight, when there is more than one (or
    /// one that does not resolve): chosen before `upstream` and the canary.
    pub split: Option<Box<Split>>,
    /// Gateway API's RequestMirror: where copies of requests go.
    pub mirrors: Box<[Mirror]>,
}

/// A mirror of a route's requests (`spec::MirrorSpec`), live.
#[derive(Debug)]
pub struct Mirror {
    pub upstream: Arc<Upstream>,
    numerator: u32,
    denominator: u32,
    /// Copies in flight, at most [`MIRRORS_IN_FLIGHT`]: a mirror that
    /// answers slowly or not at all is skipped past that, rather than
    /// holding connections and memory without bound.
    slots: Arc<tokio::sync::Semaphore>,
}

/// How many copies of a route's requests one mirror may have in flight.
pub const MIRRORS_IN_FLIGHT: usize = 256;

impl Mirror {
    /// Whether this request is copied: drawn, `numerator` in
    /// `denominator`; `Err` when it is drawn and no slot is free. The slot
    /// is held while the copy is in flight.
    pub fn draw(&self) -> Option<Result<tokio::sync::OwnedSemaphorePermit, ()>> {
        let drawn = self.numerator >= self.denominator
            || fastrand::u32(0..self.denominator) < self.numerator;
        drawn.then(|| self.slots.clone().try_acquire_owned().map_err(|_| ()))
    }
}

/// A route's traffic split over upstreams by weight.
#[derive(Debug)]
pub struct Split {
    /// Each upstream with the sum of the weights up to and with it.
    choices: Box<[(Arc<Upstream>, u32)]>,
    total: u32,
    /// Each upstream's own request header edits (Gateway API's filters on
    /// a backendRef), in the order of `choices`; empty when none has any.
    edits: Box<[crate::spec::HeaderEdits]>,
}

impl Split {
    /// The header edits of the choice `upstream` is (by identity), if it
    /// has any.
    pub fn edits_of(&self, upstream: &Arc<Upstream>) -> Option<&crate::spec::HeaderEdits> {
        if self.edits.is_empty() {
            return None;
        }
        let i = self
            .choices
            .iter()
            .position(|(u, _)| Arc::ptr_eq(u, upstream))?;
        self.edits.get(i).filter(|e| !e.is_empty())
    }

    /// An upstream drawn by weight; `None` without any (no weight).
    #[inline]
    fn pick(&self) -> Option<&Arc<Upstream>> {
        if self.total == 0 {
            return None;
        }
        let draw = fastrand::u32(0..self.total);
        self.choices
            .iter()
            .find(|(_, upto)| draw < *upto)
            .map(|(u, _)| u)
    }
}

/// A route's error pages, live: the codes replaced and the default
/// backend answering them (`spec::ErrorPagesSpec`).
#[derive(Debug)]
pub struct ErrorPages {
    pub codes: crate::spec::StatusSet,
    /// `None`: no default backend anywhere; the proxy answers 404.
    pub backend: Option<Arc<Upstream>>,
    pub about: crate::spec::ErrorContext,
    /// The route's upstream is the default backend itself (its own
    /// Service has no endpoints): every request is told `X-Code: 503`.
    pub replaces_upstream: bool,
}

/// A canary upstream and how requests are sent to it.
#[derive(Debug)]
pub struct Canary {
    pub upstream: Arc<Upstream>,
    /// `weight` requests in `total` go to the canary.
    pub weight: u32,
    pub total: u32,
    /// A header whose value `always` sends a request to the canary and
    /// `never` keeps it off; it is checked before the weight.
    pub header: Option<http::HeaderName>,
    /// What the header's value must be instead, and the cookie checked
    /// after it (`canary.rs` applies them).
    pub rules: crate::spec::CanaryRules,
}

impl Route {
    /// The upstream for one request: the canary's when its header or its
    /// cookie says so or, failing those, when the weight's draw falls on
    /// it (ingress-nginx's order, `canary.rs`).
    #[inline]
    pub fn choose(&self, headers: Option<&http::HeaderMap>) -> &Arc<Upstream> {
        if let Some(u) = self.split.as_ref().and_then(|s| s.pick()) {
            return u;
        }
        match &self.canary {
            Some(c) if c.takes(headers) => &c.upstream,
            _ => &self.upstream,
        }
    }

    /// The route's upstreams: the main one, and the canary's if any.
    /// The error pages' default backend is one too, and so are mirrors:
    /// their endpoints keep their health and connections across rebuilds
    /// like the others.
    pub fn upstreams(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        // With a split, the route's upstream is its first choice.
        std::iter::once(&self.upstream)
            .filter(|_| self.split.is_none())
            .chain(
                self.split
                    .iter()
                    .flat_map(|s| s.choices.iter().map(|(u, _)| u)),
            )
            .chain(self.canary.as_ref().map(|c| &c.upstream))
            .chain(self.error_pages.as_ref().and_then(|e| e.backend.as_ref()))
            .chain(self.mirrors.iter().map(|m| &m.upstream))
    }
}

/// An immutable routing table.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Counts builds, so the admin view shows which table is live.
    pub generation: u64,
    routes: Vec<Arc<Route>>,
    exact: FxHashMap<Box<str>, PathTable>,
    /// Keyed by the suffix after `*.`.
    wildcard: FxHashMap<Box<str>, PathTable>,
    /// Gateway API's wildcards, which cover names of any depth under
    /// their suffix (an Ingress's cover one label): keyed the same.
    deep_wildcard: FxHashMap<Box<str>, PathTable>,
    any: PathTable,
    default: Option<Arc<Route>>,
    /// Rules that lost to an earlier one with the same host, path and type.
    pub conflicts: Vec<String>,
    /// The certificates HTTPS listeners pick from by SNI.
    pub tls: Arc<CertTable>,
    /// The port HTTPS redirects name (443: none).
    pub https_port: u16,
    /// The hosts whose TLS is spliced to a backend, not terminated
    /// (ingress-nginx's `ssl-passthrough`); set by the sources.
    pub passthrough: Passthrough,
}

/// The HTTPS side of a snapshot: certificates, and what they imply for
/// plain HTTP requests.
#[derive(Debug, Clone, Default)]
pub struct Edge {
    pub certs: Arc<CertTable>,
    pub policy: crate::spec::Policy,
    /// What proxied answers say in `Server`.
    pub server_header: ServerHeader,
    /// Endpoints get series of their own.
    pub endpoint_metrics: bool,
    /// An HTTPS listener is running: without one, only forced redirects.
    pub https: bool,
}

impl Edge {
    /// Whether plain HTTP requests to a route go to HTTPS: when its host
    /// has a certificate here (and the policy redirects), or when the route
    /// forces it (TLS may end at a LoadBalancer in front); never when the
    /// route turns it off.
    fn redirects(&self, spec: &RouteSpec) -> bool {
        match spec.ssl_redirect {
            Some(forced) => forced,
            None => {
                self.https
                    && self.policy.redirect
                    && match &spec.host {
                        HostMatch::Any => false,
                        HostMatch::Exact(h) => self.certs.has_host(h),
                        HostMatch::Wildcard(s) => self.certs.has_wildcard(s),
                    }
            }
        }
    }
}

impl Snapshot {
    /// Builds a table from route specs; earlier specs win conflicts.
    /// Endpoints of `previous` that are still there are taken over with
    /// their health and connections.
    pub fn build(
        specs: &[RouteSpec],
        default: Option<&RouteSpec>,
        previous: Option<&Snapshot>,
        metrics: &Metrics,
    ) -> Snapshot {
        Self::build_with_edge(specs, default, previous, metrics, &Edge::default())
    }

    /// The same, with certificates and the redirects they imply.
    pub fn build_with_edge(
        specs: &[RouteSpec],
        default: Option<&RouteSpec>,
        previous: Option<&Snapshot>,
        metrics: &Metrics,
        edge: &Edge,
    ) -> Snapshot {
        // Added to HTTPS answers only: ours, or a trusted LoadBalancer's.
        let hsts = edge.policy.hsts.as_ref().map(crate::spec::Hsts::value);
        // What the previous table built and this one keeps, gathered in one
        // pass: endpoints (with their health and connections), limiters
        // whose zone's settings stay the same, and route metrics by name.
        let mut reuse = EndpointReuse::default();
        let mut limiters = crate::limit::Reuse::default();
        let mut kept_metrics: FxHashMap<&str, Arc<RouteMetrics>> = FxHashMap::default();
        // A mirror's slots, by route and mirror: its bound on copies in
        // flight holds across rebuilds.
        let mut kept_slots: FxHashMap<(&str, &str), Arc<tokio::sync::Semaphore>> =
            FxHashMap::default();
        for r in previous.into_iter().flat_map(Snapshot::all_routes) {
            for m in r.mirrors.iter() {
                kept_slots
                    .entry((&r.name, &m.upstream.name))
                    .or_insert_with(|| m.slots.clone());
            }
            for u in r.upstreams() {
                u.offer(&mut reuse);
            }
            if let Some(l) = &r.limiter {
                limiters.offer(l);
            }
            kept_metrics
                .entry(&r.name)
                .or_insert_with(|| r.metrics.clone());
        }
        let limiters = std::cell::RefCell::new(limiters);
        let make = |spec: &RouteSpec| {
            let split = (!spec.split.is_empty()).then(|| {
                let mut total = 0u32;
                let choices = spec
                    .split
                    .iter()
                    .map(|s| {
                        let mut u = Upstream::build(&s.upstream, &reuse);
                        u.unresolved = s.unresolved;
                        total = total.saturating_add(s.weight);
                        (Arc::new(u), total)
                    })
                    .collect();
                let edits = if spec.split.iter().all(|s| s.headers.is_empty()) {
                    Box::default()
                } else {
                    spec.split.iter().map(|s| s.headers.clone()).collect()
                };
                Box::new(Split {
                    choices,
                    total,
                    edits,
                })
            });
            // With a split, the route's upstream is its first choice
            // (what `spec.upstream` names too), not a second build of it.
            let upstream = match split.as_ref().and_then(|s| s.choices.first()) {
                Some((u, _)) => u.clone(),
                None => Arc::new(Upstream::build(&spec.upstream, &reuse)),
            };
            let canary = spec.canary.as_ref().map(|c| Canary {
                upstream: Arc::new(Upstream::build(&c.upstream, &reuse)),
                weight: c.weight,
                total: c.total,
                header: c.header.clone(),
                rules: c.rules.clone(),
            });
            // The fast path reads response heads of 64 KiB at most.
            let plain_h1 = |u: &Upstream| {
                u.protocol == crate::upstream::Protocol::Http1
                    && u.tls.is_none()
                    && u.response_head.is_none()
            };
            let fast_path = plain_h1(&upstream)
                && split
                    .iter()
                    .flat_map(|s| s.choices.iter())
                    .all(|(u, _)| plain_h1(u))
                && spec.headers.is_empty()
                && spec.access.is_open()
                && canary.as_ref().is_none_or(|c| {
                    plain_h1(&c.upstream) && c.header.is_none() && !c.rules.needs_headers()
                });
            // Rewrites and redirects are the hyper path's.
            let fast_path = fast_path && spec.path_rules.fast_path();
            // Limits are the hyper path's.
            let limiter = spec
                .limits
                .as_ref()
                .map(|l| limiters.borrow_mut().limiter(l));
            let fast_path = fast_path && limiter.is_none();
            // Affinity reads the Cookie header and writes Set-Cookie.
            let fast_path = fast_path && spec.affinity.is_none();
            // Error pages read the answer's status and send again.
            let fast_path = fast_path && spec.error_pages.is_none();
            // A bound on the whole request is the hyper path's, and so are
            // mirrors.
            let fast_path = fast_path && spec.timeouts.request.is_none() && spec.mirrors.is_empty();
            // A backend's own header edits need the header map.
            let fast_path = fast_path && spec.split.iter().all(|s| s.headers.is_empty());
            let mirrors = spec
                .mirrors
                .iter()
                .map(|m| Mirror {
                    upstream: Arc::new(Upstream::build(&m.upstream, &reuse)),
                    numerator: m.numerator,
                    denominator: m.denominator.max(1),
                    slots: kept_slots
                        .get(&(&*spec.name, &*m.upstream.name))
                        .cloned()
                        .unwrap_or_else(|| {
                            Arc::new(tokio::sync::Semaphore::new(MIRRORS_IN_FLIGHT))
                        }),
                })
                .collect();
            let error_pages = spec.error_pages.as_ref().map(|e| ErrorPages {
                codes: e.codes,
                backend: e
                    .backend
                    .as_ref()
                    .map(|b| Arc::new(Upstream::build(b, &reuse))),
                about: e.about.clone(),
                replaces_upstream: e.replaces_upstream,
            });
            let affinity = spec.affinity.as_ref().map(|a| {
                let canary = canary.as_ref().filter(|c| !c.rules.legacy_affinity);
                Affinity::build(a.clone(), &upstream, canary.map(|c| &*c.upstream))
            });
            Arc::new(Route {
                name: spec.name.clone(),
                host: spec.host.clone(),
                path: spec.path.clone(),
                path_type: spec.path_type,
                upstream,
                canary,
                fast_path,
                max_request_body: spec.max_request_body,
                https_redirect: edge.redirects(spec),
                hsts: hsts.clone(),
                server_header: edge.server_header,
                timeouts: spec.timeouts,
                retry: spec.retry,
                headers: spec.headers.clone(),
                access: spec.access.clone(),
                metrics: kept_metrics
                    .get(&*spec.name)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(metrics.route(&spec.name))),
                path_rules: spec.path_rules.clone(),
                limiter,
                affinity,
                error_pages,
                split,
                mirrors,
            })
        };
        let mut snap = Snapshot {
            generation: previous.map_or(1, |p| p.generation + 1),
            tls: edge.certs.clone(),
            https_port: edge.policy.redirect_port,
            ..Snapshot::default()
        };
        for spec in specs {
            let index = snap.routes.len() as u32;
            let table = match &spec.host {
                HostMatch::Any => &mut snap.any,
                HostMatch::Exact(h) => snap.exact.entry(h.as_str().into()).or_default(),
                // A Gateway API route's (it has conditions).
                HostMatch::Wildcard(s) if spec.conditions.is_some() => {
                    snap.deep_wildcard.entry(s.as_str().into()).or_default()
                }
                HostMatch::Wildcard(s) => snap.wildcard.entry(s.as_str().into()).or_default(),
            };
            let inserted = match (&spec.conditions, &spec.path_rules.regex) {
                (Some(c), _) => {
                    table.insert_rule(&spec.path, spec.path_type, c.clone(), index);
                    true
                }
                (None, Some(rx)) => table.insert_regex(rx.clone(), spec.path_type, index),
                (None, None) => table.insert(&spec.path, spec.path_type, index),
            };
            if inserted {
                snap.routes.push(make(spec));
            } else {
                snap.conflicts.push(format!(
                    "route {:?} ({}{} {}) is shadowed by an earlier route with the same host, path and path type",
                    spec.name, spec.host, spec.path, spec.path_type
                ));
            }
        }
        for t in snap
            .exact
            .values_mut()
            .chain(snap.wildcard.values_mut())
            .chain(snap.deep_wildcard.values_mut())
            .chain(std::iter::once(&mut snap.any))
        {
            t.finish();
        }
        snap.default = default.map(make);
        // Per-endpoint series: handed to each endpoint (kept when it already
        // has its own), taken away when they are turned off, and dropped
        // for endpoints no longer in the table.
        let mut live = std::collections::HashSet::new();
        for r in snap.all_routes() {
            for u in r.upstreams() {
                for e in u.endpoints.iter() {
                    if !edge.endpoint_metrics {
                        e.metrics.store(None);
                        continue;
                    }
                    let label = e.addr.to_string();
                    let current = e.metrics.load();
                    if !current.as_ref().is_some_and(|m| m.is_for(&u.name, &label)) {
                        e.metrics
                            .store(Some(Arc::new(metrics.endpoint(&u.name, &label))));
                    }
                    live.insert((u.name.to_string(), label));
                }
            }
        }
        metrics.retain_endpoints(&live);
        snap
    }

    /// The route for a request. `host` is the Host header or authority
    /// without port; `None` when the request had none.
    ///
    /// A host with rules of its own never falls through to the rules
    /// without a host (as with ingress-nginx's server blocks): a path it
    /// does not list goes to the default backend.
    ///
    /// A host with Gateway API routes that look at the method, headers or
    /// query has none here: the caller (the fast path) hands the request
    /// to [`Snapshot::lookup_request`]'s.
    #[inline]
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        self.lookup_with(host, path, None)
    }

    /// The route for a request, by its host and path and, for Gateway API
    /// routes that ask, its method, headers and query.
    #[inline]
    pub fn lookup_request(
        &self,
        host: Option<&str>,
        path: &str,
        request: &RequestView<'_>,
    ) -> Option<&Arc<Route>> {
        self.lookup_with(host, path, Some(request))
    }

    #[inline]
    fn lookup_with(
        &self,
        host: Option<&str>,
        path: &str,
        request: Option<&RequestView<'_>>,
    ) -> Option<&Arc<Route>> {
        let table = host.and_then(|h| self.host_table(h)).unwrap_or(&self.any);
        if let Some(rules) = table.rules() {
            match rules.lookup(path, request) {
                Found::Route(i) => return self.routes.get(i as usize),
                Found::NeedsRequest => return None,
                // The host's Ingress paths, if it has any.
                Found::None => {}
            }
        }
        match table.lookup(path) {
            Some(i) => self.routes.get(i as usize),
            None => self.default.as_ref(),
        }
    }

    #[inline]
    fn host_table(&self, host: &str) -> Option<&PathTable> {
        // A name longer than a DNS name matches no host rule, in whatever
        // case it is written: it is lower-cased into 253 bytes below, and a
        // longer one matched a wildcard in lower case only (the `routing`
        // fuzz target checks that case never matters).
        if (self.exact.is_empty() && self.wildcard.is_empty() && self.deep_wildcard.is_empty())
            || host.len() > 253
        {
            return None;
        }
        let mut buf = [0u8; 253];
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            let b = buf.get_mut(..host.len())?;
            b.copy_from_slice(host.as_bytes());
            b.make_ascii_lowercase();
            std::str::from_utf8(b).ok()?
        } else {
            host
        };
        if let Some(t) = self.exact.get(host) {
            return Some(t);
        }
        if !self.wildcard.is_empty() {
            // One label only: `a.example.com` matches `*.example.com`,
            // `b.a.example.com` does not.
            if let Some(t) = host
                .find('.')
                .and_then(|i| self.wildcard.get(&host[i + 1..]))
            {
                return Some(t);
            }
        }
        if !self.deep_wildcard.is_empty() {
            // Any depth, the longest suffix (the narrowest wildcard) first:
            // `b.a.example.com` matches `*.a.example.com` before
            // `*.example.com`.
            let mut rest = host;
            while let Some(i) = rest.find('.') {
                rest = &rest[i + 1..];
                if let Some(t) = self.deep_wildcard.get(rest) {
                    return Some(t);
                }
            }
        }
        None
    }

    /// Every route, the default backend last.
    pub fn all_routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter().chain(self.default.iter())
    }

    /// The table as the admin listener's `/routes` shows it.
    pub fn describe(&self) -> SnapshotView {
        SnapshotView {
            generation: self.generation,
            routes: self
                .all_routes()
                .map(|r| RouteView {
                    name: r.name.to_string(),
                    host: r.host.to_string(),
                    path: r.path.clone(),
                    path_type: r.path_type.as_str(),
                    default_backend: self.default.as_ref().is_some_and(|d| Arc::ptr_eq(d, r)),
                    https_redirect: r.https_redirect,
                    strategy: r.upstream.strategy().as_str(),
                    endpoints: r
                        .upstream
                        .endpoints
                        .iter()
                        .zip(r.upstream.weights.iter())
                        .map(|(e, &w)| EndpointView {
                            address: e.addr.to_string(),
                            key: e.key.to_string(),
                            weight: w,
                            protocol: e.protocol.as_str(),
                            state: e.health().as_str(),
                            in_flight: e.in_flight(),
                        })
                        .collect(),
                })
                .collect(),
            conflicts: self.conflicts.clone(),
            certificates: self.tls.entries.clone(),
            passthrough: self.passthrough.describe(),
        }
    }
}

/// `/routes` as JSON.
#[derive(Debug, Serialize)]
pub struct SnapshotView {
    pub generation: u64,
    pub routes: Vec<RouteView>,
    pub conflicts: Vec<String>,
    /// The certificates served by SNI, and for which hosts.
    pub certificates: Vec<crate::tls::CertView>,
    /// TLS passthrough: each host spliced, and the route it goes to.
    pub passthrough: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
pub struct RouteView {
    pub name: String,
    pub host: String,
    pub path: String,
    pub path_type: &'static str,
    pub default_backend: bool,
    pub https_redirect: bool,
    pub strategy: &'static str,
    pub endpoints: Vec<EndpointView>,
}

#[derive(Debug, Serialize)]
pub struct EndpointView {
    pub address: String,
    pub key: String,
    pub weight: u32,
    pub protocol: &'static str,
    pub state: &'static str,
    pub in_flight: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::Strategy;
    use crate::spec::{EndpointSpec, UpstreamSpec};

    fn spec(name: &str, host: &str, path: &str, ty: PathType) -> RouteSpec {
        RouteSpec::new(
            name,
            HostMatch::parse(host).unwrap(),
            path,
            ty,
            UpstreamSpec::new(
                name,
                Strategy::RoundRobin,
                vec![EndpointSpec::new("127.0.0.1:1".parse().unwrap(), 1)],
            ),
        )
    }

    #[test]
    fn hosts_with_certificates_redirect_unless_told_otherwise() {
        let (certs, _) = CertTable::build(
            &[crate::tls::Binding {
                source: "t".into(),
                hosts: vec![],
                cert: crate::tls::test_cert(&["a.com", "*.w.com"]),
            }],
            None,
        );
        let mut edge = Edge {
            certs: Arc::new(certs),
            policy: crate::spec::Policy::default(),
            server_header: Default::default(),
            endpoint_metrics: false,
            https: true,
        };
        let mut off = spec("off", "a.com", "/off", PathType::Prefix);
        off.ssl_redirect = Some(false);
        let mut forced = spec("forced", "b.com", "/", PathType::Prefix);
        forced.ssl_redirect = Some(true);
        let specs = [
            spec("a", "a.com", "/", PathType::Prefix),
            spec("w", "*.w.com", "/", PathType::Prefix),
            spec("b", "b.com", "/x", PathType::Prefix),
            spec("any", "", "/", PathType::Prefix),
            off,
            forced,
        ];
        let m = Metrics::new();
        let redirects = |edge: &Edge| -> Vec<String> {
            let s = Snapshot::build_with_edge(&specs, None, None, &m, edge);
            s.all_routes()
                .filter(|r| r.https_redirect)
                .map(|r| r.name.to_string())
                .collect()
        };
        assert_eq!(redirects(&edge), ["a", "w", "forced"]);
        edge.policy.redirect = false;
        assert_eq!(redirects(&edge), ["forced"]);
        // No HTTPS listener: only forced redirects (TLS ends in front).
        edge.https = false;
        edge.policy.redirect = true;
        assert_eq!(redirects(&edge), ["forced"]);
    }

    fn name<'a>(s: &'a Snapshot, host: Option<&str>, path: &str) -> Option<&'a str> {
        s.lookup(host, path).map(|r| &*r.name)
    }

    #[test]
    fn hosts_wildcards_and_defaults() {
        let m = Metrics::new();
        let specs = [
            spec("exact", "foo.example.com", "/", PathType::Prefix),
            spec("wild", "*.example.com", "/", PathType::Prefix),
            spec("api", "foo.example.com", "/api", PathType::Prefix),
            spec("any", "", "/any", PathType::Exact),
        ];
        let default = spec("default", "", "/", PathType::Prefix);
        let s = Snapshot::build(&specs, Some(&default), None, &m);
        assert_eq!(name(&s, Some("foo.example.com"), "/x"), Some("exact"));
        assert_eq!(name(&s, Some("FOO.Example.COM"), "/x"), Some("exact"));
        assert_eq!(name(&s, Some("foo.example.com"), "/api/v1"), Some("api"));
        assert_eq!(name(&s, Some("bar.example.com"), "/x"), Some("wild"));
        // One label only.
        assert_eq!(name(&s, Some("a.bar.example.com"), "/any"), Some("any"));
        assert_eq!(name(&s, Some("example.com"), "/any"), Some("any"));
        assert_eq!(name(&s, Some("other.org"), "/nothing"), Some("default"));
        assert_eq!(name(&s, None, "/any"), Some("any"));
    }

    /// Gateway API's wildcards (routes with conditions) cover names of any
    /// depth, the narrowest first; an Ingress's keeps to one label, and an
    /// exact name wins over both.
    #[test]
    fn gateway_wildcards_cover_any_depth_the_narrowest_first() {
        let m = Metrics::new();
        let gateway = |name: &str, host: &str| RouteSpec {
            conditions: Some(Default::default()),
            ..spec(name, host, "/", PathType::Prefix)
        };
        let specs = [
            gateway("deep", "*.bar.com"),
            gateway("narrower", "*.foo.bar.com"),
            gateway("exact", "foo.bar.com"),
            spec("ingress", "*.example.com", "/", PathType::Prefix),
        ];
        let s = Snapshot::build(&specs, None, None, &m);
        assert_eq!(name(&s, Some("baz.bar.com"), "/"), Some("deep"));
        assert_eq!(
            name(&s, Some("multiple.prefixes.bar.com"), "/"),
            Some("deep")
        );
        assert_eq!(name(&s, Some("a.foo.bar.com"), "/"), Some("narrower"));
        assert_eq!(name(&s, Some("foo.bar.com"), "/"), Some("exact"));
        assert_eq!(name(&s, Some("bar.com"), "/"), None);
        assert_eq!(name(&s, Some("a.example.com"), "/"), Some("ingress"));
        assert_eq!(name(&s, Some("b.a.example.com"), "/"), None);
    }

    #[test]
    fn names_longer_than_dns_names_match_no_host_rule() {
        let m = Metrics::new();
        let specs = [
            spec("wild", "*.example.com", "/", PathType::Prefix),
            spec("any", "", "/", PathType::Prefix),
        ];
        let s = Snapshot::build(&specs, None, None, &m);
        let at_most = format!("{}.example.com", "a".repeat(241));
        let longer = format!("{}.example.com", "a".repeat(242));
        assert_eq!(name(&s, Some(&at_most), "/"), Some("wild"));
        assert_eq!(name(&s, Some(&at_most.to_uppercase()), "/"), Some("wild"));
        assert_eq!(name(&s, Some(&longer), "/"), Some("any"));
        assert_eq!(name(&s, Some(&longer.to_uppercase()), "/"), Some("any"));
    }

    #[test]
    fn nothing_matches_without_default() {
        let m = Metrics::new();
        let s = Snapshot::build(&[spec("a", "a.com", "/a", PathType::Exact)], None, None, &m);
        assert!(s.lookup(Some("a.com"), "/b").is_none());
        assert!(s.lookup(Some("b.com"), "/a").is_none());
        assert!(s.lookup(None, "/a").is_none());
    }

    #[test]
    fn earlier_rule_wins_a_conflict() {
        let m = Metrics::new();
        let specs = [
            spec("first", "a.com", "/x", PathType::Prefix),
            spec("second", "a.com", "/x/", PathType::Prefix),
        ];
        let s = Snapshot::build(&specs, None, None, &m);
        assert_eq!(name(&s, Some("a.com"), "/x"), Some("first"));
        assert_eq!(s.conflicts.len(), 1);
        assert!(s.conflicts[0].contains("second"));
    }

    #[test]
    fn unchanged_upstreams_keep_their_balancer() {
        let m = Metrics::new();
        let a = Snapshot::build(&[spec("a", "", "/", PathType::Prefix)], None, None, &m);
        let b = Snapshot::build(&[spec("a", "", "/", PathType::Prefix)], None, Some(&a), &m);
        assert!(Arc::ptr_eq(
            &a.routes[0].upstream.balancer,
            &b.routes[0].upstream.balancer
        ));
        let mut changed = spec("a", "", "/", PathType::Prefix);
        changed.upstream.endpoints[0].weight = 2;
        let c = Snapshot::build(&[changed], None, Some(&b), &m);
        assert!(!Arc::ptr_eq(
            &b.routes[0].upstream.balancer,
            &c.routes[0].upstream.balancer
        ));
    }

    #[test]
    fn route_metrics_live_on_by_name() {
        let m = Metrics::new();
        let a = Snapshot::build(&[spec("a", "", "/", PathType::Prefix)], None, None, &m);
        a.routes[0].metrics.observe(200, std::time::Duration::ZERO);
        let b = Snapshot::build(
            &[
                spec("a", "", "/", PathType::Prefix),
                spec("b", "", "/b", PathType::Prefix),
            ],
            None,
            Some(&a),
            &m,
        );
        let (kept, new) = match &*b.routes[0].name {
            "a" => (&b.routes[0], &b.routes[1]),
            _ => (&b.routes[1], &b.routes[0]),
        };
        assert!(Arc::ptr_eq(&a.routes[0].metrics, &kept.metrics));
        assert!(!Arc::ptr_eq(&a.routes[0].metrics, &new.metrics));
        // Still counting into the same series.
        kept.metrics.observe(200, std::time::Duration::ZERO);
        let text = m.encode();
        assert!(
            text.lines().any(|l| l.starts_with("sluice_requests_total{")
                && l.contains("route=\"a\"")
                && l.ends_with(" 2")),
            "{text}"
        );
    }

    #[test]
    fn generation_counts_builds() {
        let m = Metrics::new();
        let a = Snapshot::build(&[spec("a", "", "/", PathType::Prefix)], None, None, &m);
        let b = Snapshot::build(&[spec("a", "", "/", PathType::Prefix)], None, Some(&a), &m);
        assert_eq!((a.generation, b.generation), (1, 2));
        assert!(Arc::ptr_eq(
            &a.routes[0].upstream.endpoints[0],
            &b.routes[0].upstream.endpoints[0]
        ));
    }

    #[test]
    fn canaries_that_read_headers_or_cookies_leave_the_fast_path() {
        let m = Metrics::new();
        let with = |header: Option<&str>, cookie: Option<&str>| {
            let mut r = spec("a", "a.com", "/", PathType::Prefix);
            r.canary = Some(crate::spec::CanarySpec {
                upstream: spec("c", "a.com", "/", PathType::Prefix).upstream,
                weight: 10,
                total: 100,
                header: header.map(|h| http::HeaderName::from_bytes(h.as_bytes()).unwrap()),
                rules: crate::spec::CanaryRules {
                    header: crate::spec::HeaderRule::AlwaysNever,
                    cookie: cookie.map(Into::into),
                    ..Default::default()
                },
            });
            Snapshot::build(&[r], None, None, &m).routes[0].fast_path
        };
        assert!(with(None, None));
        assert!(!with(Some("x-canary"), None));
        assert!(!with(None, Some("canary")));
    }

    #[test]
    fn error_pages_leave_the_fast_path_and_their_backend_is_an_upstream() {
        let m = Metrics::new();
        let mut r = spec("a", "a.com", "/", PathType::Prefix);
        r.error_pages = Some(Arc::new(crate::spec::ErrorPagesSpec {
            codes: crate::spec::StatusSet::parse_list("404,503").unwrap(),
            backend: Some(spec("errors", "a.com", "/", PathType::Prefix).upstream),
            about: Default::default(),
            replaces_upstream: false,
        }));
        let snap = Snapshot::build(&[r], None, None, &m);
        let route = &snap.routes[0];
        assert!(!route.fast_path);
        assert_eq!(route.upstreams().count(), 2);
        assert!(route.error_pages.as_ref().unwrap().codes.contains(503));
    }
}
