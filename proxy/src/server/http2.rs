//! HTTP/2 from clients on Sluice's own codec ([`crate::http::h2`]): one
//! task per connection does all of it, its I/O and every stream.
//!
//! The h2 crate gives each stream a task of its own, and streams and
//! connection meet in a shared store behind a lock; each request then
//! costs a spawn, the wakeups between the tasks, and the copies of a large
//! future into its task. Here a stream is a slot in the connection's
//! table: its handler's future and then its response body are polled by
//! the connection's task, when the stream's own waker says they can move
//! (a small queue of stream ids the task drains), so an idle stream costs
//! nothing and a busy one no more than its own work.
//!
//! What a stream may send is bounded by the client's windows; one that can
//! send nothing for `timeouts.send` is reset (CANCEL), as nginx does
//! ("client timed out while sending to client"). While output waits to be
//! written, no more is read or made: a client that sends and does not
//! read (PINGs, SETTINGS, requests) holds only its own connection back.
//! A connection with no stream open for `http2_idle_timeout`, or asked to
//! drain, gets a GOAWAY and is closed once its open streams are served.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::client_body::{stream_body, BodyError, BodySender, ClientBody};
use crate::forward::Answer;
use crate::http::fast::{self, FastSettings};
use crate::http::h2::{Conn, Event, Reason, RequestHead, Settings};
use crate::http::{Client, Handler};
use crate::upstream::ResponseBody;

/// Output waiting to be written past which nothing more is read or made.
const OUT_HIGH: usize = 256 * 1024;
/// Keep-alive: a PING every 30 s on a connection with streams open; no
/// PONG within 20 s closes it (a peer gone without a FIN).
const PING_INTERVAL: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(20);
/// What our keep-alive PINGs carry.
const PING_PAYLOAD: &[u8; 8] = b"sluice:)";
/// What one read asks room for.
const READ: usize = 16 * 1024;
/// Turns of the loop per poll before the task yields to others.
const TURNS: usize = 32;

/// How long things may take on a connection.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// The preface and SETTINGS.
    handshake: Duration,
    /// With no stream open.
    idle: Duration,
    /// A stream unable to send.
    send: Duration,
}

/// Serves an HTTP/2 connection the listener accepted.
pub(super) async fn serve_connection<I>(io: I, conn: super::Connection)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = conn.info();
    let mut stop = conn.stop();
    let super::Connection { shared, fast, .. } = conn;
    let s = &shared.settings;
    let settings = Settings {
        max_concurrent_streams: s.http2_max_concurrent_streams,
        stream_window: s.http2_stream_window,
        connection_window: s.http2_connection_window,
        max_header_size: s.max_header_size,
        max_headers: s.max_headers,
    };
    let timing = Timing {
        handshake: s.request_header_timeout,
        idle: s.http2_idle_timeout,
        send: s.send_timeout,
    };
    let proxy = shared.handler.clone();
    serve(io, client, proxy, fast, settings, timing, &mut stop).await;
}

async fn serve<I>(
    io: I,
    client: Client,
    proxy: Arc<Handler>,
    fast: Arc<FastSettings>,
    settings: Settings,
    timing: Timing,
    stop: &mut watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let now = Instant::now();
    let mut d = Driver {
        io,
        conn: Conn::new(settings),
        input: BytesMut::with_capacity(READ),
        written: 0,
        unflushed: false,
        proxy,
        fast,
        client,
        ready: Arc::new(Ready::default()),
        todo: VecDeque::new(),
        blocked: Vec::new(),
        block: Vec::with_capacity(256),
        closing: false,
        failed: false,
        timing,
        started: now,
        quiet_since: Some(now),
        next_ping: now + PING_INTERVAL,
        pong_due: None,
        stall_check: None,
        timer: Box::pin(tokio::time::sleep_until(now + timing.handshake)),
        timer_at: now + timing.handshake,
    };
    let stopping = super::stopped(stop);
    tokio::pin!(stopping);
    let mut stop_seen = false;
    std::future::poll_fn(|cx| {
        if !stop_seen && stopping.as_mut().poll(cx).is_ready() {
            stop_seen = true;
            d.close(Reason::NO_ERROR);
        }
        d.poll(cx)
    })
    .await;
    // The GOAWAY or the last answers are written; then TLS's close_notify
    // and the FIN, briefly: a client that reads nothing more is not waited
    // for.
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::io::AsyncWriteExt::shutdown(&mut d.io),
    )
    .await;
}

