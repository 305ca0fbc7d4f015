//! A fast-path connection's buffers, and where they go while it is idle.
//!
//! A big ingress holds tens of thousands of keep-alive connections that
//! sit idle between requests. Each one busy needs four buffers (the client's
//! bytes, the request for upstream, the upstream's bytes, the response
//! head), about 13 KiB; idle, it needs none. So a connection that has
//! nothing to read gives its buffers back to a free list of its thread and
//! waits for readiness ([`crate::server::io::ReadReady`]) with no buffer at
//! all, as nginx's keep-alive handler does; when bytes come it takes them
//! again. The four are boxed together, so an idle connection holds one
//! empty pointer for them. Taking and giving back are a move in and out
//! of a thread-local list: no allocation on a busy connection, no lock.

use std::cell::RefCell;

/// The size a buffer starts with, and the most one keeps across a wait:
/// what one large message grew is not held for the next.
const START: usize = 4096;
const KEEP: usize = 16 * 1024;
/// Sets of buffers a thread keeps for connections that wake (16 KiB
/// each, 1 MiB in all): enough for the requests in flight at once on one
/// worker, not a cache of every idle connection's.
const FREE_LIST: usize = 64;

thread_local! {
    // Boxed: a connection holds its buffers as one pointer, and takes and
    // gives back the box whole.
    #[allow(clippy::vec_box)]
    static FREE: RefCell<Vec<Box<Buffers>>> = const { RefCell::new(Vec::new()) };
}

/// Buffers of [`START`] bytes' capacity, empty: from the thread's free
/// list, or new.
fn take() -> Box<Buffers> {
    FREE.with(|f| f.borrow_mut().pop()).unwrap_or_else(|| {
        Box::new(Buffers {
            input: Vec::with_capacity(START),
            pos: 0,
            request: Vec::with_capacity(START),
            upstream: Vec::with_capacity(START),
            response: Vec::with_capacity(START),
        })
    })
}

/// Back to the free list, emptied, unless it is full or a buffer grew
/// past [`KEEP`] (then they are freed).
fn give(mut b: Box<Buffers>) {
    let kept = |v: &Vec<u8>| (START..=KEEP).contains(&v.capacity());
    if ![&b.input, &b.request, &b.upstream, &b.response]
        .into_iter()
        .all(kept)
    {
        return;
    }
    b.input.clear();
    b.pos = 0;
    b.request.clear();
    b.upstream.clear();
    b.response.clear();
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < FREE_LIST {
            f.push(b);
        }
    });
}

/// A connection's buffers, reused by every request on it while it is busy.
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

/// Where a connection keeps its [`Buffers`]: one pointer, empty while it
/// waits with nothing to read.
pub(super) struct Held(Option<Box<Buffers>>);

impl Held {
    /// A new connection's: the buffers are taken when its first bytes come.
    pub fn new() -> Held {
        Held(None)
    }

    /// The buffers, when they are out.
    pub fn get(&mut self) -> Option<&mut Buffers> {
        self.0.as_deref_mut()
    }

    /// Takes buffers for a request from the thread's free list, unless
    /// they are out already.
    pub fn take(&mut self) -> &mut Buffers {
        self.0.get_or_insert_with(take)
    }

    /// Gives the buffers back before an idle wait. Only when no client
    /// byte is pending (`pos` at the end of `input`).
    pub fn give_back(&mut self) {
        if let Some(b) = self.0.take() {
            debug_assert_eq!(b.pos, b.input.len());
            give(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_go_back_and_are_taken_again_without_allocating() {
        let mut h = Held::new();
        assert!(h.get().is_none());
        let b = h.take();
        b.input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        b.pos = b.input.len();
        let first = b.input.as_ptr();
        h.give_back();
        assert!(h.get().is_none());
        let b = h.take();
        // The same allocation, from the free list, empty.
        assert_eq!(b.input.as_ptr(), first);
        assert!(b.input.is_empty() && b.pos == 0);
        assert!([&b.request, &b.upstream, &b.response]
            .iter()
            .all(|v| v.is_empty() && v.capacity() >= START));
    }

    #[test]
    fn a_buffer_that_grew_large_is_freed_not_kept() {
        let mut h = Held::new();
        let b = h.take();
        b.upstream.reserve(1 << 20);
        let big = b.upstream.as_ptr();
        b.pos = b.input.len();
        h.give_back();
        FREE.with(|f| {
            assert!(f
                .borrow()
                .iter()
                .all(|b| b.upstream.as_ptr() != big && b.upstream.capacity() <= KEEP))
        });
    }
}
