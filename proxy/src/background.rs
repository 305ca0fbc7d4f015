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
//! One thread also keeps the rebuilds' transient memory in one malloc arena
//! instead of spreading it over every blocking thread that happened to run
//! one, and it runs the jobs one after the other, which the sources' lock
//! made them do anyway.

use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;

/// How much lower than the serving threads: nice 10 weighs about a tenth of
/// nice 0 in Linux's scheduler.
pub const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// The job panicked (with `panic = "abort"`, the process ends instead).
#[derive(Debug, thiserror::Error)]
#[error("the config job panicked")]
pub struct Panicked;

/// Runs `work` on the config thread and waits for its result. Where that
/// thread cannot be started, on Tokio's blocking pool.
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Panicked> {
    let Some(queue) = queue() else {
        return tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| Panicked);
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let _ = tx.send(out.map_err(|_| Panicked));
    });
    // The thread never ends while the process runs: a send cannot fail,
    // and a dropped answer means the job did not finish.
    let _ = queue.send(job);
    rx.await.unwrap_or(Err(Panicked))
}

/// The config thread's queue, started on first use; `None` when the
/// thread could not be started.
fn queue() -> Option<&'static Sender<Job>> {
    static QUEUE: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = channel::<Job>();
            let started = std::thread::Builder::new()
                .name("sluice-config".into())
                .spawn(move || {
                    lower_priority();
                    for job in rx {
                        job();
                    }
                });
            match started {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the config thread; config work runs on the blocking pool");
                    None
                }
            }
        })
        .as_ref()
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
