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

mod answer;
mod buffers;
mod exchange;
pub mod h2;
pub mod head;
pub mod response;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::forward::Answer;
use crate::http::Handler;
use crate::server::clock::{until, Clock, Rang};
use crate::server::io::ReadReady;
use answer::respond;
use buffers::{Buffers, Held};
use exchange::exchange;
use head::Prepared;

use crate::upstream::framing::length;

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
    /// The header they name the client in.
    pub client_header: http::HeaderName,
    /// How the client's address is written upstream.
    pub forwarding: crate::policy::Forwarding,
    /// How long an idle connection waits for its next request before
    /// [`serve`] gives it back as [`Served::Idle`], for its caller to park
    /// it without a task; `None` keeps it waiting to its header timeout.
    /// Only used when the header timeout is at least twice as long.
    pub park_after: Option<Duration>,
}

/// How [`serve`] ended.
#[derive(Debug)]
pub enum Served {
    /// The connection is done: closed, timed out, or failed.
    Done,
    /// A request needs hyper: these bytes were read and not consumed.
    Handover(Vec<u8>),
    /// An answer was cut short where its framing cannot say so (an
    /// upstream's answer that ends with its connection failed): the caller
    /// resets the connection, so that the client sees an error rather than
    /// a clean end.
    Abort,
    /// Idle for `park_after`, with nothing read: the connection may wait
    /// elsewhere, until this header timeout, and be served again by
    /// [`serve`] given it as `resumed`.
    Idle(tokio::time::Instant),
}

/// What the access log needs of an exchange.
#[derive(Debug, Default)]
struct Outcome {
    status: u16,
    /// Response body bytes sent.
    bytes: u64,
    upstream: Option<SocketAddr>,
    /// The answer went out whole: an upstream's body to its end, or the
    /// proxy's own answer. (A body that runs to the upstream's close looks
    /// the same whole or cut short to an HTTP/1.1 client; an HTTP/2
    /// stream ends one way or the other on it.)
    complete: bool,
}

/// How a request ended for its client connection.
enum Next {
    KeepAlive,
    Close,
    /// The answer was cut short and its framing cannot say so (it ends
    /// when the connection does): the connection is reset, not closed.
    Abort,
}

/// Serves HTTP/1.1 requests on `io` until the client closes, an error
/// ends the connection, the proxy stops, or a request needs hyper (then
/// it gives back the bytes it read and did not consume, for hyper), or the
/// connection has been idle for `settings.park_after`. `resumed` is the
/// header timeout of a connection it gave back idle before.
///
/// This future is most of what an idle keep-alive connection costs, so it
/// is kept small. Its arguments are borrowed and it is built as a block
/// (an `async fn` keeps its arguments twice, rust-lang/rust#62958). A
/// request's state is boxed for as long as it is served, and the buffers
/// are given back between requests. While idle, what is left is the wait
/// itself: readiness, and one wait on the server's idle clock for both
/// the header timeout and the drain.
#[allow(clippy::manual_async_fn)] // On purpose: see above.
pub fn serve<'a, S>(
    io: &'a mut S,
    peer: &'a SocketAddr,
    proxy: &'a Handler,
    settings: &'a FastSettings,
    clock: &'a Clock,
    resumed: Option<tokio::time::Instant>,
) -> impl std::future::Future<Output = Served> + Send + 'a
where
    S: AsyncRead + AsyncWrite + ReadReady + Unpin + Send,
{
    async move {
        let mut held = Held::new();
        let mut deadline =
            resumed.unwrap_or_else(|| tokio::time::Instant::now() + settings.header_timeout);
        // A resumed connection's socket is new to the reactor, which
        // learns that it is readable a moment after the first look: its
        // first wait is its `park_after` again before it may go back to
        // the lot, or it would go straight back. (A flag, not an instant:
        // it fits the future's padding.)
        let mut just_resumed = resumed.is_some();
        loop {
            if let Some(b) = held.get() {
                // The step is matched and gone before any wait: held across
                // one, a request's plan (over 100 bytes) would be part of
                // every idle connection's state.
                let one = match next(b, *peer, proxy, settings) {
                    Step::Handover(prefix) => return Served::Handover(prefix),
                    // Boxed: a request's state (its body read, the upstream
                    // exchange, timers, the answer) is held only while it is
                    // served, not by every idle connection's task. One small
                    // allocation per request, from the allocator's thread
                    // cache.
                    Step::Ready(plan) => {
                        Some(Box::pin(serve_one(io, b, plan, *peer, proxy, clock)))
                    }
                    Step::Partial => None,
                };
                if let Some(one) = one {
                    match one.await {
                        Next::KeepAlive => {}
                        Next::Close => return Served::Done,
                        Next::Abort => return Served::Abort,
                    }
                    deadline = tokio::time::Instant::now() + settings.header_timeout;
                    continue;
                }
            }
            let idle = held.get().is_none_or(|b| b.pos == b.input.len());
            if idle {
                // Nothing pending: wait with no buffer held, until the client
                // sends, the header timeout passes or the proxy stops.
                held.give_back();
                let park_at = if std::mem::take(&mut just_resumed) {
                    let again =
                        tokio::time::Instant::now() + settings.park_after.unwrap_or_default();
                    again.min(deadline)
                } else {
                    park_at(settings, deadline)
                };
                match until(clock, park_at, true, readable(io)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Served::Done,
                    Err(Rang::Stop) => {
                        // Boxed: its timers are no part of the idle wait.
                        if Box::pin(last_call(io, &mut held)).await {
                            continue;
                        }
                        return Served::Done;
                    }
                    Err(Rang::Deadline) if park_at < deadline => return Served::Idle(deadline),
                    Err(Rang::Deadline) => {
                        tracing::debug!(client = %peer, "closed an idle connection at the header timeout");
                        return Served::Done;
                    }
                }
            }
            match until(clock, deadline, false, read_more(io, held.take())).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Served::Done,
                Ok(Ok(_)) => {}
                Err(_) => {
                    tracing::debug!(client = %peer, "closed a connection whose request head did not come in time");
                    return Served::Done;
                }
            }
        }
    }
}

