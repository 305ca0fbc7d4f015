//! Dispatch: one accepted connection, from its first byte to the HTTP
//! server that serves it: TLS when the listener has it, then the HTTP/1.1 fast path,
//! hyper, or HTTP/2 (`http2`, or `h2` on the h2 crate), chosen by ALPN or by
//! the connection's first bytes.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::Either;

use tokio_rustls::TlsAcceptor;

use crate::http::fast;
use crate::proxy_protocol;
use crate::tls::client_hello::{self, Sni};

use super::io::Prefixed;
use super::park::Parked;
use super::{h1, h2, http2, passthrough, Connection};

pub(super) use super::io::Stream;

/// The future that serves an accepted connection, over TLS when the
/// listener has it: its task's whole state, for as long as it is open.
///
/// The layers here are plain functions that return `async move` blocks
/// using what they captured in place. An `async fn` keeps its arguments
/// twice, as given and as its locals (rust-lang/rust#62958), and a block
/// that awaits a callee keeps what it moved into it: with four layers
/// nested, the copies of the stream and the connection's context were
/// most of an idle connection's task. The TLS path is boxed when it
/// begins, so a plain connection's task holds none of its state.
pub(super) fn serve_stream(
    io: Stream,
    tls: Option<TlsAcceptor>,
    conn: Connection,
) -> impl Future<Output = ()> + Send + 'static {
    match tls {
        None => Either::Left(serve_plain(io, conn, None)),
        Some(tls) => Either::Right(Box::pin(serve_tls(io, tls, conn))),
    }
}

/// A parked connection given its task back ([`super::park`]): served
/// from where it stopped, with the header timeout it had.
fn respawn(
    io: Stream,
    conn: Connection,
    deadline: tokio::time::Instant,
) -> tokio::task::AbortHandle {
    tokio::spawn(serve_plain(io, conn, Some(deadline))).abort_handle()
}

/// A plain connection: its PROXY header when the listener expects one,
/// then HTTP; or, `resumed`, a parked connection served again. Not an
/// `async fn`, on purpose: see [`serve_stream`]. One function for both,
/// so that a connection's task is one type, whichever started it.
#[allow(clippy::manual_async_fn)]
fn serve_plain(
    mut io: Stream,
    mut conn: Connection,
    mut resumed: Option<tokio::time::Instant>,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        if resumed.is_none() {
            if conn.shared.settings.proxy_protocol.is_some() {
                let Some(client) = Box::pin(proxy_header(&mut io, &conn)).await else {
                    return;
                };
                conn.client = client;
            }
            if !conn.shared.settings.http1_fast_path {
                return Box::pin(serve_without_fast_path(io, conn)).await;
            }
        }
        // The fast path reads the first request itself, under the header
        // timeout, and hands over what it does not serve.
        let prefix = loop {
            match fast_path(&mut io, &conn, resumed).await {
                fast::Served::Done => return,
                fast::Served::Abort => return io.reset(),
                // Moved whole before the wait: an `Option` matched in
                // place would keep its slot, and the connection's idle
                // state would make room for it.
                fast::Served::Handover(prefix) => break prefix,
                fast::Served::Idle(deadline) => {
                    let shared = std::sync::Arc::clone(&conn.shared.shared);
                    let p = Parked { io, conn, deadline };
                    match shared.lot.park(p, respawn) {
                        // The task ends here; the lot holds the connection.
                        Ok(()) => return,
                        // The proxy is stopping: served here to the end.
                        Err(p) => {
                            (io, conn, resumed) = (p.io, p.conn, Some(p.deadline));
                        }
                    }
                }
            }
        };
        Box::pin(hand_over(io, prefix, conn)).await;
    }
}

/// The fast path on `io` with what the connection gives it: how it ended.
/// A plain function, so the future is `fast::serve`'s own, with no layer
/// around it.
fn fast_path<'a, I>(
    io: &'a mut I,
    conn: &'a Connection,
    resumed: Option<tokio::time::Instant>,
) -> impl Future<Output = fast::Served> + Send + 'a
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + super::io::ReadReady + Unpin + Send,
{
    fast::serve(
        io,
        &conn.client,
        &conn.shared.handler,
        &conn.fast,
        &conn.shared.clock,
        resumed,
    )
}

