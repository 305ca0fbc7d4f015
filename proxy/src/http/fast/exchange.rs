//! One exchange with an upstream on a raw socket: the request sent, the
//! response head read and rewritten, the body passed through by length,
//! by chunk framing or to EOF, and the socket given back to the pool when
//! the exchange ended cleanly. Which endpoint, and what a failure means,
//! are the core's ([`Attempts`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::forward::{Answer, Attempts, Failure, Pick, Verdict};
use crate::policy::{self, AfterClose};
use crate::routing::Route;
use crate::upstream::chunked::ChunkedScanner;
use crate::upstream::pool::connect_tcp;
use crate::upstream::{Endpoint, Upstream};

use super::answer::{answer_error, respond, send};
use super::head::Plan;
use super::response::{self, Framing};
use super::{Buffers, Next, Outcome};

/// Sends one request upstream, to one endpoint after another as the core
/// ([`Attempts`]) decides, and streams the response back to the client.
pub(super) async fn exchange<S>(
    io: &mut S,
    b: &mut Buffers,
    plan: &Plan<Arc<Route>>,
    client: IpAddr,
    start: Instant,
    closing: bool,
    outcome: &mut Outcome,
) -> Next
where
    S: AsyncWrite + Unpin,
{
    let route = &plan.route;
    let upstream = route.choose(None);
    let t = &route.timeouts;
    let mut attempts = Attempts::new(route, upstream, client, plan.idempotent);
    while let Some(Pick {
        endpoint,
        in_flight: _in_flight,
    }) = attempts.next()
    {
        let failure = 'attempt: {
            // A pooled socket, and if the upstream had closed it, one
            // fresh connection ([`policy::after_close`]).
            let mut fresh_only = false;
            loop {
                let pooled = if fresh_only {
                    None
                } else {
                    endpoint.pool.take_raw(t.upstream_idle)
                };
                let (mut up, reused) = match pooled {
                    Some(s) => (s, true),
                    None => match connect_tcp(endpoint, t.connect).await {
                        Ok(s) => (s, false),
                        Err(e) => break 'attempt Failure::Connect(e),
                    },
                };
                let head =
                    match send_and_read_head(&mut up, b, plan, closing, t.response_header).await {
                        Ok(h) => h,
                        // The whole request is in `b.request`: replayable.
                        Err(UpstreamError::Closed) => {
                            match policy::after_close(reused, plan.idempotent, true) {
                                AfterClose::SendFresh => {
                                    fresh_only = true;
                                    continue;
                                }
                                _ => {
                                    break 'attempt Failure::Closed {
                                        reused,
                                        replayable: true,
                                    }
                                }
                            }
                        }
                        Err(UpstreamError::Timeout) => {
                            break 'attempt Failure::Timeout(t.response_header)
                        }
                        Err(e) => break 'attempt Failure::Broken(Box::new(e)),
                    };
                outcome.status = head.status;
                outcome.upstream = Some(endpoint.addr);
                let at = Target {
                    route,
                    upstream,
                    endpoint,
                    start,
                };
                return relay_body(io, b, up, head, at, &mut attempts, outcome).await;
            }
        };
        match attempts.failed(endpoint, failure) {
            Verdict::Retry => continue,
            Verdict::Answer(a) => {
                return answer_error(io, b, route, start, &a, closing, outcome).await
            }
        }
    }
    let a = attempts.exhausted();
    answer_error(io, b, route, start, &a, closing, outcome).await
}

/// How an upstream exchange on a raw socket failed.
#[derive(Debug, thiserror::Error)]
enum UpstreamError {
    /// The socket closed (or reset) before any byte of an answer.
    #[error("connection closed before the response")]
    Closed,
    #[error("timed out")]
    Timeout,
    #[error("connection failed during the response")]
    Io,
    #[error("{0}")]
    Invalid(&'static str),
}

/// Writes the request and reads the response head into `b.upstream`,
/// with the client's head prepared in `b.response`.
async fn send_and_read_head(
    up: &mut TcpStream,
    b: &mut Buffers,
    plan: &Plan<Arc<Route>>,
    closing: bool,
    limit: Duration,
) -> Result<response::Head, UpstreamError> {
    let deadline = tokio::time::Instant::now() + limit;
    let hsts = plan
        .route
        .hsts
        .as_ref()
        .filter(|_| plan.https)
        .map(http::HeaderValue::as_bytes);
    // A failed write is not the end: an upstream that refuses an upload
    // (413) may answer and close before reading it all, and that answer is
    // the client's to see. The read below finds it, or finds the close.
    match tokio::time::timeout_at(deadline, up.write_all(&b.request)).await {
        Ok(_) => {}
        Err(_) => return Err(UpstreamError::Timeout),
    }
    b.upstream.clear();
    let mut interim = 0;
    loop {
        if b.upstream.capacity() - b.upstream.len() < 1024 {
            b.upstream.reserve(8192);
        }
        match tokio::time::timeout_at(deadline, up.read_buf(&mut b.upstream)).await {
            Err(_) => return Err(UpstreamError::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) if b.upstream.is_empty() => return Err(UpstreamError::Closed),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(UpstreamError::Io),
            Ok(Ok(_)) => {}
        }
        loop {
            match response::prepare(
                &b.upstream,
                plan.head_request,
                plan.close || closing,
                hsts,
                plan.route.server_header,
                &mut b.response,
            ) {
                response::Parsed::Partial => break,
                response::Parsed::Interim(len) => {
                    // Skipped and forgotten; an upstream that sends them
                    // without end is cut off like an endless head.
                    b.upstream.drain(..len);
                    interim += len;
                    if interim > response::MAX_HEAD {
                        return Err(UpstreamError::Invalid("too many interim responses"));
                    }
                }
                response::Parsed::Invalid(why) => return Err(UpstreamError::Invalid(why)),
                response::Parsed::Ready(h) => return Ok(h),
            }
        }
    }
}

/// Where a response came from, for its counting and health.
struct Target<'a> {
    route: &'a Route,
    upstream: &'a Upstream,
    endpoint: &'a Arc<Endpoint>,
    start: Instant,
}