/// Until when an idle connection whose header timeout is `deadline` waits
/// for its next request before it is given back to park: `park_after`
/// past the moment it went idle, or its deadline when it does not park
/// (no `park_after`, or a header timeout under twice as long).
fn park_at(settings: &FastSettings, deadline: tokio::time::Instant) -> tokio::time::Instant {
    match settings.park_after {
        Some(after) if settings.header_timeout >= after * 2 => deadline
            .checked_sub(settings.header_timeout - after)
            .unwrap_or(deadline),
        _ => deadline,
    }
}

/// What to do with the bytes a connection has read.
enum Step {
    /// A request whose head is whole, to serve on the fast path.
    Ready(head::Plan<Arc<crate::routing::Route>>),
    /// hyper's, with these bytes: the fast path ends here.
    Handover(Vec<u8>),
    /// Not a whole head yet: read more.
    Partial,
}

/// Looks at the bytes pending: a request for the fast path, one for hyper,
/// or not enough yet.
fn next(b: &mut Buffers, peer: SocketAddr, proxy: &Handler, settings: &FastSettings) -> Step {
    let pending = &b.input[b.pos..];
    if pending.is_empty() {
        return Step::Partial;
    }
    // Overloaded: hyper's path answers the 503 (and counts it).
    // A request line past limits.max_uri goes to hyper, whose path
    // answers the 414 and counts it. Only a buffer that long is looked
    // at: an ordinary request costs nothing here.
    let uri_too_long = || {
        pending.len() > proxy.max_uri()
            && pending
                .iter()
                .position(|&c| c == b'\n')
                .unwrap_or(pending.len())
                > proxy.max_uri()
    };
    if proxy.overloaded() || uri_too_long() {
        return Step::Handover(b.input.split_off(b.pos));
    }
    match prepare(&b.input[b.pos..], peer, proxy, settings, &mut b.request) {
        Prepared::Ready(plan) => Step::Ready(plan),
        Prepared::Handover => Step::Handover(b.input.split_off(b.pos)),
        Prepared::Partial => Step::Partial,
    }
}

/// Prepares a request head for the fast path, writing what goes upstream
/// into `out`: its route, or why it is not the fast path's.
fn prepare(
    input: &[u8],
    peer: SocketAddr,
    proxy: &Handler,
    settings: &FastSettings,
    out: &mut Vec<u8>,
) -> Prepared<Arc<crate::routing::Route>> {
    let client_ip = IpText::new(peer.ip());
    head::prepare(
        input,
        client_ip.as_bytes(),
        settings.proto,
        settings
            .forwarders
            .as_deref()
            .map(|t| (t, peer.ip(), settings.client_header.as_str())),
        settings.forwarding,
        out,
        |host, path, https| {
            proxy
                .snapshot()
                .load()
                .lookup(Some(host), path)
                // Redirects to HTTPS are hyper's too.
                .filter(|r| r.fast_path && (https || !r.https_redirect))
                .cloned()
        },
    )
}

/// Resolves once the client has sent bytes (or closed), without reading
/// them: the wait holds no buffer.
fn readable<S: ReadReady + Unpin>(
    io: &mut S,
) -> impl std::future::Future<Output = std::io::Result<()>> + '_ {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *io).poll_read_ready(cx))
}

