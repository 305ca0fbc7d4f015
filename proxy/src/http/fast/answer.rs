//! The fast path's own answers, written as HTTP/1.1 the way the hyper path
//! renders them, and every write to the client.

use std::time::Instant;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::forward::Answer;
use crate::routing::Route;

use super::{Buffers, Next, Outcome};

/// Answers with one of the proxy's own answers and counts it.
pub(super) async fn answer_error<S: AsyncWrite + Unpin>(
    io: &mut S,
    b: &mut Buffers,
    route: &Route,
    start: Instant,
    answer: &Answer,
    close: bool,
    outcome: &mut Outcome,
) -> Next {
    let status = answer.status().as_u16();
    route.metrics.observe(status, start.elapsed());
    outcome.status = status;
    outcome.bytes = answer.message().len() as u64;
    let close = close || answer.close();
    let sent = respond(io, &mut b.response, answer, close).await;
    outcome.complete = sent.is_ok();
    match sent {
        Ok(()) if !close => Next::KeepAlive,
        _ => Next::Close,
    }
}

/// Writes one of the proxy's own answers as HTTP/1.1, as the hyper path
/// renders them (`http::hyper::render`): plain text, `date`, and the headers the
/// answer needs.
pub(super) async fn respond<S: AsyncWrite + Unpin>(
    io: &mut S,
    out: &mut Vec<u8>,
    answer: &Answer,
    close: bool,
) -> std::io::Result<()> {
    use std::io::Write;
    let status = answer.status();
    let msg = answer.message();
    out.clear();
    // `date`, as hyper's answers (and every origin server's) carry it.
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\ndate: {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
        msg.len(),
    );
    if let Some(after) = answer.retry_after() {
        out.extend_from_slice(b"retry-after: ");
        out.extend_from_slice(after.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(location) = answer.location() {
        out.extend_from_slice(b"location: ");
        out.extend_from_slice(location.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(challenge) = answer.www_authenticate() {
        out.extend_from_slice(b"www-authenticate: ");
        out.extend_from_slice(challenge.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close || answer.close() {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(msg.as_bytes());
    send(io, out).await
}

/// Writes `bytes` to the client and flushes them. Every write to the client
/// goes through here. Over TLS the flush matters: records made while the
/// socket was full wait in the session's buffer until then, and the loop
/// must not go on to wait for the next request with part of an answer
/// unsent. On a plain socket it is a no-op. A client that takes nothing is
/// cut off by the connection's send timeout (`io::SendDeadline`).
pub(super) async fn send<S: AsyncWrite + Unpin>(io: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}
