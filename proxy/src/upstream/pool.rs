//! Upstream connections: a keep-alive pool per endpoint for HTTP/1.1, one
//! shared multiplexed connection per endpoint for HTTP/2.
//!
//! We manage connections ourselves rather than through a generic client so
//! that a request whose connection could not be made, or whose pooled
//! connection turned out to be closed, comes back to the caller unsent and
//! can be retried on another endpoint.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;

use crate::forward::policy::{self, AfterClose};
use crate::proxy::ClientBody;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::endpoint::Endpoint;
use super::Protocol;

/// The client's request body on its way upstream. It tells when it has
/// ended, so that the response-header timeout counts from the end of the
/// upload, not from its start.
pub struct RequestBody {
    /// `None`: no body at all (a request sent again, see `send_h1`).
    inner: Option<ClientBody>,
    /// The route's body limit, and the bytes seen so far.
    limit: Option<u64>,
    seen: u64,
    /// Set once past the limit: how long the rest of the body is read and
    /// dropped before the upload fails (see [`RequestBody::drain`]).
    over: Option<Pin<Box<tokio::time::Sleep>>>,
    ended: Option<oneshot::Sender<()>>,
    /// Fires when the client has sent nothing for `idle`: a stalled upload
    /// must not hold an upstream connection forever.
    stall: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
}

/// An upload's error as hyper's client takes it.
type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The client sent more body than the route accepts.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than {0} bytes")]
pub struct BodyTooLarge(pub u64);

/// The client stopped sending its request body for longer than the
/// route's `request_body` timeout.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no request body data for {0:?}")]
pub struct BodyStalled(pub Duration);

impl RequestBody {
    /// Wraps a body; the receiver fires when it has been sent whole.
    /// Bodies already at their end (most GETs) need no signal, no timer and
    /// cost no allocation.
    fn new(
        inner: ClientBody,
        idle: Duration,
        limit: Option<u64>,
    ) -> (Self, Option<oneshot::Receiver<()>>) {
        if inner.is_end_stream() {
            let body = RequestBody {
                inner: Some(inner),
                limit,
                seen: 0,
                over: None,
                ended: None,
                stall: None,
            };
            return (body, None);
        }
        let (tx, rx) = oneshot::channel();
        let body = RequestBody {
            inner: Some(inner),
            limit,
            seen: 0,
            over: None,
            ended: Some(tx),
            stall: Some((Box::pin(tokio::time::sleep(idle)), idle)),
        };
        (body, Some(rx))
    }

    /// No body: for a bodiless request sent a second time.
    fn empty() -> Self {
        RequestBody {
            inner: None,
            limit: None,
            seen: 0,
            over: None,
            ended: None,
            stall: None,
        }
    }

    /// Past the limit: reads and drops what the client still sends, up to
    /// 1 MiB and for at most 500 ms, then fails the upload. The client then
    /// gets its 413 on a connection whose bytes were read: closing one
    /// with unread bytes makes the kernel reset it, and the answer is lost.
    fn drain(
        &mut self,
        cx: &mut Context<'_>,
        limit: u64,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        const MAX_DRAIN: u64 = 1 << 20;
        let too_large = || Poll::Ready(Some(Err(Box::new(BodyTooLarge(limit)) as _)));
        loop {
            if self.seen > limit + MAX_DRAIN {
                return too_large();
            }
            let Some(inner) = self.inner.as_mut() else {
                return too_large();
            };
            match Pin::new(inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => {
                    self.seen += f.data_ref().map_or(0, |d| d.len() as u64);
                }
                Poll::Ready(_) => return too_large(),
                Poll::Pending => {
                    let done = self
                        .over
                        .as_mut()
                        .is_none_or(|t| t.as_mut().poll(cx).is_ready());
                    return if done { too_large() } else { Poll::Pending };
                }
            }
        }
    }

