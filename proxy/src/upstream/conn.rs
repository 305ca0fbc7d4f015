//! An HTTP/1.1 upstream connection, driven by whoever uses it rather than
//! by a task of its own (see [`H1`]).
//!
//! It knows nothing of endpoints or of the idle pool that keeps it
//! between requests (`upstream/idle.rs`); sends take it from there
//! (`upstream/pool/h1.rs`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::upstream::transport::Transport;
use crate::upstream::upload::RequestBody;

/// Polls a connection; drops it once it has ended. True while it lives.
pub(super) fn drive(
    conn: &mut Option<http1::Connection<TokioIo<Transport>, RequestBody>>,
    cx: &mut Context<'_>,
) -> bool {
    let Some(c) = conn else { return false };
    match Pin::new(c).poll(cx) {
        Poll::Pending => true,
        Poll::Ready(r) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "upstream connection ended");
            }
            *conn = None;
            false
        }
    }
}

/// An HTTP/1.1 upstream connection: the handle that sends requests and
/// the connection future that does the I/O.
///
/// The connection is not spawned as a task of its own. Whoever uses it
/// drives it: the request's task while it waits for the response headers,
/// the response body as the client reads it. A proxied request then runs in
/// one task with no cross-task wake-ups, which is most of the per-request
/// CPU a proxy spends beyond the syscalls. An idle connection in the pool is
/// not polled at all; the next user polls it once and finds out whether the
/// upstream closed it meanwhile.
pub struct H1 {
    pub(super) sender: http1::SendRequest<RequestBody>,
    /// `None` once the connection has ended. It is dropped at once: a
    /// request still queued in it is then handed back unsent (hyper cancels
    /// queued requests when the connection is dropped, not when it ends).
    pub(super) conn: Option<http1::Connection<TokioIo<Transport>, RequestBody>>,
}

impl H1 {
    /// Lets the connection read and write what it can. False once it has
    /// ended (closed by either side, or failed).
    pub fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        drive(&mut self.conn, cx)
    }

    /// Waits until the connection can take a request; false if it cannot
    /// (the upstream closed it while it sat in the pool).
    pub(super) async fn ready(&mut self) -> bool {
        std::future::poll_fn(|cx| {
            let alive = self.drive(cx);
            match self.sender.poll_ready(cx) {
                Poll::Ready(r) => Poll::Ready(r.is_ok() && self.conn.is_some()),
                Poll::Pending if alive => Poll::Pending,
                Poll::Pending => Poll::Ready(false),
            }
        })
        .await
    }
}
