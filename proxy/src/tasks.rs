//! The process's background tasks, owned in one place.
//!
//! Every long-lived task (the reloader, the DNS refresher, the pool reaper,
//! the admin listener, discovery's watchers and its status writer, the
//! memory watch) is spawned through [`Tasks`] rather than `tokio::spawn`,
//! so that shutdown ends each of them at its next await and waits until
//! they are gone, instead of leaving them to be torn down with the runtime
//! halfway through a write. Connections are not here: the listeners own
//! them and drain them ([`crate::server::Listeners`]).

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Spawns and ends the process's background tasks.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    pub fn new() -> Self {
        Tasks::default()
    }

    /// Runs `task` until it ends, is stopped by the returned handle, or
    /// the tasks are shut down, whichever comes first. `name` says which
    /// task in the log.
    pub fn spawn<F>(&self, name: &'static str, task: F) -> TaskHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (handle, task) = self.stoppable(name, task);
        self.tracker.spawn(task);
        handle
    }

    /// As [`Tasks::spawn`], on the discovery thread
    /// ([`crate::background::discovery`]): discovery's memory belongs in
    /// one arena, off the serving threads.
    pub fn spawn_discovery<F>(&self, name: &'static str, task: F) -> TaskHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (handle, task) = self.stoppable(name, task);
        match crate::background::discovery() {
            Some(thread) => drop(self.tracker.spawn_on(task, thread)),
            None => drop(self.tracker.spawn(task)),
        }
        handle
    }

    /// `task`, ended early by the returned handle or at shutdown.
    fn stoppable<F>(
        &self,
        name: &'static str,
        task: F,
    ) -> (TaskHandle, impl Future<Output = ()> + Send + 'static)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.child_token();
        let handle = TaskHandle(stop.clone());
        let task = async move {
            tokio::select! {
                biased;
                _ = stop.cancelled() => tracing::debug!(task = name, "task stopped"),
                _ = task => {}
            }
        };
        (handle, task)
    }

    /// Tasks still running.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Ends every task and waits up to `limit` for them to be gone; returns
    /// how many were still running then.
    pub async fn shutdown(&self, limit: Duration) -> usize {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(limit, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = self.tracker.len(),
                "background tasks still running after shutdown"
            );
        }
        self.tracker.len()
    }
}

/// Stops one task early (it also stops at shutdown).
#[derive(Debug, Clone)]
pub struct TaskHandle(CancellationToken);

impl TaskHandle {
    /// Ends the task at its next await.
    pub fn stop(&self) {
        self.0.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn shutdown_ends_every_task_and_waits_for_it() {
        let tasks = Tasks::new();
        let dropped = Arc::new(AtomicBool::new(false));
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Flag(dropped.clone());
        tasks.spawn("forever", async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        tasks.spawn("short", async {});
        let one = tasks.spawn("stopped early", std::future::pending());
        one.stop();
        tokio::time::timeout(Duration::from_secs(5), async {
            while tasks.running() > 1 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the stopped task and the short one end; the endless one runs");
        assert_eq!(tasks.shutdown(Duration::from_secs(5)).await, 0);
        assert!(
            dropped.load(Ordering::SeqCst),
            "the endless task was dropped"
        );
        assert_eq!(tasks.running(), 0);
    }

    #[tokio::test]
    async fn discovery_tasks_run_on_their_thread_and_end_at_shutdown() {
        let tasks = Tasks::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = dropped.clone();
        tasks.spawn_discovery("watch", async move {
            // A timer, as the watches' back-off uses: the thread's runtime
            // has one.
            tokio::time::sleep(Duration::from_millis(1)).await;
            let _ = tx.send(std::thread::current().name().map(str::to_owned));
            struct Flag(Arc<AtomicBool>);
            impl Drop for Flag {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let _flag = Flag(flag);
            std::future::pending::<()>().await;
        });
        let thread = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("the task runs")
            .unwrap();
        assert_eq!(thread.as_deref(), Some("sluice-discovery"));
        assert_eq!(tasks.running(), 1);
        assert_eq!(tasks.shutdown(Duration::from_secs(5)).await, 0);
        assert!(dropped.load(Ordering::SeqCst), "the task was ended");
    }
}
