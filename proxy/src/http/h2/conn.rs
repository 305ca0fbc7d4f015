//! The HTTP/2 connection's state, without I/O: bytes in, events and bytes
//! out. The driver (`server::h2`) reads the socket into a buffer, hands it
//! to [`Conn::recv`], acts on the [`Event`]s, and writes [`Conn::out`].
//!
//! Everything RFC 9113 asks of a server's framing layer is here: the
//! preface and SETTINGS exchange, stream states, both directions of flow
//! control, header blocks across CONTINUATION frames decoded in order (a
//! refused or reset stream's block too, so that HPACK stays in step), and
//! the checks that make a request well-formed before anything is done
//! with it. So are the limits an internet-facing server needs, each
//! against a known attack: streams at once, resets by the client before
//! an answer (CVE-2023-44487), header blocks however many CONTINUATIONs
//! carry them (CVE-2024-27316), empty frames (CVE-2019-9518), resets the
//! client provokes (CVE-2019-9514); control frames that ask for an answer
//! (PING and SETTINGS floods) are bounded by the driver, which reads no
//! more while output is waiting.
//!
//! Keeping the state machine apart from the socket lets every rule be
//! tested with bytes alone (the tests at the end), and lets the driver
//! serve every stream of a connection from one task.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use rustc_hash::FxHashMap;

use super::frame::{self, flag, kind, setting, Head, Reason, HEADER_LEN};
use super::hpack;
use super::request::{self, RequestHead};

/// What a connection offers its client.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Streams the client may have open at once.
    pub max_concurrent_streams: u32,
    /// The receive windows offered for request bodies, per stream and for
    /// the whole connection.
    pub stream_window: u32,
    pub connection_window: u32,
    /// The header list size and field count past which a request is
    /// marked too large (the driver answers 431). Blocks past twice the
    /// size end the connection.
    pub max_header_size: usize,
    pub max_headers: usize,
}

/// Resets of unanswered streams the client may make beyond the streams it
/// had answered, before the connection is closed (rapid reset).
const RESET_ALLOWANCE: u64 = 100;
/// Streams the server may reset for the client's errors.
const MAX_LOCAL_RESETS: u64 = 1024;
/// Empty DATA frames (no END_STREAM) and empty CONTINUATIONs allowed.
const MAX_EMPTY_FRAMES: u64 = 1000;
/// The HPACK dynamic table the server's decoder keeps (the default).
const HEADER_TABLE_SIZE: usize = 4096;

/// Why the connection ended with a GOAWAY of ours.
#[derive(Debug, thiserror::Error)]
#[error("HTTP/2 connection error {reason}: {why}")]
pub struct ConnError {
    pub reason: Reason,
    pub why: &'static str,
}

fn conn_error(reason: Reason, why: &'static str) -> ConnError {
    ConnError { reason, why }
}

/// What the driver must act on, in the order the client sent it.
#[derive(Debug)]
pub enum Event {
    /// A new stream and its request head. `end_stream`: no body follows.
    Request {
        stream: u32,
        head: Box<RequestHead>,
        end_stream: bool,
    },
    /// Request body bytes for a stream, to be given back with
    /// [`Conn::release`] once taken.
    Data {
        stream: u32,
        data: Bytes,
        end_stream: bool,
    },
    /// A stream's trailers, which end its request.
    Trailers { stream: u32, head: Box<RequestHead> },
    /// A stream ended by the client (`RST_STREAM`) or by this side for an
    /// error of the client's; its payload has been dropped.
    Reset { stream: u32, reason: Reason },
    /// The client's window grew: streams waiting to send may go on.
    WindowOpened,
    /// The answer to a PING (ours, if the payload is).
    Pong([u8; 8]),
}

/// One stream's state. `T` is what the driver keeps for it (its handler).
#[derive(Debug)]
pub struct Stream<T> {
    /// The client sent END_STREAM.
    recv_closed: bool,
    /// What the client may still send, and what the server may.
    recv_window: i64,
    send_window: i64,
    /// Body bytes handed to the driver and not yet given back.
    held: u32,
    /// Body bytes given back and not yet announced in a WINDOW_UPDATE.
    unreleased: u32,
    /// The request's Content-Length, and the body bytes counted so far.
    content_length: Option<u64>,
    received: u64,
    /// Whether a response has been started (a reset before it counts
    /// toward the rapid-reset limit).
    answered: bool,
    pub payload: T,
}

/// A header block still arriving in CONTINUATION frames.
#[derive(Debug)]
struct Pending {
    stream: u32,
    end_stream: bool,
    block: Vec<u8>,
}

/// The connection.
pub struct Conn<T> {
    settings: Settings,
    decoder: hpack::Decoder,
    pub encoder: hpack::Encoder,
    streams: FxHashMap<u32, Stream<T>>,
    /// The highest stream id the client opened.
    last_stream: u32,
    /// Ids past this are ignored: a GOAWAY of ours named it.
    accept_up_to: u32,
    preface_seen: bool,
    settings_seen: bool,
    /// Our SETTINGS are acknowledged: the windows they set hold.
    settings_acked: bool,
    /// The client's settings that matter to the sender.
    peer_initial_window: u32,
    peer_max_frame: u32,
    conn_send_window: i64,
    conn_recv_window: i64,
    /// Connection-level bytes taken and not yet given back.
    conn_unreleased: u32,
    pending: Option<Pending>,
    /// Counters for the limits above.
    client_resets: u64,
    answered: u64,
    local_resets: u64,
    empty_frames: u64,
    /// The client sent GOAWAY.
    pub peer_gone: bool,
    /// Bytes to write to the client.
    pub out: Vec<u8>,
    pub events: VecDeque<Event>,
}

impl<T: Default> Conn<T> {
    /// A new connection; its SETTINGS (and the connection window's first
    /// update) are in [`Conn::out`] at once, since a server may send them
    /// before the client's preface has arrived.
    pub fn new(settings: Settings) -> Self {
        let mut out = Vec::with_capacity(64);
        let header_list = u32::try_from(settings.max_header_size).unwrap_or(u32::MAX);
        frame::write_settings(
            &mut out,
            &[
                (
                    setting::MAX_CONCURRENT_STREAMS,
                    settings.max_concurrent_streams,
                ),
                (
                    setting::INITIAL_WINDOW_SIZE,
                    settings.stream_window.min(frame::MAX_WINDOW),
                ),
                (setting::MAX_HEADER_LIST_SIZE, header_list),
                (setting::ENABLE_PUSH, 0),
            ],
        );
        let conn_window = settings.connection_window.min(frame::MAX_WINDOW);
        if conn_window > frame::DEFAULT_WINDOW {
            frame::write_window_update(&mut out, 0, conn_window - frame::DEFAULT_WINDOW);
        }
        Conn {
            decoder: hpack::Decoder::new(HEADER_TABLE_SIZE),
            encoder: hpack::Encoder::new(),
            streams: FxHashMap::default(),
            last_stream: 0,
            accept_up_to: frame::MAX_WINDOW,
            preface_seen: false,
            settings_seen: false,
            settings_acked: false,
            peer_initial_window: frame::DEFAULT_WINDOW,
            peer_max_frame: frame::DEFAULT_MAX_FRAME,
            conn_send_window: i64::from(frame::DEFAULT_WINDOW),
            conn_recv_window: i64::from(conn_window.max(frame::DEFAULT_WINDOW)),
            conn_unreleased: 0,
            pending: None,
            client_resets: 0,
            answered: 0,
            local_resets: 0,
            empty_frames: 0,
            peer_gone: false,
            out,
            events: VecDeque::new(),
            settings,
        }
    }

