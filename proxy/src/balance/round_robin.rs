//! Round-robin: each endpoint in turn, one shared atomic counter.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Picks endpoints 0, 1, …, n-1, 0, 1, … across all workers.
#[derive(Debug)]
pub struct RoundRobin {
    next: AtomicUsize,
    len: usize,
}

impl RoundRobin {
    pub fn new(len: usize) -> Self {
        RoundRobin {
            next: AtomicUsize::new(0),
            len,
        }
    }

    #[inline]
    pub fn pick(&self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        Some(self.next.fetch_add(1, Ordering::Relaxed) % self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_exactly() {
        let rr = RoundRobin::new(3);
        let picks: Vec<_> = (0..9).map(|_| rr.pick().unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn single_endpoint() {
        let rr = RoundRobin::new(1);
        assert!((0..5).all(|_| rr.pick() == Some(0)));
    }
}
