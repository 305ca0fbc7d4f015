//! ingress-nginx's per-client limits on the hyper path (routes with limits
//! are never the fast path's): the real client's address is checked
//! against the route's [`crate::limit::Limiter`] before anything else is
//! done for the request.

use crate::forward::Answer;
use std::net::IpAddr;

use crate::limit::{ConnGuard, Refused};
use crate::routing::Route;

/// Admits the request or answers it with the route's limit status. The
/// guard counts it against `limit-connections` until the response is
/// sent.
#[inline]
pub(super) fn admit(route: &Route, client: IpAddr) -> Result<Option<ConnGuard>, Answer> {
    let Some(limiter) = &route.limiter else {
        return Ok(None);
    };
    limiter.admit(client).map_err(|Refused(status)| {
        tracing::debug!(route = %route.name, %client, status = status.as_u16(), "limiting requests");
        Answer::Limited(status)
    })
}
