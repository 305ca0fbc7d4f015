//! Running the proxy: bind, serve, reload on change or SIGHUP, drain on
//! SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::admin::{self, AdminState};
use crate::config::{self, Config};
use crate::discovery;
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::publish::Publisher;
use crate::routing::Table;
use crate::server::{self, Listeners};
use crate::Error;

fn install(kind: SignalKind, name: &'static str) -> Result<Signal, Error> {
    signal(kind).map_err(|source| Error::Signal {
        signal: name,
        source,
    })
}

/// Serves until SIGTERM or SIGINT, then drains. `config_file` is watched
/// and reloaded when given; with `kube`, routes are also discovered from
/// the cluster, and `/readyz` waits for the first complete sync.
pub async fn run(
    config: Config,
    config_file: Option<PathBuf>,
    kube: Option<discovery::Options>,
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
    let metrics = Arc::new(Metrics::new());
    let kube_client = match &kube {
        Some(opts) => Some(discovery::client(opts).await?),
        None => None,
    };
    let (publisher, table) = Publisher::new(
        config.routes.clone(),
        config.default_backend.clone(),
        metrics.clone(),
    );
    let listeners = server::bind_all(&config.listen).await?;
    let admin_listener = match config.admin {
        Some(a) => Some(server::bind_all(&[a]).await?.remove(0)),
        None => None,
    };
    let access_log =
        crate::access_log::AccessLog::start(config.access_log, metrics.access_log_dropped.clone());
    let proxy = Arc::new(Proxy::new(table.clone(), metrics.clone()).with_access_log(access_log));
    let tunnels = proxy.tunnels().clone();
    let running = Listeners::start(listeners, proxy, config.listener.clone());
    let state = Arc::new(AdminState {
        table: table.clone(),
        metrics: metrics.clone(),
        ready: false.into(),
    });
    let admin_task = admin_listener.map(|l| tokio::spawn(admin::serve(l, state.clone())));
    let reloader = config_file.map(|path| {
        tokio::spawn(reload_loop(
            path,
            config.clone(),
            publisher.clone(),
            metrics.clone(),
            hup,
        ))
    });
    let ready_waiter = match (kube, kube_client) {
        (Some(mut opts), Some(client)) => {
            opts.settings.defaults = config.defaults;
            let mut synced = discovery::start(client, opts, publisher.clone(), metrics.clone());
            let state = state.clone();
            Some(tokio::spawn(async move {
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
    let reaper = tokio::spawn(reap_idle(table.clone()));
    tracing::info!(
        listen = ?config.listen,
        admin = ?config.admin,
        routes = table.load().all_routes().count(),
        "sluice is serving"
    );

    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = which, drain_timeout = ?config.drain_timeout, shutdown_delay = ?config.shutdown_delay, "shutting down");
    if let Some(w) = ready_waiter {
        w.abort();
    }
    state.ready.store(false, Ordering::Relaxed);
    if let Some(r) = reloader {
        r.abort();
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
                "drain timeout passed with upgraded connections still open"
            );
        }
    }
    if left > 0 {
        tracing::warn!(
            connections = left,
            "drain timeout passed with connections still open"
        );
    }
    if let Some(a) = admin_task {
        a.abort();
    }
    reaper.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Closes pooled upstream connections idle longer than their route's
/// `upstream_idle`, so that a quiet proxy does not hold sockets open on
/// every endpoint it ever spoke to.
async fn reap_idle(table: Table) {
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

/// Reloads the file when its bytes change (checked every
/// `reload_interval`) or on SIGHUP. Polling the content, rather than
/// watching inotify events, sees every way a file gets replaced: editors
/// that rename over it and Kubernetes ConfigMaps that swap a symlink.
async fn reload_loop(
    path: PathBuf,
    running: Config,
    publisher: Arc<Publisher>,
    metrics: Arc<Metrics>,
    mut hup: Signal,
) {
    let mut last = tokio::fs::read(&path).await.ok();
    let mut unreadable = false;
    loop {
        let forced = tokio::select! {
            _ = tokio::time::sleep(running.reload_interval) => false,
            _ = hup.recv() => true,
        };
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => {
                unreadable = false;
                b
            }
            Err(e) => {
                if forced || !unreadable {
                    tracing::error!(file = %path.display(), error = %e, "cannot read config file; the current routes keep serving");
                    metrics.config_reloads.with_label_values(&["error"]).inc();
                }
                unreadable = true;
                continue;
            }
        };
        if !forced && last.as_deref() == Some(&bytes[..]) {
            continue;
        }
        last = Some(bytes.clone());
        let text = String::from_utf8_lossy(&bytes);
        match config::parse_str(&text, &path.display().to_string()) {
            Ok(new) => {
                for w in &new.warnings {
                    tracing::warn!(file = %path.display(), "config: {w}");
                }
                let generation =
                    publisher.set_file(new.routes.clone(), new.default_backend.clone());
                metrics.config_reloads.with_label_values(&["success"]).inc();
                tracing::info!(file = %path.display(), generation, routes = new.routes.len(), "config reloaded");
                if new.listen != running.listen
                    || new.admin != running.admin
                    || new.listener != running.listener
                    || new.drain_timeout != running.drain_timeout
                    || new.shutdown_delay != running.shutdown_delay
                    || new.reload_interval != running.reload_interval
                {
                    tracing::warn!("listen, admin, request_header, drain_timeout, shutdown_delay and reload_interval take effect only after a restart");
                }
            }
            Err(e) => {
                metrics.config_reloads.with_label_values(&["error"]).inc();
                for line in e.lines() {
                    tracing::error!(file = %path.display(), "config refused, the current routes keep serving: {line}");
                }
            }
        }
    }
}
