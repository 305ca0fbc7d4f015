//! The typed config: what the proxy runs from, and the defaults each
//! setting takes when the file or the command line leaves it out.
//!
//! Plain data, built by validation (`validate`) from the file and by the
//! quick form from flags; nothing here parses or checks. The route
//! vocabulary itself ([`RouteSpec`] and what it holds) lives in
//! [`crate::spec`], below both config and routing.

use std::net::SocketAddr;
use std::time::Duration;

use super::error::FieldError;
use crate::spec::{
    CertFiles, HealthPolicy, Policy, RetryPolicy, RouteSpec, RouteTimeouts, ServerHeader,
    DEFAULT_HEALTH, DEFAULT_MAX_IDLE, DEFAULT_RETRY, DEFAULT_TIMEOUTS,
};

/// Everything the proxy runs from.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    /// HTTPS listeners.
    pub listen_tls: Vec<SocketAddr>,
    /// Certificate files, redirects and HSTS.
    pub tls: TlsConfig,
    pub admin: Option<SocketAddr>,
    pub listener: ListenerSettings,
    pub drain_timeout: Duration,
    /// After SIGTERM, how long to keep accepting while `/readyz` already
    /// says 503, so the LoadBalancer and Endpoints stop sending first.
    pub shutdown_delay: Duration,
    pub reload_interval: Duration,
    pub routes: Vec<RouteSpec>,
    pub default_backend: Option<RouteSpec>,
    /// The top-level route settings, for discovered routes.
    pub defaults: Defaults,
    /// The access log's format (`off` turns it off).
    pub access_log: crate::access_log::Format,
    /// What proxied answers say in `Server`.
    pub server_header: ServerHeader,
    /// Requests and latency per endpoint too (a series per pod: off by
    /// default for the cardinality).
    pub endpoint_metrics: bool,
    /// How often backends given by DNS name are resolved again.
    pub dns_refresh: Duration,
    /// Things that work but are probably not what was meant, each naming
    /// its field; logged at load and printed by `sluice check`.
    pub warnings: Vec<FieldError>,
}

/// The HTTPS settings of a config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    pub certificates: Vec<CertFiles>,
    pub default_certificate: Option<CertFiles>,
    pub policy: Policy,
}

impl TlsConfig {
    /// Every certificate file pair, the default last.
    pub fn files(&self) -> impl Iterator<Item = &CertFiles> {
        self.certificates.iter().chain(&self.default_certificate)
    }
}

/// Settings of the client-facing listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSettings {
    /// How long a client may take to send a request's headers. It also
    /// bounds how long an idle keep-alive connection waits for the next
    /// request (hyper starts the timer when it starts reading a request).
    pub request_header_timeout: Duration,
    /// How long an HTTP/2 connection may stay without a request in flight
    /// before it gets a GOAWAY (nginx's `keepalive_timeout`, which HTTP/2
    /// obeys too). HTTP/1.1 idle connections are bounded by
    /// `request_header_timeout` instead.
    pub http2_idle_timeout: Duration,
    /// How long a write to a client may wait for it to take anything
    /// (nginx's `send_timeout`); then the connection is closed.
    pub send_timeout: Duration,
    /// Serve plain HTTP/1.1 requests on the lean fast path (`fast`),
    /// handing everything else to hyper. On by default.
    pub http1_fast_path: bool,
    /// Serve HTTP/2 with Sluice's own codec (`server::http2`, one task per
    /// connection) rather than the h2 crate. On by default.
    pub http2_fast_path: bool,
    /// Read a PROXY protocol header (v1 or v2) first on every connection,
    /// from these networks only (empty: from any peer).
    pub proxy_protocol: Option<std::sync::Arc<crate::forwarded::Trusted>>,
    /// Take the client's address from X-Forwarded-For when the peer is in
    /// these networks (a LoadBalancer that sets it).
    pub trust_forwarded_for: Option<std::sync::Arc<crate::forwarded::Trusted>>,
    /// The header a trusted forwarder names the client in
    /// (`forwarded_for_header`; X-Forwarded-For by default, as
    /// ingress-nginx's `forwarded-for-header`, e.g. CF-Connecting-IP).
    pub forwarded_for_header: http::HeaderName,
    /// How the client's address is written upstream: X-Forwarded-For
    /// appended to or replaced (`forwarded_for`), X-Real-IP set or not
    /// (`x_real_ip`).
    pub forwarding: crate::policy::Forwarding,
    /// Client connections open at once on all traffic listeners together
    /// (`limits.max_connections`; 0: no limit). Past it a new connection is
    /// closed at once; those open keep being served, and the admin
    /// listener is never subject to it.
    pub max_connections: usize,
    /// The longest request target (path and query) taken; longer ones get
    /// 414 (`limits.max_uri`).
    pub max_uri: usize,
    /// Requests in flight past which new ones get 503 with Retry-After
    /// (`limits.max_in_flight`; 0: no guard).
    pub max_in_flight: usize,
    /// Resident memory past which new requests get 503 with Retry-After
    /// (`limits.max_memory`).
    pub max_memory: crate::memory::MaxMemory,
    /// HTTP/2 streams a client may have open at once
    /// (`limits.http2_max_concurrent_streams`).
    pub http2_max_concurrent_streams: u32,
    /// The largest request head (HTTP/1.1) or header list (HTTP/2), and
    /// the most header fields, taken; past either, 431
    /// (`limits.max_header_size`, `limits.max_headers`).
    pub max_header_size: usize,
    pub max_headers: usize,
    /// The HTTP/2 flow-control windows offered to clients, per stream and
    /// per connection (`limits.http2_stream_window`,
    /// `limits.http2_connection_window`): how much request body a client
    /// may send ahead of its upstream.
    pub http2_stream_window: u32,
    pub http2_connection_window: u32,
}