/// The PROXY protocol header the LoadBalancer sends first, under the
/// request header timeout: the client it names, with the bytes read past
/// it put back in front of the stream. `None` closes the connection.
async fn proxy_header(io: &mut Stream, conn: &Connection) -> Option<SocketAddr> {
    let settings = &conn.shared.settings;
    let pp = settings.proxy_protocol.as_ref()?;
    let peer = conn.client;
    let header = tokio::time::timeout(
        settings.request_header_timeout,
        proxy_protocol::read(io, peer, pp),
    )
    .await;
    match header {
        Ok(Ok((client, rest))) => {
            io.get_mut().put_back(rest);
            Some(client)
        }
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer, error = %e, "connection closed");
            None
        }
        Err(_) => {
            tracing::debug!(peer = %peer, "connection closed: no PROXY header in time");
            None
        }
    }
}

/// The TLS handshake, under the request header timeout (a client that
/// sends half a ClientHello is cut off like one that sends half a request
/// head), then HTTP: HTTP/2 when ALPN chose it, else HTTP/1.1.
///
/// When some host asks for TLS passthrough, the ClientHello's first record
/// is read first, within the same deadline, and a connection whose SNI
/// names such a host is spliced to its backend instead
/// ([`super::passthrough`]); the others are handed to rustls with the
/// record put back in front. Without such hosts nothing is read ahead.
async fn serve_tls(mut io: Stream, tls: TlsAcceptor, mut conn: Connection) {
    if conn.shared.settings.proxy_protocol.is_some() {
        let Some(client) = proxy_header(&mut io, &conn).await else {
            return;
        };
        conn.client = client;
    }
    let errors = &conn.shared.handler.metrics().tls_handshake_errors;
    let deadline = tokio::time::Instant::now() + conn.shared.settings.request_header_timeout;
    let mut first = Vec::new();
    if !conn.shared.handler.snapshot().load().passthrough.is_empty() {
        let read = passthrough::read_first_record(&mut io);
        first = match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(record)) => record,
            Ok(Err(e)) => {
                errors.with_label_values(&["error"]).inc();
                tracing::debug!(client = %conn.client, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                errors.with_label_values(&["timeout"]).inc();
                tracing::debug!(client = %conn.client, "TLS handshake not done in time");
                return;
            }
        };
        // The table read now, after the wait: a host added meanwhile counts.
        let route = match client_hello::sni(&first) {
            Sni::Name(name) => conn
                .shared
                .handler
                .snapshot()
                .load()
                .passthrough
                .lookup(name)
                .cloned(),
            Sni::Absent | Sni::Unreadable => None,
        };
        if let Some(route) = route {
            let metrics = conn.shared.handler.metrics().clone();
            let client = Prefixed::new(first, io);
            // `conn` lives on: it holds a drain for the splice.
            passthrough::splice(client, route, conn.client, &metrics).await;
            return;
        }
    }
    let io = Prefixed::new(first, io);
    let stream = match tokio::time::timeout_at(deadline, tls.accept(io)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            errors.with_label_values(&["error"]).inc();
            tracing::debug!(client = %conn.client, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            errors.with_label_values(&["timeout"]).inc();
            tracing::debug!(client = %conn.client, "TLS handshake not done in time");
            return;
        }
    };
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        serve_h2(stream, conn).await;
    } else {
        serve_connection(stream, conn).await;
    }
}

/// Serves a TLS connection's HTTP/1.1 on the fast path (which hands over
/// what it does not serve), or with hyper alone.
async fn serve_connection<I>(mut io: I, conn: Connection)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + super::io::ReadReady + Unpin + Send + 'static,
{
    if !conn.shared.settings.http1_fast_path {
        return Box::pin(serve_without_fast_path(io, conn)).await;
    }
    match fast_path(&mut io, &conn, None).await {
        fast::Served::Handover(prefix) => Box::pin(hand_over(io, prefix, conn)).await,
        // Dropped without TLS's close_notify: the client can tell the
        // answer was cut.
        fast::Served::Done | fast::Served::Abort => {}
        // A TLS listener's connections do not park (`park_after` is
        // unset): should one come back idle, it is closed.
        fast::Served::Idle(_) => debug_assert!(false, "a TLS connection came back to park"),
    }
}

