//! HTTP/2 streams on the fast path.
//!
//! A bodiless HTTP/2 request for a fast-path route is served by the same
//! exchange as an HTTP/1.1 client's (`fast::exchange`): its decoded
//! fields are written as an HTTP/1.1 head, prepared by [`super::head`] as
//! the client's bytes would be, and the answer the exchange writes (head
//! and body, as HTTP/1.1) goes into a transcoder rather than a socket,
//! which reads the head back into fields for HPACK and takes the body out
//! of its chunk framing. So the rules of the fast path (routing, retries,
//! passive health, the proxy's own answers, pools, the access log) are
//! the ones an HTTP/2 stream gets, with none of the `http` types the
//! general path builds per request (a header map each way, a URI).
//!
//! Everything else (bodies, `TE: trailers`, routes the fast path does not
//! take) goes to the general path, as on HTTP/1.1.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use tokio::io::AsyncWrite;

use super::buffers::Held;
use super::head::Prepared;
use super::FastSettings;
use crate::http::h2::RequestHead;
use crate::http::Handler;
use crate::upstream::chunked::{ChunkedScanner, Decoded};

/// Body bytes a stream holds for its client before the exchange waits.
const HOLD: usize = 64 * 1024;

/// An HTTP/2 stream served on the fast path: the exchange, and what it
/// has answered so far.
pub struct Stream {
    exchange: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    out: Arc<Mutex<Transcoder>>,
}

/// The answer's head: its status and fields, as the exchange wrote them.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    bytes: Vec<u8>,
    fields: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
}

impl ResponseHead {
    /// The fields HTTP/2 may carry: those about the HTTP/1.1 connection
    /// (the hop-by-hop ones the exchange kept or added: its framing, its
    /// `connection: close`) are left out (RFC 9113 8.2.2).
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields
            .iter()
            .map(|(n, v)| (&self.bytes[n.clone()], &self.bytes[v.clone()]))
            .filter(|(n, _)| !crate::policy::hop_by_hop(n))
    }

    pub fn has(&self, name: &[u8]) -> bool {
        self.fields
            .iter()
            .any(|(n, _)| self.bytes[n.clone()].eq_ignore_ascii_case(name))
    }
}

/// Starts a stream on the fast path, if its request is one the fast path
/// serves: bodiless, no trailers asked for, a route that takes the fast
/// path, and the proxy not overloaded. `None` leaves it to the general
/// path, with nothing done.
pub fn start(
    head: &RequestHead,
    peer: SocketAddr,
    proxy: &Arc<Handler>,
    settings: &FastSettings,
) -> Option<Stream> {
    // Overloaded, or a target past `limits.max_uri`: the general path
    // answers (503, 414) and counts it.
    if proxy.overloaded()
        || head
            .path
            .is_some_and(|p| head.get(p).len() > proxy.max_uri())
    {
        return None;
    }
    let mut held = Held::new();
    let b = held.take();
    let plan = match write_h1(head, &mut b.input) {
        true => super::prepare(&b.input, peer, proxy, settings, &mut b.request),
        false => Prepared::Handover,
    };
    b.pos = b.input.len();
    let Prepared::Ready(plan) = plan else {
        // The buffers go back to the thread's list for the next stream.
        held.give_back();
        return None;
    };
    let out = Arc::new(Mutex::new(Transcoder::new(plan.head_request)));
    let writer = Writer { out: out.clone() };
    let proxy = proxy.clone();
    let exchange = Box::pin(async move {
        let mut writer = writer;
        let b = held.take();
        let (_, whole) =
            super::exchange_logged(&mut writer, b, &plan, peer, &proxy, Instant::now(), false)
                .await;
        lock(&writer.out).ended = Some(whole);
        b.pos = b.input.len();
        held.give_back();
    });
    Some(Stream {
        exchange: Some(exchange),
        out,
    })
}