    fn end(&mut self) {
        self.stall = None;
        if let Some(tx) = self.ended.take() {
            let _ = tx.send(());
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let (Some(_), Some(limit)) = (&self.over, self.limit) {
            return self.drain(cx, limit);
        }
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(f) => f,
            Poll::Pending => {
                if let Some((timer, idle)) = &mut self.stall {
                    if timer.as_mut().poll(cx).is_ready() {
                        let idle = *idle;
                        self.stall = None;
                        return Poll::Ready(Some(Err(Box::new(BodyStalled(idle)))));
                    }
                }
                return Poll::Pending;
            }
        };
        if let (Some(Ok(f)), Some(limit)) = (&frame, self.limit) {
            if let Some(d) = f.data_ref() {
                self.seen += d.len() as u64;
                if self.seen > limit {
                    self.stall = None;
                    self.over = Some(Box::pin(tokio::time::sleep(Duration::from_millis(500))));
                    return self.drain(cx, limit);
                }
            }
        }
        match &frame {
            None => self.end(),
            Some(Ok(_)) if self.is_end_stream() => self.end(),
            Some(Ok(_)) => {
                if let Some((timer, idle)) = &mut self.stall {
                    let deadline = tokio::time::Instant::now() + *idle;
                    timer.as_mut().reset(deadline);
                }
            }
            Some(Err(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// Waits for the response headers: first, without a limit, for the
/// upload to end (or an early response), then up to `limit`.
async fn response_within<F: Future>(
    fut: F,
    upload: &mut Option<oneshot::Receiver<()>>,
    limit: Duration,
) -> Result<F::Output, SendError> {
    let mut fut = std::pin::pin!(fut);
    if let Some(rx) = upload {
        tokio::select! {
            biased;
            r = &mut fut => return Ok(r),
            _ = rx => *upload = None,
        }
    }
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| SendError::Timeout(limit))
}

/// Polls a connection; drops it once it has ended. True while it lives.
fn drive(
    conn: &mut Option<http1::Connection<TokioIo<TcpStream>, RequestBody>>,
    cx: &mut Context<'_>,
) -> bool {
    let Some(c) = conn else { return false };
    match Pin::new(c).poll(cx) {
        Poll::Pending => true,
        Poll::Ready(r) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "upstream connection ended");
            }
            *conn = None;
            false
        }
    }
}

/// An HTTP/1.1 upstream connection: the handle that sends requests and
/// the connection future that does the I/O.
///
/// The connection is not spawned as a task of its own. Whoever uses it
/// drives it: the request's task while it waits for the response headers,
/// the response body as the client reads it. A proxied request then runs in
/// one task with no cross-task wake-ups, which is most of the per-request
/// CPU a proxy spends beyond the syscalls. An idle connection in the pool is
/// not polled at all; the next user polls it once and finds out whether the
/// upstream closed it meanwhile.
pub struct H1 {
    sender: http1::SendRequest<RequestBody>,
    /// `None` once the connection has ended. It is dropped at once: a
    /// request still queued in it is then handed back unsent (hyper cancels
    /// queued requests when the connection is dropped, not when it ends).
    conn: Option<http1::Connection<TokioIo<TcpStream>, RequestBody>>,
}

impl H1 {
    /// Lets the connection read and write what it can. False once it has
    /// ended (closed by either side, or failed).
    pub fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        drive(&mut self.conn, cx)
    }

    /// Waits until the connection can take a request; false if it cannot
    /// (the upstream closed it while it sat in the pool).
    async fn ready(&mut self) -> bool {
        std::future::poll_fn(|cx| {
            let alive = self.drive(cx);
            match self.sender.poll_ready(cx) {
                Poll::Ready(r) => Poll::Ready(r.is_ok() && self.conn.is_some()),
                Poll::Pending if alive => Poll::Pending,
                Poll::Pending => Poll::Ready(false),
            }
        })
        .await
    }
}

/// Idle connections of one endpoint.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
    /// Plain sockets for the HTTP/1.1 fast path, which frames requests and
    /// responses itself.
    raw: Mutex<Vec<RawIdle>>,
    h2: Mutex<Option<http2::SendRequest<RequestBody>>>,
}

struct RawIdle {
    stream: TcpStream,
    since: Instant,
}

/// False when an idle socket has been closed by its peer or has bytes
/// nobody asked for. Costs a syscall only when the socket was reported
/// readable: the readiness Tokio already holds says whether anything
/// happened on it since it went idle.
fn idle_socket_usable(s: &TcpStream) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match s.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut probe = [0u8; 1];
            matches!(s.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl Pool {
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
            + self.raw.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Drops idle connections older than `max_age`.
    pub fn expire(&self, max_age: Duration) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain(|c| c.since.elapsed() < max_age);
        }
        if let Ok(mut raw) = self.raw.lock() {
            raw.retain(|c| c.since.elapsed() < max_age);
        }
    }

    /// An idle fast-path socket younger than `max_age` that still looks
    /// open; closed ones met on the way are dropped.
    pub(crate) fn take_raw(&self, max_age: Duration) -> Option<TcpStream> {
        let mut raw = self.raw.lock().ok()?;
        while let Some(c) = raw.pop() {
            if c.since.elapsed() >= max_age {
                raw.clear();
                return None;
            }
            if idle_socket_usable(&c.stream) {
                return Some(c.stream);
            }
        }
        None
    }

    /// Returns a fast-path socket whose last response ended cleanly.
    pub(crate) fn put_raw(&self, stream: TcpStream, max_idle: usize) {
        if let Ok(mut raw) = self.raw.lock() {
            if raw.len() < max_idle {
                raw.push(RawIdle {
                    stream,
                    since: Instant::now(),
                });
            }
        }
    }

    /// An idle connection younger than `max_age`, and how long it sat.
    fn take(&self, max_age: Duration) -> Option<(Box<H1>, Duration)> {
        let mut idle = self.idle.lock().ok()?;
        // Newest last: it is the warmest and the least likely to be closed.
        let c = idle.pop()?;
        let sat = c.since.elapsed();
        if sat >= max_age {
            // Everything below it is older still.
            idle.clear();
            return None;
        }
        Some((c.conn, sat))
    }
}

