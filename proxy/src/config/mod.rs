//! Configuration: parsed once into typed structs, validated with every
//! error named by its field, and never re-read as strings on the hot path.
//!
//! Two sources produce the same [`Config`]: the quick form on the command
//! line (`--backend`, `--strategy`) and a YAML file (`--config`). Later the
//! Kubernetes discovery produces the same [`RouteSpec`]s.

pub mod backend;
mod error;
mod overrides;
mod raw;
pub mod schema;
mod value;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::balance::Strategy;
pub use crate::spec::{
    CanarySpec, RetryPolicy, RouteSpec, RouteTimeouts, ServerHeader, DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
};
use crate::spec::{
    CertFiles, EndpointSpec, HealthPolicy, HostMatch, Hsts, NamedBackend, PathType, Policy,
    Protocol, UpstreamSpec, DEFAULT_HEALTH, DEFAULT_MAX_IDLE,
};
use backend::Target;
pub use backend::{Backend, BackendError};
pub use error::{count, ConfigError, FieldError};
pub use overrides::Overrides;
pub use raw::RawConfig;
use raw::{RawBackend, RawBackendSet, RawHealth, RawRetry, RawTimeouts};
pub use value::{
    parse_cidr, parse_http2_streams, parse_http2_window, parse_max_header_size, parse_max_headers,
    parse_max_memory, parse_max_uri, parse_size, ValueError,
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

/// Weights only steer `weighted`, `ip-hash` and `least-request`; with
/// `round-robin` they would silently do nothing.
fn unused_weights(field: &str, upstream: &UpstreamSpec) -> Option<FieldError> {
    (upstream.strategy == Strategy::RoundRobin && upstream.endpoints.iter().any(|e| e.weight != 1))
        .then(|| FieldError {
            field: field.to_owned(),
            message: "weights are ignored by round-robin; use strategy weighted to apply them"
                .into(),
            line: None,
            column: None,
        })
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
    /// Read a PROXY protocol header (v1 or v2) first on every connection,
    /// from these networks only (empty: from any peer).
    pub proxy_protocol: Option<std::sync::Arc<crate::forwarded::Trusted>>,
    /// Take the client's address from X-Forwarded-For when the peer is in
    /// these networks (a LoadBalancer that sets it).
    pub trust_forwarded_for: Option<std::sync::Arc<crate::forwarded::Trusted>>,
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
    proxy_protocol: None,
    trust_forwarded_for: None,
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
const MAX_ATTEMPTS: u32 = 10;

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_file_text(&text, path)
}

/// Parses the text of the config file at `path`. Relative certificate paths
/// are taken from the file's folder, as nginx takes its paths from its
/// configuration's, not from wherever the proxy was started.
pub fn parse_file_text(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut config = parse_str(text, &path.display().to_string())?;
    if let Some(dir) = path.parent() {
        let anchor = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        for f in config
            .tls
            .certificates
            .iter_mut()
            .chain(config.tls.default_certificate.as_mut())
        {
            anchor(&mut f.cert);
            anchor(&mut f.key);
        }
    }
    Ok(config)
}

/// Parses and validates config text; `source_name` names it in errors.
/// The file's shape is checked first ([`schema`]): every unknown field and
/// value of the wrong kind is reported at once, at its line and column.
/// Then serde reads it, and validation checks what the values mean; its
/// errors are placed at their keys too.
pub fn parse_str(text: &str, source_name: &str) -> Result<Config, ConfigError> {
    let tree = schema::parse(text).map_err(|(message, pos)| ConfigError::Parse {
        path: PathBuf::from(source_name),
        message: format!("not valid YAML: {message}"),
        line: Some(pos.line),
        column: Some(pos.column),
    })?;
    let Some(tree) = tree else {
        return validate(RawConfig::default()).map_err(|errors| ConfigError::Invalid {
            source_name: source_name.to_owned(),
            errors,
        });
    };
    let mut errors = Vec::new();
    schema::check(&tree, &schema::CONFIG, "", &mut errors);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid {
            source_name: source_name.to_owned(),
            errors,
        });
    }
    let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| {
        // The position is kept apart; the message need not repeat it.
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(i) if e.location().is_some() => message[..i].to_owned(),
            _ => message,
        };
        ConfigError::Parse {
            path: PathBuf::from(source_name),
            line: e.location().map(|l| l.line()),
            column: e.location().map(|l| l.column()),
            message,
        }
    })?;
    let place = |e: &mut FieldError| {
        if e.line.is_none() {
            if let Some(pos) = tree.locate(&e.field) {
                e.line = Some(pos.line);
                e.column = Some(pos.column);
            }
        }
    };
    match validate(raw) {
        Ok(mut c) => {
            c.warnings.iter_mut().for_each(place);
            Ok(c)
        }
        Err(mut errors) => {
            errors.iter_mut().for_each(place);
            Err(ConfigError::Invalid {
                source_name: source_name.to_owned(),
                errors,
            })
        }
    }
}

