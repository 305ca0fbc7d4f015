//! HTTP/2 from clients (h2c and over TLS), served with the h2 crate
//! directly rather than through hyper's server.
//!
//! Why not hyper: hyper sends a response body by waiting for flow-control
//! capacity, and while it waits it neither polls the body nor offers a
//! way to give up. A client that never opens its window (and answers
//! PINGs, so keep-alive does not close it) then holds the stream, and the
//! upstream connection behind it, for good. Here each stream's sender has
//! a deadline: a stream that can send nothing for `timeouts.send` is reset
//! (RST_STREAM CANCEL) and its upstream released, as nginx does ("client
//! timed out while sending to client").
//!
//! One task drives the connection (`accept`, which also does all of its
//! I/O), answers keep-alive and idleness, and spawns a task per stream.
//! Every limit h2 offers is set here, each against the attack it answers.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, SendStream};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use crate::client_body::{ClientBody, H2Body};
use crate::http::{Client, Handler};
use crate::upstream::ResponseBody;

use super::idle::{Activity, Busy};

/// The HTTP/2 settings of a listener.
#[derive(Debug, Clone)]
pub struct H2Settings {
    /// Streams a client may have open at once.
    pub max_concurrent_streams: u32,
    /// The flow-control windows offered for request bodies.
    pub stream_window: u32,
    pub connection_window: u32,
    /// How long a stream may be unable to send (its window shut) before it
    /// is reset.
    pub send_timeout: Duration,
    /// How long the preface may take.
    pub handshake_timeout: Duration,
    /// How long a connection may stay with no stream open.
    pub idle_timeout: Duration,
    /// The largest header list (as HTTP/2 counts it: each field's name and
    /// value plus 32) and the most fields a request may carry; past
    /// either, 431 (`limits.max_header_size`, `limits.max_headers`).
    pub max_header_size: usize,
    pub max_headers: usize,
}

/// Client-reset streams not yet taken up before a GOAWAY (h2's own default).
const MAX_PENDING_RESETS: usize = 20;
/// Streams reset for the client's errors before a GOAWAY (hyper's default).
const MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// Response bytes h2 buffers per stream beyond what the window allows
/// (hyper's 400 KiB): what a stream costs at most while its client lags.
const MAX_SEND_BUFFER: usize = 400 * 1024;
/// Keep-alive: a PING every 30 s on a connection with streams open; no
/// PONG within 20 s closes it (a peer gone without a FIN).
const PING_INTERVAL: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves an HTTP/2 connection the listener accepted, with its settings.
pub(super) async fn serve_connection<I>(io: I, conn: super::Connection)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let info = conn.info();
    let mut stop = conn.stop();
    let super::Connection { shared, .. } = conn;
    let settings = &shared.settings;
    let h2 = H2Settings {
        max_concurrent_streams: settings.http2_max_concurrent_streams,
        stream_window: settings.http2_stream_window,
        connection_window: settings.http2_connection_window,
        send_timeout: settings.send_timeout,
        handshake_timeout: settings.request_header_timeout,
        idle_timeout: settings.http2_idle_timeout,
        max_header_size: settings.max_header_size,
        max_headers: settings.max_headers,
    };
    serve(io, info, shared.handler.clone(), &h2, &mut stop).await;
}

