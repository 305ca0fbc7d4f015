//! The hyper path: every request the fast path does not take (HTTP/2,
//! upgrades, streamed uploads, odd heads) is routed, rewritten and
//! forwarded here.
//!
//! Per request: one snapshot load, one route lookup, header rewriting in
//! place, and the upstream response streamed back. Which endpoint to try,
//! when to retry and what to answer on failure are the core's
//! ([`crate::forward`]); this module renders its answers as hyper
//! responses ([`render`]).

mod auth;
mod cors;
mod error_pages;
mod limits;
mod mirror;
mod path_rules;

use std::sync::Arc;
use std::time::Instant;

use http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;

use crate::client_body::ClientBody;
use crate::upstream::ResponseBody;

use super::{headers, https_redirect, valid_host, Client, Handler, Tunnels};

use crate::access_log::Entry;
use crate::forward::{access, is_grpc, Answer, Attempts, Failure, HostError, Pick, Verdict};
use crate::metrics::RouteMetrics;
use crate::policy;
use crate::routing::{normalize, strip_port, Normalized, Route};
use crate::upstream::pool::{self, SendError, SendLimits};

impl Handler {
    /// Answers one request. Never fails: every error becomes a response.
    pub async fn handle(&self, req: Request<ClientBody>, conn: Client) -> Response<ResponseBody> {
        let Some(log) = &self.access_log else {
            return self.answer(req, conn, None).await;
        };
        let start = Instant::now();
        let time = std::time::SystemTime::now();
        // What the log says of the request is read before it is rewritten.
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let method = req.method().as_str().to_owned();
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let mut served = Served {
            client: conn.peer.ip(),
            upstream: None,
            request_id: None,
        };
        let resp = self.answer(req, conn, Some(&mut served)).await;
        log.log(Entry {
            time,
            client: served.client,
            host,
            method,
            path,
            status: resp.status().as_u16(),
            bytes: http_body::Body::size_hint(resp.body()).exact(),
            upstream: served.upstream,
            duration: start.elapsed(),
            request_id: served
                .request_id
                .and_then(|v| v.to_str().ok().map(str::to_owned))
                .unwrap_or_default(),
        });
        resp
    }

