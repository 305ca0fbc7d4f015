//! The config file as written: loose types, so that validation can report
//! every wrong field at once instead of stopping at the first.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Addresses to accept client traffic on: one, or a list.
    #[serde(default, deserialize_with = "one_or_many")]
    pub listen: Vec<String>,
    /// Addresses to accept HTTPS on: one, or a list.
    #[serde(default, deserialize_with = "one_or_many")]
    pub listen_tls: Vec<String>,
    /// Certificates, redirects and HSTS.
    #[serde(default)]
    pub tls: RawTls,
    /// Address of the admin listener (health, metrics, routes).
    pub admin: Option<String>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub retry: RawRetry,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub upstream: RawUpstreamOptions,
    pub drain_timeout: Option<String>,
    pub shutdown_delay: Option<String>,
    pub reload_interval: Option<String>,
    /// The largest request body accepted, as nginx writes sizes (10m).
    pub max_request_body: Option<String>,
    /// `off`, `text` (the default) or `json`.
    pub access_log: Option<String>,
    /// Read a PROXY protocol header first on every client connection.
    pub proxy_protocol: Option<bool>,
    /// Accept PROXY headers only from these networks (implies
    /// `proxy_protocol`).
    #[serde(default)]
    pub proxy_protocol_from: Vec<String>,
    /// Networks whose X-Forwarded-For names the client.
    #[serde(default)]
    pub trust_forwarded_for: Vec<String>,
    /// The header trusted forwarders name the client in (X-Forwarded-For).
    pub forwarded_for_header: Option<String>,
    /// `append` (the default) or `replace`: what X-Forwarded-For holds.
    pub forwarded_for: Option<String>,
    /// Set X-Real-IP to the client's address (default false).
    pub x_real_ip: Option<bool>,
    /// `add` (the default), `pass` or `off`: the `Server` header of answers.
    pub server_header: Option<String>,
    /// Requests and latency per endpoint (off by default).
    pub endpoint_metrics: Option<bool>,
    /// How often DNS names of backends are resolved again (30s).
    pub dns_refresh: Option<String>,
    /// What the proxy takes on at most.
    #[serde(default)]
    pub limits: RawLimits,
    /// Serve plain HTTP/1.1 on the fast path (default true).
    pub http1_fast_path: Option<bool>,
    /// Serve HTTP/2 with Sluice's own codec (default true).
    pub http2_fast_path: Option<bool>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    pub default_backend: Option<RawBackendSet>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// Each picked by SNI for the names it holds.
    #[serde(default)]
    pub certificates: Vec<RawCertFiles>,
    /// For names no certificate holds (self-signed at start when absent).
    pub default_certificate: Option<RawCertFiles>,
    /// Plain HTTP to hosts with a certificate gets a 308 (default true).
    pub redirect: Option<bool>,
    /// The port redirects name (default 443).
    pub redirect_port: Option<u16>,
    pub hsts: Option<RawHsts>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertFiles {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHsts {
    pub max_age: Option<String>,
    #[serde(default)]
    pub include_subdomains: bool,
    #[serde(default)]
    pub preload: bool,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<String>,
    pub response_header: Option<String>,
    pub upstream_idle: Option<String>,
    pub request_body: Option<String>,
    pub request: Option<String>,
    pub request_header: Option<String>,
    pub http2_idle: Option<String>,
    pub send: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub attempts: Option<u32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub consecutive_failures: Option<u32>,
    pub base_ejection: Option<String>,
    pub max_ejection: Option<String>,
    pub panic_threshold: Option<u32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Client connections open at once (0: no limit).
    pub max_connections: Option<usize>,
    /// The longest request target, as a size (`8k`).
    pub max_uri: Option<String>,
    /// Requests in flight past which new ones get 503 (0: no guard).
    pub max_in_flight: Option<usize>,
    /// Resident memory past which new requests get 503: a size, `auto`
    /// or 0.
    pub max_memory: Option<String>,
    /// HTTP/2 streams a client may have open at once (128).
    pub http2_max_concurrent_streams: Option<u32>,
    /// The largest request head, as a size (`32k`), and the most fields.
    pub max_header_size: Option<String>,
    pub max_headers: Option<usize>,
    /// HTTP/2 flow-control windows offered to clients, as sizes (`1m`).
    pub http2_stream_window: Option<String>,
    pub http2_connection_window: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamOptions {
    pub max_idle_per_endpoint: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub path_type: Option<String>,
    /// Plain HTTP to HTTPS: unset follows the host's certificate.
    pub ssl_redirect: Option<bool>,
    #[serde(flatten)]
    pub set: RawBackendSet,
}

/// Backends and the settings that go with them; a route's or the default's.
#[derive(Debug, Default, Deserialize)]
pub struct RawBackendSet {
    pub strategy: Option<String>,
    pub upstream_protocol: Option<String>,
    #[serde(default)]
    pub backends: Vec<RawBackend>,
    pub timeouts: Option<RawTimeouts>,
    pub retry: Option<RawRetry>,
    pub health: Option<RawHealth>,
    pub max_request_body: Option<String>,
}

/// `127.0.0.1:9001`, `127.0.0.1:9001=3`, or `{address: …, weight: 3}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawBackend {
    Short(String),
    Long {
        address: String,
        #[serde(default)]
        weight: Option<u32>,
    },
}

/// `listen: ADDR` or `listen: [ADDR, …]`, as nginx users write one
/// address without brackets.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an address, or a list of addresses")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(vec![s.to_owned()])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}
