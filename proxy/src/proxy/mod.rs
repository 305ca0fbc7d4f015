//! The hyper path: every request the fast path does not take (HTTP/2,
//! upgrades, streamed uploads, odd heads) is routed, rewritten and
//! forwarded here.
//!
//! Per request: one snapshot load, one route lookup, header rewriting in
//! place, and the upstream response streamed back. Which endpoint to try,
//! when to retry and what to answer on failure are the core's
//! ([`crate::forward`]); this module renders its answers as hyper
//! responses ([`render`]).

mod body;
pub mod headers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;

pub use crate::client_body::{ClientBody, H2Body};
pub use body::ProxyBody;

pub use crate::forward::Overload;

use crate::access_log::{AccessLog, Entry};
use crate::forward::{is_grpc, Answer, Attempts, Failure, HostError, Pick, Verdict};
use crate::metrics::{Metrics, RouteMetrics, UNMATCHED};
use crate::policy;
use crate::routing::{normalize, strip_port, Normalized, Route, Table};
use crate::upstream::pool::{self, SendError, SendLimits};

/// What the proxy knows of the client connection a request came on.
#[derive(Debug, Clone)]
pub struct ClientConn {
    pub peer: SocketAddr,
    /// `http` or `https`, for X-Forwarded-Proto.
    pub proto: &'static str,
    /// The client's address as a header value, made once per connection
    /// for X-Forwarded-For; each request clones it (a reference count).
    pub peer_ip: HeaderValue,
    /// Peers whose X-Forwarded-For names the client.
    pub forwarders: Option<Arc<crate::proxy_protocol::Trusted>>,
}

impl ClientConn {
    pub fn new(peer: SocketAddr, proto: &'static str) -> Self {
        let peer_ip = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ClientConn {
            peer,
            proto,
            peer_ip,
            forwarders: None,
        }
    }

    /// The scheme the client used: the connection's, or the one a trusted
    /// forwarder (a LoadBalancer that ended TLS) names in
    /// X-Forwarded-Proto.
    pub fn scheme(&self, headers: &http::HeaderMap) -> &'static str {
        let trusted = self
            .forwarders
            .as_deref()
            .is_some_and(|t| t.forwards(self.peer.ip()));
        policy::forwarded_proto(
            self.proto,
            trusted,
            headers
                .get_all(&headers::X_FORWARDED_PROTO)
                .iter()
                .map(HeaderValue::as_bytes),
        )
    }
}

/// The 308 that sends a plain HTTP request to HTTPS, same host and target.
/// `port` is where clients reach HTTPS: 443 (the LoadBalancer's) leaves it
/// out of the URL.
pub(crate) fn https_redirect(host: &str, port: u16, target: &str) -> Option<HeaderValue> {
    let host = crate::routing::strip_port(host);
    let location = if port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{port}{target}")
    };
    HeaderValue::try_from(location).ok()
}

/// The request handler shared by every client connection.
pub struct Proxy {
    table: Table,
    metrics: Arc<Metrics>,
    unmatched: RouteMetrics,
    tunnels: Arc<Tunnels>,
    access_log: Option<AccessLog>,
    /// The longest request target (path and query) taken: past it, 414.
    max_uri: usize,
    /// Requests waiting on an upstream now, on both paths.
    in_flight: std::sync::atomic::AtomicUsize,
    /// Past this many in flight, new requests get a fast 503 with
    /// Retry-After instead of piling up (`limits.max_in_flight`; 0: off).
    max_in_flight: usize,
    /// Set while the process's memory is past `limits.max_memory` (by
    /// [`Proxy::watch_memory`]): new requests get the same fast 503.
    memory_high: std::sync::atomic::AtomicBool,
}

/// One request counted in flight until it is dropped.
pub struct InFlightRequest<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InFlightRequest<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The upgraded connections (WebSockets), which outlive the HTTP
/// connection they came on: each runs in a task owned here, so that a
/// drain can wait for them and, past its deadline, end them.
#[derive(Debug, Default)]
pub struct Tunnels {
    tasks: tokio_util::task::TaskTracker,
    cut: tokio_util::sync::CancellationToken,
}

impl Tunnels {
    /// Tunnels open now.
    pub fn open(&self) -> usize {
        self.tasks.len()
    }

    /// Takes no new tunnel and waits until every open one has closed;
    /// false if `limit` passed first.
    pub async fn wait_closed(&self, limit: std::time::Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(limit, self.tasks.wait()).await.is_ok()
    }

    /// Ends the tunnels still open (both sides closed) and waits until
    /// their tasks are gone.
    pub async fn cut(&self) {
        self.tasks.close();
        self.cut.cancel();
        self.tasks.wait().await;
    }

    /// Runs one tunnel until it closes or the tunnels are cut.
    fn spawn(&self, tunnel: impl std::future::Future<Output = ()> + Send + 'static) {
        let cut = self.cut.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = cut.cancelled() => {}
                _ = tunnel => {}
            }
        });
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").finish_non_exhaustive()
    }
}

