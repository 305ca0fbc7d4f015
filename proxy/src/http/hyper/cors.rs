//! The hyper path's side of CORS (`enable-cors`): the Access-Control-*
//! headers of an allowed request, on its answer whichever it is, and the
//! preflight's.

use http::{HeaderValue, Response};

use crate::forward::cors;
use crate::routing::Route;
use crate::upstream::ResponseBody;

/// Access-Control-Allow-Origin for this request, `None` when the route
/// has no CORS or the Origin is not allowed.
pub(super) fn allow_origin(route: &Route, req: &http::HeaderMap) -> Option<HeaderValue> {
    route
        .access
        .cors
        .as_deref()?
        .allow_origin(req.get(http::header::ORIGIN))
}

/// Sets the CORS headers on an answer of an allowed request.
pub(super) fn decorate(
    route: &Route,
    allow: &Option<HeaderValue>,
    resp: &mut Response<ResponseBody>,
) {
    if let (Some(c), Some(o)) = (route.access.cors.as_deref(), allow) {
        cors::add_headers(c, o.clone(), resp.headers_mut());
    }
}

/// Sets the preflight's headers on its 204.
pub(super) fn preflight(route: &Route, allow: HeaderValue, resp: &mut Response<ResponseBody>) {
    if let Some(c) = route.access.cors.as_deref() {
        cors::preflight_headers(c, allow, resp.headers_mut());
    }
}
