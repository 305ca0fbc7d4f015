//! What works but was probably not meant: weights that `round-robin`
//! ignores, a file without routes, certificates without an HTTPS listener.
//! Each names its field; they are logged at load and printed by
//! `sluice check`, and never refuse a config.

use super::backends::unused_weights;
use crate::config::error::FieldError;
use crate::config::model::TlsConfig;
use crate::spec::RouteSpec;

/// The warnings of a config that passed validation.
pub(super) fn warnings(
    routes: &[RouteSpec],
    default_backend: Option<&RouteSpec>,
    tls: &TlsConfig,
    listen_tls: &[std::net::SocketAddr],
) -> Vec<FieldError> {
    let mut warnings: Vec<FieldError> = routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| unused_weights(&format!("routes[{i}].backends"), &r.upstream))
        .collect();
    warnings.extend(
        default_backend.and_then(|d| unused_weights("default_backend.backends", &d.upstream)),
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
    warnings
}
