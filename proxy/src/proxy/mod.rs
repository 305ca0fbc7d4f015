//! Request handling: route, pick, forward, retry, answer.
//!
//! Per request: one snapshot load, one route lookup, one balancer pick,
//! header rewriting in place, and the upstream response streamed back. The
//! error answers are short plain-text bodies, and each error is logged with
//! the route and endpoint it concerns.

mod body;
pub mod headers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;

pub use crate::client_body::{ClientBody, H2Body};
pub use body::ProxyBody;

use crate::access_log::{AccessLog, Entry};
use crate::balance::{hash_ip, Strategy};
use crate::metrics::{Metrics, RouteMetrics, UNMATCHED};
use crate::routing::{resolve_dots, strip_port, Route, Table};
use crate::upstream::pool::{self, ConnectError, SendError, SendLimits};
use crate::upstream::{InFlight, Tried};

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
        if !trusted {
            return self.proto;
        }
        // One value, or none believed (the fast path reads it alike).
        let mut values = headers.get_all(&headers::X_FORWARDED_PROTO).iter();
        let first = values.next();
        if values.next().is_some() {
            return self.proto;
        }
        match first.map(HeaderValue::as_bytes) {
            Some(v) if v.eq_ignore_ascii_case(b"https") => "https",
            Some(v) if v.eq_ignore_ascii_case(b"http") => "http",
            _ => self.proto,
        }
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

/// Why the overload guard refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// `limits.max_in_flight` requests were in flight.
    InFlight,
    /// The process's memory was past `limits.max_memory`.
    Memory,
}

impl Overload {
    /// The reason label of `sluice_requests_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Overload::InFlight => "overload",
            Overload::Memory => "memory",
        }
    }
}

/// One request counted in flight until it is dropped.
pub struct InFlightRequest<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InFlightRequest<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Counts upgraded connections (WebSockets), which outlive the HTTP
/// connection they came on, so that a drain can wait for them too.
#[derive(Debug, Default)]
pub struct Tunnels {
    open: std::sync::atomic::AtomicUsize,
    closed: tokio::sync::Notify,
}

impl Tunnels {
    pub fn open(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until every tunnel has closed; false if `limit` passed first.
    pub async fn wait_closed(&self, limit: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.closed.notified();
            if self.open() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.open() == 0;
            }
        }
    }
}

/// Held by a tunnel's task: counts it open until dropped.
struct TunnelGuard(Arc<Tunnels>);

impl TunnelGuard {
    fn new(t: &Arc<Tunnels>) -> Self {
        t.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        TunnelGuard(t.clone())
    }
}

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        self.0
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.closed.notify_waiters();
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
            return self.answer(req, conn).await;
        };
        let start = Instant::now();
        let time = std::time::SystemTime::now();
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
        let mut client = conn.peer.ip();
        let mut resp = self.answer(req, conn).await;
        let mut upstream = None;
        if let Some(s) = resp.extensions_mut().remove::<Served>() {
            client = s.client;
            upstream = s.upstream;
        }
        let request_id = resp
            .extensions_mut()
            .remove::<RequestId>()
            .map(|r| r.0)
            .unwrap_or_default();
        log.log(Entry {
            time,
            client,
            host,
            method,
            path,
            status: resp.status().as_u16(),
            bytes: http_body::Body::size_hint(resp.body()).exact(),
            upstream,
            duration: start.elapsed(),
            request_id,
        });
        resp
    }

    async fn answer(&self, mut req: Request<ClientBody>, conn: ClientConn) -> Response<ProxyBody> {
        let start = Instant::now();
        // limits.max_uri: nginx answers 414 past its header buffers (8 KiB).
        let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
        if target > self.max_uri {
            self.metrics
                .requests_refused
                .with_label_values(&["uri_too_long"])
                .inc();
            self.unmatched.observe(414, start.elapsed());
            return error(StatusCode::URI_TOO_LONG, "request target too long\n");
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
                self.unmatched.observe(503, start.elapsed());
                let mut resp = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded, retry shortly\n",
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return resp;
            }
        };
        if req.method() == Method::CONNECT {
            let resp = error(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported\n");
            self.unmatched
                .observe(resp.status().as_u16(), start.elapsed());
            return resp;
        }
        if let Some(resolved) = resolve_dots(req.uri().path()) {
            if resolve_uri(&mut req, &resolved).is_err() {
                let resp = error(StatusCode::BAD_REQUEST, "the request path is not valid\n");
                self.unmatched
                    .observe(resp.status().as_u16(), start.elapsed());
                return resp;
            }
        }
        let host = match request_host(&req) {
            Ok(h) => h,
            Err(msg) => {
                let resp = error(StatusCode::BAD_REQUEST, msg);
                self.unmatched
                    .observe(resp.status().as_u16(), start.elapsed());
                return resp;
            }
        };
        let (route, https_port) = {
            let snap = self.table.load();
            (
                snap.lookup(host.map(strip_port), req.uri().path()).cloned(),
                snap.https_port,
            )
        };
        let Some(route) = route else {
            let resp = error(StatusCode::NOT_FOUND, "no route for this host and path\n");
            self.unmatched.observe(404, start.elapsed());
            return resp;
        };
        if route.https_redirect && conn.scheme(req.headers()) == "http" {
            let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
            if let Some(location) = host.and_then(|h| https_redirect(h, https_port, target)) {
                let mut resp = error(StatusCode::PERMANENT_REDIRECT, "");
                resp.headers_mut().insert(header::LOCATION, location);
                route.metrics.observe(308, start.elapsed());
                return resp;
            }
        }
        if let Some(max) = route.max_request_body {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > max) {
                let resp = error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
                route.metrics.observe(413, start.elapsed());
                return resp;
            }
        }
        let https = conn.scheme(req.headers()) == "https";
        let mut resp = forward(&route, req, conn, &self.tunnels, self.access_log.is_some()).await;
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
        route
            .metrics
            .observe(resp.status().as_u16(), start.elapsed());
        resp
    }
}

