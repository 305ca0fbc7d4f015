//! Client-facing listeners: accept, serve HTTP/1.1 and HTTP/2 (h2c with
//! prior knowledge) on the same port, or HTTPS with HTTP/2 and HTTP/1.1
//! by ALPN, and drain gracefully on shutdown.
//!
//! A connection goes: PROXY header (when the listener expects one), TLS
//! handshake (on an HTTPS listener), then the HTTP/1.1 fast path or hyper.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::ListenerSettings;
use crate::http::fast;
use crate::http::{Client, Handler};
use crate::proxy_protocol;
use crate::Error;

pub mod h2;
pub mod io;

/// Binds every address, or names the one that failed.
pub async fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, Error> {
    let mut out = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        out.push(l);
    }
    Ok(out)
}

/// A bound client listener; with `tls`, it serves HTTPS.
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

/// The running client listeners.
pub struct Listeners {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    graceful: Arc<GracefulShutdown>,
}

impl Listeners {
    /// Starts an accept loop per listener.
    pub fn start(
        listeners: Vec<Listener>,
        proxy: Arc<Handler>,
        settings: ListenerSettings,
    ) -> Self {
        // HTTP/1.1 for connections the fast path hands over (they are
        // HTTP/1 for sure, and a plain HTTP/1 connection serves the
        // request it was handed even when a drain has begun), or all of it
        // when the fast path is off. HTTP/2 is `h2`'s.
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(settings.request_header_timeout)
            .keep_alive(true)
            // One flattened write per response instead of a writev of
            // headers and body: cheaper in the kernel for the small
            // responses that dominate (measured, docs/BENCHMARKS.md).
            .writev(false)
            // A head past limits.max_header_size gets 431 from hyper.
            .max_header_size(settings.max_header_size)
            // What hyper buffers per connection, reading and writing: a
            // client that reads slowly holds this much of its answer here
            // (hyper's default is 400 KiB: 2,000 slow readers held 1.2 GB).
            .max_buf_size(H1_BUFFER.max(settings.max_header_size + 8192));
        if settings.max_headers != crate::config::DEFAULT_MAX_HEADERS {
            // hyper's own default is the same 100, kept on the stack; any
            // other count costs a heap allocation per request.
            h1.max_headers(settings.max_headers);
        }
        let hyper = Arc::new(h1);
        let graceful = Arc::new(GracefulShutdown::new());
        let (stop, _) = watch::channel(false);
        // One count for every traffic listener: the limit is the process's.
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks = listeners
            .into_iter()
            .map(|l| {
                tokio::spawn(accept_loop(
                    l,
                    proxy.clone(),
                    hyper.clone(),
                    graceful.clone(),
                    stop.subscribe(),
                    settings.clone(),
                    open.clone(),
                ))
            })
            .collect();
        Listeners {
            stop,
            tasks,
            graceful,
        }
    }

    /// Stops accepting, asks every connection to finish (idle keep-alives
    /// close at once, HTTP/2 gets GOAWAY) and waits for them up to `drain`.
    /// Returns the number of connections still open when time ran out.
    pub async fn shutdown(self, drain: Duration) -> usize {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let graceful = match Arc::try_unwrap(self.graceful) {
            Ok(g) => g,
            Err(_) => return 0,
        };
        let open = graceful.count();
        tracing::info!(connections = open, "draining client connections");
        match tokio::time::timeout(drain, graceful.shutdown()).await {
            Ok(()) => 0,
            Err(_) => open.max(1),
        }
    }
}

/// hyper's buffer per HTTP/1 connection: 64 KiB, the fast path's most.
const H1_BUFFER: usize = 64 * 1024;

/// One client connection counted against `limits.max_connections`, for
/// as long as its task lives.
struct OpenConnection {
    open: Arc<std::sync::atomic::AtomicUsize>,
    gauge: prometheus::IntGauge,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
    }
}

