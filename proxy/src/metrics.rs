//! Prometheus metrics.
//!
//! Per-route handles are resolved when a snapshot is built, so a request
//! never looks a label set up: it bumps a counter it already holds.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Every metric the proxy exports.
pub struct Metrics {
    pub registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    pub upstream_endpoints: IntGaugeVec,
    connect_errors: IntCounterVec,
    /// Gateway API's mirrored requests, by route and outcome.
    mirrored: IntCounterVec,
    pub config_reloads: IntCounterVec,
    /// Errors and disconnects of the Kubernetes watches, by kind.
    pub kube_watch_errors: IntCounterVec,
    /// How long a rebuild of the routes from the cluster's objects takes.
    pub kube_rebuild_duration: Histogram,
    /// Access-log lines dropped because the writer fell behind.
    pub access_log_dropped: IntCounter,
    /// Each certificate's expiry, by source.
    pub tls_certificate_expiry: IntGaugeVec,
    /// TLS handshakes that failed, by reason (`timeout`, `error`).
    pub tls_handshake_errors: IntCounterVec,
    /// Client connections open on the traffic listeners.
    pub client_connections: prometheus::IntGauge,
    /// Of those, the idle keep-alive connections waiting without a task.
    pub client_connections_parked: prometheus::IntGauge,
    /// Client connections closed at accept, by reason (`max_connections`).
    pub connections_refused: IntCounterVec,
    /// Requests refused before routing, by reason (`uri_too_long`).
    pub requests_refused: IntCounterVec,
    /// HTTP/2 streams reset because the client's window stayed shut for
    /// `timeouts.send`.
    pub http2_send_timeouts: prometheus::IntCounter,
    /// Per endpoint (`endpoint_metrics: true` only: one series per pod).
    endpoint_requests: IntCounterVec,
    endpoint_duration: HistogramVec,
    /// The (upstream, endpoint) label pairs handed out, so that those of
    /// endpoints gone can be dropped. Touched at snapshot builds only.
    endpoint_labels: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
    /// TLS passthrough connections, by outcome (`spliced`, `no_endpoint`).
    pub passthrough_connections: IntCounterVec,
    /// TLS passthrough connections spliced to a backend right now.
    pub passthrough_open: prometheus::IntGauge,
}

