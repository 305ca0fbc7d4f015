//! The HTTP/1.1 fast path: plain keep-alive requests proxied without
//! hyper.
//!
//! Most ingress traffic is small HTTP/1.1 requests on keep-alive
//! connections. For them, hyper's generality (a header map per message,
//! re-encoding both heads, a body channel, a dispatcher per connection) is
//! most of the user-space CPU a request costs, so this path does the same
//! job with less: the request head is parsed in place and written upstream
//! with the forwarding headers, bodies up to [`head::MAX_BODY`] are
//! buffered and sent with the head, the response head is rewritten the same
//! way, and its body is passed through by length, by chunk framing or to
//! EOF. Routing, balancing, pools and metrics are the ones the hyper path
//! uses, and so is the core ([`crate::forward`]): which endpoint to try,
//! when to retry, what a failure costs an endpoint and what the client is
//! answered are decided there, for both paths.
//!
//! Anything else is handed to hyper with the bytes read so far, before a
//! byte of it is consumed, and hyper serves the rest of that connection:
//! HTTP/2, HTTP/1.0, chunked or large uploads, `Expect`, upgrades, odd
//! targets, malformed or ambiguous heads and unrouted requests. hyper's
//! answers (400, 404, 405, ...) are therefore the proxy's only answers to
//! malformed input, whichever path the connection started on.

pub(crate) mod chunked;
pub mod head;
pub mod response;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::forward::{Answer, Attempts, Failure, Pick, Verdict};
use crate::http::Handler;
use crate::policy::{self, AfterClose};
use crate::routing::Route;
use crate::upstream::pool::connect_tcp;
use crate::upstream::{Endpoint, Upstream};
use chunked::ChunkedScanner;
use head::{Plan, Prepared};
use response::Framing;

/// A Content-Length value: digits only, at most 19 of them (RFC 9110
/// 8.6). A sign, spaces inside or a list are not a length.
fn length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A connection the fast path hands to hyper, with the bytes it had read
/// and not consumed.
#[derive(Debug)]
pub struct Handover<S> {
    pub io: S,
    pub prefix: Vec<u8>,
}

/// What the fast path needs from the listener.
#[derive(Debug, Clone)]
pub struct FastSettings {
    /// How long a request head may take, counted from when the connection
    /// starts waiting for it (so it is also the keep-alive idle limit).
    pub header_timeout: Duration,
    /// `http` or `https`, for X-Forwarded-Proto.
    pub proto: &'static str,
    /// Peers whose X-Forwarded-For names the client.
    pub forwarders: Option<Arc<crate::forwarded::Trusted>>,
}

/// Per-connection buffers, reused by every request on it.
struct Buffers {
    /// Bytes from the client; requests start at `pos`.
    input: Vec<u8>,
    pos: usize,
    /// The request (head and body) to send upstream.
    request: Vec<u8>,
    /// Bytes from the upstream.
    upstream: Vec<u8>,
    /// The response head (and first body bytes) for the client.
    response: Vec<u8>,
}

impl Buffers {
    /// Gives back what one large message grew, before the connection
    /// waits idle: ten thousand idle keep-alive clients must not each hold
    /// the biggest request they ever sent.
    fn shrink(&mut self) {
        const KEEP: usize = 16 * 1024;
        for v in [
            &mut self.input,
            &mut self.request,
            &mut self.upstream,
            &mut self.response,
        ] {
            if v.capacity() > KEEP {
                v.clear();
                v.shrink_to(4096);
            }
        }
    }
}

/// What the access log needs of an exchange.
#[derive(Debug, Default)]
struct Outcome {
    status: u16,
    /// Response body bytes sent.
    bytes: u64,
    upstream: Option<SocketAddr>,
}

/// How a request ended for its client connection.
enum Next {
    KeepAlive,
    Close,
}