    /// Routes the request and forwards it, or answers it with one of the
    /// proxy's own answers; the route's (or the unmatched) metrics count
    /// the outcome.
    async fn answer(
        &self,
        mut req: Request<ClientBody>,
        conn: Client,
        served: Option<&mut Served>,
    ) -> Response<ResponseBody> {
        let start = Instant::now();
        // gRPC runs over HTTP/2 only; an HTTP/1.1 request gets the plain
        // answer, as it would on the fast path.
        let grpc = req.version() == Version::HTTP_2
            && is_grpc(
                req.headers()
                    .get(header::CONTENT_TYPE)
                    .map(HeaderValue::as_bytes),
            );
        let refuse = |answer: Answer, metrics: &RouteMetrics| {
            metrics.observe(answer.status().as_u16(), start.elapsed());
            render(&answer, grpc)
        };
        // limits.max_uri: nginx answers 414 past its header buffers (8 KiB).
        let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
        if target > self.max_uri {
            self.metrics
                .requests_refused
                .with_label_values(&["uri_too_long"])
                .inc();
            return refuse(Answer::UriTooLong, &self.unmatched);
        }
        // The overload guard: a fast answer, and a hint when to come back,
        // rather than one more request queued behind slow upstreams.
        let _in_flight = match self.admit() {
            Ok(guard) => guard,
            Err(why) => {
                self.metrics
                    .requests_refused
                    .with_label_values(&[why.reason()])
                    .inc();
                return refuse(Answer::Overloaded(why), &self.unmatched);
            }
        };
        if req.method() == Method::CONNECT {
            return refuse(Answer::ConnectNotSupported, &self.unmatched);
        }
        // Routed on, and forwarded, in normal form (`routing::normalize`).
        // The target as sent stays known for `$request_uri` (auth-url).
        let mut original = None;
        match normalize(req.uri().path()) {
            Normalized::Same => {}
            Normalized::Changed(path) => {
                original = req.uri().path_and_query().cloned();
                if resolve_uri(&mut req, &path).is_err() {
                    return refuse(Answer::BadPath, &self.unmatched);
                }
            }
            Normalized::Invalid => return refuse(Answer::BadPath, &self.unmatched),
        }
        let host = match request_host(&req) {
            Ok(h) => h,
            Err(e) => return refuse(Answer::BadHost(e), &self.unmatched),
        };
        let (route, https_port) = {
            let snap = self.table.load();
            (
                snap.lookup_request(
                    host.map(strip_port),
                    req.uri().path(),
                    &crate::routing::RequestView {
                        method: req.method(),
                        headers: req.headers(),
                        query: req.uri().query(),
                    },
                )
                .cloned(),
                snap.https_port,
            )
        };
        let Some(route) = route else {
            return refuse(Answer::NoRoute, &self.unmatched);
        };
        // ingress-nginx's CORS answers a preflight in nginx's rewrite
        // phase: before the redirects and any access check.
        let allow_origin = cors::allow_origin(&route, req.headers());
        if let Some(answer) = cors::preflight_answer(&route, &req, &allow_origin) {
            let mut resp = refuse(answer, &route.metrics);
            match &allow_origin {
                Some(allow) => cors::preflight(&route, req.headers(), allow.clone(), &mut resp),
                // A refusal (Gateway API's) says `Vary: Origin` too.
                None => cors::decorate(&route, &None, &mut resp),
            }
            return resp;
        }
        // Who the client is, and how it came, read once, before any
        // header is rewritten.
        let scheme = conn.scheme(req.headers());
        let client = conn.address(req.headers());
        if let Some(answer) = path_rules::redirect(&route, &req, host, scheme) {
            return refuse(answer, &route.metrics);
        }
        if route.https_redirect && scheme == "http" {
            let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
            if let Some(location) = host.and_then(|h| https_redirect(h, https_port, target)) {
                return refuse(Answer::HttpsRedirect(location), &route.metrics);
            }
        }
        // nginx's preaccess phase (limit_req, limit_conn), then its access
        // phase: after the redirects, before the body.
        let held = match limits::admit(&route, client) {
            Ok(held) => held,
            Err(answer) => return refuse(answer, &route.metrics),
        };
        if !route.access.is_open() {
            let authorization = req.headers().get(header::AUTHORIZATION);
            if let Err(answer) = access::check(&route.access, client, authorization).await {
                let mut resp = refuse(answer, &route.metrics);
                cors::decorate(&route, &allow_origin, &mut resp);
                return resp;
            }
        }
        // Then nginx's auth_request (ingress-nginx's auth-url).
        let mut auth_cookies = None;
        if let Some(ext) = &route.access.external {
            let host = host.map(str::to_owned);
            let host = host.as_deref();
            let asked = auth::Asked {
                conn: &conn,
                client,
                scheme,
                host,
                original: original.as_ref(),
            };
            // Boxed, like the other paths below that most requests never
            // take (a refused body, an error page): a future is copied
            // whole as it is built and awaited, so every request would pay
            // for their size.
            match Box::pin(auth::check(ext, &route, &mut req, asked)).await {
                Ok(cookies) => auth_cookies = Some(cookies),
                Err(denied) => {
                    let status = denied.answer.status();
                    let mut resp = refuse(denied.answer, &route.metrics);
                    denied.cookies.add_to(status, resp.headers_mut());
                    cors::decorate(&route, &allow_origin, &mut resp);
                    return resp;
                }
            }
        }
        if let Some(max) = route.max_request_body {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if let Some(n) = declared.filter(|&n| n > max) {
                // HTTP/1.1: what the client is still sending is read and
                // dropped first (bounded), as nginx's lingering close does
                // after its 413. Closing on unread bytes would reset the
                // connection, and the client could lose the answer.
                if req.version() < Version::HTTP_2 {
                    Box::pin(discard(req.into_body(), n)).await;
                }
                return refuse(Answer::BodyTooLarge, &route.metrics);
            }
        }
        if path_rules::rewrite(&route, &mut req).is_err() {
            return refuse(Answer::BadPath, &route.metrics);
        }
        if !route.mirrors.is_empty() {
            mirror::start(&route, &mut req, &conn, client);
        }
        let https = scheme == "https";
        // gRPC answers are trailers, never replaced.
        let kept = if grpc {
            None
        } else {
            error_pages::keep(&route, &mut req, original.as_ref())
        };
        let mut served = served;
        let again = kept.as_ref().map(|_| conn.clone());
        let tunnels = &self.tunnels;
        let first = forward(
            &route,
            req,
            conn,
            client,
            tunnels,
            served.as_deref_mut(),
            None,
        );
        // `timeouts.request`: tries, retries and the wait for the head,
        // bounded together. Boxed: few routes have one.
        let first = match route.timeouts.request {
            None => first.await,
            Some(limit) => Box::pin(tokio::time::timeout(limit, first))
                .await
                .unwrap_or(Err(Answer::UpstreamTimeout)),
        };
        let (resp, status) = match first {
            Ok(resp) => {
                let status = resp.status().as_u16();
                (resp, status)
            }
            Err(answer) => (render(&answer, grpc), answer.status().as_u16()),
        };
        // ingress-nginx's custom-http-errors: the default backend answers
        // instead, for the upstream's codes and the proxy's own alike.
        let (mut resp, status) = match (kept, again) {
            (Some(kept), Some(conn)) if error_pages::listed(&route, status) => {
                Box::pin(error_pages::discard(resp.into_body())).await;
                let req = error_pages::request(&route, kept, status);
                let got = match (req, error_pages::backend(&route)) {
                    (Some(req), Some(to)) => {
                        Box::pin(forward(
                            &route,
                            req,
                            conn,
                            client,
                            tunnels,
                            served,
                            Some(to),
                        ))
                        .await
                    }
                    // No default backend: ingress-nginx's own answers 404.
                    _ => Err(Answer::NoRoute),
                };
                match got {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        (resp, status)
                    }
                    Err(answer) => (render(&answer, grpc), answer.status().as_u16()),
                }
            }
            _ => (resp, status),
        };
        if !route.headers.is_empty() {
            let status = resp.status();
            route.headers.apply_to_response(status, resp.headers_mut());
        }
        if let Some(held) = held {
            resp.body_mut().hold(Box::new(held));
        }
        if let Some(cookies) = auth_cookies {
            cookies.add_to(resp.status(), resp.headers_mut());
        }
        cors::decorate(&route, &allow_origin, &mut resp);
        if let (true, Some(hsts)) = (https, &route.hsts) {
            resp.headers_mut()
                .entry(header::STRICT_TRANSPORT_SECURITY)
                .or_insert_with(|| hsts.clone());
        }
        match route.server_header {
            crate::config::ServerHeader::Add => {
                resp.headers_mut()
                    .entry(header::SERVER)
                    .or_insert(HeaderValue::from_static("sluice"));
            }
            crate::config::ServerHeader::Pass => {}
            crate::config::ServerHeader::Off => {
                resp.headers_mut().remove(header::SERVER);
            }
        }
        route.metrics.observe(status, start.elapsed());
        resp
    }
}

