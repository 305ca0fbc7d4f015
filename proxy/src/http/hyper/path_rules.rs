//! A route's ingress-nginx path rules on the hyper path: the redirects it
//! answers itself, and the rewrite of the path it sends upstream. The fast
//! path hands such routes over (`Route::fast_path`), so this is the only
//! place they are applied.

use http::Request;

use crate::client_body::ClientBody;
use crate::forward::Answer;
use crate::routing::Route;

/// The route's own redirect for this request, if it has one. nginx runs
/// these (`return`, the server-level `app-root` check, the www server)
/// before its HTTPS redirect, so the caller asks first.
pub(super) fn redirect<B>(
    route: &Route,
    req: &Request<B>,
    host: Option<&str>,
    scheme: &str,
) -> Option<Answer> {
    let redirect = route.path_rules.redirect.as_ref()?;
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let (status, location) = redirect.answer(scheme, host, target)?;
    Some(Answer::Redirect(status, location))
}

/// Rewrites the request's path as the route's `rewrite-target` or its
/// Gateway API URLRewrite says (the query kept). A path the
/// `rewrite-target` does not match is sent as it is, as nginx does.
pub(super) fn rewrite(route: &Route, req: &mut Request<ClientBody>) -> Result<(), http::Error> {
    let pq = if let Some(m) = &route.path_rules.replace_path {
        // Gateway API's URLRewrite.
        let path = m.apply(req.uri().path());
        match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path.into_owned(),
        }
    } else {
        let Some(rw) = &route.path_rules.rewrite else {
            return Ok(());
        };
        let Some(pq) = rw.apply(req.uri().path(), req.uri().query()) else {
            return Ok(());
        };
        pq
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(pq.parse()?);
    *req.uri_mut() = http::Uri::from_parts(parts)?;
    Ok(())
}
