//! Running the proxy: bind, serve, reload on change or SIGHUP, drain on
//! SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::admin::{self, AdminState};
use crate::config::{self, Config, Overrides};
use crate::discovery;
use crate::http::Handler;
use crate::metrics::Metrics;
use crate::routing::Live;
use crate::server::{self, Listeners};
use crate::sources::{FileSource, Sources};
use crate::tls::{Binding, CertBytes, CertFileError, CertFiles};
use crate::Error;

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
    let refresher = tokio::spawn(refresh_names(sources.clone()));
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
    // Ends by itself when the proxy goes.
    let _memory_watch = crate::memory::resolve(config.listener.max_memory).map(|limit| {
        tracing::info!(
            limit,
            "overload guard: new requests get 503 past this resident memory"
        );
        proxy.watch_memory(limit)
    });
    let tunnels = proxy.tunnels().clone();
    let running = Listeners::start(listeners, proxy, config.listener.clone());
    let state = Arc::new(AdminState {
        table: table.clone(),
        metrics: metrics.clone(),
        ready: false.into(),
    });
    let admin_task = admin_listener.map(|l| {
        tokio::spawn(admin::serve(
            l,
            state.clone(),
            config.listener.request_header_timeout,
        ))
    });
    // The file, and the certificate files it (or the command line)
    // names, are watched.
    let reloader = (config_file.is_some() || config.tls.files().next().is_some()).then(|| {
        tokio::spawn(reload_loop(
            Watched {
                file: config_file,
                running: config.clone(),
                certs,
                overrides,
            },
            sources.clone(),
            metrics.clone(),
            hup,
        ))
    });
    let ready_waiter = match (kube, kube_client) {
        (Some(mut opts), Some(client)) => {
            opts.settings.defaults = config.defaults;
            let mut synced = discovery::start(client, opts, sources.clone(), metrics.clone());
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
    if let Some(a) = admin_task {
        a.abort();
    }
    reaper.abort();
    refresher.abort();
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

/// Reads every certificate file the config names; the error names the
/// file.
fn read_certs(tls: &config::TlsConfig) -> Result<Vec<CertBytes>, CertFileError> {
    tls.files().map(CertFiles::read).collect()
}

/// The config's routes and certificates, as the sources takes them.
/// `certs` are the bytes of `config.tls.files()`, in order.
fn file_source(config: &Config, certs: &[CertBytes]) -> Result<FileSource, CertFileError> {
    let mut loaded = Vec::with_capacity(certs.len());
    for (files, bytes) in config.tls.files().zip(certs) {
        loaded.push((files, Arc::new(files.parse(bytes)?)));
    }
    let default_cert = config
        .tls
        .default_certificate
        .as_ref()
        .and_then(|_| loaded.pop())
        .map(|(_, c)| c);
    for (files, c) in &loaded {
        let left = c.not_after - now_unix();
        if left < 0 {
            tracing::warn!(file = %files.cert.display(), "certificate has expired; it is served anyway");
        } else if left < 14 * 86_400 {
            tracing::warn!(file = %files.cert.display(), days = left / 86_400, "certificate expires soon");
        }
    }
    Ok(FileSource {
        routes: config.routes.clone(),
        default: config.default_backend.clone(),
        certs: loaded
            .into_iter()
            .map(|(files, cert)| Binding {
                source: files.source(),
                hosts: Vec::new(),
                cert,
            })
            .collect(),
        default_cert,
        policy: config.tls.policy.clone(),
        server_header: config.server_header,
        endpoint_metrics: config.endpoint_metrics,
        dns_refresh: config.dns_refresh,
    })
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Resolves the file's backend names again every `dns_refresh`, and
/// republishes when an address changed. A name that fails keeps its last
/// addresses, with a warning.
async fn refresh_names(sources: Arc<Sources>) {
    loop {
        let (_, _, every) = sources.names();
        tokio::time::sleep(every).await;
        let (names, now, _) = sources.names();
        if names.is_empty() {
            continue;
        }
        let (fresh, failed) = crate::resolve::resolve(&names).await;
        for ((host, port), reason) in &failed {
            tracing::warn!(backend = %format!("{host}:{port}"), error = %reason, "backend name does not resolve; its last addresses keep serving");
        }
        let merged = crate::resolve::merge(&now, fresh, &failed);
        if sources.set_resolved(merged) {
            tracing::info!("backend names resolved to new addresses");
        }
    }
}

/// What the reloader watches: the config file (when there is one) and the
/// certificate files the config names.
struct Watched {
    file: Option<ConfigFile>,
    /// Applied to each config parsed from the file.
    overrides: Overrides,
    /// The config in force: the file's last good one, or the command
    /// line's.
    running: Config,
    /// The bytes of the running config's certificate files.
    certs: Vec<CertBytes>,
}

/// Reloads the file when its bytes change (checked every
/// `reload_interval`) or on SIGHUP, and the certificates when theirs do.
/// Polling the content, rather than watching inotify events, sees every
/// way a file gets replaced: editors that rename over it and Kubernetes
/// ConfigMaps and Secrets that swap a symlink.
///
/// Whatever is refused (a config that does not validate, a certificate
/// whose key does not match, a file half written) is logged once, and the
/// routes and certificates in force keep serving. A config refused only
/// for its certificates waits, and is tried again when they change; the
/// running config's own certificates are still renewed meanwhile.
async fn reload_loop(
    mut w: Watched,
    sources: Arc<Sources>,
    metrics: Arc<Metrics>,
    mut hup: Signal,
) {
    let mut last = w.file.as_ref().map(|f| f.bytes.clone());
    let path = w.file.as_ref().map(|f| f.path.clone());
    let mut unreadable = false;
    // The newest config parsed from the file but not in force (its
    // certificates were refused), and the certificate bytes (or read
    // error) it was last tried with.
    let mut pending: Option<(Config, Result<Vec<CertBytes>, CertFileError>)> = None;
    // The running config's certificate bytes (or read error) last tried,
    // so that a refused certificate is reported once, not at every tick.
    let mut last_certs: Result<Vec<CertBytes>, CertFileError> = Ok(w.certs.clone());
    loop {
        let forced = tokio::select! {
            _ = tokio::time::sleep(w.running.reload_interval) => false,
            _ = hup.recv() => true,
        };
        let mut parsed: Option<Config> = None;
        if let Some(path) = &path {
            match tokio::fs::read(path).await {
                Ok(bytes) => {
                    unreadable = false;
                    if forced || last.as_deref() != Some(&bytes[..]) {
                        let text = String::from_utf8_lossy(&bytes);
                        last = Some(bytes.clone());
                        match config::parse_file_text(&text, path) {
                            Ok(mut new) => {
                                w.overrides.apply(&mut new);
                                // Its backend names resolved first: one that
                                // does not refuses the edit.
                                let names = crate::resolve::names(
                                    new.routes.iter().chain(&new.default_backend),
                                );
                                let (resolved, failed) = crate::resolve::resolve(&names).await;
                                if failed.is_empty() {
                                    sources.add_resolved(resolved);
                                    parsed = Some(new);
                                } else {
                                    pending = None;
                                    metrics.config_reloads.with_label_values(&["error"]).inc();
                                    for ((host, port), reason) in failed {
                                        tracing::error!(file = %path.display(), "config refused, the current routes keep serving: backend {host}:{port} does not resolve: {reason}");
                                    }
                                }
                            }
                            Err(e) => {
                                // What the file says now is refused; an
                                // older edit waiting on its certificates
                                // is no longer what it says either.
                                pending = None;
                                metrics.config_reloads.with_label_values(&["error"]).inc();
                                for line in e.lines() {
                                    tracing::error!(file = %path.display(), "config refused, the current routes keep serving: {line}");
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    if forced || !unreadable {
                        tracing::error!(file = %path.display(), error = %e, "cannot read config file; the current routes keep serving");
                        metrics.config_reloads.with_label_values(&["error"]).inc();
                    }
                    unreadable = true;
                }
            }
        }
        // A new or waiting config, when it or its certificates changed.
        let candidate = match (parsed, pending.take()) {
            (Some(new), _) => Some((new, None)),
            (None, Some((waiting, tried))) => Some((waiting, Some(tried))),
            (None, None) => None,
        };
        if let Some((new, tried)) = candidate {
            let certs = read_certs(&new.tls);
            if tried.as_ref() != Some(&certs) || forced {
                match certs
                    .clone()
                    .and_then(|c| file_source(&new, &c).map(|s| (s, c)))
                {
                    Ok((source, c)) => {
                        let generation = sources.set_file(source);
                        metrics.config_reloads.with_label_values(&["success"]).inc();
                        announce(&new, &w, generation);
                        w.certs = c.clone();
                        last_certs = Ok(c);
                        w.running = new;
                        continue;
                    }
                    Err(e) => {
                        metrics.config_reloads.with_label_values(&["error"]).inc();
                        tracing::error!(
                            "config refused, the current routes and certificates keep serving: {e}"
                        );
                    }
                }
            }
            pending = Some((new, certs));
        }
        // The running config's own certificates.
        let certs = read_certs(&w.running.tls);
        if !forced && certs == last_certs {
            continue;
        }
        last_certs = certs.clone();
        match certs.and_then(|c| file_source(&w.running, &c).map(|s| (s, c))) {
            Ok((source, c)) => {
                let generation = sources.set_file(source);
                metrics.config_reloads.with_label_values(&["success"]).inc();
                w.certs = c;
                tracing::info!(generation, "certificates reloaded");
            }
            Err(e) => {
                metrics.config_reloads.with_label_values(&["error"]).inc();
                tracing::error!("certificate refused, the current one keeps serving: {e}");
            }
        }
    }
}

/// Logs a config taking effect, and what in it waits for a restart.
fn announce(new: &Config, w: &Watched, generation: u64) {
    let file = w.file.as_ref().map(|f| f.path.display().to_string());
    for warning in &new.warnings {
        tracing::warn!(file, "config: {warning}");
    }
    tracing::info!(
        file,
        generation,
        routes = new.routes.len(),
        "config reloaded"
    );
    let r = &w.running;
    if new.listen != r.listen
        || new.listen_tls != r.listen_tls
        || new.admin != r.admin
        || new.listener != r.listener
        || new.drain_timeout != r.drain_timeout
        || new.shutdown_delay != r.shutdown_delay
        || new.reload_interval != r.reload_interval
    {
        tracing::warn!("listen, listen_tls, admin, request_header, drain_timeout, shutdown_delay and reload_interval take effect only after a restart");
    }
}
