//! Accepting client connections: the `limits.max_connections` count, the
//! PROXY protocol header that names the client, and a task per connection,
//! owned by the listeners.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::http::fast;

use super::dispatch::serve_stream;
use super::io::{Prefixed, SendDeadline};
use super::{Connection, Counted, Drain, Listener, Shared};

/// Accepts connections on one listener until the listeners stop, and
/// hands back the tasks of the connections still open, for the drain to
/// wait on and, past its deadline, to end. A task is reaped as its
/// connection ends: nothing is added to a request's path.
pub(super) async fn accept_loop(
    listener: Listener,
    shared: Arc<Shared>,
    drain: Drain,
) -> JoinSet<()> {
    let Drain { graceful, mut stop } = drain;
    let mut conns = JoinSet::new();
    let Listener { tcp: listener, tls } = listener;
    let local = listener.local_addr().ok();
    let settings = &shared.settings;
    let fast = Arc::new(fast::FastSettings {
        header_timeout: settings.request_header_timeout,
        proto: if tls.is_some() { "https" } else { "http" },
        forwarders: settings.trust_forwarded_for.clone(),
        client_header: settings.forwarded_for_header.clone(),
        forwarding: settings.forwarding,
    });
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly
                    // rather than spin.
                    tracing::warn!(listener = %crate::logfmt::OptAddr(local), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        // limits.max_connections: past it the newcomer is closed at once
        // (nginx's worker_connections, HAProxy's maxconn), and those open
        // keep being served. Memory then has a ceiling whatever a flood
        // opens; the admin listener is apart and keeps answering.
        let metrics = shared.handler.metrics();
        let open = &shared.open;
        let limit = settings.max_connections;
        if limit > 0 && open.fetch_add(1, Ordering::Relaxed) >= limit {
            open.fetch_sub(1, Ordering::Relaxed);
            metrics
                .connections_refused
                .with_label_values(&["max_connections"])
                .inc();
            drop(stream);
            continue;
        }
        if limit == 0 {
            open.fetch_add(1, Ordering::Relaxed);
        }
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            client: peer,
            shared: Counted::new(shared.clone()),
            // Taken now, so that a drain waits for this connection
            // whichever path serves it.
            watcher: graceful.watcher(),
            stop: stop.clone(),
            fast: fast.clone(),
        };
        let io = SendDeadline::new(Prefixed::new(Vec::new(), stream), settings.send_timeout);
        // The future is built here, not in an async block: a block would
        // hold `io` and `conn` a second time beside the future it awaits.
        conns.spawn(serve_stream(io, tls.clone(), conn));
    }
    tracing::debug!(listener = %crate::logfmt::OptAddr(local), "stopped accepting");
    conns
}