/// No routes of its own: everything comes from Kubernetes (`--kube`
/// without `--config` or `--backend`).
pub fn discovery_only(listen: Vec<SocketAddr>, admin: Option<SocketAddr>) -> Config {
    Config {
        listen,
        listen_tls: Vec::new(),
        tls: TlsConfig::default(),
        admin,
        listener: DEFAULT_LISTENER,
        drain_timeout: DEFAULT_DRAIN,
        shutdown_delay: Duration::ZERO,
        reload_interval: DEFAULT_RELOAD_INTERVAL,
        routes: Vec::new(),
        default_backend: None,
        defaults: DEFAULTS,
        access_log: crate::access_log::Format::default(),
        server_header: ServerHeader::default(),
        endpoint_metrics: false,
        dns_refresh: DEFAULT_DNS_REFRESH,
        warnings: Vec::new(),
    }
}

/// The quick form: one catch-all route over `backends` (each parsed by
/// clap already: only duplicates are left to refuse).
pub fn quick(
    listen: Vec<SocketAddr>,
    admin: Option<SocketAddr>,
    backends: &[Backend],
    strategy: Strategy,
) -> Result<Config, ConfigError> {
    let mut v = Validator::default();
    let mut endpoints = Vec::new();
    let mut names = Vec::new();
    for (i, b) in backends.iter().enumerate() {
        v.add_backend(&format!("--backend[{i}]"), b, &mut endpoints, &mut names);
    }
    v.check_duplicate_endpoints("--backend", &endpoints);
    if endpoints.is_empty() && names.is_empty() {
        v.error("--backend", "at least one backend is needed");
    }
    if !v.errors.is_empty() {
        return Err(ConfigError::Invalid {
            source_name: "command line".into(),
            errors: v.errors,
        });
    }
    let route = RouteSpec {
        name: "default".into(),
        host: HostMatch::Any,
        path: "/".into(),
        path_type: PathType::Prefix,
        upstream: UpstreamSpec {
            name: "default".into(),
            strategy,
            protocol: Protocol::Http1,
            endpoints,
            health: HealthPolicy::default(),
            max_idle_per_endpoint: DEFAULT_MAX_IDLE,
            names,
        },
        timeouts: DEFAULT_TIMEOUTS,
        retry: DEFAULT_RETRY,
        canary: None,
        max_request_body: None,
        ssl_redirect: None,
    };
    let warnings = unused_weights("--backend", &route.upstream)
        .into_iter()
        .collect();
    Ok(Config {
        routes: vec![route],
        warnings,
        ..discovery_only(listen, admin)
    })
}

/// How often backends given by DNS name are resolved again (`dns_refresh`).
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(30);

