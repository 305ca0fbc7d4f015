//! Sending requests upstream: a keep-alive pool per endpoint for HTTP/1.1,
//! one shared multiplexed connection per endpoint for HTTP/2. The
//! connections and the idle pool themselves are `upstream/conn.rs`'s.
//!
//! We manage connections ourselves rather than through a generic client so
//! that a request whose connection could not be made, or whose pooled
//! connection turned out to be closed, comes back to the caller unsent and
//! can be retried on another endpoint.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body::Body;
use tokio::sync::oneshot;

use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;

use crate::policy::{self, AfterClose};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::conn::{drive, Idle, RequestBody, H1};
pub use super::conn::{BodyTooLarge, UploadStalled};
use super::endpoint::Endpoint;
use crate::client_body::ClientBody;
use crate::spec::Protocol;

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

/// An HTTP/1.1 connection lent to one response: the body drives it and
/// returns it to the pool when the body has ended.
pub struct Loan {
    endpoint: Arc<Endpoint>,
    /// Boxed: the connection state is large, and it moves from pool to
    /// response body and back on every request.
    conn: Box<H1>,
    max_idle: usize,
    /// Fires when the request body has been sent whole; `None` when it
    /// already had been (or there was none) when the response came.
    upload: Option<oneshot::Receiver<()>>,
}

impl Loan {
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
) -> Result<(Response<Incoming>, Option<Loan>), SendError> {
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
) -> Result<(Response<Incoming>, Option<Loan>), SendError> {
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
                let loan = Loan {
                    endpoint: endpoint.clone(),
                    conn: c,
                    max_idle: limits.max_idle,
                    upload,
                };
                return Ok((resp, Some(loan)));
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
) -> Result<(Response<Incoming>, Option<Loan>), SendError> {
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