    /// Whether the client's preface and first SETTINGS have come.
    pub fn established(&self) -> bool {
        self.settings_seen
    }

    /// Streams open (not yet closed both ways).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    pub fn stream(&mut self, id: u32) -> Option<&mut Stream<T>> {
        self.streams.get_mut(&id)
    }

    /// Ids of the streams open.
    pub fn stream_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams.keys().copied()
    }

    /// Reads every whole frame in `buf`, consuming it, and queues what the
    /// driver must do. On an error the GOAWAY is in [`Conn::out`] already
    /// and the connection must be closed once it is written.
    pub fn recv(&mut self, buf: &mut BytesMut) -> Result<(), ConnError> {
        let result = self.recv_frames(buf);
        if let Err(e) = &result {
            frame::write_goaway(&mut self.out, self.last_stream, e.reason);
        }
        result
    }

    fn recv_frames(&mut self, buf: &mut BytesMut) -> Result<(), ConnError> {
        if !self.preface_seen {
            let n = buf.len().min(frame::PREFACE.len());
            if buf[..n] != frame::PREFACE[..n] {
                return Err(conn_error(Reason::PROTOCOL_ERROR, "not an HTTP/2 preface"));
            }
            if n < frame::PREFACE.len() {
                return Ok(());
            }
            let _ = buf.split_to(n);
            self.preface_seen = true;
        }
        while let Some(head) = Head::parse(buf) {
            if head.len > frame::DEFAULT_MAX_FRAME {
                return Err(conn_error(
                    Reason::FRAME_SIZE_ERROR,
                    "a frame larger than SETTINGS_MAX_FRAME_SIZE",
                ));
            }
            let whole = HEADER_LEN + head.len as usize;
            if buf.len() < whole {
                buf.reserve(whole - buf.len());
                return Ok(());
            }
            if !self.settings_seen && head.kind != kind::SETTINGS {
                return Err(conn_error(
                    Reason::PROTOCOL_ERROR,
                    "the preface must be followed by SETTINGS",
                ));
            }
            if let Some(p) = &self.pending {
                if head.kind != kind::CONTINUATION || head.stream != p.stream {
                    return Err(conn_error(
                        Reason::PROTOCOL_ERROR,
                        "a header block interrupted before END_HEADERS",
                    ));
                }
            }
            if head.kind == kind::DATA {
                let mut whole = buf.split_to(whole);
                let _ = whole.split_to(HEADER_LEN);
                self.on_data(head, whole.freeze())?;
            } else {
                let frame = buf.split_to(whole);
                self.on_frame(head, &frame[HEADER_LEN..])?;
            }
        }
        Ok(())
    }

    fn on_frame(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        match head.kind {
            kind::HEADERS => self.on_headers(head, payload),
            kind::CONTINUATION => self.on_continuation(head, payload),
            kind::SETTINGS => self.on_settings(head, payload),
            kind::WINDOW_UPDATE => self.on_window_update(head, payload),
            kind::RST_STREAM => self.on_reset(head, payload),
            kind::PING => self.on_ping(head, payload),
            kind::GOAWAY => {
                if head.stream != 0 {
                    return Err(conn_error(Reason::PROTOCOL_ERROR, "GOAWAY on a stream"));
                }
                if payload.len() < 8 {
                    return Err(conn_error(Reason::FRAME_SIZE_ERROR, "a short GOAWAY"));
                }
                self.peer_gone = true;
                Ok(())
            }
            kind::PRIORITY => {
                if head.stream == 0 {
                    return Err(conn_error(Reason::PROTOCOL_ERROR, "PRIORITY on stream 0"));
                }
                if payload.len() != 5 {
                    self.reset(head.stream, Reason::FRAME_SIZE_ERROR)?;
                    return Ok(());
                }
                if depends_on(payload) == head.stream {
                    self.reset(head.stream, Reason::PROTOCOL_ERROR)?;
                }
                Ok(())
            }
            kind::PUSH_PROMISE => Err(conn_error(
                Reason::PROTOCOL_ERROR,
                "PUSH_PROMISE from a client",
            )),
            // Unknown types are ignored (RFC 9113 4.1).
            _ => Ok(()),
        }
    }

    fn on_settings(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if head.stream != 0 {
            return Err(conn_error(Reason::PROTOCOL_ERROR, "SETTINGS on a stream"));
        }
        if head.has(flag::ACK) {
            if !self.settings_seen {
                return Err(conn_error(
                    Reason::PROTOCOL_ERROR,
                    "the preface must be followed by the client's own SETTINGS",
                ));
            }
            if !payload.is_empty() {
                return Err(conn_error(
                    Reason::FRAME_SIZE_ERROR,
                    "a SETTINGS ACK with a payload",
                ));
            }
            self.settings_acked = true;
            return Ok(());
        }
        if payload.len() % 6 != 0 {
            return Err(conn_error(
                Reason::FRAME_SIZE_ERROR,
                "a SETTINGS payload not made of 6-byte pairs",
            ));
        }
        self.settings_seen = true;
        for pair in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([pair[0], pair[1]]);
            let value = u32::from_be_bytes([pair[2], pair[3], pair[4], pair[5]]);
            match id {
                setting::ENABLE_PUSH if value > 1 => {
                    return Err(conn_error(
                        Reason::PROTOCOL_ERROR,
                        "SETTINGS_ENABLE_PUSH not 0 or 1",
                    ))
                }
                setting::INITIAL_WINDOW_SIZE => {
                    if value > frame::MAX_WINDOW {
                        return Err(conn_error(
                            Reason::FLOW_CONTROL_ERROR,
                            "SETTINGS_INITIAL_WINDOW_SIZE past 2^31-1",
                        ));
                    }
                    // Every stream's window moves by the difference, and
                    // may go below zero (RFC 9113 6.9.2).
                    let delta = i64::from(value) - i64::from(self.peer_initial_window);
                    self.peer_initial_window = value;
                    for s in self.streams.values_mut() {
                        s.send_window += delta;
                        if s.send_window > i64::from(frame::MAX_WINDOW) {
                            return Err(conn_error(
                                Reason::FLOW_CONTROL_ERROR,
                                "a stream window past 2^31-1",
                            ));
                        }
                    }
                    if delta > 0 {
                        self.events.push_back(Event::WindowOpened);
                    }
                }
                setting::MAX_FRAME_SIZE => {
                    if !(frame::DEFAULT_MAX_FRAME..1 << 24).contains(&value) {
                        return Err(conn_error(
                            Reason::PROTOCOL_ERROR,
                            "SETTINGS_MAX_FRAME_SIZE outside 2^14..2^24-1",
                        ));
                    }
                    self.peer_max_frame = value;
                }
                // HEADER_TABLE_SIZE does not matter to an encoder that
                // never indexes; the rest are not ours to follow.
                _ => {}
            }
        }
        frame::write_settings_ack(&mut self.out);
        Ok(())
    }

    fn on_ping(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if head.stream != 0 {
            return Err(conn_error(Reason::PROTOCOL_ERROR, "PING on a stream"));
        }
        let Ok(data) = <[u8; 8]>::try_from(payload) else {
            return Err(conn_error(
                Reason::FRAME_SIZE_ERROR,
                "a PING not 8 bytes long",
            ));
        };
        if head.has(flag::ACK) {
            self.events.push_back(Event::Pong(data));
        } else {
            frame::write_ping(&mut self.out, data, true);
        }
        Ok(())
    }

    fn on_window_update(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        let Ok(raw) = <[u8; 4]>::try_from(payload) else {
            return Err(conn_error(
                Reason::FRAME_SIZE_ERROR,
                "a WINDOW_UPDATE not 4 bytes long",
            ));
        };
        let increment = i64::from(u32::from_be_bytes(raw) & frame::MAX_WINDOW);
        if head.stream == 0 {
            if increment == 0 {
                return Err(conn_error(
                    Reason::PROTOCOL_ERROR,
                    "a connection WINDOW_UPDATE of 0",
                ));
            }
            self.conn_send_window += increment;
            if self.conn_send_window > i64::from(frame::MAX_WINDOW) {
                return Err(conn_error(
                    Reason::FLOW_CONTROL_ERROR,
                    "the connection window past 2^31-1",
                ));
            }
            self.events.push_back(Event::WindowOpened);
            return Ok(());
        }
        if head.stream > self.last_stream {
            return Err(conn_error(
                Reason::PROTOCOL_ERROR,
                "WINDOW_UPDATE on an idle stream",
            ));
        }
        let Some(s) = self.streams.get_mut(&head.stream) else {
            // A stream closed already: frames in flight are ignored.
            return Ok(());
        };
        if increment == 0 {
            return self.reset(head.stream, Reason::PROTOCOL_ERROR);
        }
        s.send_window += increment;
        if s.send_window > i64::from(frame::MAX_WINDOW) {
            return self.reset(head.stream, Reason::FLOW_CONTROL_ERROR);
        }
        self.events.push_back(Event::WindowOpened);
        Ok(())
    }

    fn on_reset(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if head.stream == 0 {
            return Err(conn_error(Reason::PROTOCOL_ERROR, "RST_STREAM on stream 0"));
        }
        let Ok(raw) = <[u8; 4]>::try_from(payload) else {
            return Err(conn_error(
                Reason::FRAME_SIZE_ERROR,
                "an RST_STREAM not 4 bytes long",
            ));
        };
        if head.stream > self.last_stream {
            return Err(conn_error(
                Reason::PROTOCOL_ERROR,
                "RST_STREAM on an idle stream",
            ));
        }
        if let Some(s) = self.drop_stream(head.stream) {
            if !s.answered {
                self.client_resets += 1;
                if self.client_resets > self.answered + RESET_ALLOWANCE {
                    return Err(conn_error(
                        Reason::ENHANCE_YOUR_CALM,
                        "too many streams reset before their answer",
                    ));
                }
            }
            self.events.push_back(Event::Reset {
                stream: head.stream,
                reason: Reason(u32::from_be_bytes(raw)),
            });
        }
        Ok(())
    }

    fn on_headers(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if head.stream == 0 || head.stream % 2 == 0 {
            return Err(conn_error(
                Reason::PROTOCOL_ERROR,
                "HEADERS on stream 0 or an even stream",
            ));
        }
        let Some(mut block) = frame::unpad(payload, head.has(flag::PADDED)) else {
            return Err(conn_error(
                Reason::PROTOCOL_ERROR,
                "HEADERS padding longer than the frame",
            ));
        };
        let mut self_dependent = false;
        if head.has(flag::PRIORITY) {
            if block.len() < 5 {
                return Err(conn_error(
                    Reason::FRAME_SIZE_ERROR,
                    "HEADERS too short for its priority",
                ));
            }
            self_dependent = depends_on(block) == head.stream;
            block = &block[5..];
        }
        let end_stream = head.has(flag::END_STREAM);
        if !head.has(flag::END_HEADERS) {
            self.check_block_size(block.len())?;
            self.pending = Some(Pending {
                stream: head.stream,
                end_stream,
                block: block.to_vec(),
            });
            return Ok(());
        }
        self.on_block(head.stream, block, end_stream, self_dependent)
    }

    fn on_continuation(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        let Some(mut p) = self.pending.take() else {
            return Err(conn_error(
                Reason::PROTOCOL_ERROR,
                "CONTINUATION without HEADERS",
            ));
        };
        if payload.is_empty() && !head.has(flag::END_HEADERS) {
            self.count_empty()?;
        }
        self.check_block_size(p.block.len() + payload.len())?;
        p.block.extend_from_slice(payload);
        if head.has(flag::END_HEADERS) {
            self.on_block(p.stream, &p.block, p.end_stream, false)
        } else {
            self.pending = Some(p);
            Ok(())
        }
    }

    /// A header block is bounded however many frames carry it: at twice
    /// the header list limit, the connection ends.
    fn check_block_size(&self, len: usize) -> Result<(), ConnError> {
        if len > self.settings.max_header_size.saturating_mul(2).max(16_384) {
            return Err(conn_error(
                Reason::ENHANCE_YOUR_CALM,
                "a header block past twice the header size limit",
            ));
        }
        Ok(())
    }

    fn count_empty(&mut self) -> Result<(), ConnError> {
        self.empty_frames += 1;
        if self.empty_frames > MAX_EMPTY_FRAMES {
            return Err(conn_error(
                Reason::ENHANCE_YOUR_CALM,
                "too many empty frames",
            ));
        }
        Ok(())
    }

    /// A whole header block: a new request, trailers, or one to decode
    /// and drop.
    fn on_block(
        &mut self,
        stream: u32,
        block: &[u8],
        end_stream: bool,
        self_dependent: bool,
    ) -> Result<(), ConnError> {
        let limits = request::Limits {
            max_size: self.settings.max_header_size,
            max_count: self.settings.max_headers,
        };
        if stream <= self.last_stream {
            // Trailers, or a block for a stream already closed: decoded
            // either way, for HPACK's sake.
            let trailers =
                request::decode(&mut self.decoder, block, limits, true).map_err(|_| {
                    conn_error(
                        Reason::COMPRESSION_ERROR,
                        "an HPACK block that does not decode",
                    )
                })?;
            let Some(s) = self.streams.get_mut(&stream) else {
                return Ok(());
            };
            if s.recv_closed {
                return self.reset(stream, Reason::STREAM_CLOSED);
            }
            // Trailers past the header limits are refused whole, not cut.
            if !end_stream || trailers.malformed.is_some() || trailers.too_large {
                return self.reset(stream, Reason::PROTOCOL_ERROR);
            }
            if s.content_length.is_some_and(|n| n != s.received) {
                return self.reset(stream, Reason::PROTOCOL_ERROR);
            }
            s.recv_closed = true;
            self.events.push_back(Event::Trailers {
                stream,
                head: Box::new(trailers),
            });
            return Ok(());
        }
        self.last_stream = stream;
        let head = request::decode(&mut self.decoder, block, limits, false).map_err(|_| {
            conn_error(
                Reason::COMPRESSION_ERROR,
                "an HPACK block that does not decode",
            )
        })?;
        if stream > self.accept_up_to {
            // Past our GOAWAY: the client will send it again elsewhere.
            return Ok(());
        }
        if self.streams.len() >= self.settings.max_concurrent_streams as usize {
            frame::write_reset(&mut self.out, stream, Reason::REFUSED_STREAM);
            return Ok(());
        }
        if self_dependent || head.malformed.is_some() {
            return self.refuse(stream, Reason::PROTOCOL_ERROR);
        }
        let content_length = head.content_length;
        if end_stream && content_length.is_some_and(|n| n != 0) {
            return self.refuse(stream, Reason::PROTOCOL_ERROR);
        }
        // Until our SETTINGS are acknowledged, the client may send what
        // the default window allows.
        let mut recv_window = i64::from(self.settings.stream_window.min(frame::MAX_WINDOW));
        if !self.settings_acked {
            recv_window = recv_window.max(i64::from(frame::DEFAULT_WINDOW));
        }
        self.streams.insert(
            stream,
            Stream {
                recv_closed: end_stream,
                recv_window,
                send_window: i64::from(self.peer_initial_window),
                held: 0,
                unreleased: 0,
                content_length,
                received: 0,
                answered: false,
                payload: T::default(),
            },
        );
        self.events.push_back(Event::Request {
            stream,
            head: Box::new(head),
            end_stream,
        });
        Ok(())
    }

    fn on_data(&mut self, head: Head, payload: Bytes) -> Result<(), ConnError> {
        if head.stream == 0 {
            return Err(conn_error(Reason::PROTOCOL_ERROR, "DATA on stream 0"));
        }
        if head.stream > self.last_stream {
            return Err(conn_error(Reason::PROTOCOL_ERROR, "DATA on an idle stream"));
        }
        let flow = payload.len() as u32;
        let end_stream = head.has(flag::END_STREAM);
        if flow == 0 && !end_stream {
            self.count_empty()?;
        }
        // The whole frame, padding included, counts against both windows.
        self.conn_recv_window -= i64::from(flow);
        if self.conn_recv_window < 0 {
            return Err(conn_error(
                Reason::FLOW_CONTROL_ERROR,
                "DATA past the connection window",
            ));
        }
        let data = if head.has(flag::PADDED) {
            let Some(inner) = frame::unpad(&payload, true) else {
                return Err(conn_error(
                    Reason::PROTOCOL_ERROR,
                    "DATA padding longer than the frame",
                ));
            };
            let start = 1;
            payload.slice(start..start + inner.len())
        } else {
            payload
        };
        let padding = flow - data.len() as u32;
        let Some(s) = self.streams.get_mut(&head.stream) else {
            // Closed (reset) already: the bytes are given back to the
            // connection window at once.
            self.give_back_conn(flow);
            return Ok(());
        };
        if s.recv_closed {
            self.give_back_conn(flow);
            return self.reset(head.stream, Reason::STREAM_CLOSED);
        }
        s.recv_window -= i64::from(flow);
        if s.recv_window < 0 {
            self.give_back_conn(flow);
            return self.reset(head.stream, Reason::FLOW_CONTROL_ERROR);
        }
        s.received += data.len() as u64;
        let too_long = s.content_length.is_some_and(|n| s.received > n);
        let too_short = end_stream && s.content_length.is_some_and(|n| s.received != n);
        if too_long || too_short {
            self.give_back_conn(flow);
            return self.reset(head.stream, Reason::PROTOCOL_ERROR);
        }
        s.recv_closed = end_stream;
        s.held += data.len() as u32;
        // Padding is nobody's to take: given back now.
        s.unreleased += padding;
        self.give_back_conn(padding);
        if data.is_empty() && !end_stream {
            return Ok(());
        }
        self.events.push_back(Event::Data {
            stream: head.stream,
            data,
            end_stream,
        });
        Ok(())
    }

    /// Gives `n` body bytes of a stream back to the client's windows, once
    /// its handler has taken them: so a window bounds what is buffered,
    /// and a slow upstream holds its client back rather than memory.
    /// WINDOW_UPDATEs go out once half a window is owed, not per frame.
    /// Bytes of a stream already closed were given back when it closed.
    pub fn release(&mut self, stream: u32, n: u32) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        let n = n.min(s.held);
        s.held -= n;
        s.unreleased += n;
        let window = self.settings.stream_window.min(frame::MAX_WINDOW);
        if !s.recv_closed && s.unreleased >= window / 2 {
            frame::write_window_update(&mut self.out, stream, s.unreleased);
            s.recv_window += i64::from(s.unreleased);
            s.unreleased = 0;
        }
        self.give_back_conn(n);
    }

    fn give_back_conn(&mut self, n: u32) {
        self.conn_unreleased += n;
        let window = self
            .settings
            .connection_window
            .clamp(frame::DEFAULT_WINDOW, frame::MAX_WINDOW);
        if self.conn_unreleased >= window / 2 {
            frame::write_window_update(&mut self.out, 0, self.conn_unreleased);
            self.conn_recv_window += i64::from(self.conn_unreleased);
            self.conn_unreleased = 0;
        }
    }

    /// Ends a stream for an error of the client's (a stream error): the
    /// RST_STREAM is queued, the stream and its payload dropped.
    fn reset(&mut self, stream: u32, reason: Reason) -> Result<(), ConnError> {
        if self.drop_stream(stream).is_some() {
            self.events.push_back(Event::Reset { stream, reason });
        }
        self.refuse(stream, reason)
    }

    /// Takes a stream out of the table, its payload with it; the body
    /// bytes it held, never taken, go back to the connection's window.
    fn drop_stream(&mut self, stream: u32) -> Option<Stream<T>> {
        let s = self.streams.remove(&stream)?;
        self.give_back_conn(s.held);
        Some(s)
    }

    /// Refuses a stream that was never opened here.
    fn refuse(&mut self, stream: u32, reason: Reason) -> Result<(), ConnError> {
        frame::write_reset(&mut self.out, stream, reason);
        self.local_resets += 1;
        if self.local_resets > MAX_LOCAL_RESETS {
            return Err(conn_error(
                Reason::ENHANCE_YOUR_CALM,
                "too many streams reset for errors",
            ));
        }
        Ok(())
    }

    // The sending side, called by the driver.

    /// Sends a response (or trailers) head: `block` is the HPACK block.
    pub fn send_headers(&mut self, stream: u32, block: &[u8], end_stream: bool) {
        let max = self.peer_max_frame as usize;
        frame::write_headers(&mut self.out, stream, block, end_stream, max);
        if let Some(s) = self.streams.get_mut(&stream) {
            if !s.answered {
                s.answered = true;
                self.answered += 1;
            }
        }
        if end_stream {
            self.sent_end(stream);
        }
    }

    /// How many body bytes the stream may send now: its window, the
    /// connection's, and the client's frame size, whichever is least.
    pub fn capacity(&self, stream: u32) -> usize {
        let Some(s) = self.streams.get(&stream) else {
            return 0;
        };
        s.send_window
            .min(self.conn_send_window)
            .clamp(0, i64::from(self.peer_max_frame)) as usize
    }

    /// Sends one DATA frame of `data` (no more than [`Conn::capacity`]).
    pub fn send_data(&mut self, stream: u32, data: &[u8], end_stream: bool) {
        let n = data.len() as i64;
        if let Some(s) = self.streams.get_mut(&stream) {
            debug_assert!(n <= s.send_window.min(self.conn_send_window) || n == 0);
            s.send_window -= n;
            self.conn_send_window -= n;
            frame::write_data(&mut self.out, stream, data, end_stream);
            if end_stream {
                self.sent_end(stream);
            }
        }
    }

    /// Ends a stream from this side (the upstream failed, the client took
    /// too long to read): RST_STREAM, and the stream dropped.
    pub fn cancel(&mut self, stream: u32, reason: Reason) {
        if self.drop_stream(stream).is_some() {
            frame::write_reset(&mut self.out, stream, reason);
        }
    }

    /// The response is complete. A client still sending its request is
    /// told to stop (RST_STREAM NO_ERROR, RFC 9113 8.1): the answer does
    /// not depend on the rest.
    fn sent_end(&mut self, stream: u32) {
        if self.drop_stream(stream).is_some_and(|s| !s.recv_closed) {
            frame::write_reset(&mut self.out, stream, Reason::NO_ERROR);
        }
    }

    /// Sends a PING of ours (keep-alive).
    pub fn ping(&mut self, payload: [u8; 8]) {
        frame::write_ping(&mut self.out, payload, false);
    }

    /// Starts a graceful close: a GOAWAY naming the last stream taken, so
    /// that the client sends later ones elsewhere; the open ones are
    /// served out.
    pub fn go_away(&mut self, reason: Reason) {
        self.accept_up_to = self.last_stream;
        frame::write_goaway(&mut self.out, self.last_stream, reason);
    }
}

