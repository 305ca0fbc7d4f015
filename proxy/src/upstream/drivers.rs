//! The tasks that drive upstream connections on their own (an HTTP/2
//! connection shared by an endpoint's requests, an upgraded connection's
//! handshake). A connection lives as long as its endpoint uses it, past any
//! one request, so no request owns its task: the process does, here, and
//! the shutdown ends them ([`close_all`]) once the drain is over.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Drivers {
    tasks: TaskTracker,
    stop: CancellationToken,
}

static DRIVERS: LazyLock<Drivers> = LazyLock::new(|| Drivers {
    tasks: TaskTracker::new(),
    stop: CancellationToken::new(),
});

/// Drives `conn` until it ends or the process closes its connections.
pub(crate) fn spawn(conn: impl Future<Output = ()> + Send + 'static) {
    let stop = DRIVERS.stop.clone();
    DRIVERS.tasks.spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = conn => {}
        }
    });
}

/// Connections driven now.
pub fn running() -> usize {
    DRIVERS.tasks.len()
}

/// Closes every upstream connection still driven and waits up to `limit`
/// for their tasks to end. Returns how many were still running then.
pub async fn close_all(limit: Duration) -> usize {
    DRIVERS.stop.cancel();
    DRIVERS.tasks.close();
    let _ = tokio::time::timeout(limit, DRIVERS.tasks.wait()).await;
    DRIVERS.tasks.len()
}
