//! HTTP/1.1 with hyper: the connections the fast path hands over, or all
//! of them when the fast path is off.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::config::ListenerSettings;

use super::stopped;
use super::Connection;

/// hyper's buffer per HTTP/1 connection: 64 KiB, the fast path's most.
const H1_BUFFER: usize = 64 * 1024;

/// hyper's HTTP/1 server, set up once for every listener.
pub(super) fn builder(settings: &ListenerSettings) -> http1::Builder {
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
    h1
}

/// Serves an HTTP/1.1 connection with hyper: one the fast path handed
/// over, or any when the fast path is off.
///
/// Such a connection always carries a request, or its start (that is why
/// it was handed over). On a drain, hyper is asked to finish only once it
/// has taken that request up: asked before it has read anything, it would
/// close the connection with the request unanswered.
pub(super) async fn serve<I>(io: I, conn: Connection)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn_info = conn.info();
    let mut stop = conn.stop();
    let Connection { shared, .. } = conn;
    let header_timeout = shared.settings.request_header_timeout;
    let proxy = shared.handler.clone();
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
    let conn = shared
        .hyper
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
