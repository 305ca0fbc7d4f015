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

/// What the hyper path already knows of the request being asked about.
pub(super) struct Asked<'a> {
    pub conn: &'a Client,
    /// The real client (behind a trusted forwarder).
    pub client: std::net::IpAddr,
    /// The scheme the client used (`$pass_access_scheme`).
    pub scheme: &'static str,
    pub host: Option<&'a str>,
    /// The request target as the client sent it, when normalizing changed
    /// it (`$request_uri` is the client's).
    pub original: Option<&'a http::uri::PathAndQuery>,
}

/// Asks `auth` about `req`. `Ok` carries the service's cookies for the
/// client's answer; the request already has the service's headers.
pub(super) async fn check(
    auth: &ExternalAuth,
    route: &Route,
    req: &mut Request<ClientBody>,
    asked: Asked<'_>,
) -> Result<Cookies, Denied> {
    let Asked {
        conn,
        client,
        scheme,
        host,
        original,
    } = asked;
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
            pass_access_scheme: scheme,
            request_uri,
            uri: req.uri().path(),
            args: req.uri().query(),
            method: req.method().as_str(),
            remote_addr: client,
            headers: req.headers(),
        };
        ask(auth, req.method(), req.headers(), &vars, timeout).await?
    };
    granted.apply(req.headers_mut());
    Ok(std::mem::take(&mut granted.cookies))
}
