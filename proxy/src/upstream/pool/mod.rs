//! Sending requests upstream: a keep-alive pool per endpoint for HTTP/1.1,
//! one shared multiplexed connection per endpoint for HTTP/2. This file is
//! the entry point ([`send`]), its limits and errors, and what both
//! protocols share: connecting, waiting for the response headers, handing
//! an unsent request back. The sends themselves are `raw.rs` (bodiless
//! HTTP/1.1 requests to plain upstreams, over the fast path's sockets),
//! `h1.rs` (the other HTTP/1.1 requests, with upgrades, through hyper's
//! client) and `h2.rs`; the HTTP/1.1 connection lent to a response is
//! `loan.rs`'s; the idle connections are kept by `upstream/idle.rs`.
//!
//! We manage connections ourselves rather than through a generic client so
//! that a request whose connection could not be made, or whose pooled
//! connection turned out to be closed, comes back to the caller unsent and
//! can be retried on another endpoint.

mod h1;
mod h2;
mod loan;
mod raw;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::client_body::ClientBody;
use crate::spec::Protocol;
use crate::upstream::endpoint::Endpoint;
pub use crate::upstream::transport::ConnectError;
use crate::upstream::upload::RequestBody;
pub use crate::upstream::upload::{BodyTooLarge, UploadStalled};
pub use h1::RESPONSE_HEAD;
pub use loan::Loan;
pub use raw::{RawBody, RawBodyError};

/// Why a request to an endpoint failed.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be had; the request is handed back unsent.
    Connect(Box<Request<ClientBody>>, ConnectError),
    /// The response headers did not come in time.
    Timeout(Duration),
    /// The connection failed after the request was (maybe) sent.
    Upstream(hyper::Error),
    /// The upstream's answer could not be read (a malformed head, a cut
    /// one).
    Broken(&'static str),
    /// The connection closed (or was reset) under the request with no
    /// byte of an answer, and the keep-alive race rule
    /// ([`crate::policy::after_close`]) did not send it again here.
    /// `again`: a copy of a bodiless, repeatable request, to send to
    /// another endpoint. `reused`: the connection came from the pool.
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
    /// The client takes trailers (`TE: trailers`).
    pub trailers: bool,
    /// The longest pause allowed while the client sends its body.
    pub request_body: Duration,
    /// The largest body accepted.
    pub max_body: Option<u64>,
}

/// A response body as it comes from upstream: through hyper's client
/// (with the HTTP/1.1 connection lent to it, if any), or from a raw socket.
pub enum Received {
    Hyper(Incoming, Option<Loan>),
    Raw(RawBody),
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Received::Hyper(b, _) => f.debug_tuple("Hyper").field(b).finish(),
            Received::Raw(r) => f.debug_tuple("Raw").field(r).finish(),
        }
    }
}

/// Sends a request to an endpoint and waits for the response headers.
///
/// For HTTP/1.1 the connection comes back with the response body, to be
/// returned to the pool when the body ends.
pub async fn send(
    endpoint: &Arc<Endpoint>,
    mut req: Request<ClientBody>,
    limits: SendLimits,
) -> Result<Response<Received>, SendError> {
    set_uri(&mut req, endpoint);
    if endpoint.protocol == Protocol::Http1 && raw::fits(endpoint, &req, &limits) {
        return raw::send(endpoint, req, limits)
            .await
            .map(|r| r.map(Received::Raw));
    }
    let (parts, body) = req.into_parts();
    let (body, upload) = RequestBody::new(body, limits.request_body, limits.max_body);
    let req = Request::from_parts(parts, body);
    // Boxed, both: a request with a body, an upgrade, a TLS or an HTTP/2
    // upstream are the rarer case, and a future is copied whole as it is
    // built and awaited; the raw send's stays the size of its own.
    let (resp, loan) = match endpoint.protocol {
        Protocol::Http1 => Box::pin(h1::send(endpoint, req, upload, limits)).await?,
        Protocol::Http2 => (
            Box::pin(h2::send(endpoint, req, upload, limits)).await?,
            None,
        ),
    };
    Ok(resp.map(|body| Received::Hyper(body, loan)))
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
            parts.scheme = Some(if endpoint.tls.is_some() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            });
            parts.authority = Some(authority);
            parts.path_and_query = Some(pq);
            Uri::from_parts(parts).unwrap_or_default()
        }
    };
    *req.uri_mut() = uri;
}

/// A plain TCP connection for the fast path, which serves only routes
/// whose upstreams speak plain HTTP/1.1.
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

/// Hands a request that was not sent back in the client's body type.
fn unsent(req: Request<RequestBody>, e: ConnectError) -> SendError {
    let (parts, body) = req.into_parts();
    let inner = body.inner.unwrap_or(ClientBody::Empty);
    SendError::Connect(Box::new(Request::from_parts(parts, inner)), e)
}