/// What a stream's waker does: queue the stream's id for the connection's
/// task, and wake it.
#[derive(Default)]
struct Ready {
    ids: Mutex<Vec<u32>>,
    task: AtomicWaker,
}

struct StreamWake {
    id: u32,
    ready: Arc<Ready>,
}

impl Wake for StreamWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready
            .ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(self.id);
        self.ready.task.wake();
    }
}

/// The driver's part of a stream.
#[derive(Default)]
struct Task {
    phase: Phase,
    /// Where the request body goes, while it comes.
    upload: Option<BodySender>,
    waker: Option<Waker>,
}

type Answering = Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>;

#[derive(Default)]
enum Phase {
    /// Made, not yet given a handler; or done.
    #[default]
    Idle,
    /// The proxy is finding the answer.
    Answering(Answering),
    /// The fast path is finding the answer.
    Fast(fast::h2::Stream),
    /// The answer's body is being sent: `held` is what the window did not
    /// let out yet, `stalled` since when nothing could be sent.
    Sending {
        body: Outgoing,
        held: Option<Bytes>,
        stalled: Option<Instant>,
    },
}

/// A response body: the general path's, or the fast path's.
enum Outgoing {
    Proxy(Pin<Box<ResponseBody>>),
    Fast(fast::h2::Stream),
}