/// Writes the request as an HTTP/1.1 head: the target from `:path`, Host
/// from `:authority` (a Host field that says otherwise leaves the request
/// to the general path), then the fields. False when it cannot be one.
fn write_h1(head: &RequestHead, out: &mut Vec<u8>) -> bool {
    let (Some(path), Some(method)) = (head.path, head.method) else {
        return false;
    };
    out.clear();
    out.extend_from_slice(head.get(method));
    out.push(b' ');
    out.extend_from_slice(head.get(path));
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let authority = head.authority.map(|a| head.get(a));
    let mut host_field = false;
    for (name, value) in head.fields() {
        match name {
            b"host" => {
                if authority.is_some_and(|a| a != value) {
                    return false;
                }
                host_field = true;
            }
            // The client takes trailers: the raw exchange drops them.
            b"te" => return false,
            _ => {}
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !host_field {
        let Some(a) = authority else {
            return false;
        };
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    true
}

impl Stream {
    /// Polls the exchange, until it ends.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(e) = &mut self.exchange {
            if e.as_mut().poll(cx).is_ready() {
                self.exchange = None;
            }
        }
    }

    /// Drives the exchange until the answer's head is ready. `None`: the
    /// exchange ended without one (it cannot, but the stream is then
    /// answered 502 by the caller).
    pub fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Option<ResponseHead>> {
        self.drive(cx);
        match lock(&self.out).head.take() {
            Some(head) => Poll::Ready(Some(head)),
            None if self.exchange.is_none() => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

/// Why a body ended before its end.
#[derive(Debug, thiserror::Error)]
#[error("the upstream's answer ended before its body did")]
pub struct Truncated;

impl Body for Stream {
    type Data = Bytes;
    type Error = Truncated;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Truncated>>> {
        self.drive(cx);
        let mut out = lock(&self.out);
        if !out.data.is_empty() {
            let data = out.data.split().freeze();
            if let Some(w) = out.writer.take() {
                w.wake();
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if self.exchange.is_some() {
            return Poll::Pending;
        }
        Poll::Ready(if out.complete() {
            None
        } else {
            Some(Err(Truncated))
        })
    }

    fn is_end_stream(&self) -> bool {
        self.exchange.is_none() && {
            let out = lock(&self.out);
            out.data.is_empty() && out.complete()
        }
    }
}

fn lock(m: &Mutex<Transcoder>) -> MutexGuard<'_, Transcoder> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How the body after the head is framed.
#[derive(Debug)]
enum Framing {
    /// No body (HEAD, 204, 304), or all of it taken.
    Done,
    Length(u64),
    Chunked(ChunkedScanner),
    /// Until the exchange ends.
    Eof,
}

/// Turns the HTTP/1.1 answer the exchange writes back into a head and
/// body bytes for HTTP/2.
#[derive(Debug)]
struct Transcoder {
    head_request: bool,
    /// The head's bytes, until it is whole.
    partial: Vec<u8>,
    /// `None` until the head is whole.
    framing: Option<Framing>,
    head: Option<ResponseHead>,
    data: BytesMut,
    /// The exchange, waiting for room.
    writer: Option<Waker>,
    /// Set when the exchange ends: whether its answer went out whole. A
    /// body that runs to the upstream's close is complete only then.
    ended: Option<bool>,
}

impl Transcoder {
    fn new(head_request: bool) -> Self {
        Transcoder {
            head_request,
            partial: Vec::new(),
            framing: None,
            head: None,
            data: BytesMut::new(),
            writer: None,
            ended: None,
        }
    }

    /// The body came to its end: its length, its last chunk, or, for one
    /// that runs to the upstream's close, an exchange that ended whole.
    fn complete(&self) -> bool {
        match self.framing {
            Some(Framing::Done) => true,
            Some(Framing::Eof) => self.ended == Some(true),
            _ => false,
        }
    }

    /// Takes what the exchange wrote.
    fn write(&mut self, buf: &[u8]) -> Result<(), &'static str> {
        let Some(framing) = &mut self.framing else {
            // The head is kept (its fields are read from it); the body
            // after it is taken from `buf` below.
            let seen = self.partial.len();
            self.partial.extend_from_slice(buf);
            let from = seen.saturating_sub(3);
            let Some(end) = self.partial[from..]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|at| from + at + 4)
            else {
                return Ok(());
            };
            self.partial.truncate(end);
            let (head, framing) = parse_head(std::mem::take(&mut self.partial), self.head_request)?;
            self.head = Some(head);
            self.framing = Some(framing);
            return self.write(&buf[end - seen..]);
        };
        let mut at = 0;
        while at < buf.len() {
            match framing {
                Framing::Done => return Ok(()),
                Framing::Eof => {
                    self.data.extend_from_slice(&buf[at..]);
                    return Ok(());
                }
                Framing::Length(left) => {
                    let take = (*left).min((buf.len() - at) as u64) as usize;
                    self.data.extend_from_slice(&buf[at..at + take]);
                    *left -= take as u64;
                    at += take;
                    if *left == 0 {
                        *framing = Framing::Done;
                    }
                }
                Framing::Chunked(scanner) => match scanner.decode(&buf[at..]) {
                    Ok(Decoded::Data { skip, len }) => {
                        self.data
                            .extend_from_slice(&buf[at + skip..at + skip + len]);
                        at += skip + len;
                    }
                    Ok(Decoded::More) => return Ok(()),
                    Ok(Decoded::End(_)) => {
                        *framing = Framing::Done;
                        return Ok(());
                    }
                    Err(_) => return Err("a malformed chunked body"),
                },
            }
        }
        Ok(())
    }
}

/// Parses the head the exchange wrote and says how its body is framed.
fn parse_head(bytes: Vec<u8>, head_request: bool) -> Result<(ResponseHead, Framing), &'static str> {
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut slots);
    match resp.parse(&bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err("a response head that does not parse"),
    }
    let status = resp.code.unwrap_or(502);
    let base = bytes.as_ptr() as usize;
    let span = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let mut fields = Vec::with_capacity(resp.headers.len());
    // As the exchange framed it (`upstream::framing`): a Transfer-Encoding
    // ending in chunked is chunked, any other runs to the close, and
    // either wins over a Content-Length.
    let mut length = None;
    let mut chunked = None;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            length = length.or(crate::upstream::framing::length(h.value));
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = h.value.rsplit(|&c| c == b',').next().unwrap_or(b"");
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
        fields.push((span(name), span(h.value)));
    }
    let mut framing = match (chunked, length) {
        (Some(true), _) => Framing::Chunked(ChunkedScanner::default()),
        (Some(false), _) | (None, None) => Framing::Eof,
        (None, Some(n)) => Framing::Length(n),
    };
    if head_request || status == 204 || status == 304 || matches!(framing, Framing::Length(0)) {
        framing = Framing::Done;
    }
    Ok((
        ResponseHead {
            status,
            bytes,
            fields,
        },
        framing,
    ))
}

/// What the exchange writes to: the stream's [`Transcoder`].
struct Writer {
    out: Arc<Mutex<Transcoder>>,
}

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut out = lock(&self.out);
        if out.data.len() >= HOLD {
            out.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        match out.write(buf) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(why) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                why,
            ))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcode(head_request: bool, pieces: &[&[u8]]) -> (Transcoder, Vec<u8>) {
        let mut t = Transcoder::new(head_request);
        for p in pieces {
            t.write(p).unwrap();
        }
        let data = t.data.split().to_vec();
        (t, data)
    }

    #[test]
    fn a_head_and_a_body_by_length_come_apart_in_any_pieces() {
        let whole = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\nx-a: b\r\n\r\nhelloEXTRA";
        for split in [1, 7, whole.len()] {
            let pieces: Vec<&[u8]> = whole.chunks(split).collect();
            let (mut t, data) = transcode(false, &pieces);
            assert_eq!(data, b"hello", "split {split}");
            assert!(t.complete());
            let head = t.head.take().unwrap();
            assert_eq!(head.status, 200);
            let fields: Vec<_> = head.fields().collect();
            assert_eq!(
                fields,
                [(&b"content-length"[..], &b"5"[..]), (b"x-a", b"b")]
            );
        }
    }

    #[test]
    fn a_chunked_body_loses_its_framing() {
        let whole = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\ntrailer: t\r\n\r\n";
        for split in [1, 3, whole.len()] {
            let pieces: Vec<&[u8]> = whole.chunks(split).collect();
            let (mut t, data) = transcode(false, &pieces);
            assert_eq!(data, b"hello world", "split {split}");
            assert!(t.complete());
            let head = t.head.take().unwrap();
            assert!(head.fields().next().is_none(), "transfer-encoding is gone");
        }
        let (t, _) = transcode(
            false,
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel"],
        );
        assert!(!t.complete(), "cut short");
        let mut t = Transcoder::new(false);
        t.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .unwrap();
        assert!(t.write(b"zz\r\n").is_err());
    }

    #[test]
    fn a_transfer_encoding_not_ending_in_chunked_runs_to_the_close() {
        let (t, data) = transcode(
            false,
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\ncontent-length: 3\r\n\r\n5\r\nab"],
        );
        assert!(matches!(t.framing, Some(Framing::Eof)));
        assert_eq!(data, b"5\r\nab");
        let (t, data) = transcode(
            false,
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"],
        );
        assert!(t.complete());
        assert_eq!(data, b"ab");
    }

    #[test]
    fn bodiless_answers_are_complete_at_their_head() {
        for (head_request, resp) in [
            (true, &b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n"[..]),
            (false, b"HTTP/1.1 204 No Content\r\n\r\n"),
            (false, b"HTTP/1.1 304 Not Modified\r\netag: x\r\n\r\n"),
            (false, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
        ] {
            let (t, data) = transcode(head_request, &[resp]);
            assert!(t.complete() && data.is_empty(), "{resp:?}");
        }
        // Without a length, the body runs to the end of the exchange, and
        // is whole if the exchange ended whole.
        let (mut t, data) = transcode(
            false,
            &[b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nab", b"cd"],
        );
        assert_eq!(data, b"abcd");
        assert!(!t.complete());
        t.ended = Some(false);
        assert!(!t.complete(), "cut short");
        t.ended = Some(true);
        assert!(t.complete());
    }

    fn head(fields: &[(&str, &str)]) -> RequestHead {
        let mut enc = crate::http::h2::hpack::Encoder::new();
        let mut block = Vec::new();
        for (n, v) in fields {
            enc.field(n.as_bytes(), v.as_bytes(), &mut block);
        }
        let mut dec = crate::http::h2::hpack::Decoder::new(4096);
        let limits = crate::http::h2::request::Limits {
            max_size: 1 << 16,
            max_count: 100,
        };
        crate::http::h2::request::decode(&mut dec, &block, limits, false).unwrap()
    }

    #[test]
    fn a_request_is_written_as_http1() {
        let mut out = Vec::new();
        let h = head(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "example.com"),
            (":path", "/a?b"),
            ("accept", "*/*"),
        ]);
        assert!(write_h1(&h, &mut out));
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "GET /a?b HTTP/1.1\r\naccept: */*\r\nhost: example.com\r\n\r\n"
        );
        // A Host field that agrees is kept; one that does not, or a client
        // that takes trailers, goes to the general path.
        let same = head(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "a"),
            (":path", "/"),
            ("host", "a"),
        ]);
        assert!(write_h1(&same, &mut out));
        assert_eq!(out.windows(7).filter(|w| w == b"host: a").count(), 1);
        let other = head(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "a"),
            (":path", "/"),
            ("host", "b"),
        ]);
        assert!(!write_h1(&other, &mut out));
        let te = head(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "a"),
            (":path", "/"),
            ("te", "trailers"),
        ]);
        assert!(!write_h1(&te, &mut out));
        let no_host = head(&[(":method", "GET"), (":scheme", "http"), (":path", "/")]);
        assert!(!write_h1(&no_host, &mut out));
    }
}