struct Idle {
    conn: Box<H1>,
    since: Instant,
}

/// An HTTP/1.1 connection lent to one response: the body drives it and
/// returns it to the pool when the body has ended.
pub struct Checkin {
    endpoint: Arc<Endpoint>,
    /// Boxed: the connection state is large, and it moves from pool to
    /// response body and back on every request.
    conn: Box<H1>,
    max_idle: usize,
    /// Fires when the request body has been sent whole; `None` when it
    /// already had been (or there was none) when the response came.
    upload: Option<oneshot::Receiver<()>>,
}

impl Checkin {
    /// Lets the connection read the next part of the response body.
    #[inline]
    pub fn drive(&mut self, cx: &mut Context<'_>) {
        self.conn.drive(cx);
    }

    /// The response body ended cleanly: the connection may serve again.
    /// A connection whose request body is still uploading (the upstream
    /// answered early) is not reused: the next request would wait behind
    /// that upload.
    pub fn release(mut self) {
        if self.conn.conn.is_none() || self.conn.sender.is_closed() {
            return;
        }
        if let Some(rx) = &mut self.upload {
            if rx.try_recv().is_err() {
                return;
            }
        }
        if let Ok(mut idle) = self.endpoint.pool.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push(Idle {
                    conn: self.conn,
                    since: Instant::now(),
                });
            }
        }
    }
}

/// Why connecting to an endpoint failed. Nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    #[error("connect failed: {0}")]
    Io(#[from] io::Error),
    #[error("handshake failed: {0}")]
    Handshake(#[source] hyper::Error),
}

impl ConnectError {
    /// The connection was gone before the request could be written.
    fn closed() -> Self {
        ConnectError::Io(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "connection closed before the request was sent",
        ))
    }
}

/// Why a request to an endpoint failed.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be had; the request is handed back unsent.
    Connect(Box<Request<ClientBody>>, ConnectError),
    /// The response headers did not come in time.
    Timeout(Duration),
    /// The connection failed after the request was (maybe) sent.
    Upstream(hyper::Error),
    /// The connection closed (or was reset) under the request with no
    /// byte of an answer, and the keep-alive race rule
    /// ([`policy::after_close`]) did not send it again here. `again`: a
    /// copy of a bodiless, repeatable request, to send to another
    /// endpoint. `reused`: the connection came from the pool.
    Closed {
        again: Option<Box<Request<ClientBody>>>,
        reused: bool,
    },
}

/// Limits for one send.
#[derive(Debug, Clone, Copy)]
pub struct SendLimits {
    pub connect: Duration,
    pub response_header: Duration,
    pub idle: Duration,
    pub max_idle: usize,
    /// The request asks to switch protocols (WebSocket).
    pub upgrade: bool,
    /// The longest pause allowed while the client sends its body.
    pub request_body: Duration,
    /// The largest body accepted.
    pub max_body: Option<u64>,
}

/// Sends a request to an endpoint and waits for the response headers.
///
/// For HTTP/1.1 the connection comes back with the response, to be returned
/// to the pool when the body ends.
pub async fn send(
    endpoint: &Arc<Endpoint>,
    mut req: Request<ClientBody>,
    limits: SendLimits,
) -> Result<(Response<Incoming>, Option<Checkin>), SendError> {
    set_uri(&mut req, endpoint);
    let (parts, body) = req.into_parts();
    let (body, upload) = RequestBody::new(body, limits.request_body, limits.max_body);
    let req = Request::from_parts(parts, body);
    match endpoint.protocol {
        Protocol::Http1 => send_h1(endpoint, req, upload, limits).await,
        Protocol::Http2 => send_h2(endpoint, req, upload, limits)
            .await
            .map(|r| (r, None)),
    }
}

