//! Upgraded connections (WebSockets) outlive the HTTP connection they came
//! on: they are owned here, so that a drain can wait for them and end them.

/// The upgraded connections (WebSockets), which outlive the HTTP
/// connection they came on: each runs in a task owned here, so that a
/// drain can wait for them and, past its deadline, end them.
#[derive(Debug, Default)]
pub struct Tunnels {
    tasks: tokio_util::task::TaskTracker,
    cut: tokio_util::sync::CancellationToken,
}

impl Tunnels {
    /// Tunnels open now.
    pub fn open(&self) -> usize {
        self.tasks.len()
    }

    /// Takes no new tunnel and waits until every open one has closed;
    /// false if `limit` passed first.
    pub async fn wait_closed(&self, limit: std::time::Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(limit, self.tasks.wait()).await.is_ok()
    }

    /// Ends the tunnels still open (both sides closed) and waits until
    /// their tasks are gone.
    pub async fn cut(&self) {
        self.tasks.close();
        self.cut.cancel();
        self.tasks.wait().await;
    }

    /// Runs one tunnel until it closes or the tunnels are cut.
    pub(crate) fn spawn(&self, tunnel: impl std::future::Future<Output = ()> + Send + 'static) {
        let cut = self.cut.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = cut.cancelled() => {}
                _ = tunnel => {}
            }
        });
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
