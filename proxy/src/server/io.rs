//! Adapters for client connections: one handed from the fast path to
//! hyper, with the bytes the fast path already read put back in front; and
//! one whose writes time out when the client stops reading. And
//! [`ReadReady`], how an idle connection waits without a buffer, and
//! [`Unregistered`], how a parked one waits without the reactor.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Waiting for a client's next bytes without a buffer to read them into,
/// so that an idle keep-alive connection holds none (the fast path's
/// buffers go back to their free list meanwhile).
pub trait ReadReady {
    /// Ready when a read may find bytes, the end or an error. Spurious
    /// readiness is allowed (the read then waits with its buffer); a type
    /// that cannot tell is ready at once.
    fn poll_read_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl ReadReady for tokio::net::TcpStream {
    fn poll_read_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(&self, cx)
    }
}

/// TLS: rustls may hold decrypted bytes the socket will not announce, so
/// it is ready at once and the read waits with its buffer. (Telling the
/// two apart is for later: an idle TLS connection keeps rustls's own
/// buffers anyway.)
impl<S> ReadReady for tokio_rustls::server::TlsStream<S> {
    fn poll_read_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl<S: ReadReady + Unpin> ReadReady for Prefixed<S> {
    fn poll_read_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.prefix.is_some() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read_ready(cx)
    }
}

impl<S: ReadReady + Unpin> ReadReady for SendDeadline<S> {
    fn poll_read_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read_ready(cx)
    }
}

/// A client connection's stream as accepted: bytes read past a PROXY
/// header are put back in front (`Prefixed`), and every write, the TLS
/// handshake's too, is bounded by the send timeout (`SendDeadline`).
pub type Stream = SendDeadline<Prefixed<tokio::net::TcpStream>>;

