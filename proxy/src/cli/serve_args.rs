//! The flags of `sluice serve`: listeners, the config's sources, limits
//! and Kubernetes discovery, with the parsers of the values clap's own do
//! not check.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use sluice::balance::Strategy;
use sluice::config;

// What `sluice serve` takes. Its help text is the `Serve` variant's
// comment in `args`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// YAML config file (reloaded on change and on SIGHUP).
    #[arg(long, conflicts_with_all = ["backend", "strategy"])]
    pub config: Option<PathBuf>,
    /// Address to accept traffic on (repeatable); overrides the file's `listen`.
    #[arg(long)]
    pub listen: Vec<SocketAddr>,
    /// Address to accept HTTPS on (repeatable); overrides the file's
    /// `listen_tls`.
    #[arg(long)]
    pub listen_tls: Vec<SocketAddr>,
    /// A PEM certificate chain for HTTPS (repeatable, each with its
    /// --tls-key); SNI picks it by the names it holds. Without any, a
    /// self-signed certificate answers.
    #[arg(
        long,
        value_name = "PEM",
        requires = "listen_tls",
        conflicts_with = "config"
    )]
    pub tls_cert: Vec<PathBuf>,
    /// The PEM private key of the --tls-cert in the same position.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Vec<PathBuf>,
    /// Address of the admin listener; overrides the file's `admin`.
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// A backend as IP:PORT or HOST:PORT, with =WEIGHT optional
    /// (repeatable): one catch-all route.
    #[arg(long, value_name = "ADDR[=WEIGHT]")]
    pub backend: Vec<config::Backend>,
    /// How the catch-all route balances.
    #[arg(long, value_enum)]
    pub strategy: Option<Strategy>,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = workers)]
    pub workers: Option<usize>,
    /// After SIGTERM, keep serving this long with /readyz at 503 before
    /// closing the listeners (e.g. 5s behind a cloud LoadBalancer).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub shutdown_delay: Option<std::time::Duration>,
    /// Client connections open at once on all traffic listeners (overrides
    /// the file's `limits.max_connections`; 0: no limit; default 10000).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Requests in flight past which new ones get 503 with Retry-After
    /// (overrides the file's `limits.max_in_flight`; 0: no guard; default
    /// 20000).
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// Resident memory past which new requests get 503 with Retry-After
    /// (overrides the file's `limits.max_memory`: a size like 512m, `auto`
    /// for 90 % of the container's limit, the default, or 0 for no guard).
    #[arg(long, value_name = "SIZE", value_parser = config::parse_max_memory)]
    pub max_memory: Option<sluice::memory::MaxMemory>,
    /// The longest request target taken, past which 414 (overrides the
    /// file's `limits.max_uri`; 0: no limit; default 8k).
    #[arg(long, value_name = "SIZE", value_parser = config::parse_max_uri)]
    pub max_uri: Option<usize>,
    /// The largest request head or HTTP/2 header list, past which 431
    /// (overrides the file's `limits.max_header_size`; default 32k).
    #[arg(long, value_name = "SIZE", value_parser = config::parse_max_header_size)]
    pub max_header_size: Option<usize>,
    /// The most header fields in a request, past which 431 (overrides the
    /// file's `limits.max_headers`; default 100).
    #[arg(long, value_name = "N", value_parser = config::parse_max_headers)]
    pub max_headers: Option<usize>,
    /// HTTP/2 streams a client may have open at once (overrides the
    /// file's `limits.http2_max_concurrent_streams`; default 128).
    #[arg(long, value_name = "N", value_parser = config::parse_http2_streams)]
    pub http2_max_concurrent_streams: Option<u32>,
    /// The HTTP/2 flow-control windows offered to clients, per stream and
    /// per connection (override `limits.http2_stream_window` and
    /// `limits.http2_connection_window`; default 1m each).
    #[arg(long, value_name = "SIZE", value_parser = config::parse_http2_window)]
    pub http2_stream_window: Option<u32>,
    #[arg(long, value_name = "SIZE", value_parser = config::parse_http2_window)]
    pub http2_connection_window: Option<u32>,
    /// Requests and latency per endpoint too, in
    /// sluice_endpoint_requests_total and sluice_endpoint_response_seconds
    /// (a series per pod; overrides the file's `endpoint_metrics`).
    #[arg(long)]
    pub endpoint_metrics: bool,
    /// Serve every request through hyper and the h2 crate, turning off
    /// the lean HTTP/1.1 fast path and Sluice's own HTTP/2 server
    /// (overrides the file's `http1_fast_path` and `http2_fast_path`).
    #[arg(long)]
    pub no_fast_path: bool,
    /// Serve HTTP/2 with Sluice's own server rather than the h2 crate
    /// (overrides the file's `http2_fast_path`).
    #[arg(long, conflicts_with = "no_fast_path")]
    pub http2_fast_path: bool,
    /// The access log on stdout: off, text or json (overrides the file's
    /// `access_log`; default text).
    #[arg(long, value_enum)]
    pub access_log: Option<sluice::access_log::Format>,
    /// Read a PROXY protocol header (v1 or v2, as a cloud LoadBalancer
    /// sends) first on every client connection.
    #[arg(long)]
    pub proxy_protocol: bool,
    /// Accept PROXY headers only from this network (repeatable; implies
    /// --proxy-protocol); connections from elsewhere are closed.
    #[arg(long, value_name = "CIDR", value_parser = sluice::config::parse_cidr)]
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
    /// Take the client's address from X-Forwarded-For when the connection
    /// comes from this network (repeatable): a LoadBalancer that sets it.
    #[arg(long, value_name = "CIDR", value_parser = sluice::config::parse_cidr)]
    pub trust_forwarded_for: Vec<ipnet::IpNet>,
    /// The header --trust-forwarded-for networks name the client in
    /// (default X-Forwarded-For; a CDN's, such as CF-Connecting-IP).
    #[arg(long, value_name = "NAME", value_parser = parse_header_name)]
    pub forwarded_for_header: Option<http::HeaderName>,
    /// What X-Forwarded-For holds upstream: `append` (what came, then the
    /// peer) or `replace` (the real client alone, as ingress-nginx).
    #[arg(long, value_name = "MODE", value_parser = parse_forwarded_for)]
    pub forwarded_for: Option<sluice::policy::ForwardedFor>,
    /// Set X-Real-IP to the real client's address.
    #[arg(long)]
    pub x_real_ip: bool,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Kubernetes discovery: an ingress controller.
