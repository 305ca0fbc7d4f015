//! Gateway API beside Ingress: GatewayClass, Gateway, HTTPRoute and
//! ReferenceGrant (the standard channel, `gateway.networking.k8s.io/v1`),
//! turned on by `--gateway-class NAME`, from the same stores and into the
//! same routing table as Ingresses.
//!
//! - `api`: the objects as the API server sends them, our own serde types
//!   (the `gateway-api` crate's releases are built on an older kube);
//! - `hostnames`: listener and route hostnames, and their intersection;
//! - `grants`: which references across namespaces ReferenceGrants allow;
//! - `attach`: which class, Gateways, listeners and route parents are
//!   ours and accepted, and why not; what is not served yet is refused
//!   there as `UnsupportedValue` (issue 15 builds Gateway API in steps);
//! - `conditions`: those verdicts as the conditions status carries;
//! - `status`: the writer, under the Ingress status writer's Lease.
//!
//! The routes themselves are made by `translate::gateway_routes`, beside
//! the Ingresses' (with the same backends and balancers).

pub mod api;
pub mod attach;
pub mod conditions;
pub mod grants;
pub mod hostnames;
pub mod status;