/// Renders one of the proxy's own answers: a short plain-text body, or,
/// for a gRPC client, a trailers-only gRPC status (HTTP 200 with
/// `grpc-status` and `grpc-message`), which is all a gRPC client reads.
pub fn render(answer: &Answer, grpc: bool) -> Response<ResponseBody> {
    if grpc {
        let mut resp = Response::new(ResponseBody::empty());
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert(
            GRPC_STATUS.clone(),
            HeaderValue::from_static(answer.grpc_status().as_str()),
        );
        h.insert(
            GRPC_MESSAGE.clone(),
            HeaderValue::from_static(answer.grpc_message()),
        );
        return resp;
    }
    let mut resp = Response::new(ResponseBody::full(answer.message()));
    *resp.status_mut() = answer.status();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(after) = answer.retry_after() {
        h.insert(header::RETRY_AFTER, after);
    }
    if let Some(location) = answer.location() {
        h.insert(header::LOCATION, location.clone());
    }
    if let Some(challenge) = answer.www_authenticate() {
        h.insert(header::WWW_AUTHENTICATE, challenge.clone());
    }
    if answer.close() {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: http::HeaderName = http::HeaderName::from_static("grpc-message");

/// Puts the normalized path (and the query) into the request URI.
fn resolve_uri(req: &mut Request<ClientBody>, path: &str) -> Result<(), http::Error> {
    let pq = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(pq.parse()?);
    *req.uri_mut() = http::Uri::from_parts(parts)?;
    Ok(())
}

/// The request's host: the authority of an HTTP/2 or absolute-form request
/// (which overrides Host, RFC 9112 3.2.2), else the Host header. Several
/// Host headers, an invalid one, or none in HTTP/1.1 make a bad request
/// (RFC 9112 3.2): routing by one Host while the backend reads another is
/// how host confusion starts.
fn request_host(req: &Request<ClientBody>) -> Result<Option<&str>, HostError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(HostError::Repeated);
    }
    if let Some(a) = req.uri().authority() {
        return if valid_host(a.as_str().as_bytes()) {
            Ok(Some(a.as_str()))
        } else {
            Err(HostError::BadAuthority)
        };
    }
    match host {
        Some(h) if valid_host(h.as_bytes()) => Ok(std::str::from_utf8(h.as_bytes()).ok()),
        Some(_) => Err(HostError::BadHeader),
        None if req.version() == Version::HTTP_11 => Err(HostError::Missing),
        None => Ok(None),
    }
}