/// Serves one HTTP/2 connection until the client leaves, it has been idle
/// for `idle_timeout`, or the proxy drains (`stop`).
pub async fn serve<I>(
    io: I,
    conn_info: Client,
    proxy: Arc<Handler>,
    settings: &H2Settings,
    stop: &mut watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let peer = conn_info.peer;
    let mut builder = h2::server::Builder::new();
    builder
        // Streams a client may have open at once (nginx's
        // http2_max_concurrent_streams, 128): bounds what one connection
        // can hold, idle streams included.
        .max_concurrent_streams(settings.max_concurrent_streams)
        // Rapid reset (CVE-2023-44487): streams the client opened and
        // reset before they were taken up. Past 20, GOAWAY.
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        // Streams reset because of the client's own errors
        // (RUSTSEC-2024-0003): past this, GOAWAY.
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        // CONTINUATION flood (CVE-2024-27316 family): the header block is
        // bounded however many CONTINUATION frames carry it. Twice the
        // limit here, a hard stop h2 answers alone; the limit itself is
        // checked per request below, where a refusal is counted.
        .max_header_list_size(u32::try_from(settings.max_header_size * 2).unwrap_or(u32::MAX))
        // A client that does not read: what waits for it is bounded.
        .max_send_buffer_size(MAX_SEND_BUFFER)
        // Request bodies: what a client may send ahead of the upstream.
        .initial_window_size(settings.stream_window)
        .initial_connection_window_size(settings.connection_window);
    let handshake = tokio::time::timeout(settings.handshake_timeout, builder.handshake(io));
    let mut conn = match handshake.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(client = %peer, error = %e, "HTTP/2 handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(client = %peer, "HTTP/2 preface not sent in time");
            return;
        }
    };
    let mut ping = conn.ping_pong();
    let activity = Arc::new(Activity::new());
    let limits = StreamLimits {
        send_timeout: settings.send_timeout,
        max_header_size: settings.max_header_size,
        max_headers: settings.max_headers,
    };
    // The timers are made once and reset in place: a loop turn per stream
    // must not register (and remove) a timer each time. `keepalive` is the
    // next PING while no PONG is due, and the PONG's deadline while one is.
    let idle = sleep_until(Instant::now() + settings.idle_timeout);
    let keepalive = sleep_until(Instant::now() + PING_INTERVAL);
    tokio::pin!(idle, keepalive);
    let mut pong_due = false;
    let mut closing = false;
    loop {
        // Lives for one turn of the loop, on the stack: its size is moot.
        #[allow(clippy::large_enum_variant)]
        enum Event {
            Stream(Request<h2::RecvStream>, SendResponse<Bytes>),
            Done,
            Stop,
            Idle,
            Keepalive,
            Pong,
        }
        let event = tokio::select! {
            r = conn.accept() => match r {
                Some(Ok((req, respond))) => Event::Stream(req, respond),
                Some(Err(e)) => {
                    tracing::debug!(client = %peer, error = %e, "client connection ended with an error");
                    Event::Done
                }
                None => Event::Done,
            },
            () = super::stopped(stop), if !closing => Event::Stop,
            () = idle.as_mut(), if !closing => Event::Idle,
            () = keepalive.as_mut(), if ping.is_some() => Event::Keepalive,
            r = poll_fn(|cx| match &mut ping { Some(p) => p.poll_pong(cx), None => Poll::Pending }), if pong_due => {
                if r.is_ok() { Event::Pong } else { Event::Done }
            }
        };
        match event {
            Event::Stream(req, respond) => {
                // Each stream is a task of its own, not owned here: when the
                // connection ends (the client gone, a PING unanswered), h2
                // ends every stream still open, `poll_reset` wakes its task,
                // and the upstream request is dropped.
                let busy = Busy::begin(&activity);
                let proxy = proxy.clone();
                let conn_info = conn_info.clone();
                // Boxed before it is spawned: a stream's future is 8 KB,
                // and `spawn` moves what it is given twice on its way into
                // the task. A box is moved as a pointer.
                tokio::spawn(Box::pin(async move {
                    serve_stream(req, respond, &proxy, conn_info, limits).await;
                    drop(busy);
                }));
            }
            Event::Done => break,
            Event::Stop => {
                // A drain: GOAWAY, and the streams open are served out.
                closing = true;
                conn.graceful_shutdown();
            }
            Event::Idle => match activity.idle_for() {
                Some(quiet) if quiet >= settings.idle_timeout => {
                    tracing::debug!(client = %peer, "closing a connection idle for {quiet:?}");
                    closing = true;
                    conn.graceful_shutdown();
                }
                Some(quiet) => idle
                    .as_mut()
                    .reset(Instant::now() + (settings.idle_timeout - quiet)),
                None => idle.as_mut().reset(Instant::now() + settings.idle_timeout),
            },
            Event::Keepalive if pong_due => {
                tracing::debug!(client = %peer, "closing a connection that answered no PING");
                break;
            }
            Event::Keepalive => {
                // Only a connection with streams open needs proving alive;
                // an idle one is closed by the idle timer.
                let mut next = Instant::now() + PING_INTERVAL;
                if activity.idle_for().is_none() {
                    if let Some(p) = &mut ping {
                        if p.send_ping(h2::Ping::opaque()).is_ok() {
                            pong_due = true;
                            next = Instant::now() + PING_TIMEOUT;
                        }
                    }
                }
                keepalive.as_mut().reset(next);
            }
            Event::Pong => {
                pong_due = false;
                keepalive.as_mut().reset(Instant::now() + PING_INTERVAL);
            }
        }
    }
}

/// What each stream task takes of the connection's settings.
#[derive(Debug, Clone, Copy)]
struct StreamLimits {
    send_timeout: Duration,
    max_header_size: usize,
    max_headers: usize,
}

