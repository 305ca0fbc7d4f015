//! The connections themselves, and the idle ones an endpoint keeps: the
//! client's body on its way upstream, an HTTP/1.1 connection driven by
//! whoever uses it, and the pool of idle HTTP/1.1 connections, fast-path
//! sockets and the shared HTTP/2 connection.
//!
//! This module knows nothing of endpoints: an [`Endpoint`](super::Endpoint)
//! owns a [`Pool`], and [`super::pool`] sends requests over both. Keeping it
//! apart makes the dependency one-way (pool → endpoint → conn).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::client_body::ClientBody;

/// The client's request body on its way upstream. It tells when it has
/// ended, so that the response-header timeout counts from the end of the
/// upload, not from its start.
pub struct RequestBody {
    /// `None`: no body at all (a request sent again, see `send_h1`).
    pub(super) inner: Option<ClientBody>,
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
pub struct UploadStalled(pub Duration);

impl RequestBody {
    /// Wraps a body; the receiver fires when it has been sent whole.
    /// Bodies already at their end (most GETs) need no signal, no timer and
    /// cost no allocation.
    pub(super) fn new(
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
    pub(super) fn empty() -> Self {
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
                        return Poll::Ready(Some(Err(Box::new(UploadStalled(idle)))));
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

/// Polls a connection; drops it once it has ended. True while it lives.
pub(super) fn drive(
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
    pub(super) sender: http1::SendRequest<RequestBody>,
    /// `None` once the connection has ended. It is dropped at once: a
    /// request still queued in it is then handed back unsent (hyper cancels
    /// queued requests when the connection is dropped, not when it ends).
    pub(super) conn: Option<http1::Connection<TokioIo<TcpStream>, RequestBody>>,
}

impl H1 {
    /// Lets the connection read and write what it can. False once it has
    /// ended (closed by either side, or failed).
    pub fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        drive(&mut self.conn, cx)
    }

    /// Waits until the connection can take a request; false if it cannot
    /// (the upstream closed it while it sat in the pool).
    pub(super) async fn ready(&mut self) -> bool {
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
    pub(super) idle: Mutex<Vec<Idle>>,
    /// Plain sockets for the HTTP/1.1 fast path, which frames requests and
    /// responses itself.
    raw: Mutex<Vec<RawIdle>>,
    pub(super) h2: Mutex<Option<http2::SendRequest<RequestBody>>>,
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
    pub(super) fn take(&self, max_age: Duration) -> Option<(Box<H1>, Duration)> {
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

pub(super) struct Idle {
    pub(super) conn: Box<H1>,
    pub(super) since: Instant,
}
