//! The response body the proxy sends to clients: an upstream's body
//! streamed through, or a short body of our own. An enum, not a boxed trait
//! object, so the common case costs no allocation. The request body a
//! client sends is [`crate::client_body`]'s.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::upstream::endpoint::InFlight;
use crate::upstream::pool::Received;

/// A response body.
#[derive(Debug)]
pub enum ResponseBody {
    Upstream(UpstreamBody),
    Full(Option<Bytes>),
}

/// An upstream body, holding its connection until the body ends (then the
/// connection goes back to the pool) and counting the request in flight.
pub struct UpstreamBody {
    inner: Received,
    in_flight: Option<InFlight>,
    /// The longest wait for the next part of the body (the route's
    /// `response_header` timeout, as nginx's proxy_read_timeout). The timer
    /// is made only when the body first has to wait: most small bodies
    /// never do, and cost no allocation for it.
    idle: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Kept until the body is dropped (the response sent): a request's
    /// count against its client's `limit-connections`.
    held: Option<Box<dyn std::any::Any + Send + Sync>>,
}

/// The upstream sent nothing of the response body for too long.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent no response body data for {0:?}")]
pub struct UpstreamStalled(pub Duration);

/// A body error: the upstream's, or our idle limit.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody").finish_non_exhaustive()
    }
}

impl UpstreamBody {
    /// The body ended cleanly: its connection may serve again.
    fn finish(&mut self) {
        self.in_flight = None;
        match &mut self.inner {
            Received::Hyper(_, loan) => {
                if let Some(c) = loan.take() {
                    c.release();
                }
            }
            // It gave its socket back itself, as it ended.
            Received::Raw(_) => {}
        }
    }

    /// The body broke off: its connection is not reused.
    fn abandon(&mut self) {
        self.in_flight = None;
        match &mut self.inner {
            Received::Hyper(_, loan) => *loan = None,
            Received::Raw(r) => r.abandon(),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Received::Hyper(b, _) => b.is_end_stream(),
            Received::Raw(r) => r.is_end_stream(),
        }
    }
}

impl ResponseBody {
    pub fn upstream(inner: Received, in_flight: InFlight, idle: Duration) -> Self {
        let mut body = UpstreamBody {
            inner,
            in_flight: Some(in_flight),
            idle,
            timer: None,
            held: None,
        };
        if body.is_end_stream() {
            body.finish();
        }
        ResponseBody::Upstream(body)
    }

    /// Keeps `guard` alive until the body is dropped, which is when the
    /// response has been sent (or abandoned). A body of our own is sent at
    /// once: the guard goes now.
    pub fn hold(&mut self, guard: Box<dyn std::any::Any + Send + Sync>) {
        if let ResponseBody::Upstream(u) = self {
            u.held = Some(guard);
        }
    }

    pub fn full(data: impl Into<Bytes>) -> Self {
        ResponseBody::Full(Some(data.into()))
    }

    pub fn empty() -> Self {
        ResponseBody::Full(None)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ResponseBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ResponseBody::Upstream(u) => {
                let polled = match &mut u.inner {
                    Received::Hyper(body, loan) => {
                        // The upstream connection is ours to drive: let it
                        // read before asking the body for what it read.
                        if let Some(c) = loan {
                            c.drive(cx);
                        }
                        Pin::new(body)
                            .poll_frame(cx)
                            .map(|f| f.map(|r| r.map_err(BodyError::from)))
                    }
                    Received::Raw(r) => r
                        .poll_frame(cx)
                        .map(|f| f.map(|r| r.map_err(BodyError::from))),
                };
                let frame = match polled {
                    Poll::Ready(f) => f,
                    Poll::Pending => {
                        let idle = u.idle;
                        let timer = u
                            .timer
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                        ready!(timer.as_mut().poll(cx));
                        // Stalled: the connection is not reused.
                        u.abandon();
                        u.timer = None;
                        return Poll::Ready(Some(Err(Box::new(UpstreamStalled(idle)))));
                    }
                };
                if let Some(t) = &mut u.timer {
                    t.as_mut().reset(tokio::time::Instant::now() + u.idle);
                }
                match &frame {
                    None => u.finish(),
                    // Trailers end a body; hyper polls no further after them.
                    Some(Ok(f)) if f.is_trailers() || u.is_end_stream() => u.finish(),
                    Some(Ok(_)) => {}
                    // A broken body: the connection is not reused.
                    Some(Err(_)) => u.abandon(),
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(d) => d.as_ref().is_none_or(|d| d.is_empty()),
            ResponseBody::Upstream(u) => u.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(d) => SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64)),
            ResponseBody::Upstream(u) => match &u.inner {
                Received::Hyper(b, _) => b.size_hint(),
                Received::Raw(r) => r.size_hint(),
            },
        }
    }
}