#[derive(Debug, Args)]
pub struct KubeArgs {
    /// Discover routes from Ingresses, Services and EndpointSlices (in-cluster
    /// config, or --kubeconfig, or KUBECONFIG). Routes from --config or
    /// --backend are served too, and win a duplicate host and path.
    #[arg(long)]
    pub kube: bool,
    /// A kubeconfig file to reach the API server with.
    #[arg(long, requires = "kube")]
    pub kubeconfig: Option<PathBuf>,
    /// The IngressClass served (its spec.controller must be
    /// sluice.dev/ingress-controller when the IngressClass exists).
    #[arg(long, default_value = "sluice", requires = "kube")]
    pub ingress_class: String,
    /// Also serve Ingresses that name no class.
    #[arg(long, requires = "kube")]
    pub watch_ingress_without_class: bool,
    /// Watch one namespace only (default: all).
    #[arg(long, requires = "kube")]
    pub namespace: Option<String>,
    /// NAMESPACE/NAME of the Service whose LoadBalancer address Ingresses
    /// report in their status.
    #[arg(long, value_name = "NAMESPACE/NAME", requires = "kube", value_parser = namespaced_name)]
    pub publish_service: Option<String>,
    /// How long the status Lease is held without renewal before another
    /// replica may take it.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration, requires = "publish_service")]
    pub status_lease_duration: std::time::Duration,
    /// NAMESPACE/NAME of a kubernetes.io/tls Secret whose certificate
    /// answers names no other certificate holds (instead of a self-signed
    /// one; ingress-nginx's --default-ssl-certificate).
    #[arg(long, value_name = "NAMESPACE/NAME", requires = "kube", value_parser = namespaced_name)]
    pub default_tls_secret: Option<String>,
    /// The least time between two rebuilds of the routes: a change after a
    /// quiet spell is rebuilt at once; changes within this time of the last
    /// rebuild are gathered into the next one.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration, requires = "kube")]
    pub kube_debounce: std::time::Duration,
    /// Honour ingress-nginx's ssl-passthrough annotation: TLS connections
    /// whose SNI names such a host are spliced, unread, to its backend
    /// (ingress-nginx's flag of the same name; off, the annotation is
    /// ignored and reported).
    #[arg(long, requires = "kube")]
    pub enable_ssl_passthrough: bool,
    /// The controller an IngressClass must name for its Ingresses to be
    /// served.
    #[arg(long, default_value = sluice::discovery::CONTROLLER, requires = "kube")]
    pub controller_name: String,
    /// Take over ingress-nginx's Ingresses as they are: serve IngressClass
    /// `nginx` with controller `k8s.io/ingress-nginx` (shorthand for
    /// --ingress-class nginx --controller-name k8s.io/ingress-nginx). Stop
    /// ingress-nginx first: both would serve, and write, the same
    /// Ingresses.
    #[arg(long, requires = "kube", conflicts_with_all = ["ingress_class", "controller_name"])]
    pub adopt_ingress_nginx: bool,
    /// NAMESPACE/NAME of the Service that answers requests no rule matches
    /// (ingress-nginx's flag of the same name; 404 without). An Ingress's
    /// own catch-all defaultBackend wins.
    #[arg(long, value_name = "NAMESPACE/NAME", requires = "kube", value_parser = namespaced_name)]
    pub default_backend_service: Option<String>,
    /// NAMESPACE/NAME of ingress-nginx's controller ConfigMap, read at
    /// start: its keys that change how traffic is served (PROXY protocol,
    /// forwarded headers, body size, timeouts, HTTPS redirect, HSTS) apply
    /// (ingress-nginx's flag of the same name).
    #[arg(long, value_name = "NAMESPACE/NAME", requires = "kube", value_parser = namespaced_name)]
    pub configmap: Option<String>,
    /// Serve Gateway API beside Ingresses: the Gateways of this
    /// GatewayClass (whose controllerName must be
    /// sluice.dev/gateway-controller), and the HTTPRoutes attached to them.
    /// Needs the Gateway API CRDs (standard channel); status is written
    /// with --publish-service. Being built (issue 15): what is not served
    /// yet is refused in each route's status, not served wrong.
    #[arg(long, value_name = "NAME", requires = "kube")]
    pub gateway_class: Option<String>,
}

