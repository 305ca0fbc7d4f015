//! The client's request body as it is sent upstream, with the route's
//! limits on it: the upload fails when it stalls ([`UploadStalled`]) or
//! grows past the route's size limit ([`BodyTooLarge`]), and it tells when
//! it has ended, so that the response-header timeout starts there.
//!
//! A file of its own, below the connections: HTTP/1.1 and HTTP/2 sends
//! both take it, and the pooled connections are typed by it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
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
