//! Configs without a file: the quick form (`--backend`, `--strategy`),
//! one catch-all route, and discovery only (`--kube` alone), no route of
//! its own. Both take the built-in defaults for everything else.

use std::net::SocketAddr;
use std::time::Duration;

use super::backend::Backend;
use super::error::ConfigError;
use super::model::{
    Config, TlsConfig, DEFAULTS, DEFAULT_DNS_REFRESH, DEFAULT_DRAIN, DEFAULT_LISTENER,
    DEFAULT_RELOAD_INTERVAL,
};
use super::validate::{unused_weights, Validator};
use crate::balance::Strategy;
use crate::spec::{HostMatch, PathType, RouteSpec, ServerHeader, UpstreamSpec};

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
    let upstream = UpstreamSpec {
        names,
        ..UpstreamSpec::new("default", strategy, endpoints)
    };
    let route = RouteSpec::new("default", HostMatch::Any, "/", PathType::Prefix, upstream);
    let warnings = unused_weights("--backend", &route.upstream)
        .into_iter()
        .collect();
    Ok(Config {
        routes: vec![route],
        warnings,
        ..discovery_only(listen, admin)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
