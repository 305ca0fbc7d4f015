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
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::ListenerSettings;
use crate::fast;
use crate::proxy::{ClientConn, Proxy};
use crate::proxy_protocol;
use crate::Error;

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
    pub fn start(listeners: Vec<Listener>, proxy: Arc<Proxy>, settings: ListenerSettings) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.request_header_timeout)
            .keep_alive(true)
            // One flattened write per response instead of a writev of
            // headers and body: cheaper in the kernel for the small
            // responses that dominate (measured, docs/BENCHMARKS.md).
            .writev(false);
        // HTTP/2's limits, set here rather than left to hyper's and h2's
        // defaults (which may change between versions), each against the
        // attack it answers.
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20))
            // Streams a client may have open at once (nginx's
            // http2_max_concurrent_streams, 128): bounds what one
            // connection can hold, idle streams included.
            .max_concurrent_streams(settings.http2_max_concurrent_streams)
            // Rapid reset (CVE-2023-44487): streams the client opened and
            // reset before they were taken up. Past 20, GOAWAY.
            .max_pending_accept_reset_streams(HTTP2_MAX_PENDING_RESETS)
            // Streams reset because of the client's own errors
            // (RUSTSEC-2024-0003): past this, GOAWAY.
            .max_local_error_reset_streams(HTTP2_MAX_LOCAL_ERROR_RESETS)
            // CONTINUATION flood (CVE-2024-27316 family): the header block
            // is bounded however many CONTINUATION frames carry it.
            .max_header_list_size(HTTP2_MAX_HEADER_LIST);
        // The same HTTP/1 settings, for connections the fast path hands
        // over: they are HTTP/1 for sure, and a plain HTTP/1 connection
        // serves the request it was handed even when a drain has begun
        // (the auto builder would drop it unread while sniffing).
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(settings.request_header_timeout)
            .keep_alive(true)
            .writev(false);
        let hyper = Arc::new(Hyper { auto: builder, h1 });
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

/// Client-reset streams not yet taken up before a GOAWAY (h2's own default).
const HTTP2_MAX_PENDING_RESETS: usize = 20;
/// Streams reset for the client's errors before a GOAWAY (hyper's default).
const HTTP2_MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// The largest header block a client may send: 16 KiB, the fast path's
/// whole request head (past it a client gets 431).
const HTTP2_MAX_HEADER_LIST: u32 = 16 * 1024;

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
    proxy: Arc<Proxy>,
    hyper: Arc<Hyper>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
    settings: ListenerSettings,
    open: Arc<std::sync::atomic::AtomicUsize>,
) {
    let Listener { tcp: listener, tls } = listener;
    let local = listener.local_addr().ok();
    let fast = fast::Settings {
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
            serve_stream(fast::io::Prefixed::new(rest, stream), tls, conn, &settings).await;
        });
    }
    tracing::debug!(listener = %crate::logfmt::OptAddr(local), "stopped accepting");
}

/// One accepted connection and what serves it.
struct Conn {
    /// The client's address: the peer's, or the one a PROXY header gave.
    client: SocketAddr,
    proxy: Arc<Proxy>,
    hyper: Arc<Hyper>,
    watcher: hyper_util::server::graceful::Watcher,
    stop: watch::Receiver<bool>,
    fast: fast::Settings,
}

impl Conn {
    /// What hyper's handler knows of the connection.
    fn info(&self) -> ClientConn {
        let mut c = ClientConn::new(self.client, self.fast.proto);
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
    let io = fast::io::SendDeadline::new(io, settings.send_timeout);
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
        let info = conn.info();
        let Some(io) = first_byte(stream, settings.request_header_timeout, conn.client).await
        else {
            return;
        };
        let mut stop = conn.stop;
        serve_hyper(
            io,
            info,
            conn.proxy,
            &conn.hyper.auto,
            conn.watcher,
            &mut stop,
            settings.http2_idle_timeout,
        )
        .await;
    } else {
        serve_connection(stream, conn, settings).await;
    }
}

/// Serves one client connection: on the fast path (which hands over what
/// it does not serve), or with hyper alone.
async fn serve_connection<I>(io: I, conn: Conn, settings: &ListenerSettings)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn_info = conn.info();
    let Conn {
        client,
        proxy,
        hyper,
        watcher,
        mut stop,
        fast,
    } = conn;
    let io = if settings.http1_fast_path {
        // The fast path reads the first request itself, under the header
        // timeout, and hands over what it does not serve.
        let Some(h) = fast::serve(io, client, &proxy, fast, &mut stop).await else {
            return;
        };
        let h2 = h.prefix.starts_with(b"PRI ");
        let io = fast::io::Prefixed::new(h.prefix, h.io);
        if !h2 {
            serve_h1(
                io,
                conn_info,
                proxy,
                &hyper.h1,
                watcher,
                &mut stop,
                settings.request_header_timeout,
            )
            .await;
            return;
        }
        io
    } else {
        let Some(io) = first_byte(io, settings.request_header_timeout, client).await else {
            return;
        };
        io
    };
    serve_hyper(
        io,
        conn_info,
        proxy,
        &hyper.auto,
        watcher,
        &mut stop,
        settings.http2_idle_timeout,
    )
    .await;
}

