//! A route as config files, the command line and Kubernetes discovery
//! give it, before the routing snapshot makes it live: what it matches,
//! where it sends, and with which timeouts and retries.

use std::sync::Arc;
use std::time::Duration;

use super::host::HostMatch;
use super::path::PathType;
use super::path_rules::PathRules;
use super::upstream::UpstreamSpec;

/// One route: what it matches and where it sends.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: Arc<str>,
    pub host: HostMatch,
    pub path: String,
    pub path_type: PathType,
    pub upstream: UpstreamSpec,
    pub timeouts: RouteTimeouts,
    pub retry: RetryPolicy,
    /// Part of the traffic to a second upstream (discovered canaries).
    pub canary: Option<CanarySpec>,
    /// The largest request body accepted (413 beyond); `None`: no limit.
    pub max_request_body: Option<u64>,
    /// What changes in the headers sent upstream.
    pub headers: HeaderEdits,
    /// Who may use it.
    pub access: super::access::Access,
    /// Plain HTTP to HTTPS: `None` when the host has a certificate,
    /// `Some(true)` always, `Some(false)` never.
    pub ssl_redirect: Option<bool>,
    /// ingress-nginx's regex paths, rewrites and redirects (none for
    /// routes that do not ask for them).
    pub path_rules: PathRules,
    /// ingress-nginx's per-client limits (`limit-rps`, `limit-rpm`,
    /// `limit-connections`); `None` for routes without.
    pub limits: Option<Arc<super::RateLimits>>,
    /// ingress-nginx's cookie affinity (`affinity: cookie`); `None`: the
    /// upstream's balancer alone decides.
    pub affinity: Option<Arc<super::AffinitySpec>>,
    /// ingress-nginx's custom error pages (`custom-http-errors`); `None`:
    /// every answer reaches the client as it is.
    pub error_pages: Option<Arc<super::ErrorPagesSpec>>,
    /// A Gateway API route's match (`Some`, even with no conditions): it
    /// goes in its host's Gateway API rules, in the spec's precedence,
    /// not in the Ingress path table.
    pub conditions: Option<Arc<super::Conditions>>,
    /// Gateway API's backends with their weights, when the route sends to
    /// more than one, or to one that does not resolve: each request goes
    /// to one of them, drawn by weight (`upstream` then stands unused).
    pub split: Vec<SplitSpec>,
    /// Gateway API's RequestMirror: copies of each request sent, their
    /// answers dropped.
    pub mirrors: Vec<MirrorSpec>,
}

/// A mirror of a route's requests: `numerator` in `denominator` of them
/// are copied to `upstream`.
#[derive(Debug, Clone)]
pub struct MirrorSpec {
    pub upstream: UpstreamSpec,
    pub numerator: u32,
    pub denominator: u32,
}

/// One backend of a split, and its weight.
#[derive(Debug, Clone)]
pub struct SplitSpec {
    pub upstream: UpstreamSpec,
    pub weight: u32,
    /// The backend reference does not resolve: its share is answered 500.
    pub unresolved: bool,
    /// Request header edits for this backend alone (Gateway API's filters
    /// on a backendRef), after the route's.
    pub headers: HeaderEdits,
}

