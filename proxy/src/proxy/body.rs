//! The response body sent to clients: an upstream's body streamed through,
//! or a short body of our own (errors). An enum, not a boxed trait object,
//! so the common case costs no allocation.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::upstream::pool::Checkin;
use crate::upstream::InFlight;

/// A response body.
#[derive(Debug)]
pub enum ProxyBody {
    Upstream(UpstreamBody),
    Full(Option<Bytes>),
}

/// An upstream body, holding its connection until the body ends (then the
/// connection goes back to the pool) and counting the request in flight.
pub struct UpstreamBody {
    inner: Incoming,
    checkin: Option<Checkin>,
    in_flight: Option<InFlight>,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody").finish_non_exhaustive()
    }
}

impl UpstreamBody {
    fn finish(&mut self) {
        self.in_flight = None;
        if let Some(c) = self.checkin.take() {
            c.release();
        }
    }
}

impl ProxyBody {
    pub fn upstream(inner: Incoming, checkin: Option<Checkin>, in_flight: InFlight) -> Self {
        let mut body = UpstreamBody {
            inner,
            checkin,
            in_flight: Some(in_flight),
        };
        if body.inner.is_end_stream() {
            body.finish();
        }
        ProxyBody::Upstream(body)
    }

    pub fn full(data: impl Into<Bytes>) -> Self {
        ProxyBody::Full(Some(data.into()))
    }

    pub fn empty() -> Self {
        ProxyBody::Full(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ProxyBody::Upstream(u) => {
                // The upstream connection is ours to drive: let it read
                // before asking the body for what it read.
                if let Some(c) = &mut u.checkin {
                    c.drive(cx);
                }
                let frame = ready!(Pin::new(&mut u.inner).poll_frame(cx));
                match &frame {
                    None => u.finish(),
                    // Trailers end a body; hyper polls no further after them.
                    Some(Ok(f)) if f.is_trailers() || u.inner.is_end_stream() => u.finish(),
                    Some(Ok(_)) => {}
                    // A broken body: the connection is not reused.
                    Some(Err(_)) => {
                        u.checkin = None;
                        u.in_flight = None;
                    }
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(d) => d.as_ref().is_none_or(|d| d.is_empty()),
            ProxyBody::Upstream(u) => u.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(d) => SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64)),
            ProxyBody::Upstream(u) => u.inner.size_hint(),
        }
    }
}
