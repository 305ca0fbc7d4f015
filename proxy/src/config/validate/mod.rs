//! What the values of a file mean: from the loose [`RawConfig`] to the
//! typed [`Config`], every wrong field reported at once and named by its
//! path (`routes[2].backends[0].weight`).
//!
//! One [`Validator`] gathers the errors; each section of the file is
//! checked by a file of its own, as methods on it:
//!
//! - `values`: what many fields share (addresses, durations, sizes,
//!   limits, networks);
//! - `listen`: `listen`, `listen_tls`, `admin`, and how client
//!   connections are taken (PROXY protocol, X-Forwarded-For, fast path);
//! - `tls`: certificates, redirects and HSTS;
//! - `timeouts`: the listeners' timeouts, and the routes' at the top level
//!   and per route;
//! - `limits`: what the proxy takes on at most;
//! - `retry`, `health`: the policies of routes;
//! - `output`: the access log and the `Server` header;
//! - `lifecycle`: draining, shutdown delay, reload and DNS refresh;
//! - `backends`: a route's backends, and weights that would do nothing;
//! - `routes`: routes and the default backend;
//! - `warnings`: what works but was probably not meant.
//!
//! [`validate`] checks the sections in a fixed order, which is the order
//! its errors are reported in.

mod backends;
mod health;
mod lifecycle;
mod limits;
mod listen;
mod output;
mod retry;
mod routes;
mod timeouts;
mod tls;
mod values;
mod warnings;

use std::fmt;

use super::error::FieldError;
use super::model::{Config, Defaults, DEFAULT_LISTENER};
use super::raw::RawConfig;
use crate::spec::{HealthPolicy, DEFAULT_MAX_IDLE, DEFAULT_RETRY};

pub(super) use backends::unused_weights;
pub use listen::overlap;

/// Gathers the errors of one config, each naming its field.
#[derive(Default)]
pub(super) struct Validator {
    pub(super) errors: Vec<FieldError>,
}

impl Validator {
    /// An error at `field`: a message, or an error type that says what
    /// was wrong with the value.
    pub(super) fn error(&mut self, field: impl Into<String>, message: impl fmt::Display) {
        // Top-level settings are checked with an empty prefix.
        let field: String = field.into();
        self.errors.push(FieldError {
            field: field.trim_start_matches('.').to_owned(),
            message: message.to_string(),
            line: None,
            column: None,
        });
    }
}

/// The typed config of a file, or every error found in it.
pub(super) fn validate(raw: RawConfig) -> Result<Config, Vec<FieldError>> {
    let mut v = Validator::default();
    let (listen, listen_tls, admin) = v.addresses(&raw);
    let tls = v.tls(&raw.tls);
    let listener = v.listener_timeouts(&raw.timeouts, DEFAULT_LISTENER);
    let listener = v.connections(&raw, listener);
    let listener = v.limits(&raw.limits, listener);
    let defaults = Defaults {
        timeouts: v.default_timeouts(&raw.timeouts),
        retry: v.retry("", Some(&raw.retry), DEFAULT_RETRY),
        health: v.health("", Some(&raw.health), HealthPolicy::default()),
        max_idle: raw
            .upstream
            .max_idle_per_endpoint
            .unwrap_or(DEFAULT_MAX_IDLE),
        max_request_body: v.size("max_request_body", raw.max_request_body.as_ref(), None),
    };
    let access_log = v.access_log(&raw);
    let server_header = v.server_header(&raw);
    let dns_refresh = v.dns_refresh(&raw);
    let drain_timeout = v.drain_timeout(&raw);
    let shutdown_delay = v.shutdown_delay(&raw);
    let reload_interval = v.reload_interval(&raw);
    let routes = v.routes(&raw.routes, &defaults);
    let default_backend = v.default_backend(raw.default_backend.as_ref(), &defaults);
    if v.errors.is_empty() {
        let warnings = warnings::warnings(&routes, default_backend.as_ref(), &tls, &listen_tls);
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

#[cfg(test)]
mod tests {
    use crate::config::{parse_str, ConfigError};

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
}