impl Proxy {
    pub fn new(table: Table, metrics: Arc<Metrics>) -> Self {
        let unmatched = metrics.route(UNMATCHED);
        Proxy {
            table,
            metrics,
            unmatched,
            tunnels: Arc::default(),
            access_log: None,
            max_uri: crate::config::DEFAULT_MAX_URI,
            in_flight: Default::default(),
            max_in_flight: 0,
            memory_high: Default::default(),
        }
    }

    /// Refuses new requests with 503 while `max` are in flight
    /// (`limits.max_in_flight`; 0: never).
    pub fn with_max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max;
        self
    }

    /// Counts a request in flight, or says why the guard refuses it: the
    /// request is then answered 503 at once.
    #[inline]
    pub fn admit(&self) -> Result<InFlightRequest<'_>, Overload> {
        use std::sync::atomic::Ordering::Relaxed;
        let n = self.in_flight.fetch_add(1, Relaxed);
        let guard = InFlightRequest(&self.in_flight);
        if self.max_in_flight > 0 && n >= self.max_in_flight {
            return Err(Overload::InFlight);
        }
        if self.memory_high.load(Relaxed) {
            return Err(Overload::Memory);
        }
        Ok(guard)
    }

    /// Whether a new request would be refused now.
    #[inline]
    pub fn overloaded(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        (self.max_in_flight > 0 && self.in_flight.load(Relaxed) >= self.max_in_flight)
            || self.memory_high.load(Relaxed)
    }

    /// Watches the process's resident memory (every 250 ms, off the hot
    /// path) and turns the overload guard on past `limit` bytes, off again
    /// below 95 % of it: the way Envoy's overload manager sheds load before
    /// the kernel's OOM killer takes every connection at once. Linux only;
    /// elsewhere nothing is watched.
    pub fn watch_memory(self: &Arc<Self>, limit: u64) -> tokio::task::JoinHandle<()> {
        let proxy = Arc::downgrade(self);
        tokio::spawn(async move {
            use std::sync::atomic::Ordering::Relaxed;
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(proxy) = proxy.upgrade() else { return };
                let Some(rss) = crate::memory::resident_bytes() else {
                    return;
                };
                let high = proxy.memory_high.load(Relaxed);
                if !high && rss > limit {
                    tracing::warn!(
                        rss,
                        limit,
                        "memory past limits.max_memory: new requests get 503 until it falls"
                    );
                    proxy.memory_high.store(true, Relaxed);
                } else if high && rss < limit / 20 * 19 {
                    tracing::info!(
                        rss,
                        limit,
                        "memory below limits.max_memory again: requests admitted"
                    );
                    proxy.memory_high.store(false, Relaxed);
                }
            }
        })
    }

    /// Answers 414 to request targets longer than `max` bytes
    /// (`limits.max_uri`).
    pub fn with_max_uri(mut self, max: usize) -> Self {
        self.max_uri = max;
        self
    }

    /// The longest request target taken.
    pub fn max_uri(&self) -> usize {
        self.max_uri
    }

    /// Logs every request to `log`.
    pub fn with_access_log(mut self, log: Option<AccessLog>) -> Self {
        self.access_log = log;
        self
    }

    /// The access log, when it is on.
    pub fn access_log(&self) -> Option<&AccessLog> {
        self.access_log.as_ref()
    }

    /// The routing table every request reads.
    pub fn table(&self) -> &Table {
        &self.table
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The upgraded connections this proxy has open.
    pub fn tunnels(&self) -> &Arc<Tunnels> {
        &self.tunnels
    }

    /// Answers one request. Never fails: every error becomes a response.
    pub async fn handle(&self, req: Request<ClientBody>, conn: ClientConn) -> Response<ProxyBody> {
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
        conn: ClientConn,
        served: Option<&mut Served>,
    ) -> Response<ProxyBody> {
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
        match normalize(req.uri().path()) {
            Normalized::Same => {}
            Normalized::Changed(path) => {
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
                snap.lookup(host.map(strip_port), req.uri().path()).cloned(),
                snap.https_port,
            )
        };
        let Some(route) = route else {
            return refuse(Answer::NoRoute, &self.unmatched);
        };
        if route.https_redirect && conn.scheme(req.headers()) == "http" {
            let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
            if let Some(location) = host.and_then(|h| https_redirect(h, https_port, target)) {
                return refuse(Answer::HttpsRedirect(location), &route.metrics);
            }
        }
        if let Some(max) = route.max_request_body {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > max) {
                return refuse(Answer::BodyTooLarge, &route.metrics);
            }
        }
        let https = conn.scheme(req.headers()) == "https";
        let (mut resp, status) = match forward(&route, req, conn, &self.tunnels, served).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                (resp, status)
            }
            Err(answer) => (render(&answer, grpc), answer.status().as_u16()),
        };
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
pub fn render(answer: &Answer, grpc: bool) -> Response<ProxyBody> {
    if grpc {
        let mut resp = Response::new(ProxyBody::empty());
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
    let mut resp = Response::new(ProxyBody::full(answer.message()));
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

/// A Host value: a name or IPv4 literal, or a bracketed IPv6 literal, then
/// an optional `:port` of digits. No userinfo (`user@`), nothing else: what
/// is routed on must be exactly what the backend is told.
pub(crate) fn valid_host(h: &[u8]) -> bool {
    if h.is_empty() || h.len() > 262 {
        return false;
    }
    let (host, port) = if h[0] == b'[' {
        let Some(end) = h.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &h[1..end];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.' || b == b'%')
        {
            return false;
        }
        (&h[..=end], &h[end + 1..])
    } else {
        match h.iter().position(|&b| b == b':') {
            Some(i) => (&h[..i], &h[i..]),
            None => (h, &h[h.len()..]),
        }
    };
    let port_ok = port.is_empty()
        || (port.len() >= 2
            && port.len() <= 6
            && port[0] == b':'
            && port[1..].iter().all(u8::is_ascii_digit));
    let host_ok = match host.first() {
        None => false,
        Some(b'[') => true,
        Some(_) => host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')),
    };
    port_ok && host_ok
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

/// Rewrites the request's headers for the upstream and sends it, to one
/// endpoint after another as the core ([`Attempts`]) decides. An `Err` is
/// the proxy's own answer.
async fn forward(
    route: &Arc<Route>,
    mut req: Request<ClientBody>,
    conn: ClientConn,
    tunnels: &Arc<Tunnels>,
    served: Option<&mut Served>,
) -> Result<Response<ProxyBody>, Answer> {
    let upstream = route.choose(Some(req.headers()));
    // Read before the forwarding headers are rewritten.
    let client = conn
        .forwarders
        .as_deref()
        .and_then(|t| {
            crate::proxy_protocol::client_from_forwarded(
                conn.peer.ip(),
                req.headers()
                    .get_all(&headers::X_FORWARDED_FOR)
                    .iter()
                    .map(HeaderValue::as_bytes),
                t,
            )
        })
        .unwrap_or(conn.peer.ip());
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
        // The authority of an HTTP/2 or absolute-form request is the host:
        // HTTP/2 clients send :authority and no Host, and an absolute-form
        // target replaces Host. HTTP/1.1 upstreams need it as Host.
        if let Some(a) = authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
            h.insert(header::HOST, a);
        }
        let host = h.get(header::HOST).cloned();
        let scheme = conn.scheme(h);
        headers::add_forwarded(h, &conn.peer_ip, scheme, host.as_ref());
        headers::ensure_request_id(h);
    }
    let mut served = served;
    if let Some(s) = served.as_deref_mut() {
        s.client = client;
        s.request_id = req.headers().get(&headers::X_REQUEST_ID).cloned();
    }
    *req.version_mut() = Version::HTTP_11;

    let limits = SendLimits {
        connect: route.timeouts.connect,
        response_header: route.timeouts.response_header,
        idle: route.timeouts.upstream_idle,
        max_idle: upstream.max_idle_per_endpoint,
        upgrade: client_upgrade.is_some(),
        request_body: route.timeouts.request_body,
        max_body: route.max_request_body,
    };
    let idempotent = policy::idempotent(req.method().as_str().as_bytes());
    let mut attempts = Attempts::new(route, upstream, client, idempotent);
    let mut req = Some(req);
    while let Some(Pick {
        endpoint,
        in_flight,
    }) = attempts.next()
    {
        // Every failure that may be retried hands the request back.
        let Some(r) = req.take() else { break };
        let failure = match pool::send(endpoint, r, limits).await {
            Ok((mut resp, checkin)) => {
                attempts.answered(endpoint, resp.status().as_u16());
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
                        return Ok(Response::from_parts(parts, ProxyBody::empty()));
                    }
                }
                let (mut parts, body) = resp.into_parts();
                headers::strip_hop_by_hop(&mut parts.headers);
                return Ok(Response::from_parts(
                    parts,
                    ProxyBody::upstream(body, checkin, in_flight, route.timeouts.response_header),
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
            Err(SendError::Upstream(e)) => {
                if caused_by::<pool::BodyTooLarge>(&e) {
                    Failure::BodyTooLarge
                } else if caused_by::<pool::BodyStalled>(&e) {
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

#[cfg(test)]
mod tests {
    use super::{valid_host, Tunnels};

    /// A drain waits for tunnels; past its deadline they are cut, and
    /// their tasks are gone when `cut` returns.
    #[tokio::test]
    async fn tunnels_are_waited_for_then_cut() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let t = Tunnels::default();
        let ended = Arc::new(AtomicBool::new(false));
        let flag = Flag(ended.clone());
        t.spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        t.spawn(async {});
        let short = std::time::Duration::from_millis(50);
        assert!(!t.wait_closed(short).await, "one tunnel stays open");
        assert_eq!(t.open(), 1);
        t.cut().await;
        assert_eq!(t.open(), 0);
        assert!(ended.load(Ordering::SeqCst));
    }

    #[test]
    fn hosts_are_checked_strictly() {
        for ok in [
            "a.example.com",
            "a.example.com:8080",
            "127.0.0.1:80",
            "[::1]:8080",
            "x_y",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a.example.com:1@evil.com",
            "a.example.com:evil.com",
            "user@a.com",
            "a.com:",
            "a.com:1234567",
            "[::1",
            "[]:80",
            "a.com/x",
            ":80",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }
}