/// The upstream's response head is past the endpoint's limit (64 KiB,
/// or `proxy-buffer-size`), counted as it came on the wire: what nginx
/// answers 502 as "upstream sent too big header".
fn head_too_large<B>(resp: &Response<B>, endpoint: &crate::upstream::Endpoint) -> bool {
    let limit = endpoint
        .response_head
        .unwrap_or(pool::RESPONSE_HEAD)
        .max(pool::RESPONSE_HEAD);
    // The status line; then `name: value\r\n` per field.
    let mut len = 16;
    for (name, value) in resp.headers() {
        len += name.as_str().len() + value.len() + 4;
        if len > limit {
            return true;
        }
    }
    false
}

/// True when `T` is somewhere in `e`'s chain of causes.
fn caused_by<T: std::error::Error + 'static>(e: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<T>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// What the access log is told of a forwarded request (only when it is on).
#[derive(Debug)]
struct Served {
    /// The real client (behind a trusted X-Forwarded-For).
    client: std::net::IpAddr,
    /// The endpoint that answered.
    upstream: Option<std::net::SocketAddr>,
    /// The request id sent upstream.
    request_id: Option<HeaderValue>,
}

/// The Host and forwarding headers of a request going upstream. The
/// authority of an HTTP/2 or absolute-form request is the host: HTTP/2
/// clients send :authority and no Host, and an absolute-form target
/// replaces Host. HTTP/1.1 upstreams need it as Host.
fn forwarding(
    h: &mut http::HeaderMap,
    authority: Option<&http::uri::Authority>,
    conn: &Client,
    client: std::net::IpAddr,
) {
    if let Some(a) = authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
        h.insert(header::HOST, a);
    }
    let host = h.get(header::HOST).cloned();
    let scheme = conn.scheme(h);
    let real = conn.address_value(client);
    headers::add_forwarded(
        h,
        &conn.peer_ip,
        &real,
        conn.forwarding,
        scheme,
        host.as_ref(),
    );
}

/// What bounds one try of a route's request to `upstream`.
fn send_limits(
    route: &Route,
    upstream: &crate::upstream::Upstream,
    upgrade: bool,
    trailers: bool,
) -> SendLimits {
    SendLimits {
        connect: route.timeouts.connect,
        response_header: route.timeouts.response_header,
        idle: route.timeouts.upstream_idle,
        max_idle: upstream.max_idle_per_endpoint,
        upgrade,
        trailers,
        request_body: route.timeouts.request_body,
        max_body: route.max_request_body,
    }
}

