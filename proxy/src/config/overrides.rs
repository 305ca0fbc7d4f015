//! What the command line sets over the config: flags such as `--listen`,
//! `--tls-cert` or `--max-uri`, typed and applied by one function.
//!
//! They are applied at start and again to every config the file gives on
//! reload, so that a reload neither drops a flag nor warns that the flags
//! differ from the file. A plain struct rather than a closure over the
//! parsed arguments, so that what the command line changes can be tested
//! and logged.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::model::Config;
use crate::access_log::Format;
use crate::forwarded::Trusted;
use crate::memory::MaxMemory;
use crate::spec::CertFiles;

/// Settings the command line gives over every config. `None` leaves the
/// config's own setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen`: replaces the file's `listen`.
    pub listen: Option<Vec<SocketAddr>>,
    /// `--listen-tls`: replaces the file's `listen_tls`.
    pub listen_tls: Option<Vec<SocketAddr>>,
    /// `--tls-cert` with its `--tls-key`: served besides the file's
    /// certificates, not instead of them.
    pub certificates: Vec<CertFiles>,
    /// `--admin`.
    pub admin: Option<SocketAddr>,
    /// `--no-fast-path` (`Some(false)`).
    pub http1_fast_path: Option<bool>,
    /// `--http2-fast-path` (`Some(true)`), `--no-fast-path` (`Some(false)`).
    pub http2_fast_path: Option<bool>,
    /// `--access-log`.
    pub access_log: Option<Format>,
    /// `--endpoint-metrics` (`Some(true)`).
    pub endpoint_metrics: Option<bool>,
    /// `--max-connections`.
    pub max_connections: Option<usize>,
    /// `--max-in-flight`.
    pub max_in_flight: Option<usize>,
    /// `--max-memory`.
    pub max_memory: Option<MaxMemory>,
    /// `--max-uri`.
    pub max_uri: Option<usize>,
    /// `--max-header-size`.
    pub max_header_size: Option<usize>,
    /// `--max-headers`.
    pub max_headers: Option<usize>,
    /// `--http2-max-concurrent-streams`.
    pub http2_max_concurrent_streams: Option<u32>,
    /// `--http2-stream-window`.
    pub http2_stream_window: Option<u32>,
    /// `--http2-connection-window`.
    pub http2_connection_window: Option<u32>,
    /// `--trust-forwarded-for`: the networks whose X-Forwarded-For names
    /// the client.
    pub trust_forwarded_for: Option<Vec<IpNet>>,
    /// How the client's address is written upstream (ingress-nginx's way
    /// with `--adopt-ingress-nginx`, `compute-full-forwarded-for`).
    pub forwarding: Option<crate::policy::Forwarding>,
    /// The header trusted forwarders name the client in (ingress-nginx's
    /// `forwarded-for-header`).
    pub forwarded_for_header: Option<http::HeaderName>,
    /// `--proxy-protocol` and `--proxy-protocol-from`: read a PROXY
    /// header first, from these networks (empty: from any peer).
    pub proxy_protocol: Option<Vec<IpNet>>,
    /// `--shutdown-delay`.
    pub shutdown_delay: Option<Duration>,
    /// Where to listen when neither the file nor `--listen` names an
    /// address (`sluice serve` gives `0.0.0.0:8080`).
    pub default_listen: Option<SocketAddr>,
    /// Route defaults and the HTTPS policy an ingress-nginx controller
    /// ConfigMap sets (`--configmap`), or ingress-nginx's own defaults
    /// (`--adopt-ingress-nginx`).
    pub controller: ControllerDefaults,
}

/// What ingress-nginx's controller ConfigMap sets for every route and
/// the HTTPS policy; `None` leaves the config's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControllerDefaults {
    /// `proxy-body-size`: `Some(None)` lifts the limit.
    pub max_request_body: Option<Option<u64>>,
    /// `proxy-connect-timeout`.
    pub connect_timeout: Option<Duration>,
    /// `proxy-read-timeout`.
    pub read_timeout: Option<Duration>,
    /// `ssl-redirect`.
    pub ssl_redirect: Option<bool>,
    /// `hsts` and its `hsts-*` keys: `Some(None)` turns it off.
    pub hsts: Option<Option<crate::spec::Hsts>>,
    /// `proxy-send-timeout`: the longest pause of a request body going up.
    pub send_timeout: Option<Duration>,
    /// `load-balance`: for Ingresses only (discovery's setting).
    pub strategy: Option<crate::balance::Strategy>,
    /// `force-ssl-redirect`: for Ingresses only.
    pub force_ssl_redirect: Option<bool>,
    /// `allow-snippet-annotations`: for Ingresses only.
    pub allow_snippets: Option<bool>,
    /// `custom-http-errors`: the codes replaced by the default backend's
    /// answer on Ingresses without the annotation (read by discovery).
    pub custom_http_errors: crate::spec::StatusSet,
}