/// Sends the response head and passes the body through, then returns the
/// upstream socket to the pool if the exchange ended cleanly. The status
/// is counted, and the endpoint's health told, once the first body bytes
/// have checked out.
async fn relay_body<S>(
    io: &mut S,
    b: &mut Buffers,
    mut up: TcpStream,
    head: response::Head,
    at: Target<'_>,
    attempts: &mut Attempts<'_>,
    outcome: &mut Outcome,
) -> Next
where
    S: AsyncWrite + Unpin,
{
    let Target {
        route,
        upstream,
        endpoint,
        start,
    } = at;
    let client_next = if head.close_client {
        Next::Close
    } else {
        Next::KeepAlive
    };
    let mut reusable = head.reusable;
    let mut scanner = ChunkedScanner::default();
    let mut remaining: u64 = 0;
    // The body bytes that came with the head: how many belong to it, and
    // whether it is complete.
    let first = &b.upstream[head.len..];
    let (take, mut done) = match head.framing {
        Framing::Empty => (0, true),
        Framing::Length(n) => {
            let take = (first.len() as u64).min(n);
            remaining = n - take;
            (take as usize, remaining == 0)
        }
        Framing::Chunked => match scanner.feed(first) {
            Ok(Some(end)) => (end, true),
            Ok(None) => (first.len(), false),
            Err(e) => {
                // Nothing has gone to the client yet: it gets the core's
                // answer (a 502).
                let failure = Failure::Broken(format!("malformed chunked body: {e}").into());
                let answer = match attempts.failed(endpoint, failure) {
                    Verdict::Answer(a) => a,
                    Verdict::Retry => Answer::UpstreamFailed,
                };
                route
                    .metrics
                    .observe(answer.status().as_u16(), start.elapsed());
                let _ = respond(io, &mut b.response, &answer, true).await;
                return Next::Close;
            }
        },
        Framing::Eof => (first.len(), false),
    };
    attempts.answered(endpoint, head.status);
    route.metrics.observe(head.status, start.elapsed());
    if take < first.len() {
        // Bytes past the end of the response: the upstream is confused.
        reusable = false;
    }
    // The longest pause between two reads of the body, as nginx's
    // proxy_read_timeout: a stalled upstream must not hold the client, the
    // socket and a drain forever.
    let idle = route.timeouts.response_header;
    b.response.extend_from_slice(&first[..take]);
    if send(io, &b.response).await.is_err() {
        return Next::Close;
    }
    outcome.bytes += take as u64;
    while !done {
        b.upstream.clear();
        if b.upstream.capacity() < 8192 {
            b.upstream.reserve(8192);
        }
        let n = match tokio::time::timeout(idle, up.read_buf(&mut b.upstream)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::warn!(route = %route.name, endpoint = %endpoint.addr, error = %e, "upstream failed in the middle of a response body");
                // A body that ends with the connection cannot say it was
                // cut: the client's connection is reset instead.
                return if head.framing == Framing::Eof {
                    Next::Abort
                } else {
                    Next::Close
                };
            }
            Err(_) => {
                tracing::warn!(route = %route.name, endpoint = %endpoint.addr, timeout = %crate::logfmt::Dur(idle), "upstream response body stalled");
                return Next::Close;
            }
        };
        if n == 0 {
            if head.framing == Framing::Eof {
                break;
            }
            tracing::warn!(route = %route.name, endpoint = %endpoint.addr, "upstream closed in the middle of a response body");
            return Next::Close;
        }
        let chunk = &b.upstream[..n];
        let take = match head.framing {
            Framing::Length(_) => {
                let take = (n as u64).min(remaining);
                remaining -= take;
                done = remaining == 0;
                take as usize
            }
            Framing::Chunked => match scanner.feed(chunk) {
                Ok(Some(end)) => {
                    done = true;
                    end
                }
                Ok(None) => n,
                Err(e) => {
                    tracing::warn!(route = %route.name, endpoint = %endpoint.addr, error = %e, "upstream sent a malformed chunked body");
                    return Next::Close;
                }
            },
            Framing::Eof | Framing::Empty => n,
        };
        if take < n {
            reusable = false;
        }
        if send(io, &chunk[..take]).await.is_err() {
            return Next::Close;
        }
        outcome.bytes += take as u64;
    }
    if reusable {
        endpoint.pool.put_raw(up, upstream.max_idle_per_endpoint);
    }
    outcome.complete = true;
    client_next
}
