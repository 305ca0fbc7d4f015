//! Config work — parsing a file, translating the cluster, building a
//! routing table — on a thread of its own that yields to traffic.
//!
//! A rebuild of a thousand routes takes tens of milliseconds of CPU. On
//! Tokio's blocking pool it ran at the priority of the threads serving
//! requests: on a busy core the scheduler split the core between them, and
//! every request waiting behind that core paid for the rebuild (p99 ×2–6
//! under one change a second, `cluster-bench churn`). Here it runs at nice
//! [`NICE`]: when the core is busy with traffic the rebuild gets about a
//! tenth of it and takes longer; when the core has room it takes the room.
//! A lower priority is never taken back without a privilege, hence one
//! thread kept for this work alone rather than borrowed blocking threads.
//!
//! The thread runs a current-thread Tokio runtime: the jobs ([`run`]) and
//! discovery's tasks ([`crate::tasks::Tasks::spawn_config`]: the watches,
//! which decode every object the API server sends, and the rebuild loop)
//! all run there, one at a time. A cluster's objects then live in this
//! thread's malloc arena, and so do the tables built from them. Spread
//! over the serving threads' arenas as well, the memory each arena kept
//! after the first list's peak added up: with 1,000 Services and 10,000
//! endpoints the proxy took 44–47 MiB resident with the watches on the
//! serving runtime, and takes 33–35 MiB with them here (`cluster-bench
//! memory`). Jobs run one after the other, which the sources' lock made
//! them do anyway.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Handle;

/// How much lower than the serving threads: nice 10 weighs about a tenth of
/// nice 0 in Linux's scheduler.
pub const NICE: i32 = 10;

/// The job panicked (with `panic = "abort"`, the process ends instead).
#[derive(Debug, thiserror::Error)]
#[error("the config job panicked")]
pub struct Panicked;

/// Runs `work` on the config thread and waits for its result. Where that
/// thread cannot be started, on Tokio's blocking pool.
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Panicked> {
    let Some(config) = handle() else {
        return tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| Panicked);
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The job holds the thread while it runs: the watches there wait, as
    // they should (their events go into the next rebuild anyway).
    config.spawn(async move {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let _ = tx.send(out.map_err(|_| Panicked));
    });
    rx.await.unwrap_or(Err(Panicked))
}

/// The config thread's runtime (a current-thread one, with I/O and timers),
/// started on first use; `None` when it could not be started. Tasks
/// spawned on it — discovery's watches and its rebuild loop — run at the
/// thread's priority, and what they allocate (the watches' JSON, the
/// stores, the tables built) comes from the thread's malloc arena.
pub fn handle() -> Option<&'static Handle> {
    static CONFIG: OnceLock<Option<Handle>> = OnceLock::new();
    CONFIG.get_or_init(start).as_ref()
}

fn start() -> Option<Handle> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let started = std::thread::Builder::new()
        .name("sluice-config".into())
        .spawn(move || {
            lower_priority();
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => {
                    let _ = tx.send(Ok(rt.handle().clone()));
                    // The thread and its runtime last as long as the
                    // process; its tasks are ended by their owners.
                    rt.block_on(std::future::pending::<()>());
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
    let outcome = match started {
        Ok(_) => rx
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the thread ended"))),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the config thread; config work runs on the serving runtime");
            None
        }
    }
}

/// Spawns `task` on the config thread, or where that thread could not be
/// started, on the current runtime.
pub fn spawn<F>(task: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match handle() {
        Some(h) => h.spawn(task),
        None => tokio::spawn(task),
    }
}

/// Lowers this thread's priority to [`NICE`] (on Linux, setpriority on a
/// thread id sets that thread's alone). Where that fails, the work runs at
/// the normal priority, as it did on the blocking pool.
fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), NICE) {
        tracing::debug!(error = %e, "config thread keeps the normal priority");
    }
}

/// This thread's nice value, for tests.
#[cfg(test)]
fn nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_order_at_a_lower_priority() {
        let first = run(|| (std::thread::current().name().map(str::to_owned), nice()))
            .await
            .unwrap();
        assert_eq!(first.0.as_deref(), Some("sluice-config"));
        assert!(first.1 >= NICE, "nice {} on the config thread", first.1);
        // The serving thread keeps its own.
        assert!(nice() < NICE);
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let jobs: Vec<_> = (0..5)
            .map(|i| {
                let order = order.clone();
                run(move || order.lock().unwrap().push(i))
            })
            .collect();
        for j in jobs {
            j.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_thread_goes_on() {
        let r = run(|| -> u8 { panic!("boom") }).await;
        assert!(r.is_err());
        assert_eq!(run(|| 7).await.unwrap(), 7);
    }
}
