//! Accepting client connections: the `limits.max_connections` count, the
//! PROXY protocol header that names the client, and a task per connection,
//! owned by the listeners.

use std::sync::Arc;
use std::time::Duration;

use crate::http::fast;

use super::dispatch::serve_stream;
use super::io::{Prefixed, SendDeadline};
use super::{Connection, Counted, Listener, Shared};

/// Accepts connections on one listener until the listeners stop. Each
/// connection's task counts itself and holds its slot for the drain
/// ([`Counted`]) until it ends: the accept loop keeps nothing of it.
pub(super) async fn accept_loop(listener: Listener, shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let Listener { tcp: listener, tls } = listener;
    let local = listener.local_addr().ok();
    let settings = &shared.settings;
    let fast = Arc::new(fast::FastSettings {
        header_timeout: settings.request_header_timeout,
        proto: if tls.is_some() { "https" } else { "http" },
        forwarders: settings.trust_forwarded_for.clone(),
        client_header: settings.forwarded_for_header.clone(),
        forwarding: settings.forwarding,
        // Plain connections park when idle; a TLS connection's rustls
        // state is not given up (it may hold bytes the socket will not
        // announce).
        park_after: tls.is_none().then_some(super::park::PARK_AFTER),
    });
    loop {
        let (stream, peer) = tokio::select! {
            () = super::stopped(&mut stop) => break,
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
        if !shared.open.try_add(settings.max_connections) {
            metrics
                .connections_refused
                .with_label_values(&["max_connections"])
                .inc();
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let io = SendDeadline::new(Prefixed::new(Vec::new(), stream), settings.send_timeout);
        // The slot is taken and filled under one lock: the task, should it
        // end at once, frees it only after.
        let mut tasks = super::lock(&shared.tasks);
        let slot = tasks.vacant_entry();
        let conn = Connection {
            client: peer,
            // Counted now, so that a drain waits for this connection
            // whichever path serves it.
            shared: Counted::new(shared.clone(), slot.key()),
            fast: fast.clone(),
        };
        // The future is built here, not in an async block: a block would
        // hold `io` and `conn` a second time beside the future it awaits.
        slot.insert(Some(
            tokio::spawn(serve_stream(io, tls.clone(), conn)).abort_handle(),
        ));
    }
    tracing::debug!(listener = %crate::logfmt::OptAddr(local), "stopped accepting");
}