async fn accept_loop(
    listener: Listener,
    proxy: Arc<Handler>,
    hyper: Arc<http1::Builder>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
    settings: ListenerSettings,
    open: Arc<std::sync::atomic::AtomicUsize>,
) {
    let Listener { tcp: listener, tls } = listener;
    let local = listener.local_addr().ok();
    let fast = fast::FastSettings {
        header_timeout: settings.request_header_timeout,
        proto: if tls.is_some() { "https" } else { "http" },
        forwarders: settings.trust_forwarded_for.clone(),
    };
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = stop.changed() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly
                    // rather than spin.
                    tracing::warn!(listener = %crate::logfmt::OptAddr(local), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        // limits.max_connections: past it the newcomer is closed at once
        // (nginx's worker_connections, HAProxy's maxconn), and those open
        // keep being served. Memory then has a ceiling whatever a flood
        // opens; the admin listener is apart and keeps answering.
        let metrics = proxy.metrics();
        let limit = settings.max_connections;
        if limit > 0 && open.fetch_add(1, Ordering::Relaxed) >= limit {
            open.fetch_sub(1, Ordering::Relaxed);
            metrics
                .connections_refused
                .with_label_values(&["max_connections"])
                .inc();
            drop(stream);
            continue;
        }
        if limit == 0 {
            open.fetch_add(1, Ordering::Relaxed);
        }
        let held = OpenConnection {
            open: open.clone(),
            gauge: metrics.client_connections.clone(),
        };
        held.gauge.inc();
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let hyper = hyper.clone();
        // Taken now, so that a drain waits for this connection whichever
        // path serves it.
        let watcher = graceful.watcher();
        let stop = stop.clone();
        let settings = settings.clone();
        let fast = fast.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _held = held;
            let mut conn = Conn {
                client: peer,
                proxy,
                hyper,
                watcher,
                stop,
                fast,
            };
            let Some(pp) = settings.proxy_protocol.clone() else {
                serve_stream(stream, tls, conn, &settings).await;
                return;
            };
            // The LoadBalancer's header first: it names the client.
            let header = tokio::time::timeout(
                settings.request_header_timeout,
                proxy_protocol::read(&mut stream, peer, &pp),
            )
            .await;
            let (client, rest) = match header {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer, error = %e, "connection closed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "connection closed: no PROXY header in time");
                    return;
                }
            };
            conn.client = client;
            serve_stream(
                crate::server::io::Prefixed::new(rest, stream),
                tls,
                conn,
                &settings,
            )
            .await;
        });
    }
    tracing::debug!(listener = %crate::logfmt::OptAddr(local), "stopped accepting");
}

/// One accepted connection and what serves it.
struct Conn {
    /// The client's address: the peer's, or the one a PROXY header gave.
    client: SocketAddr,
    proxy: Arc<Handler>,
    hyper: Arc<http1::Builder>,
    watcher: hyper_util::server::graceful::Watcher,
    stop: watch::Receiver<bool>,
    fast: fast::FastSettings,
}

impl Conn {
    /// What the proxy knows of the connection.
    fn info(&self) -> Client {
        let mut c = Client::new(self.client, self.fast.proto);
        c.forwarders = self.fast.forwarders.clone();
        c
    }
}

/// Serves a connection, over TLS when the listener has it.
async fn serve_stream<I>(io: I, tls: Option<TlsAcceptor>, conn: Conn, settings: &ListenerSettings)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Beneath TLS, so that the handshake's writes and every record after
    // it are bounded too.
    let io = crate::server::io::SendDeadline::new(io, settings.send_timeout);
    match tls {
        Some(tls) => serve_tls(io, tls, conn, settings).await,
        None => serve_connection(io, conn, settings).await,
    }
}

/// The TLS handshake, under the request header timeout (a client that
/// sends half a ClientHello is cut off like one that sends half a request
/// head), then HTTP: HTTP/2 when ALPN chose it, else HTTP/1.1.
async fn serve_tls<I>(io: I, tls: TlsAcceptor, conn: Conn, settings: &ListenerSettings)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let errors = &conn.proxy.metrics().tls_handshake_errors;
    let stream = match tokio::time::timeout(settings.request_header_timeout, tls.accept(io)).await {
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
        serve_h2(stream, conn, settings).await;
    } else {
        serve_connection(stream, conn, settings).await;
    }
}

