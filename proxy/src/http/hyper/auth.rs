//! The hyper path's side of external authentication (`auth-url`): the
//! request's nginx variables gathered from hyper's types, the subrequest
//! asked ([`crate::http::external_auth`]), and on success the service's
//! headers put on the request that goes upstream.

use http::Request;

use crate::client_body::ClientBody;
use crate::forward::external_auth::{Cookies, Denied};
use crate::http::external_auth::ask;
use crate::http::{headers, Client};
use crate::routing::{strip_port, Route};
use crate::spec::{ExternalAuth, Vars};

/// Asks `auth` about `req`. `Ok` carries the service's cookies for the
/// client's answer; the request already has the service's headers.
/// `original` is the request target as the client sent it, when
/// normalizing changed it (`$request_uri` is the client's).
pub(super) async fn check(
    auth: &ExternalAuth,
    route: &Route,
    req: &mut Request<ClientBody>,
    conn: &Client,
    host: Option<&str>,
    original: Option<&http::uri::PathAndQuery>,
) -> Result<Cookies, Denied> {
    // The service and the upstream see one request id.
    headers::ensure_request_id(req.headers_mut());
    let timeout = route.timeouts.connect + route.timeouts.response_header;
    let mut granted = {
        let request_uri = original
            .or(req.uri().path_and_query())
            .map_or("/", |p| p.as_str());
        let http_host = host.unwrap_or("");
        let vars = Vars {
            host: strip_port(http_host),
            http_host,
            scheme: conn.proto,
            pass_access_scheme: conn.scheme(req.headers()),
            request_uri,
            uri: req.uri().path(),
            args: req.uri().query(),
            method: req.method().as_str(),
            remote_addr: conn.address(req.headers()),
            headers: req.headers(),
        };
        ask(auth, req.method(), req.headers(), &vars, timeout).await?
    };
    granted.apply(req.headers_mut());
    Ok(std::mem::take(&mut granted.cookies))
}