/// HTTP/1.1 upstreams get origin-form (`/path?q`), HTTP/2 ones the full URI
/// whose authority is the client's Host, which hyper sends as `:authority`.
fn set_uri(req: &mut Request<ClientBody>, endpoint: &Endpoint) {
    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let uri = match endpoint.protocol {
        Protocol::Http1 => Uri::from(pq),
        Protocol::Http2 => {
            let authority = req
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse().ok())
                .unwrap_or_else(|| endpoint.authority.clone());
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = Some(authority);
            parts.path_and_query = Some(pq);
            Uri::from_parts(parts).unwrap_or_default()
        }
    };
    *req.uri_mut() = uri;
}

pub(crate) async fn connect_tcp(
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(endpoint.addr))
        .await
        .map_err(|_| ConnectError::Timeout(timeout))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// hyper's read buffer per upstream HTTP/1.1 connection.
const UPSTREAM_BUFFER: usize = 64 * 1024;

async fn connect_h1(endpoint: &Endpoint, limits: SendLimits) -> Result<Box<H1>, ConnectError> {
    let stream = connect_tcp(endpoint, limits.connect).await?;
    let (sender, conn) = http1::Builder::new()
        .writev(false)
        // What one read of a response may take: the chunk then waits for
        // the client whole. hyper's 400 KiB default let 2,000 slow readers
        // hold half a gigabyte; the fast path reads 64 KiB at a time too.
        .max_buf_size(UPSTREAM_BUFFER)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(ConnectError::Handshake)?;
    Ok(Box::new(H1 {
        sender,
        conn: Some(conn),
    }))
}

/// An upgrade (WebSocket) takes its connection over, so it gets a fresh
/// one, spawned as a task that hands the socket over after the 101.
async fn connect_h1_upgrade(
    endpoint: &Endpoint,
    limits: SendLimits,
) -> Result<http1::SendRequest<RequestBody>, ConnectError> {
    let stream = connect_tcp(endpoint, limits.connect).await?;
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(ConnectError::Handshake)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream upgrade connection ended");
        }
    });
    Ok(sender)
}

/// Hands a request that was not sent back in the client's body type.
fn unsent(req: Request<RequestBody>, e: ConnectError) -> SendError {
    let (parts, body) = req.into_parts();
    let inner = body.inner.unwrap_or(ClientBody::Empty);
    SendError::Connect(Box::new(Request::from_parts(parts, inner)), e)
}

/// A copy of a bodiless request's head, to send again.
fn copy_head(req: &Request<RequestBody>) -> Request<RequestBody> {
    let mut r = Request::new(RequestBody::empty());
    *r.method_mut() = req.method().clone();
    *r.uri_mut() = req.uri().clone();
    *r.version_mut() = req.version();
    *r.headers_mut() = req.headers().clone();
    r
}

/// The connection closed (or was reset) under the request before any
/// answer: the upstream's keep-alive race, not a failed request.
fn closed_under(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
            );
        }
        source = s.source();
    }
    false
}

