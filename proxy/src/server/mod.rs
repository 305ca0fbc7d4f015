//! Client-facing listeners: accept, serve HTTP/1.1 and HTTP/2 (h2c with
//! prior knowledge) on the same port, or HTTPS with HTTP/2 and HTTP/1.1
//! by ALPN, and drain gracefully on shutdown.
//!
//! A connection goes: accepted and counted (`accept`), its PROXY header
//! read when the listener expects one, TLS (on an HTTPS listener), then
//! dispatched (`dispatch`) to the HTTP/1.1 fast path, hyper (`h1`) or `h2`
//! ([`h2`]). [`io`] holds the adapters every path reads through, and
//! `idle` what tells an HTTP/2 connection it is idle; `park` is where an
//! idle plain keep-alive connection waits without a task. On an HTTPS
//! listener, `passthrough` splices the connections whose SNI names a host
//! that asks for TLS passthrough, before any handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};
use tokio_rustls::TlsAcceptor;

use crate::config::ListenerSettings;
use crate::http::{fast, Client, Handler};
use crate::Error;

mod accept;
pub(crate) mod clock;
mod dispatch;
mod h1;
pub mod h2;
mod http2;
mod idle;
pub mod io;
mod park;
mod passthrough;

/// Binds every address, or names the one that failed.
pub async fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, Error> {
    let mut out = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        out.push(l);
    }
    Ok(out)
}

/// A bound client listener; with `tls`, it serves HTTPS.
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

/// What every accept loop and every connection of the listeners shares.
struct Shared {
    handler: Arc<Handler>,
    /// HTTP/1.1 for connections the fast path hands over (they are HTTP/1
    /// for sure, and a plain HTTP/1 connection serves the request it was
    /// handed even when a drain has begun), or all of it when the fast path
    /// is off. HTTP/2 is `h2`'s.
    hyper: http1::Builder,
    settings: ListenerSettings,
    /// Client connections open on every traffic listener: the
    /// `limits.max_connections` count is the process's, and a drain waits
    /// for it to reach 0.
    open: crate::drain::OpenCount,
    /// What ends each open connection's task when a drain runs out of
    /// time: a slot per connection (16 bytes), freed by the connection as
    /// it ends. Empty while the connection is parked: a handle keeps its
    /// task's memory (512 bytes) allocated after the task has ended.
    tasks: std::sync::Mutex<slab::Slab<Option<AbortHandle>>>,
    /// Turns true when the listeners stop: what hyper's and h2's
    /// connections watch to drain.
    stop: watch::Sender<bool>,
    /// The fast path's deadlines and its drain's wakeup: one small wait
    /// per idle connection, where a timer and a watch would be three
    /// times the size.
    clock: Arc<clock::Clock>,
    /// Where idle plain keep-alive connections wait without a task.
    lot: park::Lot,
}

impl Shared {
    /// Nothing open, nothing parked, the clock not yet rung.
    fn new(handler: Arc<Handler>, settings: ListenerSettings) -> Self {
        Shared {
            handler,
            hyper: h1::builder(&settings),
            settings,
            open: Default::default(),
            tasks: Default::default(),
            stop: watch::channel(false).0,
            clock: Arc::new(clock::Clock::new()),
            lot: Default::default(),
        }
    }
}

/// One accepted connection: everything that serves it, in one value.
///
/// Every idle keep-alive connection holds one, so it is kept small: what
/// is the same for a listener's connections is behind an `Arc`.
struct Connection {
    /// The client's address: the peer's, or the one a PROXY header gave.
    client: SocketAddr,
    /// Held until the connection ends: it counts the connection, and a
    /// drain waits for it.
    shared: Counted,
    fast: Arc<fast::FastSettings>,
}

/// The listeners' [`Shared`] state, as a connection holds it: the
/// connection counts against `limits.max_connections`, in the connections
/// gauge and for the drain, and its task's slot in `Shared::tasks` is
/// held, until this is dropped, with the connection.
struct Counted {
    shared: Arc<Shared>,
    /// Its slot in `Shared::tasks`.
    task: usize,
}