impl KubeArgs {
    /// The IngressClass served.
    pub fn class(&self) -> &str {
        if self.adopt_ingress_nginx {
            "nginx"
        } else {
            &self.ingress_class
        }
    }

    /// The controller an IngressClass must name.
    pub fn controller(&self) -> &str {
        if self.adopt_ingress_nginx {
            "k8s.io/ingress-nginx"
        } else {
            &self.controller_name
        }
    }
}

/// A flag's value that clap's own parsers do not refuse.
#[derive(Debug, thiserror::Error)]
enum FlagError {
    #[error("must be 1 or more (leave it out for one per core)")]
    NoWorkers,
    #[error("{0:?} is not a number of threads")]
    NotThreads(String, #[source] std::num::ParseIntError),
    #[error("{0:?} is not NAMESPACE/NAME")]
    NotNamespacedName(String),
}

/// `--workers N`: at least one.
fn workers(s: &str) -> Result<usize, FlagError> {
    match s.parse::<usize>() {
        Ok(0) => Err(FlagError::NoWorkers),
        Ok(n) => Ok(n),
        Err(e) => Err(FlagError::NotThreads(s.to_owned(), e)),
    }
}

/// `namespace/name`, both parts present.
fn namespaced_name(s: &str) -> Result<String, FlagError> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(s.to_owned())
        }
        _ => Err(FlagError::NotNamespacedName(s.to_owned())),
    }
}

fn parse_forwarded_for(s: &str) -> Result<sluice::policy::ForwardedFor, String> {
    sluice::policy::ForwardedFor::parse(s).ok_or_else(|| format!("{s:?} is not append or replace"))
}

fn parse_header_name(s: &str) -> Result<http::HeaderName, String> {
    http::HeaderName::from_bytes(s.as_bytes()).map_err(|_| format!("{s:?} is not a header name"))
}
