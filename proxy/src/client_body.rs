//! The request body a client sends, as the proxy forwards it: read by
//! hyper (HTTP/1.1) or by our own HTTP/2 server. An enum, not a boxed trait
//! object, so the common case costs no allocation.
//!
//! It sits below both the proxy, which takes requests in, and
//! [`crate::upstream`], which sends them on, so that neither imports the
//! other for it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};

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
    /// Fed by Sluice's own HTTP/2 server (`server::http2`).
    Stream(StreamBody),
    /// None: a bodiless request kept aside to be sent again elsewhere.
    Empty,
    /// A body copied, as it is read, to mirrored requests (Gateway API's
    /// RequestMirror).
    Teed(Box<Teed>),
}

/// A body read on to its upstream, each part copied to mirrors. A mirror
/// never holds the request back: one that has fallen [`MIRROR_BUFFER`]
/// bytes behind is cut off (its body fails, so it never sends a short
/// body as a whole one).
#[derive(Debug)]
pub struct Teed {
    inner: ClientBody,
    copies: Vec<BodySender>,
}

/// How far a mirror's upload may fall behind the request's own.
pub const MIRROR_BUFFER: usize = 1 << 20;

impl Teed {
    /// `inner`, copied to a body for each of `n` mirrors (with the same
    /// length, for their framing).
    pub fn split(inner: ClientBody, n: usize) -> (ClientBody, Vec<ClientBody>) {
        let length = inner.size_hint().exact();
        let (copies, bodies) = (0..n)
            .map(|_| {
                let (tx, rx) = stream_body(length);
                (tx, ClientBody::Stream(rx))
            })
            .unzip();
        (ClientBody::Teed(Box::new(Teed { inner, copies })), bodies)
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    // A copy its mirror has let go of, or that has fallen
                    // too far behind, is dropped (its body fails).
                    self.copies
                        .retain(|c| !c.is_abandoned() && c.queued() + data.len() <= MIRROR_BUFFER);
                    // The last part: clients stop polling once a body
                    // says it has ended, so the copies end with it.
                    let end = self.inner.is_end_stream();
                    for c in &self.copies {
                        c.push(data.clone(), end);
                    }
                    if end {
                        self.copies.clear();
                    }
                } else if let Some(t) = f.trailers_ref() {
                    for c in self.copies.drain(..) {
                        c.trailers(t.clone());
                    }
                }
            }
            // The end: the copies end too. An error: they fail (dropped).
            None => {
                for c in self.copies.drain(..) {
                    c.push(Bytes::new(), true);
                }
            }
            Some(Err(_)) => self.copies.clear(),
        }
        Poll::Ready(frame)
    }
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
            ClientBody::Stream(b) => b.poll(cx),
            ClientBody::Empty => Poll::Ready(None),
            ClientBody::Teed(t) => t.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Http1(b) => b.is_end_stream(),
            ClientBody::Http2(b) => b.recv.is_end_stream(),
            ClientBody::Stream(b) => b.is_end(),
            ClientBody::Empty => true,
            ClientBody::Teed(t) => t.inner.is_end_stream(),
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
            ClientBody::Stream(b) => match b.length {
                _ if b.is_end() => SizeHint::with_exact(0),
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
            ClientBody::Empty => SizeHint::with_exact(0),
            ClientBody::Teed(t) => t.inner.size_hint(),
        }
    }
}

/// A request body that Sluice's own HTTP/2 server feeds: its connection's
/// task pushes each DATA frame in through the [`BodySender`], and learns
/// from it how much has been taken, to give that back to the client's
/// window. So the window bounds what waits here, and an upstream that
/// takes the body slowly holds its client back rather than memory.
///
/// The two halves share a small queue under a lock that is never held
/// across a wait: the reader is the upstream's connection, often on
/// another task.
#[derive(Debug)]
pub struct StreamBody {
    shared: Arc<Mutex<Channel>>,
    /// From Content-Length, for the upstream request's framing.
    length: Option<u64>,
}

/// The connection's half of a [`StreamBody`]. Dropped before the body
/// ended (the stream reset, the connection gone), the body fails.
#[derive(Debug)]
pub struct BodySender {
    shared: Arc<Mutex<Channel>>,
}

#[derive(Debug, Default)]
struct Channel {
    chunks: VecDeque<Bytes>,
    trailers: Option<http::HeaderMap>,
    /// No more frames will come.
    ended: bool,
    /// The sender went before the end.
    broken: bool,
    /// Bytes taken and not yet reported to the sender.
    taken: u32,
    /// Bytes pushed and not yet taken.
    queued: usize,
    reader: Option<Waker>,
    /// Woken when bytes are taken.
    writer: Option<Waker>,
}

/// A new body and its sender.
pub fn stream_body(length: Option<u64>) -> (BodySender, StreamBody) {
    let shared = Arc::new(Mutex::new(Channel::default()));
    (
        BodySender {
            shared: shared.clone(),
        },
        StreamBody { shared, length },
    )
}

fn lock(m: &Mutex<Channel>) -> std::sync::MutexGuard<'_, Channel> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl StreamBody {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut c = lock(&self.shared);
        if let Some(data) = c.chunks.pop_front() {
            c.taken = c.taken.saturating_add(data.len() as u32);
            c.queued -= data.len();
            if let Some(w) = c.writer.take() {
                w.wake();
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(t) = c.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(t))));
        }
        if c.ended {
            return Poll::Ready(None);
        }
        if c.broken {
            return Poll::Ready(Some(
                Err("the client's stream ended before its body".into()),
            ));
        }
        c.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end(&self) -> bool {
        let c = lock(&self.shared);
        c.ended && c.chunks.is_empty() && c.trailers.is_none()
    }
}

impl BodySender {
    /// Adds a part of the body (`end`: the last).
    pub fn push(&self, data: Bytes, end: bool) {
        let mut c = lock(&self.shared);
        if !data.is_empty() {
            c.queued += data.len();
            c.chunks.push_back(data);
        }
        c.ended |= end;
        if let Some(w) = c.reader.take() {
            w.wake();
        }
    }

    /// The body's reader is gone.
    pub fn is_abandoned(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
    }

    /// The bytes pushed and not yet taken.
    pub fn queued(&self) -> usize {
        lock(&self.shared).queued
    }

    /// Ends the body with trailers.
    pub fn trailers(&self, trailers: http::HeaderMap) {
        let mut c = lock(&self.shared);
        c.trailers = Some(trailers);
        c.ended = true;
        if let Some(w) = c.reader.take() {
            w.wake();
        }
    }

    /// The bytes taken since the last call; `waker` is woken when more
    /// are.
    pub fn taken(&self, waker: &Waker) -> u32 {
        let mut c = lock(&self.shared);
        if c.writer.as_ref().is_none_or(|w| !w.will_wake(waker)) {
            c.writer = Some(waker.clone());
        }
        std::mem::take(&mut c.taken)
    }
}

impl Drop for BodySender {
    fn drop(&mut self) {
        let mut c = lock(&self.shared);
        c.broken = true;
        if let Some(w) = c.reader.take() {
            w.wake();
        }
    }
}
