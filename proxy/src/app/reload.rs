//! Reloading while serving: the config file when its bytes change or on
//! SIGHUP, the certificate files it names when theirs do, and the backends'
//! DNS names every `dns_refresh`.
//!
//! What costs CPU or reads files (parsing certificates, rebuilding the
//! snapshot) runs on the config thread ([`blocking`], [`crate::background`]),
//! never on the runtime threads that serve requests, and at a priority that
//! yields to them.

use std::sync::Arc;

use tokio::signal::unix::Signal;

use crate::config::{self, Config, Overrides};
use crate::metrics::Metrics;
use crate::sources::{FileSource, Sources};
use crate::tls::{Binding, CertBytes, CertFileError, CertFiles};

use super::ConfigFile;

/// Runs `work` on the config thread, which yields to traffic
/// ([`crate::background`]), and waits for it. A panic in it is the
/// caller's panic, as if it had run here.
pub(super) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match crate::background::run(work).await {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// Reads every certificate file the config names; the error names the
/// file.
pub(super) fn read_certs(tls: &config::TlsConfig) -> Result<Vec<CertBytes>, CertFileError> {
    tls.files().map(CertFiles::read).collect()
}

/// The config's routes and certificates, as the sources takes them.
/// `certs` are the bytes of `config.tls.files()`, in order.
pub(super) fn file_source(
    config: &Config,
    certs: &[CertBytes],
) -> Result<FileSource, CertFileError> {
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
pub(super) async fn refresh_names(sources: Arc<Sources>) {
    // The sources' lock is held through every rebuild (half a second at
    // 10,000 Ingresses): taken on the config thread, never on this one,
    // which serves requests.
    let read_names = || {
        let s = sources.clone();
        blocking(move || s.names())
    };
    loop {
        let (_, _, every) = read_names().await;
        tokio::time::sleep(every).await;
        let (names, now, _) = read_names().await;
        if names.is_empty() {
            continue;
        }
        let (fresh, failed) = crate::resolve::resolve(&names).await;
        for ((host, port), reason) in &failed {
            tracing::warn!(backend = %format!("{host}:{port}"), error = %reason, "backend name does not resolve; its last addresses keep serving");
        }
        let merged = crate::resolve::merge(&now, fresh, &failed);
        let rebuild = sources.clone();
        if blocking(move || rebuild.set_resolved(merged)).await {
            tracing::info!("backend names resolved to new addresses");
        }
    }
}

/// What the reloader watches: the config file (when there is one) and the
/// certificate files the config names.
pub(super) struct Watched {
    pub(super) file: Option<ConfigFile>,
    /// Applied to each config parsed from the file.
    pub(super) overrides: Overrides,
    /// The config in force: the file's last good one, or the command
    /// line's. Shared with the config thread rather than copied for it: a
    /// thousand routes cost a millisecond to clone or free, which the
    /// serving thread this loop runs on must not spend.
    pub(super) running: Arc<Config>,
    /// The bytes of the running config's certificate files.
    pub(super) certs: Vec<CertBytes>,
}

/// The certificate files' bytes, or why they could not be read.
type CertsRead = Result<Vec<CertBytes>, CertFileError>;

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
pub(super) async fn reload_loop(
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
    let mut pending: Option<(Arc<Config>, CertsRead)> = None;
    // The running config's certificate bytes (or read error) last tried,
    // so that a refused certificate is reported once, not at every tick.
    let mut last_certs: CertsRead = Ok(w.certs.clone());
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
                        last = Some(bytes.clone());
                        // Parsed and checked on the config thread: a large
                        // file costs milliseconds.
                        let parsed_file = {
                            let path = path.clone();
                            blocking(move || {
                                config::parse_file_text(&String::from_utf8_lossy(&bytes), &path)
                            })
                            .await
                        };
                        match parsed_file {
                            Ok(mut new) => {
                                w.overrides.apply(&mut new);
                                // Its backend names resolved first: one that
                                // does not refuses the edit.
                                let names = crate::resolve::names(
                                    new.routes.iter().chain(&new.default_backend),
                                );
                                let (resolved, failed) = crate::resolve::resolve(&names).await;
                                if failed.is_empty() {
                                    // On the config thread: the lock may
                                    // be held by a rebuild from the cluster.
                                    let s = sources.clone();
                                    blocking(move || s.add_resolved(resolved)).await;
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
            (Some(new), _) => Some((Arc::new(new), None)),
            (None, Some((waiting, tried))) => Some((waiting, Some(tried))),
            (None, None) => None,
        };
        if let Some((new, tried)) = candidate {
            let certs = read_certs_off(&new.tls).await;
            if tried.as_ref() != Some(&certs) || forced {
                match load(&new, certs.clone()).await {
                    Ok((source, c)) => {
                        let generation = publish(&sources, source).await;
                        metrics.config_reloads.with_label_values(&["success"]).inc();
                        announce(&new, &w, generation);
                        w.certs = c.clone();
                        last_certs = Ok(c);
                        let old = std::mem::replace(&mut w.running, new);
                        // Freed on the config thread, not here.
                        tokio::spawn(crate::background::run(move || drop(old)));
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
        let certs = read_certs_off(&w.running.tls).await;
        if !forced && certs == last_certs {
            continue;
        }
        last_certs = certs.clone();
        match load(&w.running, certs).await {
            Ok((source, c)) => {
                let generation = publish(&sources, source).await;
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

/// [`read_certs`] on the config thread.
async fn read_certs_off(tls: &config::TlsConfig) -> CertsRead {
    let tls = tls.clone();
    blocking(move || read_certs(&tls)).await
}

/// The certificates parsed and the file's source made ([`file_source`]),
/// on the config thread; the bytes come back with it.
async fn load(
    config: &Arc<Config>,
    certs: CertsRead,
) -> Result<(FileSource, Vec<CertBytes>), CertFileError> {
    let config = config.clone();
    blocking(move || certs.and_then(|c| file_source(&config, &c).map(|s| (s, c)))).await
}

/// The new source swapped in: the snapshot rebuilt on the config thread.
/// Returns its generation.
async fn publish(sources: &Arc<Sources>, source: FileSource) -> u64 {
    let sources = sources.clone();
    blocking(move || sources.set_file(source)).await
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