/// Two listen addresses that would take the same connections: the same
/// port, and the same address or either one a wildcard (`0.0.0.0`, `::`).
/// Port 0 overlaps nothing: the kernel gives each such listener a port of
/// its own.
pub fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// An error at `field`: a message, or an error type that says what
    /// was wrong with the value.
    fn error(&mut self, field: impl Into<String>, message: impl fmt::Display) {
        // Top-level settings are checked with an empty prefix.
        let field: String = field.into();
        self.errors.push(FieldError {
            field: field.trim_start_matches('.').to_owned(),
            message: message.to_string(),
            line: None,
            column: None,
        });
    }

    fn addr(&mut self, field: &str, s: &str) -> Option<SocketAddr> {
        match s.trim().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(field, format!("{s:?} is not an IP:port address"));
                None
            }
        }
    }

    fn duration(&mut self, field: &str, s: Option<&String>, default: Duration) -> Duration {
        let Some(s) = s else { return default };
        match humantime::parse_duration(s.trim()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.error(field, "must be greater than zero");
                default
            }
            Err(e) => {
                self.error(
                    field,
                    format!("{s:?} is not a duration like 5s or 250ms ({e})"),
                );
                default
            }
        }
    }

    /// A limit, read by the same function its command-line flag uses;
    /// the default, and an error naming the field, when it is wrong.
    fn limit<T>(
        &mut self,
        field: &str,
        s: Option<&str>,
        parse: fn(&str) -> Result<T, ValueError>,
        default: T,
    ) -> T {
        match s.map(parse) {
            None => default,
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                self.error(field, e);
                default
            }
        }
    }

    fn size(&mut self, field: &str, s: Option<&String>, default: Option<u64>) -> Option<u64> {
        let Some(s) = s else { return default };
        parse_size(s).unwrap_or_else(|e| {
            self.error(field.trim_start_matches('.'), e);
            default
        })
    }

    /// The `tls:` block. Only paths here: the files are read (and a bad
    /// one refused) by whoever loads the config, at start and at reload.
    fn tls(&mut self, raw: &raw::RawTls) -> TlsConfig {
        let files = |v: &mut Self, field: &str, f: &raw::RawCertFiles| {
            for (part, path) in [("cert", &f.cert), ("key", &f.key)] {
                if path.trim().is_empty() {
                    v.error(format!("{field}.{part}"), "must name a file");
                }
            }
            CertFiles {
                cert: PathBuf::from(&f.cert),
                key: PathBuf::from(&f.key),
            }
        };
        let certificates = raw
            .certificates
            .iter()
            .enumerate()
            .map(|(i, f)| files(self, &format!("tls.certificates[{i}]"), f))
            .collect();
        let default_certificate = raw
            .default_certificate
            .as_ref()
            .map(|f| files(self, "tls.default_certificate", f));
        let defaults = Policy::default();
        let redirect_port = match raw.redirect_port {
            Some(0) => {
                self.error("tls.redirect_port", "must be a port, 1..=65535");
                defaults.redirect_port
            }
            Some(p) => p,
            None => defaults.redirect_port,
        };
        let hsts = raw.hsts.as_ref().map(|h| Hsts {
            // ingress-nginx's default: 180 days.
            max_age: match h.max_age.as_deref().map(str::trim) {
                Some("0") | Some("0s") => Duration::ZERO,
                Some(_) => self.duration(
                    "tls.hsts.max_age",
                    h.max_age.as_ref(),
                    Duration::from_secs(15_724_800),
                ),
                None => Duration::from_secs(15_724_800),
            },
            include_subdomains: h.include_subdomains,
            preload: h.preload,
        });
        TlsConfig {
            certificates,
            default_certificate,
            policy: Policy {
                redirect: raw.redirect.unwrap_or(defaults.redirect),
                redirect_port,
                hsts,
            },
        }
    }

    /// A list of networks; each bad entry is an error naming its index.
    fn networks(&mut self, field: &str, list: &[String]) -> Vec<ipnet::IpNet> {
        let mut nets = Vec::new();
        for (i, c) in list.iter().enumerate() {
            match parse_cidr(c) {
                Ok(n) => nets.push(n),
                Err(e) => self.error(format!("{field}[{i}]"), e),
            }
        }
        nets
    }

    fn weight(&mut self, field: &str, w: u32) -> u32 {
        backend::check_weight(w).unwrap_or_else(|e| {
            self.error(field, e.to_string());
            1
        })
    }

    /// `IP:PORT[=WEIGHT]` or `HOST:PORT[=WEIGHT]`, into `endpoints` or
    /// `names`.
    fn backend_into(
        &mut self,
        field: &str,
        s: &str,
        endpoints: &mut Vec<EndpointSpec>,
        names: &mut Vec<NamedBackend>,
    ) {
        // The address and the weight are checked apart, so that both
        // are reported when both are wrong.
        let (addr, weight) = match s.split_once('=') {
            Some((a, w)) => match backend::parse_weight(w) {
                Ok(w) => (a, w),
                Err(e) => {
                    self.error(format!("{field}.weight"), e.to_string());
                    (a, 1)
                }
            },
            None => (s, 1),
        };
        self.push_target(field, addr, weight, endpoints, names);
    }

    fn push_target(
        &mut self,
        field: &str,
        addr: &str,
        weight: u32,
        endpoints: &mut Vec<EndpointSpec>,
        names: &mut Vec<NamedBackend>,
    ) {
        match Target::parse(addr) {
            Ok(target) => self.add_backend(field, &Backend { target, weight }, endpoints, names),
            Err(e) => self.error(field, e.to_string()),
        }
    }

    /// A parsed backend, into `endpoints` or `names`; a name listed twice
    /// is an error.
    fn add_backend(
        &mut self,
        field: &str,
        b: &Backend,
        endpoints: &mut Vec<EndpointSpec>,
        names: &mut Vec<NamedBackend>,
    ) {
        match &b.target {
            Target::Addr(a) => endpoints.push(EndpointSpec::new(*a, b.weight)),
            Target::Name(host, port) => {
                if names.iter().any(|n| n.host == *host && n.port == *port) {
                    self.error(field, format!("backend {host}:{port} is listed twice"));
                } else {
                    names.push(NamedBackend {
                        host: host.clone(),
                        port: *port,
                        weight: b.weight,
                    });
                }
            }
        }
    }

    fn check_duplicate_endpoints(&mut self, field: &str, endpoints: &[EndpointSpec]) {
        let mut seen = std::collections::HashSet::new();
        for e in endpoints {
            if !seen.insert(e.addr) {
                self.error(field, format!("backend {} is listed twice", e.addr));
            }
        }
    }

    fn timeouts(
        &mut self,
        field: &str,
        raw: Option<&RawTimeouts>,
        base: RouteTimeouts,
    ) -> RouteTimeouts {
        let Some(raw) = raw else { return base };
        for (name, set) in [
            ("request_header", raw.request_header.is_some()),
            ("http2_idle", raw.http2_idle.is_some()),
            ("send", raw.send.is_some()),
        ] {
            if set {
                self.error(
                    format!("{field}.timeouts.{name}"),
                    "a listener setting: set it in the top-level timeouts",
                );
            }
        }
        RouteTimeouts {
            connect: self.duration(
                &format!("{field}.timeouts.connect"),
                raw.connect.as_ref(),
                base.connect,
            ),
            response_header: self.duration(
                &format!("{field}.timeouts.response_header"),
                raw.response_header.as_ref(),
                base.response_header,
            ),
            upstream_idle: self.duration(
                &format!("{field}.timeouts.upstream_idle"),
                raw.upstream_idle.as_ref(),
                base.upstream_idle,
            ),
            request_body: self.duration(
                &format!("{field}.timeouts.request_body"),
                raw.request_body.as_ref(),
                base.request_body,
            ),
        }
    }

    fn retry(&mut self, field: &str, raw: Option<&RawRetry>, base: RetryPolicy) -> RetryPolicy {
        match raw.and_then(|r| r.attempts) {
            None => base,
            Some(a) if (1..=MAX_ATTEMPTS).contains(&a) => RetryPolicy { attempts: a },
            Some(a) => {
                self.error(
                    format!("{field}.retry.attempts"),
                    format!("{a} is out of range 1..={MAX_ATTEMPTS}"),
                );
                base
            }
        }
    }

    fn health(&mut self, field: &str, raw: Option<&RawHealth>, base: HealthPolicy) -> HealthPolicy {
        let Some(raw) = raw else { return base };
        let mut h = base;
        if let Some(k) = raw.consecutive_failures {
            h.consecutive_failures = k;
        }
        h.base_ejection = self.duration(
            &format!("{field}.health.base_ejection"),
            raw.base_ejection.as_ref(),
            base.base_ejection,
        );
        h.max_ejection = self.duration(
            &format!("{field}.health.max_ejection"),
            raw.max_ejection.as_ref(),
            base.max_ejection,
        );
        const DAY: Duration = Duration::from_secs(86_400);
        if h.max_ejection > DAY {
            self.error(
                format!("{field}.health.max_ejection"),
                "must be at most 24h",
            );
            h.max_ejection = DAY;
        }
        if h.base_ejection > DAY {
            self.error(
                format!("{field}.health.base_ejection"),
                "must be at most 24h",
            );
            h.base_ejection = DAY;
        }
        if h.max_ejection < h.base_ejection {
            self.error(
                format!("{field}.health.max_ejection"),
                "must not be shorter than base_ejection",
            );
        }
        if let Some(p) = raw.panic_threshold {
            if p > 100 {
                self.error(
                    format!("{field}.health.panic_threshold"),
                    format!("{p} is not a percentage"),
                );
            } else {
                h.panic_threshold_percent = p as u8;
            }
        }
        h
    }
}

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