impl Overrides {
    /// Sets what the command line gave over `config`.
    pub fn apply(&self, config: &mut Config) {
        if let Some(l) = &self.listen {
            config.listen = l.clone();
        }
        if let Some(l) = &self.listen_tls {
            config.listen_tls = l.clone();
        }
        config
            .tls
            .certificates
            .extend(self.certificates.iter().cloned());
        if let Some(a) = self.admin {
            config.admin = Some(a);
        }
        if let Some(f) = self.access_log {
            config.access_log = f;
        }
        if let Some(on) = self.endpoint_metrics {
            config.endpoint_metrics = on;
        }
        if let Some(d) = self.shutdown_delay {
            config.shutdown_delay = d;
        }
        let l = &mut config.listener;
        if let Some(on) = self.http1_fast_path {
            l.http1_fast_path = on;
        }
        if let Some(on) = self.http2_fast_path {
            l.http2_fast_path = on;
        }
        l.max_connections = self.max_connections.unwrap_or(l.max_connections);
        l.max_in_flight = self.max_in_flight.unwrap_or(l.max_in_flight);
        l.max_memory = self.max_memory.unwrap_or(l.max_memory);
        l.max_uri = self.max_uri.unwrap_or(l.max_uri);
        l.max_header_size = self.max_header_size.unwrap_or(l.max_header_size);
        l.max_headers = self.max_headers.unwrap_or(l.max_headers);
        l.http2_max_concurrent_streams = self
            .http2_max_concurrent_streams
            .unwrap_or(l.http2_max_concurrent_streams);
        l.http2_stream_window = self.http2_stream_window.unwrap_or(l.http2_stream_window);
        l.http2_connection_window = self
            .http2_connection_window
            .unwrap_or(l.http2_connection_window);
        if let Some(nets) = &self.trust_forwarded_for {
            l.trust_forwarded_for = Some(Arc::new(Trusted(nets.clone())));
        }
        if let Some(nets) = &self.proxy_protocol {
            l.proxy_protocol = Some(Arc::new(Trusted(nets.clone())));
        }
        if let Some(f) = self.forwarding {
            l.forwarding = f;
        }
        if let Some(h) = &self.forwarded_for_header {
            l.forwarded_for_header = h.clone();
        }
        if config.listen.is_empty() {
            config.listen.extend(self.default_listen);
        }
        let c = &self.controller;
        if let Some(limit) = c.max_request_body {
            config.defaults.max_request_body = limit;
        }
        if let Some(d) = c.connect_timeout {
            config.defaults.timeouts.connect = d;
        }
        if let Some(d) = c.read_timeout {
            config.defaults.timeouts.response_header = d;
        }
        if let Some(d) = c.send_timeout {
            config.defaults.timeouts.request_body = d;
        }
        if let Some(on) = c.ssl_redirect {
            config.tls.policy.redirect = on;
        }
        if let Some(h) = &c.hsts {
            config.tls.policy.hsts = h.clone();
        }
    }

    /// True when the command line sets nothing over the config.
    pub fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }
}