async fn send_h1(
    endpoint: &Arc<Endpoint>,
    mut req: Request<RequestBody>,
    mut upload: Option<oneshot::Receiver<()>>,
    limits: SendLimits,
) -> Result<(Response<Incoming>, Option<Checkin>), SendError> {
    if limits.upgrade {
        return send_h1_upgrade(endpoint, req, upload, limits).await;
    }
    // Pooled connections until one is usable, then a fresh one.
    let mut fresh_only = false;
    loop {
        let pooled = if fresh_only {
            None
        } else {
            endpoint.pool.take(limits.idle)
        };
        let reused = pooled.is_some();
        // A repeatable request without a body: kept aside, in case the
        // connection closes under it with no answer. On a pooled
        // connection that is the upstream's keep-alive timer, and the copy
        // goes out again on a fresh connection; on a fresh one the
        // endpoint died, and the copy goes to the next endpoint. The fast
        // path, nginx (`proxy_next_upstream error`) and HAProxy
        // (`retry-on empty-response`) do the same.
        let idempotent = policy::idempotent(req.method().as_str().as_bytes());
        let again = (idempotent && req.body().is_end_stream()).then(|| copy_head(&req));
        let mut c = match pooled {
            Some((c, _)) => c,
            None => match connect_h1(endpoint, limits).await {
                Ok(c) => c,
                Err(e) => return Err(unsent(req, e)),
            },
        };
        // A pooled connection is ready at once; bound the wait anyway.
        let ready = tokio::time::timeout(limits.connect, c.ready()).await;
        if !matches!(ready, Ok(true)) {
            if reused {
                continue;
            }
            return Err(unsent(req, ConnectError::closed()));
        }
        let mut sent = std::pin::pin!(c.sender.try_send_request(req));
        let conn = &mut c.conn;
        // Drive the connection in this task while waiting for the answer.
        let answer = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = sent.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            if drive(conn, cx) {
                return Poll::Pending;
            }
            // The connection is gone (and dropped): the answer resolves
            // with its error, the request handed back if it was not sent.
            sent.as_mut().poll(cx)
        });
        let result = response_within(answer, &mut upload, limits.response_header).await?;
        match result {
            Ok(resp) => {
                let checkin = Checkin {
                    endpoint: endpoint.clone(),
                    conn: c,
                    max_idle: limits.max_idle,
                    upload,
                };
                return Ok((resp, Some(checkin)));
            }
            Err(mut e) => match e.take_message() {
                // Not sent: the connection was closed under us. The body was
                // not touched, so its end signal is still to come.
                Some(r) if reused => req = r,
                Some(r) => return Err(unsent(r, ConnectError::Handshake(e.into_error()))),
                None if closed_under(e.error()) => {
                    match (
                        policy::after_close(reused, idempotent, again.is_some()),
                        again,
                    ) {
                        (AfterClose::SendFresh, Some(copy)) => {
                            tracing::debug!(endpoint = %endpoint.addr, "a pooled connection closed under a request: sending it again on a fresh one");
                            req = copy;
                            fresh_only = true;
                        }
                        (_, again) => {
                            let again = again.map(|copy| {
                                let (parts, _) = copy.into_parts();
                                Box::new(Request::from_parts(parts, ClientBody::Empty))
                            });
                            return Err(SendError::Closed { again, reused });
                        }
                    }
                }
                None => return Err(SendError::Upstream(e.into_error())),
            },
        }
    }
}

async fn send_h1_upgrade(
    endpoint: &Arc<Endpoint>,
    req: Request<RequestBody>,
    mut upload: Option<oneshot::Receiver<()>>,
    limits: SendLimits,
) -> Result<(Response<Incoming>, Option<Checkin>), SendError> {
    let mut sender = match connect_h1_upgrade(endpoint, limits).await {
        Ok(s) => s,
        Err(e) => return Err(unsent(req, e)),
    };
    if sender.ready().await.is_err() {
        return Err(unsent(req, ConnectError::closed()));
    }
    let sent = sender.try_send_request(req);
    match response_within(sent, &mut upload, limits.response_header).await? {
        Ok(resp) => Ok((resp, None)),
        Err(mut e) => match e.take_message() {
            Some(r) => Err(unsent(r, ConnectError::Handshake(e.into_error()))),
            None => Err(SendError::Upstream(e.into_error())),
        },
    }
}

async fn send_h2(
    endpoint: &Arc<Endpoint>,
    req: Request<RequestBody>,
    mut upload: Option<oneshot::Receiver<()>>,
    limits: SendLimits,
) -> Result<Response<Incoming>, SendError> {
    let shared = endpoint
        .pool
        .h2
        .lock()
        .ok()
        .and_then(|g| g.as_ref().filter(|s| !s.is_closed()).cloned());
    let mut sender = match shared {
        Some(s) => s,
        None => {
            let stream = match connect_tcp(endpoint, limits.connect).await {
                Ok(s) => s,
                Err(e) => return Err(unsent(req, e)),
            };
            let (sender, conn) = match http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(TokioIo::new(stream))
                .await
            {
                Ok(x) => x,
                Err(e) => return Err(unsent(req, ConnectError::Handshake(e))),
            };
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream h2 connection ended");
                }
            });
            if let Ok(mut g) = endpoint.pool.h2.lock() {
                *g = Some(sender.clone());
            }
            sender
        }
    };
    // Waits for a free stream when the upstream's concurrency limit is
    // reached: bounded like the response headers are.
    match tokio::time::timeout(limits.response_header, sender.ready()).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Err(unsent(req, ConnectError::closed())),
        Err(_) => return Err(SendError::Timeout(limits.response_header)),
    }
    let sent = sender.try_send_request(req);
    match response_within(sent, &mut upload, limits.response_header).await? {
        Ok(resp) => Ok(resp),
        Err(mut e) => match e.take_message() {
            Some(r) => Err(unsent(r, ConnectError::Handshake(e.into_error()))),
            None => Err(SendError::Upstream(e.into_error())),
        },
    }
}