pub const DEFAULT_LISTENER: ListenerSettings = ListenerSettings {
    request_header_timeout: Duration::from_secs(10),
    http2_idle_timeout: Duration::from_secs(75),
    send_timeout: Duration::from_secs(60),
    http1_fast_path: true,
    http2_fast_path: true,
    proxy_protocol: None,
    trust_forwarded_for: None,
    forwarded_for_header: http::HeaderName::from_static("x-forwarded-for"),
    forwarding: crate::policy::Forwarding {
        forwarded_for: crate::policy::ForwardedFor::Append,
        real_ip: false,
    },
    max_connections: DEFAULT_MAX_CONNECTIONS,
    max_uri: DEFAULT_MAX_URI,
    max_in_flight: DEFAULT_MAX_IN_FLIGHT,
    max_memory: crate::memory::MaxMemory::Auto,
    http2_max_concurrent_streams: DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
    http2_stream_window: DEFAULT_HTTP2_WINDOW,
    http2_connection_window: DEFAULT_HTTP2_WINDOW,
    max_header_size: DEFAULT_MAX_HEADER_SIZE,
    max_headers: DEFAULT_MAX_HEADERS,
};
/// The default of `limits.max_header_size`: 32 KiB, nginx's most
/// (`large_client_header_buffers` 4 × 8k).
pub const DEFAULT_MAX_HEADER_SIZE: usize = 32 << 10;
/// The default of `limits.max_headers`: 100 (hyper's, and HAProxy's
/// `tune.http.maxhdr` 101).
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// The default HTTP/2 windows, per stream and per connection: 1 MiB
/// (hyper's), so that an upload is not held to one 64 KiB round trip at a
/// time.
pub const DEFAULT_HTTP2_WINDOW: u32 = 1 << 20;
/// The default of `limits.http2_max_concurrent_streams`: nginx's 128.
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 128;
/// The default of `limits.max_in_flight`: far above what a healthy set of
/// upstreams keeps waiting, low enough that a stalled one cannot pile up
/// requests (and their memory) without bound.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 20_000;
/// The default of `limits.max_uri`, nginx's `large_client_header_buffers`
/// size: 8 KiB.
pub const DEFAULT_MAX_URI: usize = 8 * 1024;
/// The default of `limits.max_connections`: at about 11 KB for an idle
/// connection, 10,000 hold about 110 MB, and no more.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(30);
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// How often backends given by DNS name are resolved again (`dns_refresh`).
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(30);

/// The top-level settings every route starts from: what the file's
/// routes override, and what routes discovered in Kubernetes get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub timeouts: RouteTimeouts,
    pub retry: RetryPolicy,
    pub health: HealthPolicy,
    pub max_idle: usize,
    pub max_request_body: Option<u64>,
}

/// The built-in defaults.
pub const DEFAULTS: Defaults = Defaults {
    timeouts: DEFAULT_TIMEOUTS,
    retry: DEFAULT_RETRY,
    health: DEFAULT_HEALTH,
    max_idle: DEFAULT_MAX_IDLE,
    max_request_body: None,
};