impl Outgoing {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BodyError>>> {
        match self {
            Outgoing::Proxy(b) => b.as_mut().poll_frame(cx),
            Outgoing::Fast(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Outgoing::Proxy(b) => b.is_end_stream(),
            Outgoing::Fast(b) => b.is_end_stream(),
        }
    }
}

struct Driver<I> {
    io: I,
    conn: Conn<Task>,
    input: BytesMut,
    /// How much of `conn.out` is written.
    written: usize,
    /// Written and not yet flushed (TLS may hold it).
    unflushed: bool,
    proxy: Arc<Handler>,
    /// What the fast path needs to serve a stream.
    fast: Arc<FastSettings>,
    client: Client,
    ready: Arc<Ready>,
    /// Streams to poll.
    todo: VecDeque<u32>,
    /// Streams waiting for window.
    blocked: Vec<u32>,
    /// A header block being encoded.
    block: Vec<u8>,
    /// A GOAWAY is sent: the connection ends once its streams do.
    closing: bool,
    /// A connection error: it ends once the GOAWAY is written.
    failed: bool,
    timing: Timing,
    started: Instant,
    /// Since when no stream has been open.
    quiet_since: Option<Instant>,
    next_ping: Instant,
    pong_due: Option<Instant>,
    /// When to look for streams stalled past `timing.send`.
    stall_check: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    timer_at: Instant,
}

impl<I: AsyncRead + AsyncWrite + Unpin> Driver<I> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.ready.task.register(cx.waker());
        let mut turns = 0;
        loop {
            let mut moved = false;
            if !self.failed && self.backlog() < OUT_HIGH {
                match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.input) {
                    // The client is gone: an HTTP/2 client does not
                    // half-close, so its streams end with it (h2 and nginx
                    // do the same), and their upstream requests are dropped.
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Ready(Ok(_)) => {
                        moved = true;
                        if let Err(e) = self.conn.recv(&mut self.input) {
                            tracing::debug!(client = %self.client.peer, error = %e, "HTTP/2 connection closed");
                            self.failed = true;
                        }
                        if self.input.capacity() - self.input.len() < READ / 4 {
                            self.input.reserve(READ);
                        }
                    }
                    Poll::Pending => {}
                }
            }
            while let Some(event) = self.conn.events.pop_front() {
                moved = true;
                self.on_event(event);
            }
            {
                let mut ids = self
                    .ready
                    .ids
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !ids.is_empty() {
                    self.todo.extend(ids.drain(..));
                }
            }
            while self.backlog() < OUT_HIGH && !self.failed {
                let Some(id) = self.todo.pop_front() else {
                    break;
                };
                moved = true;
                self.poll_stream(id);
            }
            let waiting = self.backlog();
            let output = self.poll_output(cx);
            // Output that went out may have lifted the backpressure on
            // reading and on the streams: another turn, or nothing would
            // wake this task for them.
            if self.backlog() < waiting {
                moved = true;
            }
            match output {
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {
                    if self.failed {
                        return Poll::Ready(());
                    }
                    if (self.closing || self.conn.peer_gone) && self.conn.open_streams() == 0 {
                        return Poll::Ready(());
                    }
                }
                Poll::Pending => {}
            }
            if self.conn.open_streams() == 0 {
                self.quiet_since.get_or_insert_with(Instant::now);
            } else {
                self.quiet_since = None;
            }
            if !moved {
                break;
            }
            turns += 1;
            if turns == TURNS {
                // Others' turn; this task runs again at once. The clocks
                // are looked at first: a busy connection is still held to
                // its deadlines.
                if self.on_timer(cx) {
                    return Poll::Ready(());
                }
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        if self.on_timer(cx) {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Output made and not yet written.
    fn backlog(&self) -> usize {
        self.conn.out.len() - self.written
    }

    /// Writes what is waiting, then flushes; ready once all of it is out.
    fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.written < self.conn.out.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.io).poll_write(cx, &self.conn.out[self.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        if self.written > 0 {
            self.conn.out.clear();
            self.written = 0;
            self.unflushed = true;
        }
        if self.unflushed {
            std::task::ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Request {
                stream,
                head,
                end_stream,
            } => self.on_request(stream, &head, end_stream),
            Event::Data {
                stream,
                data,
                end_stream,
            } => {
                let len = data.len() as u32;
                match self
                    .conn
                    .stream(stream)
                    .and_then(|s| s.payload.upload.as_ref())
                {
                    Some(up) => up.push(data, end_stream),
                    // Nobody to take it: its window is given back.
                    None => self.conn.release(stream, len),
                }
            }
            Event::Trailers { stream, head } => {
                let trailers = match header_map(&head) {
                    Ok(t) => t,
                    Err(_) => {
                        self.conn.cancel(stream, Reason::PROTOCOL_ERROR);
                        return;
                    }
                };
                // The sender stays: what the upstream takes after the
                // trailers is still given back to the windows.
                if let Some(up) = self
                    .conn
                    .stream(stream)
                    .and_then(|s| s.payload.upload.as_ref())
                {
                    up.trailers(trailers);
                }
            }
            Event::Reset { stream, reason } => {
                tracing::trace!(client = %self.client.peer, stream, %reason, "stream reset");
            }
            Event::WindowOpened => self.todo.extend(self.blocked.drain(..)),
            // Only the answer to our own PING proves the client alive.
            Event::Pong(payload) if payload == *PING_PAYLOAD => {
                self.pong_due = None;
                self.next_ping = Instant::now() + PING_INTERVAL;
            }
            Event::Pong(_) => {}
        }
    }

    /// A new stream: its request handed to the proxy.
    fn on_request(&mut self, id: u32, head: &RequestHead, end_stream: bool) {
        if end_stream && !head.too_large {
            if let Some(stream) = fast::h2::start(head, self.client.peer, &self.proxy, &self.fast) {
                self.begin(id, Phase::Fast(stream));
                return;
            }
        }
        let answer: Answering = if head.too_large {
            self.proxy
                .metrics()
                .requests_refused
                .with_label_values(&["headers_too_large"])
                .inc();
            let grpc = crate::forward::is_grpc(
                head.fields()
                    .find(|(n, _)| *n == b"content-type")
                    .map(|(_, v)| v),
            );
            let resp = crate::http::hyper::render(&Answer::HeadersTooLarge, grpc);
            Box::pin(std::future::ready(resp))
        } else {
            let Ok(mut req) = request(head) else {
                self.conn.cancel(id, Reason::PROTOCOL_ERROR);
                return;
            };
            if !end_stream {
                let (tx, body) = stream_body(head.content_length);
                *req.body_mut() = ClientBody::Stream(body);
                if let Some(s) = self.conn.stream(id) {
                    s.payload.upload = Some(tx);
                }
            }
            let proxy = self.proxy.clone();
            let client = self.client.clone();
            Box::pin(async move { proxy.handle(req, client).await })
        };
        self.begin(id, Phase::Answering(answer));
    }

    /// Gives a new stream its first phase and its waker, and polls it.
    fn begin(&mut self, id: u32, phase: Phase) {
        let waker = Waker::from(Arc::new(StreamWake {
            id,
            ready: self.ready.clone(),
        }));
        if let Some(s) = self.conn.stream(id) {
            s.payload.phase = phase;
            s.payload.waker = Some(waker);
            self.todo.push_back(id);
        }
    }

    /// Moves a stream as far as it goes: its answer, then its body as the
    /// windows allow.
    fn poll_stream(&mut self, id: u32) {
        let Some(s) = self.conn.stream(id) else {
            return;
        };
        let Some(waker) = s.payload.waker.take() else {
            return;
        };
        let mut phase = std::mem::take(&mut s.payload.phase);
        let taken = s.payload.upload.as_ref().map_or(0, |up| up.taken(&waker));
        if taken > 0 {
            self.conn.release(id, taken);
        }
        let mut cx = Context::from_waker(&waker);
        if let Phase::Answering(answer) = &mut phase {
            match answer.as_mut().poll(&mut cx) {
                Poll::Pending => {}
                Poll::Ready(resp) => phase = self.start(id, resp),
            }
        }
        if let Phase::Fast(stream) = &mut phase {
            match stream.poll_head(&mut cx) {
                Poll::Pending => {}
                Poll::Ready(Some(head)) => {
                    if let Phase::Fast(stream) = std::mem::take(&mut phase) {
                        phase = self.start_fast(id, &head, stream);
                    }
                }
                Poll::Ready(None) => {
                    let resp = crate::http::hyper::render(&Answer::UpstreamFailed, false);
                    phase = self.start(id, resp);
                }
            }
        }
        if let Phase::Sending {
            body,
            held,
            stalled,
        } = &mut phase
        {
            if self.pump(id, body, held, stalled, &mut cx) {
                phase = Phase::Idle;
            }
        }
        if let Some(s) = self.conn.stream(id) {
            s.payload.phase = phase;
            s.payload.waker = Some(waker);
        }
    }

    /// Sends a response's head; what follows is its body, if it has one.
    fn start(&mut self, id: u32, resp: Response<ResponseBody>) -> Phase {
        let (head, body) = resp.into_parts();
        let end = body.is_end_stream();
        self.block.clear();
        let enc = &mut self.conn.encoder;
        enc.status(head.status.as_u16(), &mut self.block);
        if !head.headers.contains_key(header::DATE) {
            enc.field(
                b"date",
                crate::http::headers::date().as_bytes(),
                &mut self.block,
            );
        }
        // Connection-specific fields are gone already: the proxy strips
        // them from every upstream answer.
        for (name, value) in &head.headers {
            enc.field(name.as_str().as_bytes(), value.as_bytes(), &mut self.block);
        }
        if !end && !head.headers.contains_key(header::CONTENT_LENGTH) {
            if let Some(n) = body.size_hint().exact() {
                enc.field(b"content-length", n.to_string().as_bytes(), &mut self.block);
            }
        }
        self.head_sent(id, end, || Outgoing::Proxy(Box::pin(body)))
    }

    /// Sends the head of an answer the fast path found.
    fn start_fast(
        &mut self,
        id: u32,
        head: &fast::h2::ResponseHead,
        stream: fast::h2::Stream,
    ) -> Phase {
        let end = http_body::Body::is_end_stream(&stream);
        self.block.clear();
        let enc = &mut self.conn.encoder;
        enc.status(head.status, &mut self.block);
        if !head.has(b"date") {
            enc.field(
                b"date",
                crate::http::headers::date().as_bytes(),
                &mut self.block,
            );
        }
        for (name, value) in head.fields() {
            enc.field_lowercased(name, value, &mut self.block);
        }
        self.head_sent(id, end, || Outgoing::Fast(stream))
    }

    /// Sends the head encoded in `self.block`; what follows is the body,
    /// unless the head ended the stream.
    fn head_sent(&mut self, id: u32, end: bool, body: impl FnOnce() -> Outgoing) -> Phase {
        self.send_block(id, end);
        if end {
            return Phase::Idle;
        }
        Phase::Sending {
            body: body(),
            held: None,
            stalled: None,
        }
    }

    /// Sends the header block encoded in `self.block` (a head, or
    /// trailers with `end`).
    fn send_block(&mut self, id: u32, end: bool) {
        let block = std::mem::take(&mut self.block);
        self.conn.send_headers(id, &block, end);
        self.block = block;
    }

    /// Sends what the body has, as far as the windows let it; true once
    /// the stream has ended.
    fn pump(
        &mut self,
        id: u32,
        body: &mut Outgoing,
        held: &mut Option<Bytes>,
        stalled: &mut Option<Instant>,
        cx: &mut Context<'_>,
    ) -> bool {
        loop {
            if held.is_none() {
                match body.poll_frame(cx) {
                    Poll::Pending => return false,
                    Poll::Ready(None) => {
                        self.conn.send_data(id, &[], true);
                        return true;
                    }
                    Poll::Ready(Some(Err(e))) => {
                        tracing::debug!(client = %self.client.peer, error = %e, "response body failed: stream reset");
                        self.conn.cancel(id, Reason::INTERNAL_ERROR);
                        return true;
                    }
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => *held = Some(data),
                        Err(frame) => {
                            if let Ok(trailers) = frame.into_trailers() {
                                self.block.clear();
                                for (name, value) in &trailers {
                                    self.conn.encoder.field(
                                        name.as_str().as_bytes(),
                                        value.as_bytes(),
                                        &mut self.block,
                                    );
                                }
                                self.send_block(id, true);
                                return true;
                            }
                            continue;
                        }
                    },
                }
            }
            let Some(data) = held.as_mut() else {
                continue;
            };
            let end = body.is_end_stream();
            if data.is_empty() {
                *held = None;
                if end {
                    self.conn.send_data(id, &[], true);
                    return true;
                }
                continue;
            }
            let room = self.conn.capacity(id);
            if room == 0 {
                let now = Instant::now();
                stalled.get_or_insert(now);
                self.stall_check.get_or_insert(now + self.timing.send);
                if !self.blocked.contains(&id) {
                    self.blocked.push(id);
                }
                return false;
            }
            if self.backlog() >= OUT_HIGH {
                self.todo.push_back(id);
                return false;
            }
            *stalled = None;
            let part = data.split_to(room.min(data.len()));
            let last = end && data.is_empty();
            self.conn.send_data(id, &part, last);
            if data.is_empty() {
                *held = None;
            }
            if last {
                return true;
            }
        }
    }

    /// Starts closing: GOAWAY, no new streams.
    fn close(&mut self, reason: Reason) {
        if !self.closing {
            self.closing = true;
            self.conn.go_away(reason);
            self.ready.task.wake();
        }
    }

    /// The connection's clocks; true when the connection must end now.
    fn on_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let now = Instant::now();
        if !self.conn.established() && now >= self.started + self.timing.handshake {
            tracing::debug!(client = %self.client.peer, "HTTP/2 preface not sent in time");
            return true;
        }
        if let Some(quiet) = self.quiet_since {
            if !self.closing && now >= quiet + self.timing.idle {
                tracing::debug!(client = %self.client.peer, "closing a connection idle for {:?}", now - quiet);
                self.close(Reason::NO_ERROR);
            }
        }
        if let Some(due) = self.pong_due {
            if now >= due {
                tracing::debug!(client = %self.client.peer, "closing a connection that answered no PING");
                return true;
            }
        } else if now >= self.next_ping {
            if self.conn.open_streams() > 0 {
                self.conn.ping(*PING_PAYLOAD);
                self.pong_due = Some(now + PING_TIMEOUT);
                self.ready.task.wake();
            }
            self.next_ping = now + PING_INTERVAL;
        }
        if self.stall_check.is_some_and(|t| now >= t) {
            self.stall_check = None;
            self.end_stalled(now);
        }
        let mut next = self.next_ping;
        if let Some(t) = self.pong_due {
            next = next.min(t);
        }
        if let Some(q) = self.quiet_since {
            if !self.closing {
                next = next.min(q + self.timing.idle);
            }
        }
        if let Some(t) = self.stall_check {
            next = next.min(t);
        }
        if !self.conn.established() {
            next = next.min(self.started + self.timing.handshake);
        }
        if next != self.timer_at {
            self.timer_at = next;
            self.timer.as_mut().reset(next);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            // Past already: look again at once.
            cx.waker().wake_by_ref();
        }
        false
    }