fn validate(raw: RawConfig) -> Result<Config, Vec<FieldError>> {
    let mut v = Validator::default();
    let mut listen = Vec::new();
    for (i, l) in raw.listen.iter().enumerate() {
        if let Some(a) = v.addr(&format!("listen[{i}]"), l) {
            listen.push(a);
        }
    }
    let mut listen_tls = Vec::new();
    for (i, l) in raw.listen_tls.iter().enumerate() {
        if let Some(a) = v.addr(&format!("listen_tls[{i}]"), l) {
            if a.port() != 0 && listen.contains(&a) {
                v.error(
                    format!("listen_tls[{i}]"),
                    format!("{a} is also in listen: one port cannot be both HTTP and HTTPS"),
                );
            }
            listen_tls.push(a);
        }
    }
    let admin = raw.admin.as_deref().and_then(|a| v.addr("admin", a));
    if let Some(admin) = admin {
        if let Some(traffic) = listen
            .iter()
            .chain(&listen_tls)
            .find(|l| overlap(admin, **l))
        {
            v.error(
                "admin",
                format!(
                    "{admin} overlaps the traffic listener {traffic}: the admin listener needs a \
                     port of its own, so that it is never reachable where traffic is"
                ),
            );
        }
    }
    let tls = v.tls(&raw.tls);
    let t = &raw.timeouts;
    let listener = ListenerSettings {
        request_header_timeout: v.duration(
            "timeouts.request_header",
            t.request_header.as_ref(),
            DEFAULT_LISTENER.request_header_timeout,
        ),
        http2_idle_timeout: v.duration(
            "timeouts.http2_idle",
            t.http2_idle.as_ref(),
            DEFAULT_LISTENER.http2_idle_timeout,
        ),
        send_timeout: v.duration(
            "timeouts.send",
            t.send.as_ref(),
            DEFAULT_LISTENER.send_timeout,
        ),
        http1_fast_path: raw
            .http1_fast_path
            .unwrap_or(DEFAULT_LISTENER.http1_fast_path),
        proxy_protocol: {
            let nets = v.networks("proxy_protocol_from", &raw.proxy_protocol_from);
            (raw.proxy_protocol.unwrap_or(false) || !nets.is_empty())
                .then(|| std::sync::Arc::new(crate::forwarded::Trusted(nets)))
        },
        trust_forwarded_for: {
            let nets = v.networks("trust_forwarded_for", &raw.trust_forwarded_for);
            (!nets.is_empty()).then(|| std::sync::Arc::new(crate::forwarded::Trusted(nets)))
        },
        max_connections: raw
            .limits
            .max_connections
            .unwrap_or(DEFAULT_LISTENER.max_connections),
        max_in_flight: raw.limits.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT),
        max_memory: match raw.limits.max_memory.as_deref().map(parse_max_memory) {
            None => crate::memory::MaxMemory::Auto,
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                v.error("limits.max_memory", e);
                crate::memory::MaxMemory::Auto
            }
        },
        http2_max_concurrent_streams: v.limit(
            "limits.http2_max_concurrent_streams",
            raw.limits
                .http2_max_concurrent_streams
                .map(|n| n.to_string())
                .as_deref(),
            parse_http2_streams,
            DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
        ),
        max_header_size: v.limit(
            "limits.max_header_size",
            raw.limits.max_header_size.as_deref(),
            parse_max_header_size,
            DEFAULT_MAX_HEADER_SIZE,
        ),
        max_headers: v.limit(
            "limits.max_headers",
            raw.limits.max_headers.map(|n| n.to_string()).as_deref(),
            parse_max_headers,
            DEFAULT_MAX_HEADERS,
        ),
        http2_stream_window: v.limit(
            "limits.http2_stream_window",
            raw.limits.http2_stream_window.as_deref(),
            parse_http2_window,
            DEFAULT_HTTP2_WINDOW,
        ),
        http2_connection_window: v.limit(
            "limits.http2_connection_window",
            raw.limits.http2_connection_window.as_deref(),
            parse_http2_window,
            DEFAULT_HTTP2_WINDOW,
        ),
        max_uri: v.limit(
            "limits.max_uri",
            raw.limits.max_uri.as_deref(),
            parse_max_uri,
            DEFAULT_MAX_URI,
        ),
    };
    let defaults = Defaults {
        timeouts: RouteTimeouts {
            connect: v.duration(
                "timeouts.connect",
                t.connect.as_ref(),
                DEFAULT_TIMEOUTS.connect,
            ),
            response_header: v.duration(
                "timeouts.response_header",
                t.response_header.as_ref(),
                DEFAULT_TIMEOUTS.response_header,
            ),
            upstream_idle: v.duration(
                "timeouts.upstream_idle",
                t.upstream_idle.as_ref(),
                DEFAULT_TIMEOUTS.upstream_idle,
            ),
            request_body: v.duration(
                "timeouts.request_body",
                t.request_body.as_ref(),
                DEFAULT_TIMEOUTS.request_body,
            ),
        },
        retry: v.retry("", Some(&raw.retry), DEFAULT_RETRY),
        health: v.health("", Some(&raw.health), HealthPolicy::default()),
        max_idle: raw
            .upstream
            .max_idle_per_endpoint
            .unwrap_or(DEFAULT_MAX_IDLE),
        max_request_body: v.size("max_request_body", raw.max_request_body.as_ref(), None),
    };
    let access_log = match raw.access_log.as_deref().map(str::parse) {
        None => crate::access_log::Format::default(),
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            v.error("access_log", e);
            crate::access_log::Format::default()
        }
    };
    let server_header = match raw.server_header.as_deref().map(str::trim) {
        None | Some("add") => ServerHeader::Add,
        Some("pass") => ServerHeader::Pass,
        Some("off") => ServerHeader::Off,
        Some(other) => {
            v.error(
                "server_header",
                format!("{other:?} is not add, pass or off"),
            );
            ServerHeader::Add
        }
    };
    let dns_refresh = v.duration("dns_refresh", raw.dns_refresh.as_ref(), DEFAULT_DNS_REFRESH);
    if dns_refresh < Duration::from_secs(1) {
        v.error("dns_refresh", "must be 1s or more");
    }
    let drain_timeout = v.duration("drain_timeout", raw.drain_timeout.as_ref(), DEFAULT_DRAIN);
    // Zero is allowed here: no delay.
    let shutdown_delay = match raw.shutdown_delay.as_deref().map(str::trim) {
        None | Some("0") | Some("0s") => Duration::ZERO,
        Some(d) => v.duration("shutdown_delay", Some(&d.to_owned()), Duration::ZERO),
    };
    let reload_interval = v.duration(
        "reload_interval",
        raw.reload_interval.as_ref(),
        DEFAULT_RELOAD_INTERVAL,
    );

    let mut routes: Vec<RouteSpec> = Vec::new();
    let mut seen: Vec<(HostMatch, String, PathType, usize)> = Vec::new();
    for (i, r) in raw.routes.iter().enumerate() {
        let field = format!("routes[{i}]");
        let host = match r.host.as_deref() {
            None => HostMatch::Any,
            Some(h) => match HostMatch::parse(h) {
                Ok(h) => h,
                Err(e) => {
                    v.error(format!("{field}.host"), e);
                    HostMatch::Any
                }
            },
        };
        let path = r.path.clone().unwrap_or_else(|| "/".into());
        if !path.starts_with('/') {
            v.error(
                format!("{field}.path"),
                format!("{path:?} must start with /"),
            );
        }
        let path_type = match r.path_type.as_deref() {
            None => PathType::Prefix,
            Some(p) => match p.parse() {
                Ok(p) => p,
                Err(e) => {
                    v.error(format!("{field}.path_type"), e);
                    PathType::Prefix
                }
            },
        };
        let name: Arc<str> = match &r.name {
            Some(n) if n.trim().is_empty() => {
                v.error(format!("{field}.name"), "must not be empty");
                format!("route-{i}").into()
            }
            Some(n) => n.as_str().into(),
            None if path_type == PathType::Exact => format!("{host}{path} (Exact)").into(),
            None => format!("{host}{path}").into(),
        };
        if let Some(j) = routes.iter().position(|r| r.name == name) {
            v.error(
                format!("{field}.name"),
                format!("{name:?} is already the name of routes[{j}]"),
            );
        }
        let key_path = path_type.normalize(&path);
        if let Some((_, _, _, j)) = seen
            .iter()
            .find(|(h, p, t, _)| *h == host && *p == key_path && *t == path_type)
        {
            v.error(
                field.clone(),
                format!("matches the same host, path and path type as routes[{j}]"),
            );
        }
        seen.push((host.clone(), key_path, path_type, i));
        let (upstream, timeouts, retry, max_request_body) =
            backend_set(&mut v, &field, &r.set, &defaults, name.clone());
        routes.push(RouteSpec {
            name,
            host,
            path,
            path_type,
            upstream,
            timeouts,
            retry,
            canary: None,
            max_request_body,
            ssl_redirect: r.ssl_redirect,
        });
    }
    let default_backend = raw.default_backend.as_ref().map(|set| {
        let (upstream, timeouts, retry, max_request_body) = backend_set(
            &mut v,
            "default_backend",
            set,
            &defaults,
            "default-backend".into(),
        );
        RouteSpec {
            name: "default-backend".into(),
            host: HostMatch::Any,
            path: "/".into(),
            path_type: PathType::Prefix,
            upstream,
            timeouts,
            retry,
            canary: None,
            max_request_body,
            ssl_redirect: None,
        }
    });
    if v.errors.is_empty() {
        let mut warnings: Vec<FieldError> = routes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| unused_weights(&format!("routes[{i}].backends"), &r.upstream))
            .collect();
        warnings.extend(
            default_backend
                .as_ref()
                .and_then(|d| unused_weights("default_backend.backends", &d.upstream)),
        );
        // Not an error: with --kube the routes come from the cluster (the
        // Helm chart's file holds listeners and timeouts only).
        if routes.is_empty() && default_backend.is_none() {
            warnings.push(FieldError {
                field: "routes".into(),
                message: "no routes and no default_backend: every request is a 404 \
                          unless --kube discovers routes"
                    .into(),
                line: None,
                column: None,
            });
        }
        if !tls.certificates.is_empty() && listen_tls.is_empty() {
            warnings.push(FieldError {
                field: "tls.certificates".into(),
                message: "no listen_tls address: the certificates serve nothing".into(),
                line: None,
                column: None,
            });
        }
        Ok(Config {
            listen,
            listen_tls,
            tls,
            admin,
            listener,
            drain_timeout,
            shutdown_delay,
            reload_interval,
            routes,
            default_backend,
            defaults,
            access_log,
            server_header,
            endpoint_metrics: raw.endpoint_metrics.unwrap_or(false),
            dns_refresh,
            warnings,
        })
    } else {
        Err(v.errors)
    }
}

