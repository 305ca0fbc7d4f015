//! What tells an HTTP/2 connection it is idle: the streams it has open,
//! and since when it has had none. Each stream holds a [`Busy`] while it
//! lives.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A connection's streams open, and since when it has had none.
pub(super) struct Activity {
    open: AtomicUsize,
    /// When the last stream ended, in milliseconds since `epoch`.
    last_end_ms: AtomicU64,
    epoch: std::time::Instant,
}

impl Activity {
    pub(super) fn new() -> Self {
        Activity {
            open: 0.into(),
            last_end_ms: 0.into(),
            epoch: std::time::Instant::now(),
        }
    }

    /// How long it has had no stream open; `None` while it has one.
    pub(super) fn idle_for(&self) -> Option<Duration> {
        if self.open.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.last_end_ms.load(Ordering::Acquire));
        Some(self.epoch.elapsed().saturating_sub(since))
    }
}

/// The connection is busy: one stream open, until its task ends.
pub(super) struct Busy(Arc<Activity>);

impl Busy {
    pub(super) fn begin(a: &Arc<Activity>) -> Busy {
        a.open.fetch_add(1, Ordering::AcqRel);
        Busy(a.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = self.0.epoch.elapsed().as_millis() as u64;
        self.0.last_end_ms.store(ms, Ordering::Release);
        self.0.open.fetch_sub(1, Ordering::Release);
    }
}