    /// Resets the streams that could send nothing for `timing.send`.
    fn end_stalled(&mut self, now: Instant) {
        let limit = self.timing.send;
        let mut next: Option<Instant> = None;
        let mut late = Vec::new();
        for id in self.conn.stream_ids().collect::<Vec<_>>() {
            if let Some(s) = self.conn.stream(id) {
                if let Phase::Sending {
                    stalled: Some(since),
                    ..
                } = s.payload.phase
                {
                    if now >= since + limit {
                        late.push(id);
                    } else {
                        let at = since + limit;
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                }
            }
        }
        for id in late {
            self.proxy.metrics().http2_send_timeouts.inc();
            tracing::debug!(client = %self.client.peer, stream = id, "the client could take nothing for {limit:?}: stream reset");
            self.conn.cancel(id, Reason::CANCEL);
        }
        self.stall_check = next;
        self.ready.task.wake();
    }
}

/// The request a head stands for, in hyper's types; an error when a part
/// of it does not fit them (the stream is then reset).
fn request(head: &RequestHead) -> Result<Request<ClientBody>, http::Error> {
    let method = Method::from_bytes(head.method())?;
    let mut uri = Uri::builder();
    if let Some(s) = head.scheme {
        uri = uri.scheme(head.get(s));
    }
    if let Some(a) = head.authority {
        uri = uri.authority(head.get(a));
    }
    if let Some(p) = head.path {
        uri = uri.path_and_query(head.get(p));
    }
    let mut req = Request::new(ClientBody::Empty);
    *req.method_mut() = method;
    *req.uri_mut() = uri.build()?;
    *req.version_mut() = http::Version::HTTP_2;
    *req.headers_mut() = header_map(head)?;
    Ok(req)
}

fn header_map(head: &RequestHead) -> Result<HeaderMap, http::Error> {
    let fields = head.fields();
    let mut map = HeaderMap::with_capacity(fields.len());
    for (name, value) in fields {
        map.append(
            HeaderName::from_bytes(name)?,
            HeaderValue::from_bytes(value)?,
        );
    }
    Ok(map)
}
