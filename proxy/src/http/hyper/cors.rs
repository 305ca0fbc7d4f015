//! The hyper path's side of CORS (`enable-cors`, and Gateway API's CORS
//! filter): the Access-Control-* headers of an allowed request, on its
//! answer whichever it is, and the preflight's.

use http::{HeaderValue, Response};

use crate::forward::{cors, Answer};
use crate::routing::Route;
use crate::upstream::ResponseBody;

/// Access-Control-Allow-Origin for this request, `None` when the route
/// has no CORS or the Origin is not allowed.
pub(super) fn allow_origin(route: &Route, req: &http::HeaderMap) -> Option<HeaderValue> {
    if let Some(g) = route.access.gateway_cors.as_deref() {
        return req
            .get(http::header::ORIGIN)
            .filter(|o| g.allows(o))
            .cloned();
    }
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
    if let Some(g) = route.access.gateway_cors.as_deref() {
        if let Some(o) = allow {
            g.response_headers(o, resp.headers_mut());
        }
        crate::spec::cors_vary(resp.headers_mut());
    }
    if let (Some(c), Some(o)) = (route.access.cors.as_deref(), allow) {
        cors::add_headers(c, o.clone(), resp.headers_mut());
    }
}

/// The proxy's own answer to a preflight, `None` for a request that is
/// not one. ingress-nginx's: any OPTIONS of an allowed origin, 204.
/// Gateway API's: an OPTIONS with Origin and Access-Control-Request-Method,
/// whatever the origin: 204 when it is allowed, 403 when not.
pub(super) fn preflight_answer(
    route: &Route,
    req: &http::Request<crate::client_body::ClientBody>,
    allow: &Option<HeaderValue>,
) -> Option<Answer> {
    if route.access.gateway_cors.is_none() {
        return (allow.is_some() && req.method() == http::Method::OPTIONS)
            .then_some(Answer::Preflight);
    }
    if !crate::spec::is_preflight(req.method(), req.headers()) {
        return None;
    }
    Some(match allow {
        Some(_) => Answer::Preflight,
        None => Answer::Forbidden,
    })
}

/// Sets the preflight's headers on its 204.
pub(super) fn preflight(
    route: &Route,
    req: &http::HeaderMap,
    allow: HeaderValue,
    resp: &mut Response<ResponseBody>,
) {
    if let Some(g) = route.access.gateway_cors.as_deref() {
        crate::spec::cors_vary(resp.headers_mut());
        g.preflight_headers(
            &allow,
            req.get(http::header::ACCESS_CONTROL_REQUEST_METHOD),
            req.get(http::header::ACCESS_CONTROL_REQUEST_HEADERS),
            resp.headers_mut(),
        );
    }
    if let Some(c) = route.access.cors.as_deref() {
        cors::preflight_headers(c, allow, resp.headers_mut());
    }
}
