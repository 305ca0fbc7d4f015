//! The HTTP/1.1 connection lent to one response: the response body drives
//! it while the client reads, and gives it back to the endpoint's idle
//! pool when the body has ended cleanly.

use std::sync::Arc;
use std::task::Context;

use tokio::sync::oneshot;

use crate::upstream::conn::H1;
use crate::upstream::endpoint::Endpoint;

/// An HTTP/1.1 connection lent to one response: the body drives it and
/// returns it to the pool when the body has ended.
pub struct Loan {
    pub(super) endpoint: Arc<Endpoint>,
    /// Boxed: the connection state is large, and it moves from pool to
    /// response body and back on every request.
    pub(super) conn: Box<H1>,
    pub(super) max_idle: usize,
    /// Fires when the request body has been sent whole; `None` when it
    /// already had been (or there was none) when the response came.
    pub(super) upload: Option<oneshot::Receiver<()>>,
}

impl Loan {
    /// Lets the connection read the next part of the response body.
    #[inline]
    pub fn drive(&mut self, cx: &mut Context<'_>) {
        self.conn.drive(cx);
    }

    /// The response body ended cleanly: the connection may serve again.
    /// A connection whose request body is still uploading (the upstream
    /// answered early) is not reused: the next request would wait behind
    /// that upload.
    pub fn release(mut self) {
        if self.conn.conn.is_none() || self.conn.sender.is_closed() {
            return;
        }
        if let Some(rx) = &mut self.upload {
            if rx.try_recv().is_err() {
                return;
            }
        }
        self.endpoint.pool.put(self.conn, self.max_idle);
    }
}
