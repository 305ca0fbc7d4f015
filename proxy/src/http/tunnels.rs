//! Upgraded connections (WebSockets) outlive the HTTP connection they came
//! on: they are owned here, so that a drain can wait for them and end them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;

use crate::drain::OpenCount;

/// The upgraded connections (WebSockets), which outlive the HTTP
/// connection they came on: each runs in a task owned here, so that a
/// drain can wait for them and, past its deadline, end them. A tunnel's
/// bytes never touch anything shared: the set is locked only when a tunnel
/// opens, and the count changes only when one opens or closes.
#[derive(Debug, Default)]
pub struct Tunnels {
    tasks: Mutex<JoinSet<()>>,
    count: Arc<OpenCount>,
}

/// Held by a tunnel's task: counts it open until dropped (it ends, or is
/// aborted).
struct Open(Arc<OpenCount>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.sub();
    }
}

impl Tunnels {
    /// Tunnels open now.
    pub fn open(&self) -> usize {
        self.count.get()
    }

    /// Waits until every open tunnel has closed; false if `limit` passed
    /// first.
    pub async fn wait_closed(&self, limit: Duration) -> bool {
        self.count.wait_none(limit).await
    }

    /// Ends the tunnels still open (both sides closed) and waits until
    /// their tasks are gone.
    pub async fn cut(&self) {
        let mut tasks = std::mem::take(&mut *self.lock());
        tasks.shutdown().await;
    }

    /// Runs one tunnel until it closes or the tunnels are cut.
    pub(crate) fn spawn(&self, tunnel: impl std::future::Future<Output = ()> + Send + 'static) {
        self.count.add();
        let open = Open(self.count.clone());
        let mut tasks = self.lock();
        // The tunnels that ended since the last one opened are reaped here.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let _open = open;
            tunnel.await;
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::Tunnels;

    /// A drain waits for tunnels; past its deadline they are cut, and
    /// their tasks are gone when `cut` returns.
    #[tokio::test]
    async fn tunnels_are_waited_for_then_cut() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let t = Tunnels::default();
        let ended = Arc::new(AtomicBool::new(false));
        let flag = Flag(ended.clone());
        t.spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        t.spawn(async {});
        let short = std::time::Duration::from_millis(50);
        assert!(!t.wait_closed(short).await, "one tunnel stays open");
        assert_eq!(t.open(), 1);
        t.cut().await;
        assert_eq!(t.open(), 0);
        assert!(ended.load(Ordering::SeqCst));
    }
}