/// Rewrites the request's headers for the upstream and sends it, to one
/// endpoint after another as the core ([`Attempts`]) decides. An `Err` is
/// the proxy's own answer.
async fn forward(
    route: &Arc<Route>,
    mut req: Request<ClientBody>,
    conn: Client,
    client: std::net::IpAddr,
    tunnels: &Arc<Tunnels>,
    served: Option<&mut Served>,
    to: Option<&Arc<crate::upstream::Upstream>>,
) -> Result<Response<ResponseBody>, Answer> {
    // Cookie affinity reads its cookie; other routes go by the canary's
    // rules; an error page goes to the default backend (`to`).
    let (upstream, sticky) = match to {
        Some(u) => (u, None),
        None => crate::forward::sticky::choose(route, req.headers(), conn.proto == "https"),
    };
    let upgrade = if req.version() == Version::HTTP_11 {
        headers::upgrade_of(req.headers())
    } else {
        None
    };
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
    // gRPC needs `te: trailers` to reach an HTTP/2 upstream; for HTTP/1.1
    // upstreams TE is hop-by-hop like the rest.
    let from_h2 = req.version() == Version::HTTP_2;
    let to_h2 = upstream.protocol == crate::upstream::Protocol::Http2;
    let keep_te = to_h2
        && req
            .headers()
            .get(header::TE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    // A client that takes trailers gets an HTTP/1.1 upstream's too, which
    // hyper's client passes on; the raw exchange drops them, as nginx does.
    let trailers = req.headers().get_all(header::TE).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
    });
    {
        let authority = req.uri().authority().cloned();
        let h = req.headers_mut();
        headers::strip_hop_by_hop(h);
        if from_h2 && !to_h2 {
            headers::join_cookies(h);
        }
        if keep_te {
            h.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        // Room for the four forwarding headers at once: one growth at most.
        h.reserve(4);
        if let Some(u) = upgrade {
            headers::restore_upgrade(h, u);
        }
        forwarding(h, authority.as_ref(), &conn, client);
        headers::ensure_request_id(h);
        // The `@custom_` location is the server's: the route's own
        // proxy_set_header (upstream-vhost, snippets) are not its.
        if to.is_none() {
            headers::apply_edits(h, &route.headers);
            // Then the backend's own (Gateway API's filters on a
            // backendRef).
            if let Some(e) = route.split.as_ref().and_then(|s| s.edits_of(upstream)) {
                headers::apply_edits(h, e);
            }
        }
    }
    let mut served = served;
    if let Some(s) = served.as_deref_mut() {
        s.client = client;
        s.request_id = req.headers().get(&headers::X_REQUEST_ID).cloned();
    }
    *req.version_mut() = Version::HTTP_11;

    let limits = send_limits(route, upstream, client_upgrade.is_some(), trailers);
    let idempotent = policy::idempotent(req.method().as_str().as_bytes());
    let mut attempts = Attempts::start(route, upstream, client, idempotent, sticky);
    let mut req = Some(req);
    while let Some(Pick {
        endpoint,
        in_flight,
    }) = attempts.next()
    {
        // Every failure that may be retried hands the request back.
        let Some(r) = req.take() else { break };
        let failure = match pool::send(endpoint, r, limits).await {
            // hyper's read buffer bounds a head only roughly (one read can
            // bring more): the limit is checked on what was read. A raw
            // exchange's head was held to it as it was parsed.
            Ok(resp)
                if matches!(resp.body(), pool::Received::Hyper(..))
                    && head_too_large(&resp, endpoint) =>
            {
                Failure::Broken("response head too large".into())
            }
            Ok(mut resp) => {
                attempts.answered(endpoint, resp.status().as_u16());
                // Beside the upstream's own cookies.
                if let Some(cookie) = attempts.set_cookie() {
                    resp.headers_mut().append(header::SET_COOKIE, cookie);
                }
                if let Some(s) = served.as_deref_mut() {
                    s.upstream = Some(endpoint.addr);
                }
                if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                    if let Some(client_upgrade) = client_upgrade {
                        let upstream_upgrade = hyper::upgrade::on(&mut resp);
                        let (name, addr) = (route.name.clone(), endpoint.addr);
                        tunnels.spawn(async move {
                            let _in_flight = in_flight;
                            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                                Ok((c, u)) => {
                                    let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                                    let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                                }
                                Err(e) => {
                                    tracing::debug!(route = %name, endpoint = %addr, error = %e, "upgrade failed")
                                }
                            }
                        });
                        let (parts, _) = resp.into_parts();
                        return Ok(Response::from_parts(parts, ResponseBody::empty()));
                    }
                }
                let (mut parts, body) = resp.into_parts();
                // A raw exchange's answer comes without them.
                if let pool::Received::Hyper(..) = body {
                    headers::strip_hop_by_hop(&mut parts.headers);
                }
                return Ok(Response::from_parts(
                    parts,
                    ResponseBody::upstream(body, in_flight, route.timeouts.response_header),
                ));
            }
            Err(SendError::Connect(r, e)) => {
                req = Some(*r);
                Failure::Connect(e)
            }
            Err(SendError::Closed { again, reused }) => {
                let replayable = again.is_some();
                req = again.map(|r| *r);
                Failure::Closed { reused, replayable }
            }
            Err(SendError::Timeout(d)) => Failure::Timeout(d),
            Err(SendError::Broken(why)) => Failure::Broken(why.into()),
            Err(SendError::Upstream(e)) => {
                if caused_by::<pool::BodyTooLarge>(&e) {
                    Failure::BodyTooLarge
                } else if caused_by::<pool::UploadStalled>(&e) {
                    Failure::BodyStalled
                } else {
                    Failure::Broken(Box::new(e))
                }
            }
        };
        match attempts.failed(endpoint, failure) {
            Verdict::Retry => continue,
            Verdict::Answer(a) => return Err(a),
        }
    }
    Err(attempts.exhausted())
}

