//! The idle connections an endpoint keeps between requests: pooled
//! HTTP/1.1 connections, plain sockets for the fast path, and the one
//! shared HTTP/2 connection.
//!
//! This module knows nothing of endpoints: an [`Endpoint`] owns a
//! [`Pool`], and `upstream/pool/` takes connections from it and puts them
//! back. Keeping it apart makes the dependency one-way (pool → endpoint →
//! idle).
//!
//! [`Endpoint`]: crate::upstream::Endpoint

use std::io;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::client::conn::http2;
use tokio::net::TcpStream;

use crate::upstream::conn::H1;
use crate::upstream::upload::RequestBody;

/// Idle connections of one endpoint.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
    /// Plain sockets for the HTTP/1.1 fast path, which frames requests and
    /// responses itself.
    raw: Mutex<Vec<RawIdle>>,
    h2: Mutex<Option<http2::SendRequest<RequestBody>>>,
}

struct RawIdle {
    stream: TcpStream,
    since: Instant,
}

/// False when an idle socket has been closed by its peer or has bytes
/// nobody asked for. Costs a syscall only when the socket was reported
/// readable: the readiness Tokio already holds says whether anything
/// happened on it since it went idle.
fn idle_socket_usable(s: &TcpStream) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match s.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut probe = [0u8; 1];
            matches!(s.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl Pool {
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
            + self.raw.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Drops idle connections older than `max_age`.
    pub fn expire(&self, max_age: Duration) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain(|c| c.since.elapsed() < max_age);
        }
        if let Ok(mut raw) = self.raw.lock() {
            raw.retain(|c| c.since.elapsed() < max_age);
        }
    }

    /// An idle fast-path socket younger than `max_age` that still looks
    /// open; closed ones met on the way are dropped.
    pub(crate) fn take_raw(&self, max_age: Duration) -> Option<TcpStream> {
        let mut raw = self.raw.lock().ok()?;
        while let Some(c) = raw.pop() {
            if c.since.elapsed() >= max_age {
                raw.clear();
                return None;
            }
            if idle_socket_usable(&c.stream) {
                return Some(c.stream);
            }
        }
        None
    }

    /// Returns a fast-path socket whose last response ended cleanly.
    pub(crate) fn put_raw(&self, stream: TcpStream, max_idle: usize) {
        if let Ok(mut raw) = self.raw.lock() {
            if raw.len() < max_idle {
                raw.push(RawIdle {
                    stream,
                    since: Instant::now(),
                });
            }
        }
    }

    /// An idle connection younger than `max_age`, and how long it sat.
    pub(super) fn take(&self, max_age: Duration) -> Option<(Box<H1>, Duration)> {
        let mut idle = self.idle.lock().ok()?;
        // Newest last: it is the warmest and the least likely to be closed.
        let c = idle.pop()?;
        let sat = c.since.elapsed();
        if sat >= max_age {
            // Everything below it is older still.
            idle.clear();
            return None;
        }
        Some((c.conn, sat))
    }

    /// Returns an HTTP/1.1 connection whose last response ended cleanly,
    /// unless `max_idle` are idle already.
    pub(super) fn put(&self, conn: Box<H1>, max_idle: usize) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < max_idle {
                idle.push(Idle {
                    conn,
                    since: Instant::now(),
                });
            }
        }
    }

    /// The shared HTTP/2 connection, unless there is none or it closed.
    pub(super) fn shared_h2(&self) -> Option<http2::SendRequest<RequestBody>> {
        self.h2
            .lock()
            .ok()
            .and_then(|g| g.as_ref().filter(|s| !s.is_closed()).cloned())
    }

    /// Makes `sender` the HTTP/2 connection later requests share.
    pub(super) fn share_h2(&self, sender: http2::SendRequest<RequestBody>) {
        if let Ok(mut g) = self.h2.lock() {
            *g = Some(sender);
        }
    }
}

struct Idle {
    conn: Box<H1>,
    since: Instant,
}
