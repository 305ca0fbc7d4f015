//! Dispatch: one accepted connection, from its first byte to the HTTP
//! server that serves it: TLS when the listener has it, then the HTTP/1.1 fast path,
//! hyper or `h2`, chosen by ALPN or by the connection's first bytes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio_rustls::TlsAcceptor;

use crate::http::fast;
use crate::tls::client_hello::{self, Sni};

use super::{h1, h2, passthrough, Connection};

/// Serves a connection, over TLS when the listener has it.
pub(super) async fn serve_stream<I>(io: I, tls: Option<TlsAcceptor>, conn: Connection)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + super::io::ReadReady + Unpin + Send + 'static,
{
    // Beneath TLS, so that the handshake's writes and every record after
    // it are bounded too.
    let io = super::io::SendDeadline::new(io, conn.shared.settings.send_timeout);
    // A connection's task holds its largest state from the start, idle or
    // not: the TLS handshake and hyper's and h2's servers are boxed when
    // they begin, so that a plain keep-alive connection waiting on the
    // fast path costs its few hundred bytes, not theirs.
    match tls {
        Some(tls) => Box::pin(serve_tls(io, tls, conn)).await,
        None => serve_connection(io, conn).await,
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
async fn serve_tls<I>(mut io: I, tls: TlsAcceptor, conn: Connection)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + super::io::ReadReady + Unpin + Send + 'static,
{
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
            let client = super::io::Prefixed::new(first, io);
            // `conn` lives on: its watcher holds a drain for the splice.
            passthrough::splice(client, route, conn.client, &metrics).await;
            return;
        }
    }
    let io = super::io::Prefixed::new(first, io);
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
        h2::serve_connection(stream, conn).await;
    } else {
        serve_connection(stream, conn).await;
    }
}

/// Serves one client connection: on the fast path (which hands over what
/// it does not serve), or with hyper (HTTP/1.1) or `h2` (HTTP/2) alone.
async fn serve_connection<I>(io: I, mut conn: Connection)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + super::io::ReadReady + Unpin + Send + 'static,
{
    let shared = conn.shared.clone();
    let settings = &shared.settings;
    let io = if settings.http1_fast_path {
        // The fast path reads the first request itself, under the header
        // timeout, and hands over what it does not serve.
        let Some(h) = fast::serve(
            io,
            conn.client,
            &shared.handler,
            conn.fast.clone(),
            &mut conn.stop,
        )
        .await
        else {
            return;
        };
        let h2 = h.prefix.starts_with(b"PRI ");
        (super::io::Prefixed::new(h.prefix, h.io), h2)
    } else {
        let sniffed = Box::pin(sniff(io, settings.request_header_timeout, conn.client)).await;
        let Some(sniffed) = sniffed else {
            return;
        };
        sniffed
    };
    match io {
        (io, true) => Box::pin(h2::serve_connection(io, conn)).await,
        (io, false) => Box::pin(h1::serve(io, conn)).await,
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
) -> Option<(super::io::Prefixed<I>, bool)>
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
        Ok(Ok(h2)) => Some((super::io::Prefixed::new(got, io), h2)),
        Ok(Err(_)) | Err(_) => {
            tracing::debug!(client = %client, "closed a connection that sent no request");
            None
        }
    }
}