/// Serves HTTP/1.1 requests on `io` until the client closes, an error
/// ends the connection, the proxy stops, or a request needs hyper.
pub async fn serve<S>(
    mut io: S,
    peer: SocketAddr,
    proxy: &Handler,
    settings: FastSettings,
    stop: &mut watch::Receiver<bool>,
) -> Option<Handover<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let client_ip = peer.ip().to_string();
    let mut b = Buffers {
        input: Vec::with_capacity(4096),
        pos: 0,
        request: Vec::new(),
        upstream: Vec::new(),
        response: Vec::new(),
    };
    let mut deadline = tokio::time::Instant::now() + settings.header_timeout;
    loop {
        // A request line past limits.max_uri goes to hyper, whose path
        // answers the 414 and counts it. Only a buffer that long is looked
        // at: an ordinary request costs nothing here.
        let pending = &b.input[b.pos..];
        // Overloaded: hyper's path answers the 503 (and counts it).
        if proxy.overloaded() && !pending.is_empty() {
            let prefix = b.input.split_off(b.pos);
            return Some(Handover { io, prefix });
        }
        if pending.len() > proxy.max_uri() {
            let line = pending
                .iter()
                .position(|&c| c == b'\n')
                .unwrap_or(pending.len());
            if line > proxy.max_uri() {
                let prefix = b.input.split_off(b.pos);
                return Some(Handover { io, prefix });
            }
        }
        let prepared = head::prepare(
            &b.input[b.pos..],
            client_ip.as_bytes(),
            settings.proto,
            settings.forwarders.as_deref().map(|t| (t, peer.ip())),
            &mut b.request,
            |host, path, https| {
                proxy
                    .snapshot()
                    .load()
                    .lookup(Some(host), path)
                    // Redirects to HTTPS are hyper's too.
                    .filter(|r| r.fast_path && (https || !r.https_redirect))
                    .cloned()
            },
        );
        let plan = match prepared {
            Prepared::Ready(plan) => plan,
            Prepared::Handover => {
                let prefix = b.input.split_off(b.pos);
                return Some(Handover { io, prefix });
            }
            Prepared::Partial => {
                let idle = b.pos == b.input.len();
                if idle {
                    if *stop.borrow() {
                        if last_call(&mut io, &mut b).await {
                            continue;
                        }
                        return None;
                    }
                    b.shrink();
                }
                let read = if idle {
                    tokio::select! {
                        biased;
                        r = tokio::time::timeout_at(deadline, read_more(&mut io, &mut b)) => r,
                        _ = stop.changed() => {
                            if last_call(&mut io, &mut b).await {
                                continue;
                            }
                            return None;
                        }
                    }
                } else {
                    tokio::time::timeout_at(deadline, read_more(&mut io, &mut b)).await
                };
                match read {
                    Ok(Ok(0)) | Ok(Err(_)) => return None,
                    Ok(Ok(_)) => continue,
                    Err(_) => {
                        tracing::debug!(client = %peer, "closed a connection whose request head did not come in time");
                        return None;
                    }
                }
            }
        };
        let start = Instant::now();
        let route = &plan.route;
        if route
            .max_request_body
            .is_some_and(|max| plan.body_len as u64 > max)
        {
            // Refused before a byte of the body is read.
            let _ = respond(&mut io, &mut b.response, &Answer::BodyTooLarge, true).await;
            route.metrics.observe(413, start.elapsed());
            linger(&mut io).await;
            return None;
        }
        // The body, whole, before anything is sent upstream.
        let total = plan.head_len + plan.body_len;
        while b.input.len() - b.pos < total {
            match tokio::time::timeout(route.timeouts.request_body, read_more(&mut io, &mut b))
                .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(_)) => {}
                Err(_) => {
                    tracing::info!(route = %route.name, client = %peer, "client stalled its request body");
                    let _ = respond(&mut io, &mut b.response, &Answer::BodyTimeout, true).await;
                    route.metrics.observe(408, start.elapsed());
                    // The rest of the body may still come: read and drop
                    // it a moment, so the close does not reset the 408.
                    linger(&mut io).await;
                    return None;
                }
            }
        }
        let body = &b.input[b.pos + plan.head_len..b.pos + total];
        b.request.extend_from_slice(body);
        b.pos += total;
        if b.pos == b.input.len() {
            b.input.clear();
            b.pos = 0;
        }
        let closing = plan.close || *stop.borrow();
        let client = plan.client.unwrap_or(peer.ip());
        // The wall clock only for the access log.
        let time = proxy.access_log().map(|_| std::time::SystemTime::now());
        let mut outcome = Outcome::default();
        // Counted in flight (for the overload guard) while it is served.
        let _in_flight = proxy.admit();
        let next = exchange(&mut io, &mut b, &plan, client, start, closing, &mut outcome).await;
        if let (Some(log), Some(time)) = (proxy.access_log(), time) {
            log.log(entry(
                &b.request,
                &plan.spans,
                client,
                time,
                start,
                &outcome,
            ));
        }
        if closing || matches!(next, Next::Close) {
            let _ = io.shutdown().await;
            return None;
        }
        deadline = tokio::time::Instant::now() + settings.header_timeout;
    }
}

