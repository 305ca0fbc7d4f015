//! A fast-path connection's buffers, and where they go while it is idle.
//!
//! A big ingress holds tens of thousands of keep-alive connections that
//! sit idle between requests. Each one busy needs four buffers (the client's
//! bytes, the request for upstream, the upstream's bytes, the response
//! head), about 13 KiB; idle, it needs none. So a connection that has
//! nothing to read gives its buffers back to a free list of its thread and
//! waits for readiness ([`crate::server::io::ReadReady`]) with no buffer at
//! all, as nginx's keep-alive handler does; when bytes come it takes them
//! again. Taking and giving back are a move in and out of a thread-local
//! list: no allocation on a busy connection, no lock.

use std::cell::RefCell;

/// The size a buffer starts with, and the most one keeps across a wait:
/// what one large message grew is not held for the next.
const START: usize = 4096;
const KEEP: usize = 16 * 1024;
/// Buffers a thread keeps for connections that wake: enough for the
/// requests in flight at once on one worker, not a cache of every idle
/// connection's.
const FREE_LIST: usize = 256;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer of at least [`START`] bytes' capacity.
fn take() -> Vec<u8> {
    FREE.with(|f| f.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(START))
}

/// Back to the free list, unless it is full or the buffer grew past
/// [`KEEP`] (then it is freed).
fn give(mut v: Vec<u8>) {
    if v.capacity() < START || v.capacity() > KEEP {
        return;
    }
    v.clear();
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < FREE_LIST {
            f.push(v);
        }
    });
}

/// Per-connection buffers, reused by every request on it while it is busy.
pub(super) struct Buffers {
    /// Bytes from the client; requests start at `pos`.
    pub input: Vec<u8>,
    pub pos: usize,
    /// The request (head and body) to send upstream.
    pub request: Vec<u8>,
    /// Bytes from the upstream.
    pub upstream: Vec<u8>,
    /// The response head (and first body bytes) for the client.
    pub response: Vec<u8>,
}

impl Buffers {
    /// A new connection's: taken when its first bytes come.
    pub fn new() -> Buffers {
        Buffers {
            input: Vec::new(),
            pos: 0,
            request: Vec::new(),
            upstream: Vec::new(),
            response: Vec::new(),
        }
    }

    #[cfg(test)]
    /// Whether the buffers are out (between [`Buffers::take`] and
    /// [`Buffers::give_back`]).
    pub fn held(&self) -> bool {
        self.input.capacity() > 0
    }

    /// Takes buffers for a request, from the thread's free list.
    pub fn take(&mut self) {
        for v in [
            &mut self.input,
            &mut self.request,
            &mut self.upstream,
            &mut self.response,
        ] {
            if v.capacity() == 0 {
                *v = take();
            }
        }
    }

    /// Gives every buffer back before an idle wait. Only when no client
    /// byte is pending (`pos` at the end of `input`).
    pub fn give_back(&mut self) {
        debug_assert_eq!(self.pos, self.input.len());
        self.pos = 0;
        for v in [
            &mut self.input,
            &mut self.request,
            &mut self.upstream,
            &mut self.response,
        ] {
            give(std::mem::take(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_go_back_and_are_taken_again_without_allocating() {
        let mut b = Buffers::new();
        assert!(!b.held());
        b.take();
        assert!(b.held());
        b.input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        b.pos = b.input.len();
        let first = b.input.as_ptr();
        b.give_back();
        assert!(!b.held());
        assert_eq!((b.input.capacity(), b.upstream.capacity()), (0, 0));
        b.take();
        // The same allocations, from the free list, empty.
        let again = [
            b.input.as_ptr(),
            b.request.as_ptr(),
            b.upstream.as_ptr(),
            b.response.as_ptr(),
        ];
        assert!(again.contains(&first));
        assert!(b.input.is_empty() && b.pos == 0);
    }

    #[test]
    fn a_buffer_that_grew_large_is_freed_not_kept() {
        let mut b = Buffers::new();
        b.take();
        b.upstream.reserve(1 << 20);
        let big = b.upstream.as_ptr();
        b.pos = b.input.len();
        b.give_back();
        FREE.with(|f| {
            assert!(f
                .borrow()
                .iter()
                .all(|v| v.as_ptr() != big && v.capacity() <= KEEP))
        });
    }
}