/// `listen=[127.0.0.1:8080] max_uri=16384`: what is set, nothing else
/// (`none` when nothing is).
impl fmt::Display for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        let mut field = |name: &str, value: Option<&dyn fmt::Debug>| -> fmt::Result {
            if let Some(v) = value {
                write!(f, "{sep}{name}={v:?}")?;
                sep = " ";
            }
            Ok(())
        };
        fn some<T: fmt::Debug>(v: &Option<T>) -> Option<&dyn fmt::Debug> {
            v.as_ref().map(|v| v as &dyn fmt::Debug)
        }
        field("listen", some(&self.listen))?;
        field("listen_tls", some(&self.listen_tls))?;
        let certs: Vec<_> = self
            .certificates
            .iter()
            .map(|c| format!("{}+{}", c.cert.display(), c.key.display()))
            .collect();
        field(
            "certificates",
            (!certs.is_empty()).then_some(&certs as &dyn fmt::Debug),
        )?;
        field("admin", some(&self.admin))?;
        field("http1_fast_path", some(&self.http1_fast_path))?;
        field("http2_fast_path", some(&self.http2_fast_path))?;
        field("access_log", some(&self.access_log))?;
        field("endpoint_metrics", some(&self.endpoint_metrics))?;
        field("max_connections", some(&self.max_connections))?;
        field("max_in_flight", some(&self.max_in_flight))?;
        field("max_memory", some(&self.max_memory))?;
        field("max_uri", some(&self.max_uri))?;
        field("max_header_size", some(&self.max_header_size))?;
        field("max_headers", some(&self.max_headers))?;
        field(
            "http2_max_concurrent_streams",
            some(&self.http2_max_concurrent_streams),
        )?;
        field("http2_stream_window", some(&self.http2_stream_window))?;
        field(
            "http2_connection_window",
            some(&self.http2_connection_window),
        )?;
        field("trust_forwarded_for", some(&self.trust_forwarded_for))?;
        field("proxy_protocol", some(&self.proxy_protocol))?;
        field("forwarding", some(&self.forwarding))?;
        field("forwarded_for_header", some(&self.forwarded_for_header))?;
        field("shutdown_delay", some(&self.shutdown_delay))?;
        field("default_listen", some(&self.default_listen))?;
        let c = &self.controller;
        field("max_request_body", some(&c.max_request_body))?;
        field("connect_timeout", some(&c.connect_timeout))?;
        field("read_timeout", some(&c.read_timeout))?;
        field("ssl_redirect", some(&c.ssl_redirect))?;
        field("hsts", some(&c.hsts))?;
        if sep.is_empty() {
            f.write_str("none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    const FILE: &str = "listen: 127.0.0.1:8080\nadmin: 127.0.0.1:9901\nlimits:\n  max_uri: 4k\ntls:\n  certificates:\n    - {cert: a.pem, key: a.key}\nroutes:\n  - backends: [127.0.0.1:9001]\n";

    #[test]
    fn none_leaves_the_config_as_it_is() {
        let mut c = parse_str(FILE, "t").unwrap();
        let before = (c.listen.clone(), c.admin, c.listener.clone(), c.tls.clone());
        let o = Overrides::default();
        assert!(o.is_empty());
        o.apply(&mut c);
        assert_eq!(
            (c.listen.clone(), c.admin, c.listener.clone(), c.tls.clone()),
            before
        );
        assert_eq!(o.to_string(), "none");
    }

    #[test]
    fn flags_replace_the_files_settings_and_add_certificates() {
        let mut c = parse_str(FILE, "t").unwrap();
        let o = Overrides {
            listen: Some(vec!["127.0.0.1:8081".parse().unwrap()]),
            admin: Some("127.0.0.1:9902".parse().unwrap()),
            max_uri: Some(16 << 10),
            http1_fast_path: Some(false),
            certificates: vec![CertFiles {
                cert: "b.pem".into(),
                key: "b.key".into(),
            }],
            proxy_protocol: Some(Vec::new()),
            trust_forwarded_for: Some(vec!["10.0.0.0/8".parse().unwrap()]),
            default_listen: Some("0.0.0.0:8080".parse().unwrap()),
            ..Overrides::default()
        };
        o.apply(&mut c);
        assert_eq!(c.listen, ["127.0.0.1:8081".parse().unwrap()]);
        assert_eq!(c.admin, Some("127.0.0.1:9902".parse().unwrap()));
        assert_eq!(c.listener.max_uri, 16 << 10);
        assert!(!c.listener.http1_fast_path);
        let certs: Vec<_> = c.tls.certificates.iter().map(|f| f.cert.clone()).collect();
        assert_eq!(certs, ["a.pem", "b.pem"].map(std::path::PathBuf::from));
        // An empty list: PROXY headers from any peer.
        assert_eq!(c.listener.proxy_protocol.as_deref(), Some(&Trusted(vec![])));
        assert_eq!(
            c.listener.trust_forwarded_for.as_deref(),
            Some(&Trusted(vec!["10.0.0.0/8".parse().unwrap()]))
        );
        assert_eq!(
            o.to_string(),
            "listen=[127.0.0.1:8081] certificates=[\"b.pem+b.key\"] admin=127.0.0.1:9902 \
             http1_fast_path=false max_uri=16384 trust_forwarded_for=[10.0.0.0/8] \
             proxy_protocol=[] default_listen=0.0.0.0:8080"
        );
    }

    #[test]
    fn the_default_listen_address_is_only_a_fallback() {
        let fallback: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let o = Overrides {
            default_listen: Some(fallback),
            ..Overrides::default()
        };
        let mut c = parse_str(FILE, "t").unwrap();
        o.apply(&mut c);
        assert_eq!(c.listen, ["127.0.0.1:8080".parse().unwrap()]);
        let mut c = parse_str("routes: []\n", "t").unwrap();
        o.apply(&mut c);
        assert_eq!(c.listen, [fallback]);
    }
}
