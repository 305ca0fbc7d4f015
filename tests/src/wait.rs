//! Waiting on a condition with a deadline: how a test orders events it
//! does not control (a process starting, a reload taking effect, a
//! connection closing) without guessing how long they take.

use std::future::Future;
use std::time::{Duration, Instant};

/// Waits until `check` is true, polling every 20 ms, or panics after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