fn backend_set(
    v: &mut Validator,
    field: &str,
    set: &RawBackendSet,
    defaults: &Defaults,
    name: Arc<str>,
) -> (UpstreamSpec, RouteTimeouts, RetryPolicy, Option<u64>) {
    let strategy = match set.strategy.as_deref() {
        None => Strategy::RoundRobin,
        Some(s) => s.parse::<Strategy>().unwrap_or_else(|e| {
            v.error(format!("{field}.strategy"), e.to_string());
            Strategy::RoundRobin
        }),
    };
    let protocol = match set.upstream_protocol.as_deref() {
        None | Some("http1") | Some("http/1.1") => Protocol::Http1,
        Some("http2") | Some("h2c") | Some("h2") => Protocol::Http2,
        Some(p) => {
            v.error(
                format!("{field}.upstream_protocol"),
                format!("{p:?} is not http1 or http2"),
            );
            Protocol::Http1
        }
    };
    let mut endpoints = Vec::new();
    let mut names = Vec::new();
    for (j, b) in set.backends.iter().enumerate() {
        let bf = format!("{field}.backends[{j}]");
        match b {
            RawBackend::Short(s) => v.backend_into(&bf, s, &mut endpoints, &mut names),
            RawBackend::Long { address, weight } => {
                let w = v.weight(&format!("{bf}.weight"), weight.unwrap_or(1));
                v.push_target(
                    &format!("{bf}.address"),
                    address,
                    w,
                    &mut endpoints,
                    &mut names,
                );
            }
        }
    }
    // An empty list is allowed: the route answers 503 until backends are
    // added, as a Kubernetes Service without ready endpoints does.
    v.check_duplicate_endpoints(&format!("{field}.backends"), &endpoints);
    let upstream = UpstreamSpec {
        name,
        strategy,
        protocol,
        endpoints,
        health: v.health(field, set.health.as_ref(), defaults.health),
        max_idle_per_endpoint: defaults.max_idle,
        names,
    };
    let timeouts = v.timeouts(field, set.timeouts.as_ref(), defaults.timeouts);
    let retry = v.retry(field, set.retry.as_ref(), defaults.retry);
    let max_request_body = v.size(
        &format!("{field}.max_request_body"),
        set.max_request_body.as_ref(),
        defaults.max_request_body,
    );
    (upstream, timeouts, retry, max_request_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../examples/sluice.yaml");

    #[test]
    fn the_example_file_is_valid() {
        let c = parse_str(EXAMPLE, "examples/sluice.yaml").unwrap();
        assert!(!c.routes.is_empty());
        assert!(c.admin.is_some());
    }

    /// Every key of the example, misspelt one at a time, is refused at
    /// its own line, with its field named.
    #[test]
    fn a_misspelling_of_any_field_is_caught_at_its_line() {
        let mut tried = 0;
        for (i, line) in EXAMPLE.lines().enumerate() {
            let body = line.trim_start().trim_start_matches("- ");
            if body.starts_with('#') {
                continue;
            }
            let Some((key, _)) = body.split_once(':') else {
                continue;
            };
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                continue;
            }
            let typo = format!("{key}x");
            let at = line.find(key).unwrap();
            let mut lines: Vec<String> = EXAMPLE.lines().map(str::to_owned).collect();
            lines[i].replace_range(at..at + key.len(), &typo);
            let text = lines.join("\n");
            let errors = match parse_str(&text, "example") {
                Err(ConfigError::Invalid { errors, .. }) => errors,
                other => panic!("line {}: `{typo}` was not refused: {other:?}", i + 1),
            };
            assert!(
                errors.iter().any(|e| e.line == Some(i + 1)
                    && e.column == Some(at + 1)
                    && e.field.ends_with(&typo)
                    && e.message.contains(&format!("did you mean `{key}`?"))),
                "line {}: `{typo}` reported as {errors:?}",
                i + 1
            );
            tried += 1;
        }
        assert!(tried > 40, "only {tried} keys found in the example");
    }

    #[test]
    fn http2_windows_are_sizes_within_bounds() {
        let c = parse_str(
            "listen: 127.0.0.1:8080\nlimits: {http2_stream_window: 256k, http2_connection_window: 4m}\ndefault_backend: {backends: [127.0.0.1:1]}\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.listener.http2_stream_window, 256 << 10);
        assert_eq!(c.listener.http2_connection_window, 4 << 20);
        for bad in ["1k", "2g", "0", "lots"] {
            let text = format!(
                "listen: 127.0.0.1:8080\nlimits: {{http2_stream_window: {bad}}}\ndefault_backend: {{backends: [127.0.0.1:1]}}\n"
            );
            let Err(ConfigError::Invalid { errors, .. }) = parse_str(&text, "t") else {
                panic!("{bad} accepted");
            };
            assert_eq!(
                errors[0].field, "limits.http2_stream_window",
                "{bad}: {errors:?}"
            );
        }
    }

    #[test]
    fn schema_errors_come_all_at_once_and_semantic_ones_at_their_keys() {
        let text = "listen: 127.0.0.1:8080\nretry:\n  attemps: 3\nroutes:\n  - name: a\n    backends:\n      - {address: 127.0.0.1:9001, wieght: 5}\ndefault_backend:\n  backendz: [127.0.0.1:9001]\n";
        let Err(ConfigError::Invalid { errors, .. }) = parse_str(text, "t") else {
            panic!("accepted");
        };
        let lines: Vec<Option<usize>> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [Some(3), Some(7), Some(9)], "{errors:?}");

        let text = "listen: [127.0.0.1:8080]\nroutes:\n  - name: a\n    backends: [127.0.0.1:9001]\n    retry:\n      attempts: 50\n";
        let Err(ConfigError::Invalid { errors, .. }) = parse_str(text, "t") else {
            panic!("accepted");
        };
        assert_eq!(errors[0].field, "routes[0].retry.attempts");
        assert_eq!((errors[0].line, errors[0].column), (Some(6), Some(7)));
        // One address without brackets is a list of one.
        let c = parse_str(
            "listen: 127.0.0.1:8080\ndefault_backend: {backends: [127.0.0.1:1]}\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.listen.len(), 1);
    }

    #[test]
    fn every_error_names_its_field() {
        let text = r#"
listen: [nonsense]
admin: 127.0.0.1:9901
timeouts: { connect: fast }
routes:
  - host: "api.example.com"
    path: v1
    path_type: Regex
    strategy: random
    backends:
      - 127.0.0.1:9001=0
      - address: 127.0.0.1:99999
  - host: "*.*.example.com"
    backends: [127.0.0.1:1, 127.0.0.1:1]
"#;
        let err = parse_str(text, "t.yaml").unwrap_err();
        let fields: Vec<String> = match &err {
            ConfigError::Invalid { errors, .. } => errors.iter().map(|e| e.field.clone()).collect(),
            other => panic!("{other}"),
        };
        for f in [
            "listen[0]",
            "timeouts.connect",
            "routes[0].path",
            "routes[0].path_type",
            "routes[0].strategy",
            "routes[0].backends[0].weight",
            "routes[0].backends[1].address",
            "routes[1].host",
            "routes[1].backends",
        ] {
            assert!(fields.iter().any(|x| x == f), "missing {f} in {fields:?}");
        }
    }

    #[test]
    fn relative_certificate_paths_are_the_files_folder() {
        let text = "listen_tls: [127.0.0.1:443]\ntls:\n  certificates: [{cert: certs/a.pem, key: /abs/a.key}]\n  default_certificate: {cert: d.pem, key: d.key}\nroutes:\n  - backends: [127.0.0.1:1]\n";
        let c = parse_file_text(text, Path::new("/etc/sluice/sluice.yaml")).unwrap();
        assert_eq!(
            c.tls.certificates[0].cert,
            PathBuf::from("/etc/sluice/certs/a.pem")
        );
        assert_eq!(c.tls.certificates[0].key, PathBuf::from("/abs/a.key"));
        let d = c.tls.default_certificate.unwrap();
        assert_eq!(d.key, PathBuf::from("/etc/sluice/d.key"));
    }

    #[test]
    fn tls_settings_are_checked_by_field() {
        let text = "listen: [127.0.0.1:80]\nlisten_tls: [127.0.0.1:443, 127.0.0.1:80]\ntls:\n  certificates: [{cert: a.pem, key: ''}]\n  redirect_port: 0\n  hsts: {max_age: soon}\nroutes:\n  - {backends: [127.0.0.1:1], ssl_redirect: false}\n";
        let e = parse_str(text, "t.yaml").unwrap_err().lines().join("\n");
        for field in [
            "listen_tls[1]",
            "tls.certificates[0].key",
            "tls.redirect_port",
            "tls.hsts.max_age",
        ] {
            assert!(e.contains(field), "{field} in {e}");
        }
        let ok = "listen_tls: [127.0.0.1:443]\ntls:\n  certificates: [{cert: a.pem, key: a.key}]\n  redirect: false\n  hsts: {include_subdomains: true}\nroutes:\n  - {backends: [127.0.0.1:1], ssl_redirect: true}\n";
        let c = parse_str(ok, "t.yaml").unwrap();
        assert_eq!(c.listen_tls.len(), 1);
        assert_eq!(c.tls.certificates[0].key, PathBuf::from("a.key"));
        assert!(!c.tls.policy.redirect);
        let hsts = c.tls.policy.hsts.unwrap();
        assert_eq!(hsts.max_age, Duration::from_secs(15_724_800));
        assert!(hsts.include_subdomains);
        assert_eq!(c.routes[0].ssl_redirect, Some(true));
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let err = parse_str("routes:\n  - backendz: []\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("backendz"), "{err}");
    }

    #[test]
    fn duplicate_routes_are_refused() {
        let text = "routes:\n  - {host: a.com, path: /x/, backends: [127.0.0.1:1]}\n  - {host: a.com, path: /x, backends: [127.0.0.1:2]}\n";
        let err = parse_str(text, "t").unwrap_err();
        assert!(err.to_string().contains("routes[1]"), "{err}");
    }

    #[test]
    fn quick_form_parses_weights() {
        let c = quick(
            vec!["127.0.0.1:8080".parse().unwrap()],
            None,
            &[
                "127.0.0.1:9001".parse().unwrap(),
                "127.0.0.1:9002=3".parse().unwrap(),
            ],
            Strategy::Weighted,
        )
        .unwrap();
        let w: Vec<u32> = c.routes[0]
            .upstream
            .endpoints
            .iter()
            .map(|e| e.weight)
            .collect();
        assert_eq!(w, [1, 3]);
        let twice: Backend = "127.0.0.1:9001".parse().unwrap();
        let err = quick(vec![], None, &[twice.clone(), twice], Strategy::Weighted).unwrap_err();
        assert!(
            err.to_string()
                .contains("--backend: backend 127.0.0.1:9001 is listed twice"),
            "{err}"
        );
        assert!(quick(vec![], None, &[], Strategy::Weighted).is_err());
    }
}
