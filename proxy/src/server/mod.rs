//! Client-facing listeners: accept, serve HTTP/1.1 and HTTP/2 (h2c with
//! prior knowledge) on the same port, or HTTPS with HTTP/2 and HTTP/1.1
//! by ALPN, and drain gracefully on shutdown.
//!
//! A connection goes: accepted and counted (`accept`), its PROXY header
//! read when the listener expects one, TLS (on an HTTPS listener), then
//! dispatched (`dispatch`) to the HTTP/1.1 fast path, hyper (`h1`) or `h2`
//! ([`h2`]). [`io`] holds the adapters every path reads through, and
//! `idle` what tells an HTTP/2 connection it is idle. On an HTTPS
//! listener, `passthrough` splices the connections whose SNI names a host
//! that asks for TLS passthrough, before any handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::config::ListenerSettings;
use crate::http::{fast, Client, Handler};
use crate::Error;

mod accept;
mod dispatch;
mod h1;
pub mod h2;
mod idle;
pub mod io;
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
    /// `limits.max_connections` count is the process's.
    open: Arc<std::sync::atomic::AtomicUsize>,
    /// Notified when the listeners stop, after `stop` turns true: what
    /// wakes an idle fast-path connection (a watch's `changed()` future
    /// is twice the size, and every idle connection holds one).
    stopping: tokio::sync::Notify,
}

/// One accepted connection: everything that serves it, in one value.
///
/// Every idle keep-alive connection holds one, so it is kept small: what
/// is the same for a listener's connections is behind an `Arc`.
struct Connection {
    /// The client's address: the peer's, or the one a PROXY header gave.
    client: SocketAddr,
    shared: Counted,
    /// Held until the connection ends, so that a drain waits for it.
    watcher: hyper_util::server::graceful::Watcher,
    stop: watch::Receiver<bool>,
    fast: Arc<fast::FastSettings>,
}

/// The listeners' [`Shared`] state, as a connection holds it: the
/// connection counts against `limits.max_connections` (and in the
/// connections gauge) until this is dropped, with the connection.
struct Counted(Arc<Shared>);

impl Counted {
    /// Counts a connection the caller has already added to `shared.open`.
    fn new(shared: Arc<Shared>) -> Self {
        shared.handler.metrics().client_connections.inc();
        Counted(shared)
    }
}

impl std::ops::Deref for Counted {
    type Target = Arc<Shared>;

    fn deref(&self) -> &Arc<Shared> {
        &self.0
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.0.handler.metrics().client_connections.dec();
    }
}

impl Connection {
    /// What the proxy knows of the client.
    fn info(&self) -> Client {
        let mut c = Client::new(self.client, self.fast.proto);
        c.forwarders = self.fast.forwarders.clone();
        c.client_header = self.fast.client_header.clone();
        c.forwarding = self.fast.forwarding;
        c
    }
}

/// How the listeners' connections are told to drain.
#[derive(Clone)]
struct Drain {
    /// Tells hyper's connections to finish; a drain waits for its watchers.
    graceful: Arc<GracefulShutdown>,
    stop: watch::Receiver<bool>,
}

/// The running client listeners.
pub struct Listeners {
    stop: watch::Sender<bool>,
    /// The accept loops; each hands back its open connections' tasks.
    tasks: Vec<JoinHandle<JoinSet<()>>>,
    graceful: Arc<GracefulShutdown>,
    shared: Arc<Shared>,
}

impl Listeners {
    /// Starts an accept loop per listener.
    pub fn start(
        listeners: Vec<Listener>,
        handler: Arc<Handler>,
        settings: ListenerSettings,
    ) -> Self {
        let shared = Arc::new(Shared {
            handler,
            hyper: h1::builder(&settings),
            settings,
            open: Arc::default(),
            stopping: tokio::sync::Notify::new(),
        });
        let graceful = Arc::new(GracefulShutdown::new());
        let (stop, _) = watch::channel(false);
        let tasks = listeners
            .into_iter()
            .map(|l| {
                let drain = Drain {
                    graceful: graceful.clone(),
                    stop: stop.subscribe(),
                };
                tokio::spawn(accept::accept_loop(l, shared.clone(), drain))
            })
            .collect();
        Listeners {
            stop,
            tasks,
            graceful,
            shared,
        }
    }

    /// Stops accepting, asks every connection to finish (idle keep-alives
    /// close at once, HTTP/2 gets GOAWAY) and waits for them up to `drain`.
    /// Those still open then are closed. Returns how many were still open
    /// when time ran out.
    pub async fn shutdown(self, drain: Duration) -> usize {
        let _ = self.stop.send(true);
        self.shared.stopping.notify_waiters();
        let mut conns = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            if let Ok(set) = t.await {
                conns.push(set);
            }
        }
        let graceful = match Arc::try_unwrap(self.graceful) {
            Ok(g) => g,
            Err(_) => return 0,
        };
        let open = graceful.count();
        tracing::info!(connections = open, "draining client connections");
        let left = match tokio::time::timeout(drain, graceful.shutdown()).await {
            Ok(()) => 0,
            Err(_) => open.max(1),
        };
        // Past the drain: what is left is closed, and its tasks waited for.
        for mut set in conns {
            set.shutdown().await;
        }
        left
    }
}

/// Resolves once the listeners are told to stop.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which is a stop too.
    let _ = stop.wait_for(|stopping| *stopping).await;
}
