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
//! Jobs ([`run`]) run one after the other, which the sources' lock made
//! them do anyway. Discovery's watches and rebuild loop have a thread of
//! their own ([`discovery`]), at the normal priority: the watches decode
//! every object the API server sends, and those objects, kept in the
//! stores, then live in one malloc arena instead of being spread over the
//! serving threads' (where each arena kept what it freed after the first
//! list's peak: 44–47 MiB resident with 1,000 Services, see
//! `docs/BENCHMARKS.md`).

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
    let Some(config) = config() else {
        return tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| Panicked);
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A task that runs the job through: the thread is the config work's
    // alone, so holding it is the point.
    config.spawn(async move {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let _ = tx.send(out.map_err(|_| Panicked));
    });
    rx.await.unwrap_or(Err(Panicked))
}

/// The config thread's runtime (a current-thread one, with I/O and timers),
/// started on first use; `None` when it could not be started. The jobs of
/// [`run`] run on it, at [`NICE`].
fn config() -> Option<&'static Handle> {
    static CONFIG: OnceLock<Option<Handle>> = OnceLock::new();
    CONFIG.get_or_init(|| start("sluice-config", true)).as_ref()
}

/// The discovery thread's runtime: discovery's watches and its rebuild
/// loop ([`crate::tasks::Tasks::spawn_discovery`]), at the normal priority.
/// At nice 10 the watches starved whenever the cores were busy: each
/// event is a handful of wakeups, and a low-priority thread waits a
/// scheduling period for every one (under six busy processes, a relist
/// after 410 Gone took over 10 s). What they allocate, the objects and
/// the stores, stays in this thread's malloc arena, off the serving
/// threads'.
pub fn discovery() -> Option<&'static Handle> {
    static DISCOVERY: OnceLock<Option<Handle>> = OnceLock::new();
    DISCOVERY
        .get_or_init(|| start("sluice-discovery", false))
        .as_ref()
}

/// Starts a thread running a current-thread runtime, at [`NICE`] when
/// `nice`; its handle, or `None` when it could not be started.
fn start(name: &str, nice: bool) -> Option<Handle> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let started = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if nice {
                lower_priority();
            }
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
            tracing::warn!(thread = name, error = %e, "cannot start a background thread; its work runs on the serving runtime");
            None
        }
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