/// Reads `prefix` first, then from `inner`; writes go straight to `inner`.
#[derive(Debug)]
pub struct Prefixed<S> {
    /// The bytes left to replay and where they start: boxed, as most
    /// connections never have any, and every connection holds a
    /// `Prefixed`. `None` once replayed.
    #[allow(clippy::box_collection)]
    prefix: Option<Box<(Vec<u8>, usize)>>,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Prefixed {
            prefix: (!prefix.is_empty()).then(|| Box::new((prefix, 0))),
            inner,
        }
    }

    /// Puts `bytes` back in front of what is still to be read: they come
    /// out first.
    pub fn put_back(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        self.prefix = Some(Box::new(match self.prefix.take() {
            None => (bytes, 0),
            Some(rest) => {
                let (old, pos) = *rest;
                let mut all = bytes;
                all.extend_from_slice(&old[pos..]);
                (all, 0)
            }
        }));
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(p) = &mut this.prefix {
            let (bytes, pos) = &mut **p;
            let rest = &bytes[*pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            *pos += n;
            if *pos == bytes.len() {
                this.prefix = None;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A client connection whose writes give up after `limit` without progress
/// (nginx's `send_timeout`): a client that stops reading must not hold its
/// connection, its upstream and a drain for ever. The timer exists only
/// while a write waits for room; a write that goes through at once costs a
/// branch.
#[derive(Debug)]
pub struct SendDeadline<S> {
    inner: S,
    /// The limit in milliseconds: a `Duration` is twice the size, and
    /// every connection holds one.
    limit_ms: u32,
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> SendDeadline<S> {
    pub fn new(inner: S, limit: std::time::Duration) -> Self {
        SendDeadline {
            inner,
            limit_ms: u32::try_from(limit.as_millis()).unwrap_or(u32::MAX),
            waiting: None,
        }
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Turns a write's `Pending` into an error once the limit has passed
    /// since the write began to wait; clears the timer on progress.
    fn watch<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.waiting = None;
            return r;
        }
        let limit = std::time::Duration::from_millis(self.limit_ms.into());
        let timer = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.waiting = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took nothing for the send timeout",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, r)
    }
}

/// A [`Stream`] taken out of Tokio's reactor: the socket alone, and what
/// its layers held. A parked connection waits like this
/// (`server::park`): the reactor's registration (a 256-byte block,
/// cache-aligned, and its waker) is the largest part of an idle
/// connection, and the lot watches the socket through an epoll set of its
/// own instead.
#[derive(Debug)]
pub struct Unregistered {
    socket: std::net::TcpStream,
    #[allow(clippy::box_collection)]
    prefix: Option<Box<(Vec<u8>, usize)>>,
    limit_ms: u32,
}

impl SendDeadline<Prefixed<tokio::net::TcpStream>> {
    /// Resets the connection as it is dropped (`SO_LINGER` 0): the client
    /// sees an error, not the clean end a close would say.
    pub fn reset(self) {
        let _ = self.inner.inner.set_zero_linger();
    }

    /// Takes the socket out of the reactor. A write timer still running is
    /// dropped: only a connection with nothing to send is parked.
    pub fn unregister(self) -> io::Result<Unregistered> {
        let Prefixed { prefix, inner } = self.inner;
        Ok(Unregistered {
            socket: inner.into_std()?,
            prefix,
            limit_ms: self.limit_ms,
        })
    }
}

impl Unregistered {
    /// Back in the reactor (of the runtime this is called in), as it was.
    pub fn register(self) -> io::Result<Stream> {
        Ok(SendDeadline {
            inner: Prefixed {
                prefix: self.prefix,
                inner: tokio::net::TcpStream::from_std(self.socket)?,
            },
            limit_ms: self.limit_ms,
            waiting: None,
        })
    }

    /// Bytes read from the socket and not yet replayed: readable now,
    /// whatever the socket says.
    pub fn has_buffered(&self) -> bool {
        self.prefix.is_some()
    }

    /// The socket, to watch.
    pub fn socket(&self) -> &std::net::TcpStream {
        &self.socket
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn replays_the_prefix_then_reads_on() {
        let inner: &[u8] = b" world";
        let mut p = Prefixed::new(b"hello".to_vec(), inner);
        let mut small = [0u8; 3];
        assert_eq!(p.read(&mut small).await.unwrap(), 3);
        assert_eq!(&small, b"hel");
        let mut rest = String::new();
        p.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "lo world");
    }

    /// Out of the reactor and back, a stream keeps its bytes still to
    /// replay, its send limit, and its socket.
    #[tokio::test]
    async fn a_stream_out_of_the_reactor_and_back_is_the_same_stream() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (socket, _) = listener.accept().await.unwrap();
        let stream = SendDeadline::new(
            Prefixed::new(b"kept ".to_vec(), socket),
            std::time::Duration::from_millis(1234),
        );
        let out = stream.unregister().unwrap();
        assert!(out.has_buffered());
        client.write_all(b"and sent").await.unwrap();
        let mut back = out.register().unwrap();
        assert_eq!(back.limit_ms, 1234);
        let mut got = [0u8; 13];
        back.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"kept and sent");
        back.write_all(b"answer").await.unwrap();
        let mut answer = [0u8; 6];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"answer");
    }

    #[tokio::test]
    async fn a_write_nobody_takes_times_out_and_progress_resets_the_timer() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut a = SendDeadline::new(a, std::time::Duration::from_millis(100));
        // Room for it: no timer at all.
        a.write_all(&[1; 1000]).await.unwrap();
        assert!(a.waiting.is_none());
        // The reader takes a little every 60 ms: slower than the writer,
        // never idle for the whole limit.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            for _ in 0..8 {
                tokio::time::sleep(std::time::Duration::from_millis(60)).await;
                tokio::io::AsyncReadExt::read(&mut b, &mut buf)
                    .await
                    .unwrap();
            }
            b
        });
        a.write_all(&[2; 4000]).await.unwrap();
        let _b = reader.await.unwrap();
        // Now nobody reads: the next write that waits fails.
        let start = std::time::Instant::now();
        let e = a.write_all(&[3; 4000]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= std::time::Duration::from_millis(100));
    }
}