/// Reads and drops a refused request's body: at most `declared` bytes
/// and [`DISCARD_MOST`], within [`DISCARD_TIME`].
async fn discard(mut body: ClientBody, declared: u64) {
    use http_body_util::BodyExt;
    let mut left = declared.min(DISCARD_MOST);
    let _ = tokio::time::timeout(DISCARD_TIME, async {
        while left > 0 {
            match body.frame().await {
                Some(Ok(frame)) => {
                    let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                    left = left.saturating_sub(n);
                }
                Some(Err(_)) | None => break,
            }
        }
    })
    .await;
}

/// The most of a refused body read before answering (a larger one is
/// answered, then the connection closed).
const DISCARD_MOST: u64 = 8 << 20;
/// How long a refused body is read for at most.
const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::Request;

    use crate::client_body::ClientBody;
    use crate::http::{Client, Handler};

    /// Every HTTP/2 stream, and every request the fast path hands to hyper,
    /// holds this future while it waits on its upstream, and it is copied
    /// whole as it is built and awaited. The paths few requests take (an
    /// upgrade, a fresh upstream connection, an HTTP/2 upstream, external
    /// auth, an error page, a refused body, a send through hyper's
    /// client) are boxed so that they do not set its size: with them
    /// inline it was 9,448 bytes; boxed, 6,840 in a release build and
    /// 6,880 in the tests' (Rust 1.95). An awaited path added inline shows
    /// here.
    #[test]
    fn a_request_s_future_leaves_the_rare_paths_boxed() {
        let table = Arc::new(arc_swap::ArcSwap::from_pointee(
            crate::routing::Snapshot::default(),
        ));
        let handler = Handler::new(table, Arc::new(crate::metrics::Metrics::new()));
        let req = Request::new(ClientBody::Empty);
        let client = Client::new("127.0.0.1:1".parse().unwrap(), "http");
        let future = handler.handle(req, client);
        let size = std::mem::size_of_val(&future);
        assert!(size <= 8 * 1024, "a request's future is {size} bytes");
    }
}