/// One stream: the request handed to the proxy, its answer sent back.
async fn serve_stream(
    req: Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
    proxy: &Handler,
    conn_info: Client,
    limits: StreamLimits,
) {
    let peer = conn_info.peer;
    let resp = if too_large(req.headers(), limits.max_header_size, limits.max_headers) {
        proxy
            .metrics()
            .requests_refused
            .with_label_values(&["headers_too_large"])
            .inc();
        let grpc = crate::forward::is_grpc(
            req.headers()
                .get(header::CONTENT_TYPE)
                .map(HeaderValue::as_bytes),
        );
        crate::http::hyper::render(&crate::forward::Answer::HeadersTooLarge, grpc)
    } else {
        let (parts, recv) = req.into_parts();
        let length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let req = Request::from_parts(parts, ClientBody::Http2(H2Body::new(recv, length)));
        // The answer, unless the client resets the stream first (it then
        // goes unanswered, and the upstream request is dropped).
        let answer = proxy.handle(req, conn_info);
        tokio::pin!(answer);
        tokio::select! {
            r = &mut answer => r,
            _ = poll_fn(|cx| respond.poll_reset(cx)) => return,
        }
    };
    // Connection-specific headers, which HTTP/2 forbids (RFC 9113 8.2.2),
    // are gone already: the proxy strips them from every upstream answer.
    let (mut head, body) = resp.into_parts();
    if !head.headers.contains_key(header::DATE) {
        head.headers
            .insert(header::DATE, crate::http::headers::date());
    }
    if body.is_end_stream() {
        let _ = respond.send_response(Response::from_parts(head, ()), true);
        return;
    }
    if let Some(n) = body.size_hint().exact() {
        head.headers
            .entry(header::CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(n));
    }
    let Ok(mut send) = respond.send_response(Response::from_parts(head, ()), false) else {
        return;
    };
    if let Err(e) = pipe(body, &mut send, limits.send_timeout).await {
        if let PipeError::Stalled(_) = e {
            proxy.metrics().http2_send_timeouts.inc();
        }
        tracing::debug!(client = %peer, error = %e, "response stream ended early");
    }
}

/// Why a response stream ended before its body did.
#[derive(Debug, thiserror::Error)]
enum PipeError {
    #[error("the client could take nothing for {0:?}: stream reset")]
    Stalled(Duration),
    #[error("the client reset the stream ({0})")]
    Reset(Reason),
    #[error("the upstream body failed: {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    H2(#[from] h2::Error),
}

/// Sends the body, each part only as the client's window allows, with the
/// send deadline on every wait for window.
async fn pipe(
    body: ResponseBody,
    send: &mut SendStream<Bytes>,
    timeout: Duration,
) -> Result<(), PipeError> {
    let mut body = std::pin::pin!(body);
    // Made on the first wait for window only: most bodies never wait.
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        // The next part, unless the client resets the stream meanwhile.
        let frame = tokio::select! {
            biased;
            f = poll_fn(|cx| body.as_mut().poll_frame(cx)) => f,
            r = poll_fn(|cx| send.poll_reset(cx)) => {
                return Err(r.map_or_else(PipeError::H2, PipeError::Reset));
            }
        };
        let frame = match frame {
            None => {
                send.send_data(Bytes::new(), true)?;
                return Ok(());
            }
            Some(Err(e)) => {
                send.send_reset(Reason::INTERNAL_ERROR);
                return Err(PipeError::Body(e));
            }
            Some(Ok(f)) => f,
        };
        let mut data = match frame.into_data() {
            Ok(d) => d,
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    send.send_trailers(trailers)?;
                    return Ok(());
                }
                continue;
            }
        };
        let end = body.is_end_stream();
        if data.is_empty() {
            if end {
                send.send_data(data, true)?;
                return Ok(());
            }
            continue;
        }
        while !data.is_empty() {
            send.reserve_capacity(data.len());
            let mut room = send.capacity();
            if room == 0 {
                let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                t.as_mut().reset(Instant::now() + timeout);
                room = loop {
                    let got = tokio::select! {
                        c = poll_fn(|cx| send.poll_capacity(cx)) => Some(c),
                        () = t.as_mut() => None,
                    };
                    match got {
                        Some(Some(Ok(0))) => continue,
                        Some(Some(Ok(n))) => break n,
                        Some(Some(Err(e))) => return Err(e.into()),
                        Some(None) => return Err(PipeError::Reset(Reason::STREAM_CLOSED)),
                        None => {
                            send.send_reset(Reason::CANCEL);
                            return Err(PipeError::Stalled(timeout));
                        }
                    }
                };
            }
            let part = data.split_to(room.min(data.len()));
            send.send_data(part, end && data.is_empty())?;
        }
        if end {
            return Ok(());
        }
    }
}

/// Whether a request's fields pass `max_size` (counted as HTTP/2's
/// SETTINGS_MAX_HEADER_LIST_SIZE counts them) or `max_count`.
fn too_large(h: &HeaderMap, max_size: usize, max_count: usize) -> bool {
    if h.len() > max_count {
        return true;
    }
    let size: usize = h.iter().map(|(k, v)| k.as_str().len() + v.len() + 32).sum();
    size > max_size
}
