//! Running the proxy: bind, serve, drain on SIGTERM or SIGINT; the
//! reloads while it serves are the `reload` module's. Every background task is
//! owned by one [`Tasks`] and ended at shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::admin::{self, AdminState};
use crate::config::{Config, Overrides};
use crate::discovery;
use crate::http::Handler;
use crate::metrics::Metrics;
use crate::routing::Live;
use crate::server::{self, Listeners};
use crate::sources::Sources;
use crate::tasks::Tasks;
use crate::Error;

mod reload;

use reload::{file_source, read_certs, refresh_names, reload_loop, Watched};

fn install(kind: SignalKind, name: &'static str) -> Result<Signal, Error> {
    signal(kind).map_err(|source| Error::Signal {
        signal: name,
        source,
    })
}

/// The config file, and the bytes `config` was parsed from.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// Serves until SIGTERM or SIGINT, then drains. `config_file` is watched
/// and reloaded when given, each new config patched by `overrides`; with
/// `kube`, routes are also discovered from the cluster, and `/readyz` waits
/// for the first complete sync.
pub async fn run(
    config: Config,
    config_file: Option<ConfigFile>,
    kube: Option<discovery::Options>,
    overrides: Overrides,
) -> Result<(), Error> {
    if config.listen.is_empty() {
        return Err(Error::NoListener);
    }
    let mut term = install(SignalKind::terminate(), "SIGTERM")?;
    let mut int = install(SignalKind::interrupt(), "SIGINT")?;
    let hup = install(SignalKind::hangup(), "SIGHUP")?;

    for w in &config.warnings {
        tracing::warn!("config: {w}");
    }
    if !overrides.is_empty() {
        tracing::debug!(%overrides, "command-line settings over the config");
    }
    let metrics = Arc::new(Metrics::new());
    let kube_client = match &kube {
        Some(opts) => Some(discovery::client(opts).await?),
        None => None,
    };
    let certs = read_certs(&config.tls)?;
    let file = file_source(&config, &certs)?;
    let https = !config.listen_tls.is_empty();
    // Backends given by DNS name: resolved before the first table, and a
    // name that does not resolve stops the start.
    let names = crate::resolve::names(config.routes.iter().chain(&config.default_backend));
    let (resolved, failed) = crate::resolve::resolve(&names).await;
    if let Some(((host, port), source)) = failed.into_iter().next() {
        return Err(Error::Dns {
            name: format!("{host}:{port}"),
            source,
        });
    }
    let (sources, table) = Sources::new(file, https, metrics.clone());
    sources.set_resolved(resolved);
    // Every background task, owned here and ended at shutdown.
    let tasks = Tasks::new();
    tasks.spawn("dns refresh", refresh_names(sources.clone()));
    let mut listeners: Vec<server::Listener> = server::bind_all(&config.listen)
        .await?
        .into_iter()
        .map(|tcp| server::Listener { tcp, tls: None })
        .collect();
    if https {
        let live = table.clone();
        let tls = crate::tls::server_config(move |sni| live.load().tls.resolve(sni))
            .map_err(Error::Tls)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        for tcp in server::bind_all(&config.listen_tls).await? {
            listeners.push(server::Listener {
                tcp,
                tls: Some(acceptor.clone()),
            });
        }
    }
    let admin_listener = match config.admin {
        Some(a) => Some(server::bind_all(&[a]).await?.remove(0)),
        None => None,
    };
    let bound = Bound::of(&listeners, admin_listener.as_ref());
    // Before the access log's writer takes stdout for itself.
    bound.print();
    let access_log =
        crate::access_log::AccessLog::start(config.access_log, metrics.access_log_dropped.clone());
    let proxy = Arc::new(
        Handler::new(table.clone(), metrics.clone())
            .with_access_log(access_log)
            .with_max_uri(config.listener.max_uri)
            .with_max_in_flight(config.listener.max_in_flight),
    );
    if let Some(limit) = crate::memory::resolve(config.listener.max_memory) {
        tracing::info!(
            limit,
            "overload guard: new requests get 503 past this resident memory"
        );
        tasks.spawn("memory watch", proxy.watch_memory(limit));
    }
    let tunnels = proxy.tunnels().clone();
    let access_log = proxy.access_log().cloned();
    let running = Listeners::start(listeners, proxy, config.listener.clone());
    let state = Arc::new(AdminState {
        table: table.clone(),
        metrics: metrics.clone(),
        ready: false.into(),
    });
    if let Some(l) = admin_listener {
        tasks.spawn(
            "admin listener",
            admin::serve(l, state.clone(), config.listener.request_header_timeout),
        );
    }
    // The file, and the certificate files it (or the command line)
    // names, are watched.
    let reloader = (config_file.is_some() || config.tls.files().next().is_some()).then(|| {
        tasks.spawn(
            "reload",
            reload_loop(
                Watched {
                    file: config_file,
                    running: Arc::new(config.clone()),
                    certs,
                    overrides,
                },
                sources.clone(),
                metrics.clone(),
                hup,
            ),
        )
    });
    let ready_waiter = match (kube, kube_client) {
        (Some(mut opts), Some(client)) => {
            opts.settings.defaults = config.defaults;
            let mut synced =
                discovery::start(client, opts, sources.clone(), metrics.clone(), &tasks);
            let state = state.clone();
            Some(tasks.spawn("readiness", async move {
                if synced.wait_for(|s| *s).await.is_ok() {
                    state.ready.store(true, Ordering::Relaxed);
                    tracing::info!("first sync with the cluster done: ready");
                }
                // Only a dead rebuild loop turns it back (not an outage).
                while synced.changed().await.is_ok() {
                    state.ready.store(*synced.borrow(), Ordering::Relaxed);
                }
            }))
        }
        _ => {
            state.ready.store(true, Ordering::Relaxed);
            None
        }
    };
    tasks.spawn("idle upstream reaper", reap_idle(table.clone()));
    tracing::info!(
        listen = %crate::logfmt::Addrs(&bound.http),
        listen_tls = %crate::logfmt::Addrs(&bound.https),
        admin = %crate::logfmt::OptAddr(bound.admin),
        routes = config.routes.len(),
        "sluice is serving"
    );

    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = which, drain_timeout = %crate::logfmt::Dur(config.drain_timeout), shutdown_delay = %crate::logfmt::Dur(config.shutdown_delay), "shutting down");
    if let Some(w) = ready_waiter {
        w.stop();
    }
    state.ready.store(false, Ordering::Relaxed);
    if let Some(r) = reloader {
        r.stop();
    }
    if !config.shutdown_delay.is_zero() {
        // Still serving while the LoadBalancer and the Endpoints controller
        // notice /readyz; a second signal skips the wait.
        tokio::select! {
            _ = tokio::time::sleep(config.shutdown_delay) => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    let drain_start = tokio::time::Instant::now();
    let left = running.shutdown(config.drain_timeout).await;
    // WebSockets outlive their HTTP connection: they get what is left of
    // the drain timeout.
    let remaining = config.drain_timeout.saturating_sub(drain_start.elapsed());
    if tunnels.open() > 0 {
        tracing::info!(tunnels = tunnels.open(), "waiting for upgraded connections");
        if !tunnels.wait_closed(remaining).await {
            tracing::warn!(
                tunnels = tunnels.open(),
                "drain timeout passed with upgraded connections still open: closing them"
            );
            tunnels.cut().await;
        }
    }
    if left > 0 {
        tracing::warn!(
            connections = left,
            "drain timeout passed with connections still open"
        );
    }
    // The admin listener, discovery, the reaper and the rest; then the
    // upstream connections that outlived their requests.
    tasks.shutdown(std::time::Duration::from_secs(2)).await;
    crate::upstream::drivers::close_all(std::time::Duration::from_secs(1)).await;
    // The access log's writer batches: the last lines written out.
    if let Some(log) = access_log {
        log.flush(std::time::Duration::from_secs(1)).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The addresses the listeners were bound to: where the config asks for
/// port 0, the ones the kernel picked.
struct Bound {
    http: Vec<SocketAddr>,
    https: Vec<SocketAddr>,
    admin: Option<SocketAddr>,
}

impl Bound {
    fn of(listeners: &[server::Listener], admin: Option<&tokio::net::TcpListener>) -> Bound {
        let addrs = |tls: bool| {
            listeners
                .iter()
                .filter(|l| l.tls.is_some() == tls)
                .filter_map(|l| l.tcp.local_addr().ok())
                .collect()
        };
        Bound {
            http: addrs(false),
            https: addrs(true),
            admin: admin.and_then(|a| a.local_addr().ok()),
        }
    }

    /// One line per listener on stdout, `listening on ADDR (KIND)` with
    /// KIND `http`, `https` or `admin`, in that order and before any
    /// access-log line: how whoever started the process (a test, a
    /// supervisor) learns the ports the kernel picked.
    fn print(&self) {
        use std::io::Write;
        let http = self.http.iter().map(|a| (a, "http"));
        let https = self.https.iter().map(|a| (a, "https"));
        let admin = self.admin.iter().map(|a| (a, "admin"));
        let mut out = std::io::stdout().lock();
        for (addr, kind) in http.chain(https).chain(admin) {
            // A closed stdout is no reason to stop serving.
            let _ = writeln!(out, "listening on {addr} ({kind})");
        }
        let _ = out.flush();
    }
}

/// Closes pooled upstream connections idle longer than their route's
/// `upstream_idle`, so that a quiet proxy does not hold sockets open on
/// every endpoint it ever spoke to.
async fn reap_idle(table: Live) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let snap = table.load_full();
        for route in snap.all_routes() {
            for e in route.upstreams().flat_map(|u| u.endpoints.iter()) {
                e.pool.expire(route.timeouts.upstream_idle);
            }
        }
    }
}