/// Waits for the connection's first byte under the request header timeout.
/// hyper's header timer starts with the first request line, and neither
/// the HTTP/2 preface nor the protocol sniffing has a timer of its own: a
/// client that sends nothing at all is cut off here.
async fn first_byte<I>(
    mut io: I,
    limit: Duration,
    client: SocketAddr,
) -> Option<fast::io::Prefixed<I>>
where
    I: tokio::io::AsyncRead + Unpin,
{
    let mut first = [0u8; 1];
    let read =
        tokio::time::timeout(limit, tokio::io::AsyncReadExt::read(&mut io, &mut first)).await;
    if !matches!(read, Ok(Ok(1))) {
        tracing::debug!(client = %client, "closed a connection that sent nothing");
        return None;
    }
    Some(fast::io::Prefixed::new(first.to_vec(), io))
}

/// Resolves once the listeners are told to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which is a stop too.
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// hyper's connection builders.
struct Hyper {
    /// HTTP/1.1 or h2c, told apart by the first bytes.
    auto: auto::Builder<TokioExecutor>,
    /// HTTP/1.1 only.
    h1: http1::Builder,
}

/// Serves an HTTP/1 connection the fast path handed over.
///
/// Such a connection always carries a request (that is why it was handed
/// over). On a drain, hyper is asked to finish only once it has taken that
/// request up: asked before it has read anything, it would close the
/// connection with the request unanswered.
async fn serve_h1<I>(
    io: I,
    conn_info: ClientConn,
    proxy: Arc<Proxy>,
    builder: &http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    stop: &mut watch::Receiver<bool>,
    header_timeout: Duration,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Held until the connection ends, so that a drain waits for it.
    let _watcher = watcher;
    let started = Arc::new(tokio::sync::Notify::new());
    let peer = conn_info.peer;
    let on_request = started.clone();
    let svc = service_fn(move |req| {
        on_request.notify_one();
        let proxy = proxy.clone();
        let conn_info = conn_info.clone();
        async move { Ok::<_, Infallible>(proxy.handle(req, conn_info).await) }
    });
    let conn = builder
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped(stop) => {
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
        tracing::debug!(client = %peer, error = %e, "client connection ended with an error");
    }
}

/// Serves a connection with hyper: HTTP/1.1 and HTTP/2 (h2c, or over TLS),
/// upgrades included. It ends gracefully (GOAWAY for HTTP/2) when the
/// proxy drains, or when no request has been in flight for `idle`: hyper
/// answers the client's pings for ever, so without this a connection that
/// never sends a request would hold its socket and task for good.
async fn serve_hyper<I>(
    io: I,
    conn_info: ClientConn,
    proxy: Arc<Proxy>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    stop: &mut watch::Receiver<bool>,
    idle: Duration,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Held until the connection ends, so that a drain waits for it.
    let _watcher = watcher;
    let peer = conn_info.peer;
    let activity = Arc::new(Activity::new());
    let svc = {
        let activity = activity.clone();
        service_fn(move |req| {
            let proxy = proxy.clone();
            let conn_info = conn_info.clone();
            let stream = Stream::begin(&activity);
            async move {
                let resp = proxy.handle(req, conn_info).await;
                Ok::<_, Infallible>(resp.map(|body| Tracked::new(body, stream)))
            }
        })
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    let mut conn = std::pin::pin!(conn);
    let mut check = tokio::time::Instant::now() + idle;
    let result = loop {
        tokio::select! {
            r = conn.as_mut() => break r,
            () = stopped(stop) => {
                conn.as_mut().graceful_shutdown();
                break conn.await;
            }
            () = tokio::time::sleep_until(check) => match activity.idle_for() {
                Some(quiet) if quiet >= idle => {
                    tracing::debug!(client = %peer, "closing a connection idle for {quiet:?}");
                    conn.as_mut().graceful_shutdown();
                    break conn.await;
                }
                Some(quiet) => check = tokio::time::Instant::now() + (idle - quiet),
                None => check = tokio::time::Instant::now() + idle,
            },
        }
    };
    if let Err(e) = result {
        tracing::debug!(client = %peer, error = %e, "client connection ended with an error");
    }
}

/// A connection's requests in flight, and since when it has had none.
struct Activity {
    in_flight: std::sync::atomic::AtomicUsize,
    /// When the last request ended, in milliseconds since `epoch`.
    last_end_ms: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: 0.into(),
            last_end_ms: 0.into(),
            epoch: std::time::Instant::now(),
        }
    }

    /// How long it has had no request in flight; `None` while it has one.
    fn idle_for(&self) -> Option<Duration> {
        use std::sync::atomic::Ordering::Acquire;
        if self.in_flight.load(Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.last_end_ms.load(Acquire));
        Some(self.epoch.elapsed().saturating_sub(since))
    }
}

/// One request in flight, from its arrival until its response body is done
/// (or dropped).
struct Stream(Arc<Activity>);

impl Stream {
    fn begin(a: &Arc<Activity>) -> Stream {
        a.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Stream(a.clone())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::Release;
        let ms = self.0.epoch.elapsed().as_millis() as u64;
        self.0.last_end_ms.store(ms, Release);
        self.0.in_flight.fetch_sub(1, Release);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted in flight.
    struct Tracked<B> {
        #[pin]
        inner: B,
        stream: Stream,
    }
}

impl<B> Tracked<B> {
    fn new(inner: B, stream: Stream) -> Self {
        Tracked { inner, stream }
    }
}

impl<B: http_body::Body> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
