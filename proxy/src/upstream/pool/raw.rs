//! HTTP/1.1 to a plain upstream over the fast path's raw sockets, for the
//! bodiless requests the hyper path serves: HTTP/2 streams above all.
//! The response comes back without its hop-by-hop fields.
//!
//! hyper's client costs, per request, a dispatcher turn, a channel each
//! way, a timer, and a copy of the request's headers kept to send again;
//! in a profile of HTTP/2 over TLS, the upstream side was 30 % of the
//! proxy's CPU, and the user part of it as much as the whole user time of
//! a fast-path request. Here the request head is written from the decoded
//! request in one write; the response head is parsed with httparse into an
//! `http::Response` whose values are slices of the read buffer; and the
//! body goes on in frames that are slices of that buffer too. The request
//! is never consumed, so one that a pooled connection closed under goes
//! out again with nothing copied. The body's framing is read as the fast
//! path reads it ([`crate::upstream::framing`]), and its socket goes back
//! to the same idle list.
//!
//! Requests with a body, upgrades and TLS upstreams keep hyper's client.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{connect_tcp, SendError, SendLimits, RESPONSE_HEAD};
use crate::client_body::ClientBody;
use crate::policy::{self, AfterClose};
use crate::upstream::chunked::{ChunkError, ChunkedScanner, Decoded};
use crate::upstream::endpoint::Endpoint;
use crate::upstream::framing::{self, Framing};

/// What one read asks room for: a head, or a part of the body. A part is
/// handed on whole, so this also bounds what one slow client holds.
const READ: usize = 8 * 1024;

/// True when a request may take this path: no body to stream, no upgrade,
/// a client that takes no trailers (they are dropped here, as nginx drops
/// an upstream's), and a plain upstream (the idle sockets are plain TCP).
pub(super) fn fits(endpoint: &Endpoint, req: &Request<ClientBody>, limits: &SendLimits) -> bool {
    endpoint.tls.is_none()
        && !limits.upgrade
        && !limits.trailers
        && http_body::Body::is_end_stream(req.body())
}

/// Sends a bodiless request over a pooled socket, else a fresh one, and
/// waits up to `response_header` for the response head. A pooled socket
/// that closed under a repeatable request is followed by one fresh one
/// ([`policy::after_close`]), as on the fast path.
pub(super) async fn send(
    endpoint: &Arc<Endpoint>,
    req: Request<ClientBody>,
    limits: SendLimits,
) -> Result<Response<RawBody>, SendError> {
    let mut head = Vec::with_capacity(128 + 64 * req.headers().len());
    write_head(&req, &mut head);
    let head_request = req.method() == Method::HEAD;
    let idempotent = policy::idempotent(req.method().as_str().as_bytes());
    let limit = endpoint
        .response_head
        .unwrap_or(RESPONSE_HEAD)
        .max(RESPONSE_HEAD);
    let mut fresh_only = false;
    loop {
        let pooled = if fresh_only {
            None
        } else {
            endpoint.pool.take_raw(limits.idle)
        };
        let reused = pooled.is_some();
        let mut up = match pooled {
            Some(s) => s,
            None => match connect_tcp(endpoint, limits.connect).await {
                Ok(s) => s,
                Err(e) => return Err(SendError::Connect(Box::new(req), e)),
            },
        };
        let exchanged = tokio::time::timeout(
            limits.response_header,
            exchange(&mut up, &head, head_request, limit),
        )
        .await;
        match exchanged {
            Err(_) => return Err(SendError::Timeout(limits.response_header)),
            Ok(Ok((parts, framing, reusable, buf))) => {
                let body = RawBody::new(up, buf, framing, reusable, endpoint, limits.max_idle);
                return Ok(Response::from_parts(parts, body));
            }
            Ok(Err(HeadError::Closed)) => match policy::after_close(reused, idempotent, true) {
                AfterClose::SendFresh => {
                    tracing::debug!(endpoint = %endpoint.addr, "a pooled connection closed under a request: sending it again on a fresh one");
                    fresh_only = true;
                }
                _ => {
                    return Err(SendError::Closed {
                        again: idempotent.then(|| Box::new(req)),
                        reused,
                    })
                }
            },
            Ok(Err(HeadError::Broken(why))) => return Err(SendError::Broken(why)),
        }
    }
}

