//! Sluice: a fast ingress proxy for Kubernetes.
//!
//! The crate is laid out by what each part does: [`config`] turns flags and
//! files into typed settings, [`sources`] and [`routing`] build the
//! immutable snapshot that both HTTP paths read per request ([`http`]: the
//! hyper path and the lean HTTP/1.1 fast path), [`forward`] is the core
//! both call (which endpoint next, what each outcome means, the proxy's
//! own answers) under the rules in [`policy`], [`balance`] picks
//! endpoints, [`upstream`] owns endpoints and their connections,
//! [`discovery`] reads the cluster, [`server`] and [`admin`] listen, and
//! [`app`] ties them together with reload and shutdown.
//! `docs/ARCHITECTURE.md` draws the flow.
//!
//! # Layers
//!
//! Modules import downward only, never back up, so that each can be read
//! and changed knowing only what is below it. From the bottom:
//!
//! 1. Leaves that import nothing of the crate: [`background`] (the
//!    config thread), [`balance`], [`client_body`], [`access_log`], [`memory`], [`forwarded`],
//!    [`policy`] (the proxying rules), [`tasks`], [`logfmt`], [`build`];
//!    [`proxy_protocol`] on `forwarded`, and [`metrics`] on `build`.
//! 2. [`spec`]: the shared vocabulary as plain data (routes, upstreams,
//!    endpoints, timeouts, certificate paths).
//! 3. Beside each other, each blind to the others: [`config`] and
//!    [`resolve`], which produce and complete specs; [`upstream`]
//!    (endpoints and their connections), [`tls`] (certificates,
//!    rustls) and [`limit`] (per-client rate and connection limits),
//!    which build live state from them. So config → spec ←
//!    routing, tls, upstream, and never config ⇄ routing.
//! 4. [`routing`]: the snapshot, routes over upstreams plus the
//!    certificate table.
//! 5. What reads or feeds the snapshot: [`forward`], the core both HTTP
//!    paths call, then [`http`] (the two paths), [`admin`],
//!    [`sources`] (one snapshot from every source), and [`discovery`],
//!    which feeds `sources`.
//! 6. [`Error`] and [`exit`], [`server`] (the listeners), and on top
//!    [`app`] and [`demo`].
//!
//! Within a module's folder the files import one way too
//! (`upstream::pool` → `upstream::endpoint` → `upstream::idle` →
//! `upstream::conn`). A test (`layering.rs`) reads the sources and fails
//! on any cycle.

pub mod access_log;
pub mod admin;
pub mod app;
pub mod background;
pub mod balance;
pub mod client_body;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod drain;
pub mod exit;
pub mod forward;
pub mod forwarded;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
#[cfg(test)]
mod layering;
pub mod limit;
pub mod logfmt;
pub mod memory;
pub mod metrics;
pub mod migrate;
pub mod policy;
pub mod proxy_protocol;
pub mod resolve;
pub mod routing;
pub mod server;
pub mod sources;
pub mod spec;
pub mod tasks;
pub mod tls;
pub mod upstream;

use std::net::SocketAddr;

/// Errors that stop the proxy from starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listener's address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A signal handler could not be installed.
    #[error("cannot install a handler for {signal}: {source}")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The Kubernetes client could not be set up.
    #[error("kubernetes: {0}")]
    Kube(#[from] discovery::ClientError),
    /// A certificate the config names could not be read or loaded at
    /// start.
    #[error("tls: {0}")]
    Certificate(#[from] tls::CertFileError),
    /// rustls refused the HTTPS listeners' settings.
    #[error("tls: the HTTPS settings were refused: {0}")]
    Tls(#[source] rustls::Error),
    /// A backend's DNS name did not resolve at start.
    #[error("backend {name} does not resolve: {source} (names are resolved at start, on reload and every dns_refresh)")]
    Dns {
        name: String,
        #[source]
        source: resolve::ResolveError,
    },
    /// Nothing to listen on.
    #[error("no listener address: give --listen or `listen:` in the config file")]
    NoListener,
}

/// What this binary was built from, for `sluice version` and the
/// `sluice_build_info` metric.
pub mod build {
    /// The crate's version.
    pub const VERSION: &str = env!("CARGO_PKG_VERSION");
    /// The git commit (12 hex digits), or `unknown`.
    pub const COMMIT: &str = env!("SLUICE_GIT_COMMIT");
    /// `rustc --version` of the compiler.
    pub const RUSTC: &str = env!("SLUICE_RUSTC_VERSION");
    /// What is built in: every build has all of it (there are no cargo
    /// features to leave any out).
    pub const FEATURES: &[&str] = &[
        "http1-fast-path",
        "http2",
        "websocket",
        "tls-rustls-ring",
        "proxy-protocol-v1-v2",
        "kubernetes-discovery",
        "prometheus-metrics",
    ];
    /// `0.1.0 (abc123def456)`, for `--version`.
    pub const LONG_VERSION: &str = concat!(
        env!("CARGO_PKG_VERSION"),
        " (",
        env!("SLUICE_GIT_COMMIT"),
        ")"
    );
}