/// Serves one client connection: on the fast path (which hands over what
/// it does not serve), or with hyper (HTTP/1.1) or `h2` (HTTP/2) alone.
async fn serve_connection<I>(io: I, mut conn: Conn, settings: &ListenerSettings)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = if settings.http1_fast_path {
        // The fast path reads the first request itself, under the header
        // timeout, and hands over what it does not serve.
        let Some(h) = fast::serve(
            io,
            conn.client,
            &conn.proxy,
            conn.fast.clone(),
            &mut conn.stop,
        )
        .await
        else {
            return;
        };
        let h2 = h.prefix.starts_with(b"PRI ");
        (crate::server::io::Prefixed::new(h.prefix, h.io), h2)
    } else {
        let Some(sniffed) = sniff(io, settings.request_header_timeout, conn.client).await else {
            return;
        };
        sniffed
    };
    match io {
        (io, true) => serve_h2(io, conn, settings).await,
        (io, false) => serve_h1(io, conn, settings.request_header_timeout).await,
    }
}

/// The HTTP/2 connection preface; HTTP/1.1 never starts with it.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads the connection's first bytes under the request header timeout,
/// until they are the HTTP/2 preface (true) or cannot be (false), and
/// gives them back ahead of the rest. A client that sends nothing, or half
/// a preface, is cut off here.
async fn sniff<I>(
    mut io: I,
    limit: Duration,
    client: SocketAddr,
) -> Option<(crate::server::io::Prefixed<I>, bool)>
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
        Ok(Ok(h2)) => Some((crate::server::io::Prefixed::new(got, io), h2)),
        Ok(Err(_)) | Err(_) => {
            tracing::debug!(client = %client, "closed a connection that sent no request");
            None
        }
    }
}

/// Resolves once the listeners are told to stop.
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which is a stop too.
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Serves an HTTP/2 connection (`h2`).
async fn serve_h2<I>(io: I, conn: Conn, settings: &ListenerSettings)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let info = conn.info();
    let Conn {
        proxy,
        watcher,
        mut stop,
        ..
    } = conn;
    // Held until the connection ends, so that a drain waits for it.
    let _watcher = watcher;
    let h2 = h2::H2Settings {
        max_concurrent_streams: settings.http2_max_concurrent_streams,
        stream_window: settings.http2_stream_window,
        connection_window: settings.http2_connection_window,
        send_timeout: settings.send_timeout,
        handshake_timeout: settings.request_header_timeout,
        idle_timeout: settings.http2_idle_timeout,
        max_header_size: settings.max_header_size,
        max_headers: settings.max_headers,
    };
    h2::serve(io, info, proxy, &h2, &mut stop).await;
}

/// Serves an HTTP/1.1 connection with hyper: one the fast path handed
/// over, or any when the fast path is off.
///
/// Such a connection always carries a request, or its start (that is why
/// it was handed over). On a drain, hyper is asked to finish only once it
/// has taken that request up: asked before it has read anything, it would
/// close the connection with the request unanswered.
async fn serve_h1<I>(io: I, conn: Conn, header_timeout: Duration)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn_info = conn.info();
    let Conn {
        proxy,
        hyper,
        watcher,
        mut stop,
        ..
    } = conn;
    // Held until the connection ends, so that a drain waits for it.
    let _watcher = watcher;
    let metrics = proxy.metrics().clone();
    let started = Arc::new(tokio::sync::Notify::new());
    let peer = conn_info.peer;
    let on_request = started.clone();
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        on_request.notify_one();
        let proxy = proxy.clone();
        let conn_info = conn_info.clone();
        async move {
            Ok::<_, Infallible>(
                proxy
                    .handle(req.map(crate::client_body::ClientBody::Http1), conn_info)
                    .await,
            )
        }
    });
    let conn = hyper
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped(&mut stop) => {
            let first = tokio::time::timeout(header_timeout, started.notified());
            tokio::select! {
                r = conn.as_mut() => r,
                _ = first => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            }
        }
    };
    if let Err(e) = result {
        // hyper answered 431 (or 414 past its own 64 KiB) itself.
        if e.is_parse_too_large() {
            metrics
                .requests_refused
                .with_label_values(&["headers_too_large"])
                .inc();
        }
        tracing::debug!(client = %peer, error = %e, "client connection ended with an error");
    }
}
