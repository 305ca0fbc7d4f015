//! The tasks that drive upstream connections on their own (an HTTP/2
//! connection shared by an endpoint's requests, an upgraded connection's
//! handshake). A connection lives as long as its endpoint uses it, past any
//! one request, so no request owns its task: the process does, here, and
//! the shutdown ends them ([`close_all`]) once the drain is over. The set
//! is locked only when a connection opens; its traffic touches nothing
//! shared.

use std::future::Future;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinSet;

static DRIVERS: LazyLock<Mutex<JoinSet<()>>> = LazyLock::new(Mutex::default);

fn drivers() -> MutexGuard<'static, JoinSet<()>> {
    DRIVERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Drives `conn` until it ends or the process closes its connections.
pub(crate) fn spawn(conn: impl Future<Output = ()> + Send + 'static) {
    let mut set = drivers();
    // The connections that ended since the last one opened are reaped here.
    while set.try_join_next().is_some() {}
    set.spawn(conn);
}

/// Closes every upstream connection still driven and waits up to `limit`
/// for their tasks to end. Returns how many were still running then.
pub async fn close_all(limit: Duration) -> usize {
    let mut set = std::mem::take(&mut *drivers());
    set.abort_all();
    let _ = tokio::time::timeout(limit, async { while set.join_next().await.is_some() {} }).await;
    set.len()
}