/// Puts the dot-resolved path (and the query) into the request URI.
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
fn request_host(req: &Request<ClientBody>) -> Result<Option<&str>, &'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host header\n");
    }
    if let Some(a) = req.uri().authority() {
        return if valid_host(a.as_str().as_bytes()) {
            Ok(Some(a.as_str()))
        } else {
            Err("the request target's authority is not a valid host\n")
        };
    }
    match host {
        Some(h) if valid_host(h.as_bytes()) => Ok(std::str::from_utf8(h.as_bytes()).ok()),
        Some(_) => Err("the Host header is not valid\n"),
        None if req.version() == Version::HTTP_11 => Err("HTTP/1.1 requests need a Host header\n"),
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

/// True when a send failed because the client's body stalled.
fn stalled_upload(e: &hyper::Error) -> bool {
    caused_by::<crate::upstream::pool::BodyStalled>(e)
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

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A short plain-text answer of our own.
pub fn error(status: StatusCode, msg: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(msg));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Prepares the request and sends it to the route's upstream, retrying
/// connect failures on other endpoints.
/// Who answered, for the access log (kept only when it is on).
#[derive(Debug, Clone, Copy)]
struct Served {
    client: std::net::IpAddr,
    upstream: Option<std::net::SocketAddr>,
}

/// The request id sent upstream, for the access log.
#[derive(Debug, Clone)]
struct RequestId(String);

async fn forward(
    route: &Arc<Route>,
    mut req: Request<ClientBody>,
    conn: ClientConn,
    tunnels: &Arc<Tunnels>,
    logging: bool,
) -> Response<ProxyBody> {
    let started = std::time::Instant::now();
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
    let request_id = logging
        .then(|| {
            req.headers()
                .get(&headers::X_REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .flatten();
    *req.version_mut() = Version::HTTP_11;

    let retry_ok = is_idempotent(req.method());
    let hash = if upstream.strategy() == Strategy::IpHash {
        hash_ip(client)
    } else {
        0
    };
    let limits = SendLimits {
        connect: route.timeouts.connect,
        response_header: route.timeouts.response_header,
        idle: route.timeouts.upstream_idle,
        max_idle: upstream.max_idle_per_endpoint,
        upgrade: client_upgrade.is_some(),
        request_body: route.timeouts.request_body,
        max_body: route.max_request_body,
    };
    let mut tried = Tried::default();
    let mut req = Some(req);
    let mut last_connect_error: Option<ConnectError> = None;
    // The last endpoint tried closed without an answer.
    let mut last_closed = false;
    for _ in 0..route.retry.attempts {
        let Some(i) = upstream.select(hash, &tried) else {
            break;
        };
        let Some(r) = req.take() else { break };
        tried.push(i);
        let endpoint = &upstream.endpoints[i];
        let in_flight = InFlight::new(endpoint.clone());
        match pool::send(endpoint, r, limits).await {
            Ok((mut resp, checkin)) => {
                endpoint.observe(resp.status().as_u16(), started.elapsed());
                if resp.status().is_server_error() {
                    if let Some(d) = endpoint.record_failure(&upstream.health) {
                        tracing::warn!(route = %route.name, endpoint = %endpoint.addr, status = resp.status().as_u16(), ejected_for = %crate::logfmt::Dur(d), "endpoint ejected after consecutive failures");
                    }
                } else {
                    endpoint.record_success();
                }
                if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                    if let Some(client_upgrade) = client_upgrade {
                        let upstream_upgrade = hyper::upgrade::on(&mut resp);
                        let (name, addr) = (route.name.clone(), endpoint.addr);
                        let tunnel = TunnelGuard::new(tunnels);
                        tokio::spawn(async move {
                            let _in_flight = in_flight;
                            let _tunnel = tunnel;
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
                        return Response::from_parts(parts, ProxyBody::empty());
                    }
                }
                let (mut parts, body) = resp.into_parts();
                headers::strip_hop_by_hop(&mut parts.headers);
                if logging {
                    parts.extensions.insert(Served {
                        client,
                        upstream: Some(endpoint.addr),
                    });
                    if let Some(id) = request_id.clone() {
                        parts.extensions.insert(RequestId(id));
                    }
                }
                return Response::from_parts(
                    parts,
                    ProxyBody::upstream(body, checkin, in_flight, route.timeouts.response_header),
                );
            }
            Err(SendError::Connect(r, e)) => {
                route.metrics.connect_error();
                let ejected = endpoint.record_failure(&upstream.health);
                tracing::warn!(route = %route.name, endpoint = %endpoint.addr, error = %e, ejected_for = %crate::logfmt::OptDur(ejected), "upstream connect failed");
                last_connect_error = Some(e);
                last_closed = false;
                if !retry_ok {
                    break;
                }
                req = Some(*r);
            }
            Err(SendError::Closed(r)) => {
                // The endpoint closed the connection with no answer (it
                // died under the request): a bodiless, repeatable request
                // goes to the next one.
                let ejected = endpoint.record_failure(&upstream.health);
                tracing::warn!(route = %route.name, endpoint = %endpoint.addr, ejected_for = %crate::logfmt::OptDur(ejected), "upstream closed the connection without an answer; trying the next endpoint");
                last_connect_error = None;
                last_closed = true;
                req = Some(*r);
            }
            Err(SendError::Timeout(d)) => {
                endpoint.record_failure(&upstream.health);
                tracing::warn!(route = %route.name, endpoint = %endpoint.addr, timeout = %crate::logfmt::Dur(d), "upstream response headers timed out");
                return error(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n");
            }
            Err(SendError::Upstream(e)) => {
                // A stalled client upload is the client's fault, not the
                // endpoint's: 408, and no health penalty.
                if caused_by::<crate::upstream::pool::BodyTooLarge>(&e) {
                    tracing::info!(route = %route.name, client = %conn.peer, "request body over the route's limit");
                    return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
                }
                if stalled_upload(&e) {
                    tracing::info!(route = %route.name, endpoint = %endpoint.addr, client = %conn.peer, "client stalled its request body");
                    return error(StatusCode::REQUEST_TIMEOUT, "request body timed out\n");
                }
                endpoint.record_failure(&upstream.health);
                tracing::warn!(route = %route.name, endpoint = %endpoint.addr, error = %e, "upstream request failed");
                return error(StatusCode::BAD_GATEWAY, "upstream failed\n");
            }
        }
    }
    match last_connect_error {
        None if last_closed => error(StatusCode::BAD_GATEWAY, "upstream failed\n"),
        None => {
            tracing::warn!(route = %route.name, upstream = %upstream.name, "no usable endpoint");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no upstream endpoint available\n",
            )
        }
        Some(ConnectError::Timeout(_)) => {
            error(StatusCode::GATEWAY_TIMEOUT, "upstream connect timed out\n")
        }
        Some(_) => error(StatusCode::BAD_GATEWAY, "no upstream could be reached\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::valid_host;

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
