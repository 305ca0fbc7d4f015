//! The request body a client sends, as the proxy forwards it: read by
//! hyper (HTTP/1.1) or by our own HTTP/2 server. An enum, not a boxed trait
//! object, so the common case costs no allocation.
//!
//! It sits below both the proxy, which takes requests in, and
//! [`crate::upstream`], which sends them on, so that neither imports the
//! other for it.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// A body error: hyper's or h2's.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A client's request body: read by hyper (HTTP/1.1), or by the HTTP/2
/// server (`server::h2`), which speaks to the h2 crate directly.
#[derive(Debug)]
pub enum ClientBody {
    Http1(Incoming),
    Http2(H2Body),
    /// None: a bodiless request kept aside to be sent again elsewhere.
    Empty,
}

impl From<Incoming> for ClientBody {
    fn from(b: Incoming) -> Self {
        ClientBody::Http1(b)
    }
}

/// An HTTP/2 request body. What is read is given back to the client's
/// flow-control window at once: the window then bounds only what is
/// buffered here, and a request whose upstream takes its body slowly holds
/// its client back rather than memory.
#[derive(Debug)]
pub struct H2Body {
    recv: h2::RecvStream,
    /// From Content-Length, for the upstream request's framing.
    length: Option<u64>,
    trailers_next: bool,
}

impl H2Body {
    pub fn new(recv: h2::RecvStream, length: Option<u64>) -> Self {
        H2Body {
            recv,
            length,
            trailers_next: false,
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ClientBody::Http1(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(Into::into))),
            ClientBody::Http2(b) => {
                if !b.trailers_next {
                    match ready!(b.recv.poll_data(cx)) {
                        Some(Ok(data)) => {
                            let _ = b.recv.flow_control().release_capacity(data.len());
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                        None => b.trailers_next = true,
                    }
                }
                match ready!(b.recv.poll_trailers(cx)) {
                    Ok(Some(t)) => Poll::Ready(Some(Ok(Frame::trailers(t)))),
                    Ok(None) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(e.into()))),
                }
            }
            ClientBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Http1(b) => b.is_end_stream(),
            ClientBody::Http2(b) => b.recv.is_end_stream(),
            ClientBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Http1(b) => b.size_hint(),
            ClientBody::Http2(b) => match b.length {
                _ if b.recv.is_end_stream() => SizeHint::with_exact(0),
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
            ClientBody::Empty => SizeHint::with_exact(0),
        }
    }
}