/// A connection the fast path handed over, with the bytes it had read:
/// HTTP/2 when they are its preface, else hyper's HTTP/1.1.
async fn hand_over<I>(io: I, prefix: Vec<u8>, conn: Connection)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let h2 = prefix.starts_with(b"PRI ");
    let io = Prefixed::new(prefix, io);
    if h2 {
        serve_h2(io, conn).await;
    } else {
        h1::serve(io, conn).await;
    }
}

/// The fast path off: the first bytes say HTTP/2 or HTTP/1.1.
async fn serve_without_fast_path<I>(io: I, conn: Connection)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limit = conn.shared.settings.request_header_timeout;
    match sniff(io, limit, conn.client).await {
        Some((io, true)) => serve_h2(io, conn).await,
        Some((io, false)) => h1::serve(io, conn).await,
        None => {}
    }
}

/// The HTTP/2 connection preface; HTTP/1.1 never starts with it.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads the connection's first bytes under the request header timeout,
/// until they are the HTTP/2 preface (true) or cannot be (false), and
/// gives them back ahead of the rest. A client that sends nothing, or half
/// a preface, is cut off here.
async fn sniff<I>(mut io: I, limit: Duration, client: SocketAddr) -> Option<(Prefixed<I>, bool)>
where
    I: tokio::io::AsyncRead + Unpin,
{
    let mut got = Vec::with_capacity(H2_PREFACE.len());
    let read = tokio::time::timeout(limit, async {
        loop {
            let mut buf = [0u8; 24];
            let want = H2_PREFACE.len() - got.len();
            let n = tokio::io::AsyncReadExt::read(&mut io, &mut buf[..want]).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
            got.extend_from_slice(&buf[..n]);
            if !H2_PREFACE.starts_with(&got) {
                return Ok(false);
            }
            if got.len() == H2_PREFACE.len() {
                return Ok(true);
            }
        }
    })
    .await;
    match read {
        Ok(Ok(h2)) => Some((Prefixed::new(got, io), h2)),
        Ok(Err(_)) | Err(_) => {
            tracing::debug!(client = %client, "closed a connection that sent no request");
            None
        }
    }
}

/// HTTP/2: Sluice's own server, or the h2 crate's for
/// `http2_fast_path: false`.
async fn serve_h2<I>(io: I, conn: Connection)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if conn.shared.settings.http2_fast_path {
        Box::pin(http2::serve_connection(io, conn)).await;
    } else {
        h2::serve_connection(io, conn).await;
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpStream;

    use super::super::io::SendDeadline;

    use super::*;
    use crate::server::Counted;

    /// An idle keep-alive connection costs its task, and the task is as
    /// large as this future's largest state. With the layers nested as
    /// `async fn`s it was 2,288 bytes in a release build; built as blocks,
    /// 528; with the idle clock's one wait in place of a timer and a
    /// drain wakeup, and the connection's context trimmed, 336 in this
    /// (debug) build, and the task 512 bytes with Tokio's header and
    /// trailer in release (heaptrack). A task is aligned to 128 bytes, so
    /// its size goes in steps of 128: past about 400 bytes of future it
    /// is 640 again. 384 since a parked connection is served again by the
    /// same future (its header timeout carried in, 32 bytes): an idle
    /// connection holds no task after a second ([`super::park`]), so this
    /// is what a busy one costs.
    #[tokio::test]
    async fn a_plain_connection_s_future_stays_small() {
        let shared = super::super::shared_for_tests();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        shared.open.add();
        let conn = Connection {
            client: peer,
            shared: Counted::new(shared.clone(), usize::MAX),
            fast: super::super::fast_for_tests(&shared, Duration::from_secs(5)),
        };
        let io = SendDeadline::new(Prefixed::new(Vec::new(), stream), Duration::from_secs(5));
        let future = serve_stream(io, None, conn);
        let size = std::mem::size_of_val(&future);
        assert!(size <= 384, "a plain connection's future is {size} bytes");
        drop(future);
        drop(client);
        // Dropped with its connection, the count goes back.
        assert_eq!(shared.open.get(), 0);
    }
}
