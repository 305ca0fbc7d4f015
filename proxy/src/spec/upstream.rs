//! An upstream as config and discovery give it: its endpoints (by address,
//! or by DNS name to resolve), how it balances, what protocol it speaks and
//! when its endpoints are ejected. [`crate::upstream::Upstream`] is what a
//! snapshot builds from it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::balance::Strategy;

/// Idle connections kept per endpoint unless told otherwise.
pub const DEFAULT_MAX_IDLE: usize = 64;

/// The protocol spoken to an upstream's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (h2c).
    Http2,
}

impl Protocol {
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
        }
    }
}

/// Passive health: when to eject an endpoint and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Consecutive connect failures or 5xx answers that eject; 0 never ejects.
    pub consecutive_failures: u32,
    /// The first ejection's length; each further one doubles it.
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    /// Below this percentage of healthy endpoints, ejections are ignored so
    /// that a route always has endpoints to try (Envoy's panic threshold).
    pub panic_threshold_percent: u8,
}

/// The passive-health settings a route has unless told otherwise.
pub const DEFAULT_HEALTH: HealthPolicy = HealthPolicy {
    consecutive_failures: 5,
    base_ejection: Duration::from_secs(10),
    max_ejection: Duration::from_secs(300),
    panic_threshold_percent: 50,
};

impl Default for HealthPolicy {
    fn default() -> Self {
        DEFAULT_HEALTH
    }
}

/// What an upstream is built from.
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    pub name: Arc<str>,
    pub strategy: Strategy,
    pub protocol: Protocol,
    pub endpoints: Vec<EndpointSpec>,
    /// Backends given by DNS name: their addresses join `endpoints` when
    /// resolved ([`crate::resolve`]), at start, on reload and every
    /// `dns_refresh`.
    pub names: Vec<NamedBackend>,
    pub health: HealthPolicy,
    pub max_idle_per_endpoint: usize,
    /// TLS to the endpoints (ingress-nginx's `backend-protocol: HTTPS` or
    /// `GRPCS`); `None`: plain TCP.
    pub tls: Option<Arc<UpstreamTls>>,
    /// The largest response head read from an endpoint, when more than the
    /// 64 KiB every upstream gets (ingress-nginx's `proxy-buffer-size`
    /// raised for large cookies or auth headers); larger heads answer 502.
    pub response_head: Option<usize>,
}

impl UpstreamSpec {
    /// Plain HTTP/1.1 to `endpoints`, with the built-in passive health and
    /// idle pool, no TLS and no DNS names.
    pub fn new(
        name: impl Into<Arc<str>>,
        strategy: Strategy,
        endpoints: Vec<EndpointSpec>,
    ) -> UpstreamSpec {
        UpstreamSpec {
            name: name.into(),
            strategy,
            protocol: Protocol::Http1,
            endpoints,
            names: Vec::new(),
            health: DEFAULT_HEALTH,
            max_idle_per_endpoint: DEFAULT_MAX_IDLE,
            tls: None,
            response_head: None,
        }
    }
}

/// TLS to an upstream's endpoints: the client configuration every
/// connection to them shakes hands with, built once per setting (its
/// session cache then resumes sessions across connections).
#[derive(Debug)]
pub struct UpstreamTls {
    /// Roots (or no verification), client certificate, ALPN.
    pub config: Arc<rustls::ClientConfig>,
    /// The name sent in SNI and verified; `None` sends no SNI (and, with
    /// verification on, verifies the endpoint's IP address).
    pub server_name: Option<rustls::pki_types::ServerName<'static>>,
    /// What the setting is, in words: endpoints are kept across rebuilds
    /// only while it stays the same (their pooled connections were made
    /// with it), and the admin page shows it.
    pub id: Arc<str>,
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

/// A backend written as `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedBackend {
    pub host: Arc<str>,
    pub port: u16,
    pub weight: u32,
}

/// What an endpoint is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub addr: SocketAddr,
    pub weight: u32,
    /// Identity for consistent hashing and for keeping state across
    /// rebuilds: the address for static backends, the pod for discovered ones.
    pub key: Arc<str>,
}

impl EndpointSpec {
    pub fn new(addr: SocketAddr, weight: u32) -> Self {
        EndpointSpec {
            addr,
            weight,
            key: addr.to_string().into(),
        }
    }
}
