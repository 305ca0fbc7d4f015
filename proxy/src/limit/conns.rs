//! Requests in progress per client address, as nginx's `limit_conn`
//! counts them (from the request's start to its end, so HTTP/2 streams
//! count one by one), in a table of fixed size that no request waits on.
//!
//! A client's address hashes to a set of [`WAYS`] slots, each one
//! `AtomicU64` holding a 32-bit tag of the hash and a 32-bit count. A slot
//! whose count is 0 is free; a slot in use is never taken over, so a guard
//! gives its request back by slot alone. When a client's set is all in use
//! the request is refused, as nginx refuses when its zone is full.

use std::sync::atomic::{AtomicU64, Ordering};

/// Slots per set.
const WAYS: usize = 8;
/// Slots per table: 64 KiB.
const SLOTS: usize = 8_192;
const SETS: usize = SLOTS / WAYS;
const COUNT_MASK: u64 = u32::MAX as u64;

/// One route zone's counts.
#[derive(Debug)]
pub struct ConnTable {
    slots: Box<[AtomicU64]>,
    limit: u32,
}

impl ConnTable {
    pub fn new(limit: u32) -> ConnTable {
        ConnTable {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            limit,
        }
    }

    /// Counts one more request for the client whose address hashes to
    /// `hash`: the slot to give it back to, or `None` when the client is
    /// at its limit (or its set is full).
    pub fn acquire(&self, hash: u64) -> Option<usize> {
        let tag = (hash >> 32).max(1);
        let set = (hash as usize % SETS) * WAYS;
        let ways = &self.slots[set..set + WAYS];
        loop {
            let mut free = None;
            let mut mine = None;
            for (i, s) in ways.iter().enumerate() {
                let v = s.load(Ordering::Acquire);
                if v & COUNT_MASK == 0 {
                    free = free.or(Some((i, v)));
                } else if v >> 32 == tag {
                    mine = Some((i, v));
                    break;
                }
            }
            let (i, v, next) = match (mine, free) {
                (Some((_, v)), _) if v & COUNT_MASK >= u64::from(self.limit) => return None,
                (Some((i, v)), _) => (i, v, v + 1),
                (None, Some((i, v))) => (i, v, tag << 32 | 1),
                (None, None) => return None,
            };
            if ways[i]
                .compare_exchange(v, next, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Some(set + i);
            }
        }
    }

    /// Gives back a request counted with [`ConnTable::acquire`].
    pub fn release(&self, slot: usize) {
        if let Some(s) = self.slots.get(slot) {
            s.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_has_its_limit_and_gets_it_back() {
        let t = ConnTable::new(2);
        let a = t.acquire(77).unwrap();
        let b = t.acquire(77).unwrap();
        assert_eq!(a, b);
        assert!(t.acquire(77).is_none());
        // Another client is counted apart.
        assert!(t.acquire(78).is_some());
        t.release(a);
        assert!(t.acquire(77).is_some());
    }

    #[test]
    fn a_free_slot_is_reused_and_a_full_set_refuses() {
        let t = ConnTable::new(1);
        let hash = |k: u64| (k << 32) | 5;
        let slots: Vec<usize> = (1..=WAYS as u64)
            .map(|k| t.acquire(hash(k)).unwrap())
            .collect();
        assert!(t.acquire(hash(100)).is_none(), "the set is full");
        t.release(slots[3]);
        assert!(t.acquire(hash(100)).is_some());
    }
}
