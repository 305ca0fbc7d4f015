//! Gateway API beside Ingress: GatewayClass, Gateway, HTTPRoute and
//! ReferenceGrant (the standard channel, `gateway.networking.k8s.io/v1`).
//!
//! Built in steps (issue 15). Here so far, all pure and tested beside the
//! code, not yet watched or routed:
//! - `api`: the objects as the API server sends them, our own serde types
//!   (the `gateway-api` crate's releases are built on an older kube);
//! - `hostnames`: listener and route hostnames, and their intersection;
//! - `grants`: which references across namespaces ReferenceGrants allow;
//! - `attach`: which class, Gateways, listeners and route parents are
//!   ours and accepted, with the conditions the status will carry.

pub mod api;
pub mod attach;
pub mod grants;
pub mod hostnames;
