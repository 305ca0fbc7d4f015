//! What a drain waits on: a count of the things still open (client
//! connections, upgraded tunnels), and a wakeup when it reaches zero.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// How many connections (or tunnels) are open, and a wakeup for a drain
/// waiting for none. Opening and closing touch one atomic; only the close
/// that leaves none wakes anyone.
#[derive(Debug, Default)]
pub struct OpenCount {
    open: AtomicUsize,
    none: Notify,
}

impl OpenCount {
    /// How many are open now.
    pub fn get(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Counts one more open, unless `limit` (when not 0) are already:
    /// then nothing is counted and the answer is false.
    pub fn try_add(&self, limit: usize) -> bool {
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        if limit > 0 && before >= limit {
            // Back to at least `limit`: never the close that leaves none.
            self.open.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Counts one more open.
    pub fn add(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts one closed; the last wakes whoever waits for none.
    pub fn sub(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.none.notify_waiters();
        }
    }

    /// Waits up to `limit` for none to be open; false if some still are
    /// then.
    pub async fn wait_none(&self, limit: Duration) -> bool {
        let waited = tokio::time::timeout(limit, async {
            loop {
                // Registered before the count is read, so that a close in
                // between is not missed.
                let mut notified = std::pin::pin!(self.none.notified());
                notified.as_mut().enable();
                if self.get() == 0 {
                    return;
                }
                notified.await;
            }
        });
        waited.await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::OpenCount;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_limit_refuses_past_it_and_counts_nothing() {
        let c = OpenCount::default();
        assert!(c.try_add(2));
        assert!(c.try_add(2));
        assert!(!c.try_add(2));
        assert_eq!(c.get(), 2);
        assert!(c.try_add(0), "0 is no limit");
        assert_eq!(c.get(), 3);
    }

    #[tokio::test]
    async fn a_wait_ends_when_the_last_closes_or_at_its_limit() {
        let c = Arc::new(OpenCount::default());
        assert!(c.wait_none(Duration::ZERO).await, "none open: done at once");
        c.add();
        c.add();
        assert!(!c.wait_none(Duration::from_millis(20)).await);
        let closer = c.clone();
        let waiter = tokio::spawn(async move { closer.wait_none(Duration::from_secs(60)).await });
        c.sub();
        c.sub();
        assert!(waiter.await.unwrap());
        assert_eq!(c.get(), 0);
    }
}
