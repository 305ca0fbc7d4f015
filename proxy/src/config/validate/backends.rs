//! A route's backends, as the file writes them (`IP:PORT=WEIGHT`,
//! `HOST:PORT`, or `{address, weight}`) and as the quick form gives them
//! (already parsed by clap); and the warning for weights that would do
//! nothing.

use super::Validator;
use crate::balance::Strategy;
use crate::config::backend::{self, Backend, Target};
use crate::config::error::FieldError;
use crate::spec::{EndpointSpec, NamedBackend, UpstreamSpec};

/// Weights only steer `weighted`, `ip-hash` and `least-request`; with
/// `round-robin` they would silently do nothing.
pub(in crate::config) fn unused_weights(
    field: &str,
    upstream: &UpstreamSpec,
) -> Option<FieldError> {
    (upstream.strategy == Strategy::RoundRobin && upstream.endpoints.iter().any(|e| e.weight != 1))
        .then(|| FieldError {
            field: field.to_owned(),
            message: "weights are ignored by round-robin; use strategy weighted to apply them"
                .into(),
            line: None,
            column: None,
        })
}

impl Validator {
    pub(super) fn weight(&mut self, field: &str, w: u32) -> u32 {
        backend::check_weight(w).unwrap_or_else(|e| {
            self.error(field, e.to_string());
            1
        })
    }

    /// `IP:PORT[=WEIGHT]` or `HOST:PORT[=WEIGHT]`, into `endpoints` or
    /// `names`.
    pub(super) fn backend_into(
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

    pub(super) fn push_target(
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
    pub(in crate::config) fn add_backend(
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

    pub(in crate::config) fn check_duplicate_endpoints(
        &mut self,
        field: &str,
        endpoints: &[EndpointSpec],
    ) {
        let mut seen = std::collections::HashSet::new();
        for e in endpoints {
            if !seen.insert(e.addr) {
                self.error(field, format!("backend {} is listed twice", e.addr));
            }
        }
    }
}