/// The stream a priority block names as its parent.
fn depends_on(block: &[u8]) -> u32 {
    u32::from_be_bytes([block[0], block[1], block[2], block[3]]) & frame::MAX_WINDOW
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            max_concurrent_streams: 4,
            stream_window: 65_535,
            connection_window: 1 << 20,
            max_header_size: 8192,
            max_headers: 20,
        }
    }

    /// A header block of these fields, as a client would send it.
    fn block(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut enc = hpack::Encoder::new();
        let mut out = Vec::new();
        for (n, v) in fields {
            enc.field(n.as_bytes(), v.as_bytes(), &mut out);
        }
        out
    }

    fn get(path: &str) -> Vec<u8> {
        block(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "example.com"),
            (":path", path),
        ])
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        frame::write_head(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out
    }

    fn headers(stream: u32, block: &[u8], end_stream: bool) -> Vec<u8> {
        let flags = flag::END_HEADERS | if end_stream { flag::END_STREAM } else { 0 };
        frame(kind::HEADERS, flags, stream, block)
    }

    /// A client's opening: preface and empty SETTINGS.
    fn opening() -> Vec<u8> {
        let mut v = frame::PREFACE.to_vec();
        v.extend(frame(kind::SETTINGS, 0, 0, &[]));
        v
    }

    struct Test {
        conn: Conn<()>,
        buf: BytesMut,
    }

    impl Test {
        fn new() -> Self {
            let mut t = Test {
                conn: Conn::new(settings()),
                buf: BytesMut::new(),
            };
            t.feed(&opening()).unwrap();
            t.take_out();
            t.events();
            t
        }

        fn feed(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
            self.buf.extend_from_slice(bytes);
            self.conn.recv(&mut self.buf)
        }

        fn events(&mut self) -> Vec<Event> {
            self.conn.events.drain(..).collect()
        }

        /// The frames written, as (header, payload).
        fn take_out(&mut self) -> Vec<(Head, Vec<u8>)> {
            let out = std::mem::take(&mut self.conn.out);
            let mut frames = Vec::new();
            let mut at = 0;
            while at < out.len() {
                let h = Head::parse(&out[at..]).unwrap();
                let end = at + HEADER_LEN + h.len as usize;
                frames.push((h, out[at + HEADER_LEN..end].to_vec()));
                at = end;
            }
            frames
        }

        /// The RST_STREAM and GOAWAY codes written.
        fn resets(&mut self) -> Vec<(u8, u32, Reason)> {
            self.take_out()
                .into_iter()
                .filter_map(|(h, p)| match h.kind {
                    kind::RST_STREAM => Some((
                        h.kind,
                        h.stream,
                        Reason(u32::from_be_bytes(p[..4].try_into().unwrap())),
                    )),
                    kind::GOAWAY => Some((
                        h.kind,
                        h.stream,
                        Reason(u32::from_be_bytes(p[4..8].try_into().unwrap())),
                    )),
                    _ => None,
                })
                .collect()
        }
    }

    #[test]
    fn the_server_speaks_first_and_acknowledges_the_clients_settings() {
        let mut t = Test {
            conn: Conn::new(settings()),
            buf: BytesMut::new(),
        };
        let first = t.take_out();
        assert_eq!(first[0].0.kind, kind::SETTINGS);
        assert!(
            first[0].1.chunks(6).any(|p| p == [0, 3, 0, 0, 0, 4]),
            "MAX_CONCURRENT_STREAMS 4"
        );
        // The connection window raised to 1 MiB at once.
        assert_eq!(first[1].0.kind, kind::WINDOW_UPDATE);
        assert_eq!(
            u32::from_be_bytes(first[1].1[..4].try_into().unwrap()),
            (1 << 20) - 65_535
        );
        assert!(!t.conn.established());
        // The preface may come in pieces.
        let open = opening();
        t.feed(&open[..10]).unwrap();
        assert!(t.take_out().is_empty());
        t.feed(&open[10..]).unwrap();
        assert!(t.conn.established());
        let ack = t.take_out();
        assert_eq!((ack[0].0.kind, ack[0].0.flags), (kind::SETTINGS, flag::ACK));
    }

    #[test]
    fn what_is_not_http2_ends_the_connection() {
        let mut t = Test {
            conn: Conn::new(settings()),
            buf: BytesMut::new(),
        };
        t.take_out();
        let e = t.feed(b"GET / HTTP/1.1\r\n\r\n").unwrap_err();
        assert_eq!(e.reason, Reason::PROTOCOL_ERROR);
        assert_eq!(t.resets(), [(kind::GOAWAY, 0, Reason::PROTOCOL_ERROR)]);
        // A preface then anything but SETTINGS.
        let mut t = Test {
            conn: Conn::new(settings()),
            buf: BytesMut::new(),
        };
        let mut bytes = frame::PREFACE.to_vec();
        bytes.extend(headers(1, &get("/"), true));
        assert_eq!(t.feed(&bytes).unwrap_err().reason, Reason::PROTOCOL_ERROR);
    }

    #[test]
    fn a_request_comes_whole_however_the_bytes_are_split() {
        let mut bytes = headers(1, &get("/a?b=c"), false);
        bytes.extend(frame(kind::DATA, 0, 1, b"hello "));
        bytes.extend(frame(kind::DATA, flag::END_STREAM, 1, b"world"));
        for split in [1, 3, 9, 10, 17, bytes.len()] {
            let mut t = Test::new();
            let mut events = Vec::new();
            for piece in bytes.chunks(split) {
                t.feed(piece).unwrap();
                events.extend(t.events());
            }
            let [Event::Request {
                stream: 1,
                head,
                end_stream: false,
            }, Event::Data {
                stream: 1,
                data: d1,
                end_stream: false,
            }, Event::Data {
                stream: 1,
                data: d2,
                end_stream: true,
            }] = &events[..]
            else {
                panic!("split {split}: {events:?}");
            };
            assert_eq!(head.method(), b"GET");
            assert_eq!(head.get(head.path.unwrap()), b"/a?b=c");
            assert_eq!(head.get(head.authority.unwrap()), b"example.com");
            assert_eq!([&d1[..], &d2[..]].concat(), b"hello world");
        }
    }

    #[test]
    fn malformed_requests_are_reset_and_the_connection_goes_on() {
        let bad: &[&[(&str, &str)]] = &[
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                ("Upper", "x"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                ("transfer-encoding", "chunked"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                ("connection", "close"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                ("x", "a\r\nb: c"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                ("x", " padded"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                ("te", "gzip"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "https"),
                ("x", "y"),
                (":path", "/"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                (":path", "/"),
            ],
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                (":status", "200"),
            ],
            &[(":method", "GET"), (":scheme", "https")],
            &[(":method", "GET"), (":scheme", "https"), (":path", "")],
            &[(":scheme", "https"), (":path", "/")],
            &[(":method", "GET"), (":scheme", "https"), (":path", "?x")],
            &[(":method", "GET"), (":scheme", "https"), (":path", "*")],
            &[(":method", "G T"), (":scheme", "https"), (":path", "/")],
        ];
        let mut t = Test::new();
        let mut id = 1;
        for fields in bad {
            t.feed(&headers(id, &block(fields), true)).unwrap();
            assert!(t.events().is_empty(), "{fields:?}");
            assert_eq!(
                t.resets(),
                [(kind::RST_STREAM, id, Reason::PROTOCOL_ERROR)],
                "{fields:?}"
            );
            id += 2;
        }
        t.feed(&headers(id, &get("/"), true)).unwrap();
        assert!(matches!(t.events()[..], [Event::Request { .. }]));
        assert_eq!(t.conn.open_streams(), 1);
        // `*` is for OPTIONS.
        let options = block(&[(":method", "OPTIONS"), (":scheme", "https"), (":path", "*")]);
        t.feed(&headers(id + 2, &options, true)).unwrap();
        assert!(matches!(t.events()[..], [Event::Request { .. }]));
    }

    #[test]
    fn cookies_are_joined_and_te_trailers_passes() {
        let mut t = Test::new();
        let b = block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("cookie", "a=1"),
            ("te", "trailers"),
            ("cookie", "b=2"),
        ]);
        t.feed(&headers(1, &b, true)).unwrap();
        let events = t.events();
        let [Event::Request { head, .. }] = &events[..] else {
            panic!("{events:?}")
        };
        let fields: Vec<_> = head.fields().collect();
        assert_eq!(
            fields,
            [(&b"te"[..], &b"trailers"[..]), (b"cookie", b"a=1; b=2")]
        );
    }

    #[test]
    fn a_head_past_the_limits_is_marked_for_a_431() {
        let mut t = Test::new();
        let big = "x".repeat(9000);
        let mut fields = vec![(":method", "GET"), (":scheme", "http"), (":path", "/")];
        fields.push(("big", &big));
        t.feed(&headers(1, &block(&fields), true)).unwrap();
        let many: Vec<(String, String)> = (0..21).map(|i| (format!("f{i}"), "v".into())).collect();
        let mut fields = vec![(":method", "GET"), (":scheme", "http"), (":path", "/")];
        fields.extend(many.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        t.feed(&headers(3, &block(&fields), true)).unwrap();
        let events = t.events();
        assert_eq!(events.len(), 2);
        for e in &events {
            let Event::Request { head, .. } = e else {
                panic!("{e:?}")
            };
            assert!(head.too_large);
        }
    }

    #[test]
    fn a_header_block_is_bounded_however_many_continuations_carry_it() {
        let mut t = Test::new();
        t.feed(&frame(kind::HEADERS, 0, 1, &get("/"))).unwrap();
        let chunk = vec![0x40; 1000];
        let mut result = Ok(());
        for _ in 0..100 {
            result = t.feed(&frame(kind::CONTINUATION, 0, 1, &chunk));
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result.unwrap_err().reason, Reason::ENHANCE_YOUR_CALM);
        // And empty CONTINUATIONs are counted.
        let mut t = Test::new();
        t.feed(&frame(kind::HEADERS, 0, 1, &get("/"))).unwrap();
        let empty = frame(kind::CONTINUATION, 0, 1, &[]);
        let mut result = Ok(());
        for _ in 0..2000 {
            result = t.feed(&empty);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result.unwrap_err().reason, Reason::ENHANCE_YOUR_CALM);
        // A block cut by another frame is a protocol error.
        let mut t = Test::new();
        t.feed(&frame(kind::HEADERS, 0, 1, &get("/"))).unwrap();
        let e = t.feed(&frame(kind::PING, 0, 0, &[0; 8])).unwrap_err();
        assert_eq!(e.reason, Reason::PROTOCOL_ERROR);
    }

    #[test]
    fn streams_past_the_limit_are_refused_and_hpack_stays_in_step() {
        let mut t = Test::new();
        for id in [1, 3, 5, 7] {
            t.feed(&headers(id, &get("/"), true)).unwrap();
        }
        assert_eq!(t.conn.open_streams(), 4);
        t.events();
        t.take_out();
        // The fifth adds a field to the dynamic table; it is refused, and
        // the next request refers to that entry.
        // The test encoder's blocks set the table's size to 0: this one
        // sets it back to 4,096 first.
        let mut b = vec![0x3f, 0xe1, 0x1f];
        b.extend_from_slice(&get("/")[1..]);
        b.extend_from_slice(&[0x40, 3, b'x', b'-', b'a', 2, b'o', b'k']);
        t.feed(&headers(9, &b, true)).unwrap();
        assert_eq!(t.resets(), [(kind::RST_STREAM, 9, Reason::REFUSED_STREAM)]);
        t.conn.send_headers(1, &[0x88], true);
        let mut b = get("/")[1..].to_vec();
        b.push(0x80 | 62);
        t.feed(&headers(11, &b, true)).unwrap();
        let events = t.events();
        let [Event::Request {
            stream: 11, head, ..
        }] = &events[..]
        else {
            panic!("{events:?}")
        };
        assert_eq!(
            head.fields().collect::<Vec<_>>(),
            [(&b"x-a"[..], &b"ok"[..])]
        );
    }

    #[test]
    fn rapid_resets_end_the_connection() {
        let mut t = Test::new();
        let mut id = 1;
        let mut result = Ok(());
        for _ in 0..500 {
            let mut bytes = headers(id, &get("/"), true);
            bytes.extend(frame(kind::RST_STREAM, 0, id, &8u32.to_be_bytes()));
            result = t.feed(&bytes);
            if result.is_err() {
                break;
            }
            id += 2;
        }
        assert_eq!(result.unwrap_err().reason, Reason::ENHANCE_YOUR_CALM);
        assert!(id > 2 * RESET_ALLOWANCE as u32, "{id}");
        // Answered streams reset afterwards do not count.
        let mut t = Test::new();
        let mut id = 1;
        for _ in 0..500 {
            t.feed(&headers(id, &get("/"), false)).unwrap();
            t.conn.send_headers(id, &[0x88], false);
            t.feed(&frame(kind::RST_STREAM, 0, id, &8u32.to_be_bytes()))
                .unwrap();
            id += 2;
        }
    }

    #[test]
    fn request_bodies_are_held_to_the_windows_and_given_back() {
        let mut t = Test::new();
        t.feed(&headers(1, &get("/"), false)).unwrap();
        t.events();
        let chunk = vec![7u8; 16_384];
        // 65,535 fit; taken and given back at half.
        for _ in 0..3 {
            t.feed(&frame(kind::DATA, 0, 1, &chunk)).unwrap();
        }
        assert_eq!(t.events().len(), 3);
        t.conn.release(1, 16_384);
        assert!(t.take_out().is_empty(), "no update for a quarter window");
        t.conn.release(1, 32_768);
        let out = t.take_out();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0.kind, out[0].0.stream), (kind::WINDOW_UPDATE, 1));
        assert_eq!(out[0].1, 49_152u32.to_be_bytes());
        // Past the window: the stream is reset.
        let mut t = Test::new();
        t.feed(&headers(1, &get("/"), false)).unwrap();
        for _ in 0..4 {
            t.feed(&frame(kind::DATA, 0, 1, &chunk)).unwrap();
        }
        assert_eq!(
            t.resets(),
            [(kind::RST_STREAM, 1, Reason::FLOW_CONTROL_ERROR)]
        );
        assert_eq!(t.conn.open_streams(), 0);
    }

    #[test]
    fn a_body_must_match_its_content_length() {
        let mut t = Test::new();
        let b = block(&[
            (":method", "POST"),
            (":scheme", "https"),
            (":path", "/"),
            ("content-length", "5"),
        ]);
        t.feed(&headers(1, &b, false)).unwrap();
        t.feed(&frame(kind::DATA, flag::END_STREAM, 1, b"abc"))
            .unwrap();
        assert_eq!(t.resets(), [(kind::RST_STREAM, 1, Reason::PROTOCOL_ERROR)]);
        t.feed(&headers(3, &b, false)).unwrap();
        t.feed(&frame(kind::DATA, 0, 3, b"abcdef")).unwrap();
        assert_eq!(t.resets(), [(kind::RST_STREAM, 3, Reason::PROTOCOL_ERROR)]);
        t.feed(&headers(5, &b, true)).unwrap();
        assert_eq!(t.resets(), [(kind::RST_STREAM, 5, Reason::PROTOCOL_ERROR)]);
        t.feed(&headers(7, &b, false)).unwrap();
        t.feed(&frame(kind::DATA, flag::END_STREAM, 7, b"abcde"))
            .unwrap();
        assert!(t.resets().is_empty());
    }

    #[test]
    fn trailers_end_a_request() {
        let mut t = Test::new();
        t.feed(&headers(1, &get("/"), false)).unwrap();
        t.feed(&frame(kind::DATA, 0, 1, b"abc")).unwrap();
        t.feed(&headers(1, &block(&[("grpc-status", "0")]), true))
            .unwrap();
        let events = t.events();
        let [_, _, Event::Trailers { stream: 1, head }] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(
            head.fields().collect::<Vec<_>>(),
            [(&b"grpc-status"[..], &b"0"[..])]
        );
        // Trailers without END_STREAM are malformed.
        t.feed(&headers(3, &get("/"), false)).unwrap();
        t.feed(&headers(3, &block(&[("x", "y")]), false)).unwrap();
        assert_eq!(t.resets(), [(kind::RST_STREAM, 3, Reason::PROTOCOL_ERROR)]);
        // Trailers past the limits are refused whole.
        t.feed(&headers(5, &get("/"), false)).unwrap();
        let big = "x".repeat(9000);
        t.feed(&headers(5, &block(&[("big", &big)]), true)).unwrap();
        assert_eq!(t.resets(), [(kind::RST_STREAM, 5, Reason::PROTOCOL_ERROR)]);
    }

    #[test]
    fn sending_follows_the_clients_windows() {
        let mut t = Test::new();
        t.feed(&headers(1, &get("/"), true)).unwrap();
        t.events();
        assert_eq!(t.conn.capacity(1), 16_384, "the frame size bounds it first");
        let big = vec![1u8; 16_384];
        for _ in 0..3 {
            t.conn.send_data(1, &big, false);
        }
        assert_eq!(t.conn.capacity(1), 65_535 - 3 * 16_384);
        t.conn.send_data(1, &big[..16_383], false);
        assert_eq!(t.conn.capacity(1), 0);
        // The stream's window opens, but the connection's is shut.
        t.feed(&frame(kind::WINDOW_UPDATE, 0, 1, &100_000u32.to_be_bytes()))
            .unwrap();
        assert_eq!(t.conn.capacity(1), 0);
        t.feed(&frame(kind::WINDOW_UPDATE, 0, 0, &1_000u32.to_be_bytes()))
            .unwrap();
        assert_eq!(t.conn.capacity(1), 1_000);
        assert!(t.events().iter().all(|e| matches!(e, Event::WindowOpened)));
        // A smaller initial window takes effect on open streams too.
        let mut s = Vec::new();
        s.extend_from_slice(&setting::INITIAL_WINDOW_SIZE.to_be_bytes());
        s.extend_from_slice(&0u32.to_be_bytes());
        t.feed(&frame(kind::SETTINGS, 0, 0, &s)).unwrap();
        assert_eq!(t.conn.streams[&1].send_window, 100_000 - 65_535);
        t.feed(&headers(3, &get("/"), true)).unwrap();
        assert_eq!(t.conn.capacity(3), 0);
        assert_eq!(t.conn.capacity(1), 1_000);
        // Windows past 2^31-1 are errors.
        let e = t
            .feed(&frame(
                kind::WINDOW_UPDATE,
                0,
                0,
                &frame::MAX_WINDOW.to_be_bytes(),
            ))
            .unwrap_err();
        assert_eq!(e.reason, Reason::FLOW_CONTROL_ERROR);
    }

    #[test]
    fn the_answer_closes_the_stream_and_stops_an_upload() {
        let mut t = Test::new();
        t.feed(&headers(1, &get("/"), false)).unwrap();
        t.feed(&headers(3, &get("/"), true)).unwrap();
        t.take_out();
        t.events();
        t.conn.send_headers(1, &[0x88], true);
        t.conn.send_headers(3, &[0x88], false);
        t.conn.send_data(3, b"x", true);
        let out = t.take_out();
        let kinds: Vec<_> = out.iter().map(|(h, _)| (h.kind, h.stream)).collect();
        assert_eq!(
            kinds,
            [
                (kind::HEADERS, 1),
                (kind::RST_STREAM, 1),
                (kind::HEADERS, 3),
                (kind::DATA, 3)
            ]
        );
        assert_eq!(out[1].1, Reason::NO_ERROR.0.to_be_bytes());
        assert_eq!(t.conn.open_streams(), 0);
        // Data the client had in flight is taken and ignored.
        t.feed(&frame(kind::DATA, 0, 1, b"late")).unwrap();
        assert!(t.events().is_empty());
    }

    #[test]
    fn a_goaway_of_ours_stops_new_streams() {
        let mut t = Test::new();
        t.feed(&headers(1, &get("/"), true)).unwrap();
        t.conn.go_away(Reason::NO_ERROR);
        let out = t.take_out();
        assert_eq!(out[0].0.kind, kind::GOAWAY);
        assert_eq!(&out[0].1[..4], 1u32.to_be_bytes());
        t.feed(&headers(3, &get("/"), true)).unwrap();
        let events = t.events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(t.conn.open_streams(), 1);
    }

    #[test]
    fn control_frames_are_checked() {
        let cases: Vec<(Vec<u8>, Reason)> = vec![
            (frame(kind::PING, 0, 1, &[0; 8]), Reason::PROTOCOL_ERROR),
            (frame(kind::PING, 0, 0, &[0; 7]), Reason::FRAME_SIZE_ERROR),
            (
                frame(kind::SETTINGS, 0, 0, &[0; 5]),
                Reason::FRAME_SIZE_ERROR,
            ),
            (
                frame(kind::SETTINGS, flag::ACK, 0, &[0; 6]),
                Reason::FRAME_SIZE_ERROR,
            ),
            (
                frame(kind::SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 2]),
                Reason::PROTOCOL_ERROR,
            ),
            (
                frame(kind::SETTINGS, 0, 0, &[0, 5, 0, 0, 0, 1]),
                Reason::PROTOCOL_ERROR,
            ),
            (
                frame(kind::SETTINGS, 0, 0, &[0, 4, 0x80, 0, 0, 0]),
                Reason::FLOW_CONTROL_ERROR,
            ),
            (
                frame(kind::WINDOW_UPDATE, 0, 0, &[0; 4]),
                Reason::PROTOCOL_ERROR,
            ),
            (frame(kind::DATA, 0, 0, b"x"), Reason::PROTOCOL_ERROR),
            (frame(kind::DATA, 0, 5, b"x"), Reason::PROTOCOL_ERROR),
            (
                frame(kind::HEADERS, flag::END_HEADERS, 2, &[0x82]),
                Reason::PROTOCOL_ERROR,
            ),
            (
                frame(kind::PUSH_PROMISE, 0, 1, &[0; 4]),
                Reason::PROTOCOL_ERROR,
            ),
            (frame(kind::CONTINUATION, 0, 1, &[]), Reason::PROTOCOL_ERROR),
            (
                frame(kind::RST_STREAM, 0, 9, &[0; 4]),
                Reason::PROTOCOL_ERROR,
            ),
            (
                frame(kind::DATA, 0, 1, &vec![0; 16_385]),
                Reason::FRAME_SIZE_ERROR,
            ),
            (
                headers(1, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f], true),
                Reason::COMPRESSION_ERROR,
            ),
        ];
        for (bytes, reason) in cases {
            let mut t = Test::new();
            let e = t.feed(&bytes).unwrap_err();
            assert_eq!(e.reason, reason, "{bytes:02x?}: {e}");
            assert_eq!(t.resets(), [(kind::GOAWAY, 0, reason)]);
        }
        // The client's first frame must be its own SETTINGS, not an ACK.
        let mut t = Test {
            conn: Conn::new(settings()),
            buf: BytesMut::new(),
        };
        let mut bytes = frame::PREFACE.to_vec();
        bytes.extend(frame(kind::SETTINGS, flag::ACK, 0, &[]));
        assert_eq!(t.feed(&bytes).unwrap_err().reason, Reason::PROTOCOL_ERROR);
        // A PING's answer says which PING it answers.
        let mut t = Test::new();
        t.feed(&frame(kind::PING, flag::ACK, 0, b"abcdefgh"))
            .unwrap();
        assert!(matches!(t.events()[..], [Event::Pong(p)] if &p == b"abcdefgh"));
        // PINGs are answered, unknown frames ignored.
        let mut t = Test::new();
        t.feed(&frame(kind::PING, 0, 0, b"12345678")).unwrap();
        t.feed(&frame(0x42, 0, 0, b"whatever")).unwrap();
        let out = t.take_out();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].0.kind, out[0].0.flags, &out[0].1[..]),
            (kind::PING, flag::ACK, &b"12345678"[..])
        );
    }
}
