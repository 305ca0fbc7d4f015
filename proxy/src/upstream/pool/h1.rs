//! HTTP/1.1 sends: over a pooled keep-alive connection when one is usable,
//! else a fresh one; a bodiless, repeatable request whose pooled
//! connection closed under it goes out again on a fresh one (the
//! keep-alive race, [`policy::after_close`]). An upgrade (WebSocket) gets
//! a connection of its own, which it takes over after the 101.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use super::{response_within, unsent, ConnectError, Loan, SendError, SendLimits};
use crate::client_body::ClientBody;
use crate::policy::{self, AfterClose};
use crate::upstream::conn::{drive, H1};
use crate::upstream::endpoint::Endpoint;
use crate::upstream::transport;
use crate::upstream::upload::RequestBody;

/// hyper's read buffer per upstream HTTP/1.1 connection.
const UPSTREAM_BUFFER: usize = 64 * 1024;

/// The largest response head taken from an upstream unless its route
/// raises it (`proxy-buffer-size`): the fast path's too.
pub const RESPONSE_HEAD: usize = UPSTREAM_BUFFER;

async fn connect_h1(endpoint: &Endpoint, limits: SendLimits) -> Result<Box<H1>, ConnectError> {
    let stream = transport::connect(endpoint.addr, endpoint.tls.as_deref(), limits.connect).await?;
    let (sender, conn) = http1::Builder::new()
        .writev(false)
        // What one read of a response may take: the chunk then waits for
        // the client whole. hyper's 400 KiB default let 2,000 slow readers
        // hold half a gigabyte; the fast path reads 64 KiB at a time too.
        .max_buf_size(
            endpoint
                .response_head
                .unwrap_or(UPSTREAM_BUFFER)
                .max(UPSTREAM_BUFFER),
        )
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
    let stream = transport::connect(endpoint.addr, endpoint.tls.as_deref(), limits.connect).await?;
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(ConnectError::Handshake)?;
    crate::upstream::drivers::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream upgrade connection ended");
        }
    });
    Ok(sender)
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

/// Sends over a pooled connection, else a fresh one, and lends the
/// connection to the response; an upgrade goes to [`send_upgrade`].
pub(super) async fn send(
    endpoint: &Arc<Endpoint>,
    mut req: Request<RequestBody>,
    mut upload: Option<oneshot::Receiver<()>>,
    limits: SendLimits,
) -> Result<(Response<Incoming>, Option<Loan>), SendError> {
    if limits.upgrade {
        // Boxed, as is connecting below: paths a request seldom takes
        // would otherwise make every send's future as large as theirs, and
        // a future is copied whole as it is built and awaited.
        return Box::pin(send_upgrade(endpoint, req, upload, limits)).await;
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
            None => match Box::pin(connect_h1(endpoint, limits)).await {
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

/// Sends an upgrade request on a connection of its own; no loan comes
/// back, the connection is the upgrade's.
async fn send_upgrade(
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