/// Writes the request head: origin-form target (an empty path is `/`,
/// even before a query), then the fields as they stand after the proxy's
/// rewriting. A body-carrying method without a body says so with
/// `content-length: 0`, as RFC 9110 8.6 asks (hyper's client sends none).
fn write_head(req: &Request<ClientBody>, out: &mut Vec<u8>) {
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.uri().path().as_bytes());
    if let Some(q) = req.uri().query() {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let may_have_body = !matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    );
    if may_have_body
        && !req.headers().contains_key(http::header::CONTENT_LENGTH)
        && !req.headers().contains_key(http::header::TRANSFER_ENCODING)
    {
        out.extend_from_slice(b"content-length: 0\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How an exchange failed before a response head was had.
enum HeadError {
    /// The socket closed (or reset) before any byte of an answer.
    Closed,
    Broken(&'static str),
}

/// Writes the request and reads the response head: its parts, how its
/// body is framed, whether the socket may serve again, and the bytes read
/// past the head.
async fn exchange(
    up: &mut TcpStream,
    head: &[u8],
    head_request: bool,
    limit: usize,
) -> Result<(http::response::Parts, Framing, bool, BytesMut), HeadError> {
    // A failed write is not the end: an upstream may answer and close
    // before reading it all. The read below finds the answer, or the close.
    let wrote = up.write_all(head).await.is_ok();
    let mut buf = BytesMut::with_capacity(READ);
    let mut answered = false;
    let mut interim = 0;
    loop {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ);
        }
        match up.read_buf(&mut buf).await {
            Ok(0) | Err(_) if !answered => return Err(HeadError::Closed),
            Ok(0) | Err(_) => {
                return Err(HeadError::Broken(
                    "connection failed during the response head",
                ))
            }
            Ok(_) => answered = true,
        }
        loop {
            match parse(&mut buf, head_request, limit) {
                Parsed::Partial => break,
                Parsed::Interim(len) => {
                    // Skipped and forgotten; an upstream that sends them
                    // without end is cut off like an endless head.
                    buf.advance(len);
                    interim += len;
                    if interim > limit {
                        return Err(HeadError::Broken("too many interim responses"));
                    }
                }
                // A socket whose write failed is not trusted again.
                Parsed::Ready(parts, framing, reusable) => {
                    return Ok((parts, framing, reusable && wrote, buf))
                }
                Parsed::Invalid(why) => return Err(HeadError::Broken(why)),
            }
        }
    }
}

enum Parsed {
    Partial,
    Interim(usize),
    Ready(http::response::Parts, Framing, bool),
    Invalid(&'static str),
}

/// Where one field sits in the head.
#[derive(Clone, Copy, Default)]
struct Field {
    name: (usize, usize),
    value: (usize, usize),
}

/// Parses the response head at the start of `buf`; a complete one is
/// split off it, and its field values are slices of it.
fn parse(buf: &mut BytesMut, head_request: bool, limit: usize) -> Parsed {
    let mut fields = framing::fields();
    let mut resp = httparse::Response::new(&mut []);
    let (len, code, version, facts) =
        match framing::parse(&mut resp, &mut fields, buf, limit, head_request) {
            framing::Head::Partial => return Parsed::Partial,
            framing::Head::Interim(len) => return Parsed::Interim(len),
            framing::Head::Invalid(why) => return Parsed::Invalid(why),
            framing::Head::Final {
                len,
                code,
                version,
                facts,
            } => (len, code, version, facts),
        };
    let Ok(status) = StatusCode::from_u16(code) else {
        return Parsed::Invalid("malformed status code");
    };
    // Where each field sits, so that the values can be slices of the head
    // once it is split off the buffer.
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        (start, start + s.len())
    };
    let mut spots = [Field::default(); framing::MAX_FIELDS];
    let mut n = 0;
    for f in resp.headers.iter() {
        let name = f.name.as_bytes();
        // The connection's own fields stay here, as on the fast path; and
        // Content-Length means nothing beside Transfer-Encoding (the body
        // is decoded here, so it would be wrong anyway).
        if policy::hop_by_hop(name)
            || (facts.transfer_encoding && name.eq_ignore_ascii_case(b"content-length"))
            || (facts.names_fields && framing::named_by_connection(resp.headers, name))
        {
            continue;
        }
        spots[n] = Field {
            name: at(f.name.as_bytes()),
            value: at(f.value),
        };
        n += 1;
    }
    // A reason phrase of the upstream's own, kept as hyper's client keeps
    // it, for an HTTP/1.1 client (HTTP/2 has none).
    let reason = resp
        .reason
        .filter(|r| Some(*r) != status.canonical_reason())
        .map(|r| at(r.as_bytes()));
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(n);
    for f in &spots[..n] {
        let Ok(name) = HeaderName::from_bytes(&head[f.name.0..f.name.1]) else {
            return Parsed::Invalid("malformed response header name");
        };
        let Ok(value) = HeaderValue::from_maybe_shared(head.slice(f.value.0..f.value.1)) else {
            return Parsed::Invalid("malformed response header value");
        };
        headers.append(name, value);
    }
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = status;
    parts.version = if version == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    parts.headers = headers;
    if let Some(Ok(r)) = reason.map(|r| hyper::ext::ReasonPhrase::try_from(head.slice(r.0..r.1))) {
        parts.extensions.insert(r);
    }
    Parsed::Ready(parts, facts.framing, facts.reusable)
}

/// How an upstream response body broke off.
#[derive(Debug, thiserror::Error)]
pub enum RawBodyError {
    #[error("the upstream closed in the middle of a response body")]
    Cut,
    #[error("the upstream sent a malformed chunked body: {0}")]
    Chunked(#[from] ChunkError),
    #[error("reading the upstream response body: {0}")]
    Io(#[from] std::io::Error),
}

/// A response body read from a raw upstream socket: data frames sliced
/// from the read buffer, the chunk framing taken off. When it ends cleanly
/// the socket goes back to the endpoint's idle list.
pub struct RawBody {
    /// `None` once the body has ended (or broken off).
    up: Option<TcpStream>,
    /// Read but not yet handed on.
    buf: BytesMut,
    framing: Framing,
    /// Of a `Length` body: the bytes not yet handed on.
    remaining: u64,
    chunks: ChunkedScanner,
    reusable: bool,
    endpoint: Arc<Endpoint>,
    max_idle: usize,
}

impl std::fmt::Debug for RawBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawBody")
            .field("framing", &self.framing)
            .field("ended", &self.up.is_none())
            .finish_non_exhaustive()
    }
}

impl RawBody {
    fn new(
        up: TcpStream,
        buf: BytesMut,
        framing: Framing,
        reusable: bool,
        endpoint: &Arc<Endpoint>,
        max_idle: usize,
    ) -> Self {
        let mut body = RawBody {
            up: Some(up),
            buf,
            framing,
            remaining: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunks: ChunkedScanner::default(),
            reusable,
            endpoint: endpoint.clone(),
            max_idle,
        };
        if matches!(framing, Framing::Empty | Framing::Length(0)) {
            body.end();
        }
        body
    }

    /// The body ended: the socket goes back to the idle list if nothing
    /// was left over and the response allowed it.
    fn end(&mut self) {
        if let Some(up) = self.up.take() {
            if self.reusable && self.buf.is_empty() {
                self.endpoint.pool.put_raw(up, self.max_idle);
            }
        }
        self.buf = BytesMut::new();
    }

    /// The body broke off or was given up: the socket is closed.
    pub fn abandon(&mut self) {
        self.up = None;
        self.buf = BytesMut::new();
    }

    pub fn is_end_stream(&self) -> bool {
        self.up.is_none()
    }

    pub fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Empty => SizeHint::with_exact(0),
            Framing::Length(_) => SizeHint::with_exact(self.remaining),
            Framing::Chunked | Framing::Eof => SizeHint::default(),
        }
    }

    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RawBodyError>>> {
        loop {
            if self.up.is_none() {
                return Poll::Ready(None);
            }
            if !self.buf.is_empty() {
                match self.framing {
                    Framing::Empty => {
                        // Bytes after a body that has none: not reused.
                        self.reusable = false;
                        self.end();
                        return Poll::Ready(None);
                    }
                    Framing::Length(_) => {
                        let take = (self.buf.len() as u64).min(self.remaining) as usize;
                        self.remaining -= take as u64;
                        let data = self.buf.split_to(take).freeze();
                        if self.remaining == 0 {
                            self.end();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Framing::Chunked => match self.chunks.decode(&self.buf) {
                        Ok(Decoded::Data { skip, len }) => {
                            self.buf.advance(skip);
                            let data = self.buf.split_to(len).freeze();
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        Ok(Decoded::More) => self.buf.clear(),
                        Ok(Decoded::End(n)) => {
                            self.buf.advance(n);
                            self.end();
                            return Poll::Ready(None);
                        }
                        Err(e) => {
                            self.abandon();
                            return Poll::Ready(Some(Err(e.into())));
                        }
                    },
                    Framing::Eof => {
                        let data = self.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(READ);
            }
            let Some(up) = &mut self.up else {
                return Poll::Ready(None);
            };
            match ready!(tokio_util::io::poll_read_buf(
                Pin::new(up),
                cx,
                &mut self.buf
            )) {
                Ok(0) if self.framing == Framing::Eof => {
                    self.reusable = false;
                    self.end();
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    self.abandon();
                    return Poll::Ready(Some(Err(RawBodyError::Cut)));
                }
                Ok(_) => {}
                Err(e) => {
                    self.abandon();
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(head: &[u8], head_request: bool) -> Parsed {
        let mut buf = BytesMut::from(head);
        parse(&mut buf, head_request, RESPONSE_HEAD)
    }

    #[test]
    fn a_head_becomes_parts_without_the_connection_s_fields() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: x-hop, keep-alive\r\nX-Hop: no\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\nX-B: 2\r\n\r\n5\r\nhello"[..],
        );
        let Parsed::Ready(parts, framing, reusable) = parse(&mut buf, false, RESPONSE_HEAD) else {
            panic!("a whole head");
        };
        assert_eq!(parts.status, 200);
        assert_eq!(framing, Framing::Chunked);
        assert!(!reusable, "both framings: never reused");
        let names: Vec<_> = parts.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-a", "x-b"]);
        // What follows the head stays in the buffer for the body.
        assert_eq!(&buf[..], b"5\r\nhello");
    }

    #[test]
    fn interim_heads_are_skipped_and_bad_ones_refused() {
        assert!(matches!(
            parsed(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false),
            Parsed::Interim(40)
        ));
        assert!(matches!(
            parsed(b"HTTP/1.1 200 OK\r\nX: 1\r\n", false),
            Parsed::Partial
        ));
        for bad in [
            &b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            assert!(
                matches!(parsed(bad, false), Parsed::Invalid(_)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut huge = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        huge.resize(RESPONSE_HEAD + 10, b'a');
        assert!(matches!(parsed(&huge, false), Parsed::Invalid(_)));
    }

    #[test]
    fn a_head_request_and_http_1_0_frame_as_they_should() {
        let Parsed::Ready(_, framing, reusable) =
            parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true)
        else {
            panic!("a whole head");
        };
        assert_eq!((framing, reusable), (Framing::Empty, true));
        let Parsed::Ready(parts, framing, reusable) =
            parsed(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", false)
        else {
            panic!("a whole head");
        };
        assert_eq!(parts.version, Version::HTTP_10);
        assert_eq!((framing, reusable), (Framing::Length(5), false));
    }

    #[test]
    fn the_request_head_is_written_in_origin_form() {
        let mut req = Request::post("/up?x=1").body(ClientBody::Empty).unwrap();
        req.headers_mut()
            .insert(http::header::HOST, HeaderValue::from_static("a.example"));
        let mut out = Vec::new();
        write_head(&req, &mut out);
        assert_eq!(
            out,
            b"POST /up?x=1 HTTP/1.1\r\nhost: a.example\r\ncontent-length: 0\r\n\r\n"
        );
        let req = Request::get("/").body(ClientBody::Empty).unwrap();
        out.clear();
        write_head(&req, &mut out);
        assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n");
        // An HTTP/2 client may send `:path: ?a=1`: the path is `/`.
        let mut parts = http::uri::Parts::default();
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("?a=1"));
        let req = Request::get(http::Uri::from_parts(parts).unwrap())
            .body(ClientBody::Empty)
            .unwrap();
        out.clear();
        write_head(&req, &mut out);
        assert_eq!(out, b"GET /?a=1 HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn an_upstream_s_own_reason_phrase_is_kept() {
        let reason = |head: &[u8]| {
            let Parsed::Ready(parts, ..) = parsed(head, false) else {
                panic!("a whole head");
            };
            parts
                .extensions
                .get::<hyper::ext::ReasonPhrase>()
                .map(|r| r.as_bytes().to_vec())
        };
        assert_eq!(
            reason(b"HTTP/1.1 200 Fine Thanks\r\nContent-Length: 0\r\n\r\n"),
            Some(b"Fine Thanks".to_vec())
        );
        assert_eq!(
            reason(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            None
        );
    }
}
