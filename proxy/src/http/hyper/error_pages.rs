//! ingress-nginx's custom error pages on the hyper path: an answer whose
//! code the route lists (`custom-http-errors`), the upstream's or the
//! proxy's own, is replaced by the default backend's answer to the same
//! request, sent to `/` (nginx's `rewrite (.*) / break`, the query kept)
//! with the headers ingress-nginx's `@custom_` locations set. The client
//! gets that answer as it is, its status included (`error_page CODE =
//! @location`). The upstream's error body is read to its end when it is
//! small, so its connection goes back to the pool, else dropped with the
//! connection.

use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Version};
use http_body_util::BodyExt;

use crate::client_body::ClientBody;
use crate::routing::{ErrorPages, Route};
use crate::upstream::ResponseBody;

use super::super::headers;

static X_CODE: HeaderName = HeaderName::from_static("x-code");
static X_FORMAT: HeaderName = HeaderName::from_static("x-format");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_NAMESPACE: HeaderName = HeaderName::from_static("x-namespace");
static X_INGRESS_NAME: HeaderName = HeaderName::from_static("x-ingress-name");
static X_SERVICE_NAME: HeaderName = HeaderName::from_static("x-service-name");
static X_SERVICE_PORT: HeaderName = HeaderName::from_static("x-service-port");

/// The largest error body read to its end to keep its connection.
const DRAIN_LIMIT: u64 = 64 * 1024;
/// The longest wait for it.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// What is kept of a request whose answer may be replaced: enough to ask
/// the default backend about it.
pub(super) struct Kept {
    method: Method,
    /// nginx's `$request_uri`: the target as the client sent it.
    original: HeaderValue,
    /// `/`, with the request's query.
    target: http::Uri,
    headers: HeaderMap,
}

/// Before the request is forwarded, on routes with error pages: its
/// request id made now (the default backend gets the same one), and the
/// headers every request to the default backend itself is told (its own
/// Service serving the path, `X-Code: 503`). `None` for other routes, at
/// no cost.
pub(super) fn keep(
    route: &Route,
    req: &mut Request<ClientBody>,
    original: Option<&http::uri::PathAndQuery>,
) -> Option<Kept> {
    let pages = route.error_pages.as_ref()?;
    headers::ensure_request_id(req.headers_mut());
    let sent = original
        .or(req.uri().path_and_query())
        .map_or("/", |p| p.as_str());
    let original = HeaderValue::from_str(sent).ok()?;
    let target = match req.uri().query() {
        Some(q) => format!("/?{q}").parse().ok()?,
        None => http::Uri::from_static("/"),
    };
    let mut kept = req.headers().clone();
    for h in [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::CONNECTION,
        header::EXPECT,
    ] {
        kept.remove(h);
    }
    let kept = Kept {
        method: req.method().clone(),
        original,
        target,
        headers: kept,
    };
    if pages.replaces_upstream {
        // ingress-nginx's `custom-default-backend-` location: the request
        // as it is, told the code it stands in for (no X-Original-URI).
        let h = req.headers_mut();
        tell(h, pages, HeaderValue::from_static("503"));
    }
    Some(kept)
}

/// The headers an error request carries beyond the request's own.
fn tell(h: &mut HeaderMap, pages: &ErrorPages, code: HeaderValue) {
    let accept = h.get(header::ACCEPT).cloned();
    h.insert(X_CODE.clone(), code);
    match accept {
        Some(a) if !a.is_empty() => h.insert(X_FORMAT.clone(), a),
        _ => h.remove(&X_FORMAT),
    };
    let about = &pages.about;
    for (name, value) in [
        (&X_NAMESPACE, &about.namespace),
        (&X_INGRESS_NAME, &about.ingress),
        (&X_SERVICE_NAME, &about.service),
        (&X_SERVICE_PORT, &about.port),
    ] {
        match value {
            Some(v) => h.insert(name.clone(), v.clone()),
            None => h.remove(name),
        };
    }
}

/// True when an answer with `status` is to be replaced.
#[inline]
pub(super) fn listed(route: &Route, status: u16) -> bool {
    route
        .error_pages
        .as_ref()
        .is_some_and(|p| p.codes.contains(status))
}

/// The request to the default backend for an answer with `status`.
pub(super) fn request(route: &Route, kept: Kept, status: u16) -> Option<Request<ClientBody>> {
    let pages = route.error_pages.as_ref()?;
    let mut req = Request::new(ClientBody::Empty);
    *req.method_mut() = kept.method;
    *req.uri_mut() = kept.target;
    *req.version_mut() = Version::HTTP_11;
    let mut h = kept.headers;
    tell(&mut h, pages, HeaderValue::from(status));
    h.insert(X_ORIGINAL_URI.clone(), kept.original);
    *req.headers_mut() = h;
    Some(req)
}

/// The upstream's error body, given up: read to its end when it is small
/// and quick (its connection is then reused), else dropped, which closes
/// the connection.
pub(super) async fn discard(body: ResponseBody) {
    let small = http_body::Body::size_hint(&body)
        .upper()
        .is_some_and(|n| n <= DRAIN_LIMIT);
    if small {
        let _ = tokio::time::timeout(DRAIN_TIME, body.collect()).await;
    }
}

/// The default backend's upstream, if there is one.
pub(super) fn backend(route: &Route) -> Option<&Arc<crate::upstream::Upstream>> {
    route.error_pages.as_ref()?.backend.as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ErrorContext, StatusSet};

    fn pages() -> ErrorPages {
        ErrorPages {
            codes: StatusSet::parse_list("404").unwrap(),
            backend: None,
            about: ErrorContext::new("shop", "web", "app", "http"),
            replaces_upstream: false,
        }
    }

    #[test]
    fn the_error_request_says_what_failed() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        h.insert(X_CODE.clone(), HeaderValue::from_static("forged"));
        tell(&mut h, &pages(), HeaderValue::from(404u16));
        let got = |n: &HeaderName| h.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(got(&X_CODE).as_deref(), Some("404"));
        assert_eq!(got(&X_FORMAT).as_deref(), Some("application/json"));
        assert_eq!(got(&X_NAMESPACE).as_deref(), Some("shop"));
        assert_eq!(got(&X_INGRESS_NAME).as_deref(), Some("web"));
        assert_eq!(got(&X_SERVICE_NAME).as_deref(), Some("app"));
        assert_eq!(got(&X_SERVICE_PORT).as_deref(), Some("http"));
        // No Accept: no X-Format (nginx sends no header for an empty value).
        let mut h = HeaderMap::new();
        h.insert(X_FORMAT.clone(), HeaderValue::from_static("forged"));
        tell(&mut h, &pages(), HeaderValue::from(404u16));
        assert!(!h.contains_key(&X_FORMAT));
    }
}