impl Counted {
    /// Counts a connection the caller has already added to `shared.open`,
    /// whose task will take slot `task` (when it has one).
    fn new(shared: Arc<Shared>, task: usize) -> Self {
        shared.handler.metrics().client_connections.inc();
        Counted { shared, task }
    }
}

impl std::ops::Deref for Counted {
    type Target = Arc<Shared>;

    fn deref(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let s = &self.shared;
        // A drain that ran out of time has taken the slots already.
        lock(&s.tasks).try_remove(self.task);
        s.handler.metrics().client_connections.dec();
        s.open.sub();
    }
}

impl Connection {
    /// What tells hyper's and h2's connections to drain.
    fn stop(&self) -> watch::Receiver<bool> {
        self.shared.stop.subscribe()
    }

    /// What the proxy knows of the client.
    fn info(&self) -> Client {
        let mut c = Client::new(self.client, self.fast.proto);
        c.forwarders = self.fast.forwarders.clone();
        c.client_header = self.fast.client_header.clone();
        c.forwarding = self.fast.forwarding;
        c
    }
}

/// The running client listeners.
pub struct Listeners {
    /// The accept loops.
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Listeners {
    /// Starts an accept loop per listener.
    pub fn start(
        listeners: Vec<Listener>,
        handler: Arc<Handler>,
        settings: ListenerSettings,
    ) -> Self {
        let shared = Arc::new(Shared::new(handler, settings));
        // Rings until the last connection has let the clock go.
        tokio::spawn(clock::Clock::run(Arc::downgrade(&shared.clock)));
        let tasks = listeners
            .into_iter()
            .map(|l| tokio::spawn(accept::accept_loop(l, shared.clone())))
            .collect();
        Listeners { tasks, shared }
    }

    /// Stops accepting, asks every connection to finish (idle keep-alives
    /// close at once, HTTP/2 gets GOAWAY) and waits for them up to `drain`.
    /// Those still open then are closed. Returns how many were still open
    /// when time ran out.
    pub async fn shutdown(self, drain: Duration) -> usize {
        let shared = &self.shared;
        let _ = shared.stop.send(true);
        shared.clock.stop();
        for t in self.tasks {
            let _ = t.await;
        }
        tracing::info!(
            connections = shared.open.get(),
            "draining client connections"
        );
        if shared.open.wait_none(drain).await {
            return 0;
        }
        let left = shared.open.get();
        // Past the drain: what is left is closed, and its tasks waited for
        // (briefly: a task ends at its next poll).
        let tasks = std::mem::take(&mut *lock(&shared.tasks));
        for task in tasks.into_iter().filter_map(|(_, t)| t) {
            task.abort();
        }
        shared.open.wait_none(Duration::from_secs(1)).await;
        left.max(1)
    }
}

/// Locks `m`, poisoned or not: what the listeners keep under their locks
/// (task slots, the lot's inbox) stays whole if a holder panics.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The listeners' shared state with the default listener settings, an
/// empty routing table and nothing started: for the unit tests of the
/// modules that serve a connection.
#[cfg(test)]
fn shared_for_tests() -> Arc<Shared> {
    let table = Arc::new(arc_swap::ArcSwap::from_pointee(
        crate::routing::Snapshot::default(),
    ));
    let handler = Arc::new(Handler::new(
        table,
        Arc::new(crate::metrics::Metrics::new()),
    ));
    Arc::new(Shared::new(
        handler,
        crate::config::DEFAULT_LISTENER.clone(),
    ))
}

/// A plain listener's fast-path settings for the unit tests, with this
/// header timeout; idle connections park after [`park::PARK_AFTER`].
#[cfg(test)]
fn fast_for_tests(shared: &Shared, header_timeout: Duration) -> Arc<fast::FastSettings> {
    Arc::new(fast::FastSettings {
        header_timeout,
        proto: "http",
        forwarders: None,
        client_header: http::HeaderName::from_static("x-forwarded-for"),
        forwarding: shared.settings.forwarding,
        park_after: Some(park::PARK_AFTER),
    })
}

/// Resolves once the listeners are told to stop.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which is a stop too.
    let _ = stop.wait_for(|stopping| *stopping).await;
}