/// Closes after an answer sent before the request was read whole: our
/// side is shut first, then what the client still sends is read and
/// dropped for a moment (nginx's lingering close). Closing with unread
/// bytes would make the kernel reset the connection, and the client could
/// lose the answer.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) {
    let _ = io.shutdown().await;
    let mut sink = [0u8; 8192];
    let mut left = 1 << 20;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while left > 0 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n.min(left),
            }
        }
    })
    .await;
}

/// The proxy is stopping and the connection looks idle. Bytes the client
/// sent before the stop may not have been seen yet (readiness comes with
/// the runtime's next I/O turn): they get a brief moment to show, and if
/// they do, the request is served (and the connection closed after it).
async fn last_call<S: AsyncRead + Unpin>(io: &mut S, b: &mut Buffers) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_millis(20), read_more(io, b)).await,
        Ok(Ok(n)) if n > 0
    )
}

/// An access-log entry (only when the log is on): the request's fields
/// are read where [`head::prepare`] wrote them upstream.
fn entry(
    request: &[u8],
    spans: &head::Spans,
    client: IpAddr,
    time: std::time::SystemTime,
    start: Instant,
    o: &Outcome,
) -> crate::access_log::Entry {
    let field = |r: &std::ops::Range<usize>| {
        request
            .get(r.clone())
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    crate::access_log::Entry {
        time,
        client,
        host: field(&spans.host),
        request_id: field(&spans.request_id),
        method: field(&spans.method),
        path: field(&spans.target),
        status: o.status,
        bytes: Some(o.bytes),
        upstream: o.upstream,
        duration: start.elapsed(),
    }
}

/// Reads what the client sent next onto the input buffer.
async fn read_more<S: AsyncRead + Unpin>(io: &mut S, b: &mut Buffers) -> std::io::Result<usize> {
    if b.pos > 0 {
        // Pipelined bytes left over: move them to the front first.
        b.input.drain(..b.pos);
        b.pos = 0;
    }
    if b.input.capacity() - b.input.len() < 1024 {
        b.input.reserve(4096);
    }
    io.read_buf(&mut b.input).await
}

/// Sends one request upstream, to one endpoint after another as the core
/// ([`Attempts`]) decides, and streams the response back to the client.
async fn exchange<S>(
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
                return relay_body(io, b, up, head, at, &mut attempts, &mut outcome.bytes).await;
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
    sent: &mut u64,
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
    *sent += take as u64;
    while !done {
        b.upstream.clear();
        if b.upstream.capacity() < 8192 {
            b.upstream.reserve(8192);
        }
        let n = match tokio::time::timeout(idle, up.read_buf(&mut b.upstream)).await {
            // A read error ends the body like a close does.
            Ok(r) => r.unwrap_or_default(),
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
        *sent += take as u64;
    }
    if reusable {
        endpoint.pool.put_raw(up, upstream.max_idle_per_endpoint);
    }
    client_next
}

/// Answers with one of the proxy's own answers and counts it.
async fn answer_error<S: AsyncWrite + Unpin>(
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
    match respond(io, &mut b.response, answer, close).await {
        Ok(()) if !close => Next::KeepAlive,
        _ => Next::Close,
    }
}

/// Writes one of the proxy's own answers as HTTP/1.1, as the hyper path
/// renders them (`proxy::render`): plain text, `date`, and the headers the
/// answer needs.
async fn respond<S: AsyncWrite + Unpin>(
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
async fn send<S: AsyncWrite + Unpin>(io: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}