/// The client's address as text, on the stack: each request writes it
/// into its forwarding headers, and a connection keeps no copy of it.
/// IPv4 is written by hand, since this runs once per request: it costs a
/// few nanoseconds, where the formatting machinery costs tens.
struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    fn new(ip: IpAddr) -> Self {
        let mut t = IpText {
            buf: [0; 48],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, o) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        t.push(b'.');
                    }
                    if o >= 100 {
                        t.push(b'0' + o / 100);
                    }
                    if o >= 10 {
                        t.push(b'0' + o / 10 % 10);
                    }
                    t.push(b'0' + o % 10);
                }
            }
            IpAddr::V6(v6) => {
                // At most 45 characters (an IPv4-mapped address).
                let mut w = &mut t.buf[..];
                let _ = std::io::Write::write_fmt(&mut w, format_args!("{v6}"));
                t.len = 48 - w.len();
            }
        }
        t
    }

    fn push(&mut self, c: u8) {
        self.buf[self.len] = c;
        self.len += 1;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Serves one request whose head is ready: its body read, the exchange
/// upstream (or the proxy's answer), the access log line.
async fn serve_one<S>(
    io: &mut S,
    b: &mut Buffers,
    plan: head::Plan<Arc<crate::routing::Route>>,
    peer: SocketAddr,
    proxy: &Handler,
    clock: &Clock,
) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let route = &plan.route;
    if route
        .max_request_body
        .is_some_and(|max| plan.body_len as u64 > max)
    {
        // Refused before a byte of the body is read.
        let _ = respond(io, &mut b.response, &Answer::BodyTooLarge, true).await;
        route.metrics.observe(413, start.elapsed());
        linger(io).await;
        return Next::Close;
    }
    // The body, whole, before anything is sent upstream.
    let total = plan.head_len + plan.body_len;
    while b.input.len() - b.pos < total {
        match tokio::time::timeout(route.timeouts.request_body, read_more(io, b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Next::Close,
            Ok(Ok(_)) => {}
            Err(_) => {
                tracing::info!(route = %route.name, client = %peer, "client stalled its request body");
                let _ = respond(io, &mut b.response, &Answer::BodyTimeout, true).await;
                route.metrics.observe(408, start.elapsed());
                // The rest of the body may still come: read and drop
                // it a moment, so the close does not reset the 408.
                linger(io).await;
                return Next::Close;
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
    let closing = plan.close || clock.stopping();
    let (next, _) = exchange_logged(io, b, &plan, peer, proxy, start, closing).await;
    if matches!(next, Next::Abort) {
        return Next::Abort;
    }
    if closing || matches!(next, Next::Close) {
        let _ = io.shutdown().await;
        return Next::Close;
    }
    Next::KeepAlive
}

/// The exchange of a request whose head (and body) are in `b`, counted
/// in flight while it runs, and its access log line; and whether the
/// answer went out whole.
async fn exchange_logged<S: AsyncWrite + Unpin>(
    io: &mut S,
    b: &mut Buffers,
    plan: &head::Plan<Arc<crate::routing::Route>>,
    peer: SocketAddr,
    proxy: &Handler,
    start: Instant,
    closing: bool,
) -> (Next, bool) {
    let client = plan.client.unwrap_or(peer.ip());
    // The wall clock only for the access log.
    let time = proxy.access_log().map(|_| std::time::SystemTime::now());
    let mut outcome = Outcome::default();
    // Counted in flight (for the overload guard) while it is served.
    let _in_flight = proxy.admit();
    let next = exchange(io, b, plan, client, start, closing, &mut outcome).await;
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
    (next, outcome.complete)
}

/// Closes after an answer sent before the request was read whole: our
/// side is shut first, then what the client still sends is read and
/// dropped for a moment (nginx's lingering close). Closing with unread
/// bytes would make the kernel reset the connection, and the client could
/// lose the answer.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) {
    let _ = io.shutdown().await;
    // On the heap, and only now: an array here would be part of every
    // request's future.
    let mut sink = vec![0u8; 8192];
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
/// Buffers are taken only once bytes are there: every idle connection
/// wakes at the stop, and with buffers for each the drain would briefly
/// cost 16 KiB per idle connection.
async fn last_call<S: AsyncRead + ReadReady + Unpin>(io: &mut S, held: &mut Held) -> bool {
    let moment = tokio::time::Instant::now() + Duration::from_millis(20);
    if !matches!(
        tokio::time::timeout_at(moment, readable(io)).await,
        Ok(Ok(()))
    ) {
        return false;
    }
    matches!(
        tokio::time::timeout_at(moment, read_more(io, held.take())).await,
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

/// Reads what the client sent next onto the input buffer. A plain
/// function: the future is the read's alone.
fn read_more<'a, S: AsyncRead + Unpin>(
    io: &'a mut S,
    b: &'a mut Buffers,
) -> impl std::future::Future<Output = std::io::Result<usize>> + 'a {
    if b.pos > 0 {
        // Pipelined bytes left over: move them to the front first.
        b.input.drain(..b.pos);
        b.pos = 0;
    }
    if b.input.capacity() - b.input.len() < 1024 {
        b.input.reserve(4096);
    }
    io.read_buf(&mut b.input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_is_written_as_std_writes_it() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "10.0.99.100",
            "255.255.255.255",
            "192.168.0.10",
            "::1",
            "2001:db8::8a2e:370:7334",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
            "0:0:0:0:0:ffff:192.168.100.228",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(
                IpText::new(ip).as_bytes(),
                ip.to_string().as_bytes(),
                "{ip}"
            );
        }
    }
}