/// The kinds the Kubernetes watches name in `sluice_kube_watch_errors_total`.
pub const WATCHED_KINDS: [&str; 6] = [
    "ingress",
    "ingressclass",
    "service",
    "endpointslice",
    "secret",
    "pod",
];

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Latency buckets, in seconds: 0.5 ms to 10 s.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Route label for requests that matched no route.
pub const UNMATCHED: &str = "none";

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "sluice_requests_total",
                "Requests answered, by route and status code.",
            ),
            &["route", "code"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "sluice_request_duration_seconds",
                "Time from request received to response headers sent, by route.",
            )
            .buckets(BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let upstream_endpoints = IntGaugeVec::new(
            Opts::new(
                "sluice_upstream_endpoints",
                "Endpoints per route, by health state.",
            ),
            &["route", "state"],
        )
        .expect("valid metric");
        let connect_errors = IntCounterVec::new(
            Opts::new(
                "sluice_upstream_connect_errors_total",
                "Failed attempts to connect to an upstream endpoint, by route.",
            ),
            &["route"],
        )
        .expect("valid metric");
        let mirrored = IntCounterVec::new(
            Opts::new(
                "sluice_mirrored_requests_total",
                "Copies of requests sent to mirrors (Gateway API's RequestMirror), by route and outcome: answered, failed, or skipped (the mirror had too many in flight).",
            ),
            &["route", "outcome"],
        )
        .expect("valid metric");
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "sluice_config_reloads_total",
                "Configuration reloads, by result (success or error).",
            ),
            &["result"],
        )
        .expect("valid metric");
        let kube_watch_errors = IntCounterVec::new(
            Opts::new(
                "sluice_kube_watch_errors_total",
                "Errors and disconnects of the Kubernetes API watches, by kind; the last good routes keep serving.",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let kube_rebuild_duration = Histogram::with_opts(
            HistogramOpts::new(
                "sluice_kube_rebuild_seconds",
                "Time to rebuild the routes from the cluster's objects (translation, certificates, the new table), off the serving threads.",
            )
            .buckets(BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let access_log_dropped = IntCounter::new(
            "sluice_access_log_dropped_total",
            "Access-log lines dropped because the writer fell behind.",
        )
        .expect("valid metric");
        let tls_certificate_expiry = IntGaugeVec::new(
            Opts::new(
                "sluice_tls_certificate_expiry_timestamp_seconds",
                "When each served certificate expires (Unix time), by source: file:PATH or secret:NAMESPACE/NAME.",
            ),
            &["source"],
        )
        .expect("valid metric");
        let tls_handshake_errors = IntCounterVec::new(
            Opts::new(
                "sluice_tls_handshake_errors_total",
                "TLS handshakes that failed, by reason: timeout (the client sent too little in time) or error (malformed or refused).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let endpoint_requests = IntCounterVec::new(
            Opts::new(
                "sluice_endpoint_requests_total",
                "Answers from each endpoint, by upstream, endpoint and status code (with endpoint_metrics on).",
            ),
            &["upstream", "endpoint", "code"],
        )
        .expect("valid metric");
        let endpoint_duration = HistogramVec::new(
            HistogramOpts::new(
                "sluice_endpoint_response_seconds",
                "Time from the request being routed to the endpoint's response headers, by upstream and endpoint (with endpoint_metrics on).",
            )
            .buckets(BUCKETS.to_vec()),
            &["upstream", "endpoint"],
        )
        .expect("valid metric");
        let client_connections = prometheus::IntGauge::new(
            "sluice_client_connections",
            "Client connections open on the traffic listeners.",
        )
        .expect("valid metric");
        let client_connections_parked = prometheus::IntGauge::new(
            "sluice_client_connections_parked",
            "Of the client connections, the idle HTTP/1.1 keep-alive connections parked (waiting for their next request without a task of their own).",
        )
        .expect("valid metric");
        let connections_refused = IntCounterVec::new(
            Opts::new(
                "sluice_connections_refused_total",
                "Client connections closed as soon as accepted, by reason: max_connections (limits.max_connections were open).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        connections_refused.with_label_values(&["max_connections"]);
        let requests_refused = IntCounterVec::new(
            Opts::new(
                "sluice_requests_refused_total",
                "Requests refused before routing, by reason: uri_too_long (414, limits.max_uri), overload (503, limits.max_in_flight), memory (503, limits.max_memory), headers_too_large (431, limits.max_header_size and max_headers).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for reason in ["uri_too_long", "overload", "memory", "headers_too_large"] {
            requests_refused.with_label_values(&[reason]);
        }
        let http2_send_timeouts = prometheus::IntCounter::new(
            "sluice_http2_send_timeouts_total",
            "HTTP/2 streams reset (and their upstream released) because the client's flow-control window let nothing be sent for timeouts.send.",
        )
        .expect("valid metric");
        let passthrough_connections = IntCounterVec::new(
            Opts::new(
                "sluice_passthrough_connections_total",
                "TLS connections spliced unread to a backend (ssl-passthrough), by outcome: spliced, or no_endpoint (every endpoint tried refused, or none; the client is closed).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        for outcome in ["spliced", "no_endpoint"] {
            passthrough_connections.with_label_values(&[outcome]);
        }
        let passthrough_open = prometheus::IntGauge::new(
            "sluice_passthrough_connections_open",
            "TLS passthrough connections spliced to a backend right now.",
        )
        .expect("valid metric");
        for c in [
            Box::new(passthrough_connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(passthrough_open.clone()),
            Box::new(client_connections.clone()),
            Box::new(client_connections_parked.clone()),
            Box::new(connections_refused.clone()),
            Box::new(requests_refused.clone()),
            Box::new(http2_send_timeouts.clone()),
            Box::new(endpoint_requests.clone()),
            Box::new(endpoint_duration.clone()),
            Box::new(requests.clone()),
            Box::new(tls_certificate_expiry.clone()),
            Box::new(tls_handshake_errors.clone()),
            Box::new(access_log_dropped.clone()),
            Box::new(kube_watch_errors.clone()),
            Box::new(kube_rebuild_duration.clone()),
            Box::new(duration.clone()),
            Box::new(upstream_endpoints.clone()),
            Box::new(connect_errors.clone()),
            Box::new(mirrored.clone()),
            Box::new(config_reloads.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        // Every labelled counter an alert or a dashboard names shows from
        // the start at 0: `rate()` and `increase()` then work from the first
        // scrape, and an alert never sees "no data" where it means zero.
        for result in ["success", "error"] {
            config_reloads.with_label_values(&[result]);
        }
        for reason in ["error", "timeout"] {
            tls_handshake_errors.with_label_values(&[reason]);
        }
        for kind in WATCHED_KINDS {
            kube_watch_errors.with_label_values(&[kind]);
        }
        // What is running: a constant 1 whose labels say which build.
        let build_info = prometheus::IntGaugeVec::new(
            Opts::new(
                "sluice_build_info",
                "A constant 1, labelled with the version and git commit of the running build.",
            ),
            &["version", "commit"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[crate::build::VERSION, crate::build::COMMIT])
            .set(1);
        registry
            .register(Box::new(build_info))
            .expect("metric registered once");
        // CPU seconds, resident memory, open file descriptors and the start
        // time, as process_* (Linux; elsewhere the collector reports nothing).
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        Metrics {
            registry,
            requests,
            duration,
            upstream_endpoints,
            connect_errors,
            mirrored,
            config_reloads,
            kube_watch_errors,
            kube_rebuild_duration,
            access_log_dropped,
            tls_certificate_expiry,
            tls_handshake_errors,
            client_connections,
            client_connections_parked,
            connections_refused,
            requests_refused,
            http2_send_timeouts,
            endpoint_requests,
            endpoint_duration,
            endpoint_labels: Default::default(),
            passthrough_connections,
            passthrough_open,
        }
    }

    /// Handles for one endpoint of one upstream, resolved at snapshot
    /// build.
    pub fn endpoint(&self, upstream: &str, endpoint: &str) -> EndpointMetrics {
        if let Ok(mut l) = self.endpoint_labels.lock() {
            l.insert((upstream.to_owned(), endpoint.to_owned()));
        }
        EndpointMetrics {
            upstream: upstream.into(),
            endpoint: endpoint.into(),
            requests: self.endpoint_requests.clone(),
            codes: Default::default(),
            duration: self
                .endpoint_duration
                .with_label_values(&[upstream, endpoint]),
        }
    }

    /// Drops the series of every endpoint not in `live` (upstream,
    /// endpoint), so that pods coming and going do not grow the exposition.
    pub fn retain_endpoints(&self, live: &std::collections::HashSet<(String, String)>) {
        use prometheus::core::Collector;
        let Ok(mut known) = self.endpoint_labels.lock() else {
            return;
        };
        let gone: Vec<(String, String)> = known.difference(live).cloned().collect();
        if gone.is_empty() {
            return;
        }
        let families = self.endpoint_requests.collect();
        for (u, e) in &gone {
            let _ = self.endpoint_duration.remove_label_values(&[u, e]);
            for m in families.iter().flat_map(|f| f.get_metric()) {
                let label = |n: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == n)
                        .map(|l| l.value().to_owned())
                        .unwrap_or_default()
                };
                if &label("upstream") == u && &label("endpoint") == e {
                    let _ = self
                        .endpoint_requests
                        .remove_label_values(&[u, e, &label("code")]);
                }
            }
            known.remove(&(u.clone(), e.clone()));
        }
    }

    /// Handles for one route, resolved once per snapshot build.
    pub fn route(&self, route: &str) -> RouteMetrics {
        RouteMetrics {
            name: route.into(),
            requests: self.requests.clone(),
            codes: Default::default(),
            duration: self.duration.with_label_values(&[route]),
            connect_errors: self.connect_errors.with_label_values(&[route]),
            mirrored: self.mirrored.clone(),
        }
    }

    /// Drops every series of a route that no longer exists, so that a
    /// cluster's churn of routes does not grow the exposition forever.
    pub fn forget_route(&self, route: &str) {
        use prometheus::core::Collector;
        let codes: Vec<String> = self
            .requests
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "route" && l.value() == route)
            })
            .filter_map(|m| {
                m.get_label()
                    .iter()
                    .find(|l| l.name() == "code")
                    .map(|l| l.value().to_owned())
            })
            .collect();
        for code in codes {
            let _ = self.requests.remove_label_values(&[route, &code]);
        }
        let _ = self.duration.remove_label_values(&[route]);
        let _ = self.connect_errors.remove_label_values(&[route]);
        for outcome in MIRROR_OUTCOMES {
            let _ = self.mirrored.remove_label_values(&[route, outcome]);
        }
        for state in ["healthy", "ejected"] {
            let _ = self.upstream_endpoints.remove_label_values(&[route, state]);
        }
    }

    /// Prometheus text format.
    pub fn encode(&self) -> String {
        use prometheus::Encoder;
        let mut out = Vec::with_capacity(8192);
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The status codes whose counters a route keeps at hand.
const COMMON: [u16; 16] = [
    200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 429, 500, 502, 503, 504,
];

/// Counts one answer of `status`: a common code's counter is resolved once
/// and kept in `codes`; others are looked up (`make`).
#[inline]
fn count(codes: &[OnceLock<IntCounter>; COMMON.len()], status: u16, make: impl Fn() -> IntCounter) {
    match COMMON.iter().position(|&c| c == status) {
        Some(i) => codes[i].get_or_init(&make).inc(),
        None => make().inc(),
    }
}

/// One endpoint's metric handles.
pub struct EndpointMetrics {
    upstream: Box<str>,
    endpoint: Box<str>,
    requests: IntCounterVec,
    codes: [OnceLock<IntCounter>; COMMON.len()],
    duration: Histogram,
}

impl std::fmt::Debug for EndpointMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointMetrics")
            .field("upstream", &self.upstream)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl EndpointMetrics {
    /// Counts one answer of the endpoint.
    #[inline]
    pub fn observe(&self, status: u16, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
        count(&self.codes, status, || {
            self.requests.with_label_values(&[
                &*self.upstream,
                &*self.endpoint,
                itoa_buf(status).as_str(),
            ])
        });
    }

    /// Whether these handles are for this upstream and endpoint.
    pub fn is_for(&self, upstream: &str, endpoint: &str) -> bool {
        &*self.upstream == upstream && &*self.endpoint == endpoint
    }
}

/// One route's metric handles.
pub struct RouteMetrics {
    name: Box<str>,
    requests: IntCounterVec,
    codes: [OnceLock<IntCounter>; COMMON.len()],
    duration: Histogram,
    connect_errors: IntCounter,
    mirrored: IntCounterVec,
}

/// The outcomes `sluice_mirrored_requests_total` counts.
pub const MIRROR_OUTCOMES: [&str; 3] = ["answered", "failed", "skipped"];

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics")
            .field("route", &self.name)
            .finish()
    }
}

impl RouteMetrics {
    /// Counts one answered request.
    #[inline]
    pub fn observe(&self, status: u16, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
        count(&self.codes, status, || self.counter(status));
    }

    fn counter(&self, status: u16) -> IntCounter {
        let code = itoa_buf(status);
        self.requests
            .with_label_values(&[&*self.name, code.as_str()])
    }

    #[inline]
    pub fn connect_error(&self) {
        self.connect_errors.inc();
    }

    /// Counts a copy sent to a mirror, or not (one of
    /// [`MIRROR_OUTCOMES`]). Off the common path: mirrors are rare, and
    /// the series is looked up each time.
    pub fn mirrored(&self, outcome: &str) {
        self.mirrored
            .with_label_values(&[&*self.name, outcome])
            .inc();
    }
}

struct Code([u8; 3]);
impl Code {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("000")
    }
}
fn itoa_buf(status: u16) -> Code {
    let s = status.min(999);
    Code([
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_handles_count_by_code() {
        let m = Metrics::new();
        let r = m.route("api");
        r.observe(200, Duration::from_millis(3));
        r.observe(200, Duration::from_millis(3));
        r.observe(418, Duration::from_millis(3));
        let text = m.encode();
        assert!(
            text.contains(r#"sluice_requests_total{code="200",route="api"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sluice_requests_total{code="418",route="api"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"sluice_request_duration_seconds_count{route="api"} 3"#));
        m.forget_route("api");
        let text = m.encode();
        assert!(!text.contains(r#"route="api""#), "{text}");
    }
}