/// What a route changes in the request headers it sends upstream, beyond
/// the forwarding headers every route adds. Values are checked when the
/// route is made, and copied as they are per request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    /// The Host sent instead of the client's (ingress-nginx's
    /// `upstream-vhost`); X-Forwarded-Host keeps the client's.
    pub host: Option<http::HeaderValue>,
    /// `X-Forwarded-Prefix` (ingress-nginx's `x-forwarded-prefix`): the
    /// path prefix the client saw, for applications that build links.
    pub forwarded_prefix: Option<http::HeaderValue>,
    /// Set on the request sent upstream (a snippet's `proxy_set_header`).
    pub request: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Set on every answer (a snippet's `more_set_headers`).
    pub response: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Added to answers (a snippet's `add_header`): 2xx and 3xx ones only,
    /// as nginx does, unless the flag (`always`) is set.
    pub added: Vec<(http::HeaderName, http::HeaderValue, bool)>,
    /// Added to the request sent upstream, after any value the client sent
    /// (Gateway API's RequestHeaderModifier `add`).
    pub request_added: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Removed from the request sent upstream (its `remove`).
    pub request_removed: Vec<http::HeaderName>,
    /// Removed from every answer (ResponseHeaderModifier's `remove`).
    pub response_removed: Vec<http::HeaderName>,
}

impl HeaderEdits {
    /// True when there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.host.is_none()
            && self.forwarded_prefix.is_none()
            && self.request.is_empty()
            && self.response.is_empty()
            && self.added.is_empty()
            && self.request_added.is_empty()
            && self.request_removed.is_empty()
            && self.response_removed.is_empty()
    }

    /// Applies the answer's edits to a response with `status`.
    pub fn apply_to_response(&self, status: http::StatusCode, headers: &mut http::HeaderMap) {
        for (n, v) in &self.response {
            headers.insert(n.clone(), v.clone());
        }
        // nginx's add_header: 200, 201, 204, 206, 301, 302, 303, 304, 307
        // and 308, unless `always`.
        let listed = matches!(
            status.as_u16(),
            200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
        );
        for (n, v, always) in &self.added {
            if *always || listed {
                headers.append(n.clone(), v.clone());
            }
        }
        for n in &self.response_removed {
            headers.remove(n);
        }
    }
}

impl RouteSpec {
    /// A route with the built-in timeouts and retries and none of the
    /// extras (canary, body limit, header edits, access rules, redirects,
    /// ingress-nginx's path rules, limits, affinity, error pages): what the
    /// quick form, the demo and tests start from, setting what they need
    /// on top.
    pub fn new(
        name: impl Into<Arc<str>>,
        host: HostMatch,
        path: impl Into<String>,
        path_type: PathType,
        upstream: UpstreamSpec,
    ) -> RouteSpec {
        RouteSpec {
            name: name.into(),
            host,
            path: path.into(),
            path_type,
            upstream,
            timeouts: DEFAULT_TIMEOUTS,
            retry: DEFAULT_RETRY,
            canary: None,
            max_request_body: None,
            headers: HeaderEdits::default(),
            access: Default::default(),
            ssl_redirect: None,
            path_rules: Default::default(),
            limits: None,
            affinity: None,
            error_pages: None,
            conditions: None,
            split: Vec::new(),
            mirrors: Vec::new(),
        }
    }
}

/// A canary upstream for a route, and how much traffic it gets.
#[derive(Debug, Clone)]
pub struct CanarySpec {
    pub upstream: UpstreamSpec,
    /// `weight` requests in `total`.
    pub weight: u32,
    pub total: u32,
    /// `always` / `never` in this header decide before the weight.
    pub header: Option<http::HeaderName>,
    /// What the header's value must be, and the cookie that decides
    /// after it (ingress-nginx's `canary-by-header-value`, `-pattern`,
    /// `-by-cookie`).
    pub rules: super::CanaryRules,
}

/// Per-route upstream timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteTimeouts {
    /// TCP connect to one endpoint.
    pub connect: Duration,
    /// From the request sent to the response headers received.
    pub response_header: Duration,
    /// How long an idle pooled upstream connection is kept.
    pub upstream_idle: Duration,
    /// The longest pause while a client sends a request body (then 408).
    pub request_body: Duration,
    /// From the request routed to the answer's head, retries included
    /// (then 504): Envoy's route timeout, Gateway API's
    /// `timeouts.request`. `None`: no bound beyond the others.
    pub request: Option<Duration>,
}

/// Retries on connect failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, the first included (1 means no retry).
    pub attempts: u32,
}

/// The upstream timeouts a route has unless told otherwise.
pub const DEFAULT_TIMEOUTS: RouteTimeouts = RouteTimeouts {
    connect: Duration::from_secs(5),
    response_header: Duration::from_secs(60),
    upstream_idle: Duration::from_secs(60),
    request_body: Duration::from_secs(60),
    request: None,
};
/// The retries a route has unless told otherwise.
pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy { attempts: 3 };

/// What a proxied answer says in `Server`, as nginx (`server_tokens`) and
/// Envoy (`server_header_transformation`) let it be chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServerHeader {
    /// `Server: sluice` when the upstream sent none; the upstream's kept.
    #[default]
    Add,
    /// The upstream's as it is, or none.
    Pass,
    /// None at all: the upstream's is removed.
    Off,
}
