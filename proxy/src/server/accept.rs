//! Accepting client connections: the `limits.max_connections` count, the
//! PROXY protocol header that names the client, and a task per connection,
//! owned by the listeners.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::http::fast;
use crate::proxy_protocol;

use super::dispatch::serve_stream;
use super::Connection;
use super::{Drain, Listener, Shared};

/// One client connection counted against `limits.max_connections`, for
/// as long as its task lives.
struct OpenConnection {
    open: Arc<std::sync::atomic::AtomicUsize>,
    gauge: prometheus::IntGauge,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
    }
}

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
    let fast = fast::FastSettings {
        header_timeout: settings.request_header_timeout,
        proto: if tls.is_some() { "https" } else { "http" },
        forwarders: settings.trust_forwarded_for.clone(),
        client_header: settings.forwarded_for_header.clone(),
        forwarding: settings.forwarding,
    };
    loop {
        let (mut stream, peer) = tokio::select! {
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
        let held = OpenConnection {
            open: open.clone(),
            gauge: metrics.client_connections.clone(),
        };
        held.gauge.inc();
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        // Taken now, so that a drain waits for this connection whichever
        // path serves it.
        let watcher = graceful.watcher();
        let stop = stop.clone();
        let fast = fast.clone();
        let tls = tls.clone();
        let serve = async move {
            let _held = held;
            let mut conn = Connection {
                client: peer,
                shared,
                watcher,
                stop,
                fast,
            };
            let settings = &conn.shared.settings;
            // Both cases serve a `Prefixed` stream (empty here): one
            // instantiation of `serve_stream` in this task. With two, the
            // task held both states side by side, 5,816 bytes against
            // 2,288, for every connection, idle or not.
            let Some(pp) = settings.proxy_protocol.clone() else {
                serve_stream(super::io::Prefixed::new(Vec::new(), stream), tls, conn).await;
                return;
            };
            // The LoadBalancer's header first: it names the client.
            let header = tokio::time::timeout(
                settings.request_header_timeout,
                // Boxed, as every state a connection passes through once.
                Box::pin(proxy_protocol::read(&mut stream, peer, &pp)),
            )
            .await;
            let (client, rest) = match header {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer, error = %e, "connection closed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "connection closed: no PROXY header in time");
                    return;
                }
            };
            conn.client = client;
            serve_stream(super::io::Prefixed::new(rest, stream), tls, conn).await;
        };
        conns.spawn(serve);
    }
    tracing::debug!(listener = %crate::logfmt::OptAddr(local), "stopped accepting");
    conns
}
