//! One routing table from several sources: the config file's routes and
//! the routes discovered in Kubernetes.
//!
//! Each source hands over its whole current set; [`Sources`] builds one
//! snapshot from all of them, off the request path, and swaps it in whole.
//! The file's routes come first, so they win a duplicate host and path;
//! discovered routes come oldest Ingress first. The file's default backend
//! wins over an Ingress's.
//!
//! Certificates go the same way: the file's first, then the Secrets'; the
//! table they make is part of the snapshot, and decides which hosts
//! redirect plain HTTP to HTTPS.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::metrics::Metrics;
use crate::routing::{Edge, Live, Passthrough, Snapshot};
use crate::spec::{Policy, RouteSpec, ServerHeader};
use crate::tls::{Binding, CertTable, Certificate};

/// What the config file (or the command line) gives.
#[derive(Debug, Clone, Default)]
pub struct FileSource {
    pub routes: Vec<RouteSpec>,
    pub default: Option<RouteSpec>,
    /// Certificates loaded from the files it names.
    pub certs: Vec<Binding>,
    pub default_cert: Option<Arc<Certificate>>,
    pub policy: Policy,
    pub server_header: ServerHeader,
    pub endpoint_metrics: bool,
    /// How often its backends' DNS names are resolved again.
    pub dns_refresh: std::time::Duration,
}

/// What the cluster gives.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    pub routes: Vec<RouteSpec>,
    pub default: Option<RouteSpec>,
    /// Certificates from the Secrets that Ingresses name.
    pub certs: Vec<Binding>,
    /// From `--default-tls-secret`; the file's default wins over it.
    pub default_cert: Option<Arc<Certificate>>,
    /// Hosts whose TLS is spliced to the backend of their `/`
    /// (`ssl-passthrough`).
    pub passthrough: Vec<String>,
}

#[derive(Default)]
struct Inputs {
    file: FileSource,
    discovered: Discovered,
    /// For names no certificate holds, when the file gives none: made
    /// once at start.
    self_signed: Option<Arc<Certificate>>,
    /// An HTTPS listener runs.
    https: bool,
    /// Conflicts already logged, so that a rebuild does not log them again.
    conflicts: HashSet<String>,
    /// What the file's backend names resolve to.
    resolved: crate::resolve::Resolved,
}

/// The routing snapshot's sources: builds and swaps in a new snapshot
/// when one changes.
pub struct Sources {
    table: Live,
    metrics: Arc<Metrics>,
    inputs: Mutex<Inputs>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

impl Sources {
    /// Starts from the file's routes, and builds the first table. With
    /// `https` (an HTTPS listener runs), a self-signed certificate is made
    /// for names no certificate holds.
    pub fn new(file: FileSource, https: bool, metrics: Arc<Metrics>) -> (Arc<Self>, Live) {
        let table: Live = Arc::default();
        let p = Arc::new(Sources {
            table: table.clone(),
            metrics,
            inputs: Mutex::new(Inputs {
                file,
                https,
                self_signed: https.then(|| Arc::new(Certificate::self_signed())),
                ..Inputs::default()
            }),
        });
        p.rebuild(true);
        (p, table)
    }

    /// The config file (or a certificate file it names) changed. Returns
    /// the new table's generation.
    pub fn set_file(&self, file: FileSource) -> u64 {
        self.lock().file = file;
        self.rebuild(false)
    }

    /// Backend names resolved anew (the refresh). Publishes only when an
    /// address changed; returns whether it did.
    pub fn set_resolved(&self, resolved: crate::resolve::Resolved) -> bool {
        {
            let mut s = self.lock();
            if s.resolved == resolved {
                return false;
            }
            s.resolved = resolved;
        }
        self.rebuild(false);
        true
    }

    /// Adds what names resolve to, ahead of a new file that names them;
    /// publishes nothing.
    pub fn add_resolved(&self, resolved: crate::resolve::Resolved) {
        self.lock().resolved.extend(resolved);
    }

    /// The file's backend names, what they resolve to now, and how often
    /// to ask again.
    pub fn names(
        &self,
    ) -> (
        std::collections::BTreeSet<crate::resolve::Name>,
        crate::resolve::Resolved,
        std::time::Duration,
    ) {
        let s = self.lock();
        let names = crate::resolve::names(s.file.routes.iter().chain(&s.file.default));
        let now = s
            .resolved
            .iter()
            .filter(|(n, _)| names.contains(*n))
            .map(|(n, a)| (n.clone(), a.clone()))
            .collect();
        (names, now, s.file.dns_refresh)
    }

    /// The cluster's routes or certificates changed. Returns the new
    /// table's generation.
    pub fn set_discovered(&self, discovered: Discovered) -> u64 {
        self.lock().discovered = discovered;
        self.rebuild(false)
    }

    /// The sources. A panic while they were held (it should not happen)
    /// leaves them whole, so the lock is taken back rather than given up.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inputs> {
        self.inputs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn rebuild(&self, first: bool) -> u64 {
        // The lock is held through the build, so that two sources changing
        // at once cannot swap in their tables out of order.
        let mut s = self.lock();
        // The file's routes, with their backend names' addresses joined.
        let mut file_routes: Vec<RouteSpec> = s.file.routes.clone();
        let mut file_default: Vec<RouteSpec> = s.file.default.iter().cloned().collect();
        crate::resolve::apply(&mut file_routes, &s.resolved);
        crate::resolve::apply(&mut file_default, &s.resolved);
        let specs: Vec<RouteSpec> = file_routes
            .into_iter()
            .chain(s.discovered.routes.iter().cloned())
            .collect();
        let default = file_default.first().or(s.discovered.default.as_ref());
        let previous = (!first).then(|| self.table.load_full());
        let bindings: Vec<Binding> = s
            .file
            .certs
            .iter()
            .chain(&s.discovered.certs)
            .cloned()
            .collect();
        let default_cert = s
            .file
            .default_cert
            .as_ref()
            .or(s.discovered.default_cert.as_ref())
            .or(s.self_signed.as_ref());
        let (certs, cert_problems) = CertTable::build(&bindings, default_cert.map(|c| &**c));
        self.metrics.tls_certificate_expiry.reset();
        for e in &certs.entries {
            self.metrics
                .tls_certificate_expiry
                .with_label_values(&[&*e.source])
                .set(e.not_after);
        }
        let edge = Edge {
            certs: Arc::new(certs),
            policy: s.file.policy.clone(),
            server_header: s.file.server_header,
            endpoint_metrics: s.file.endpoint_metrics,
            https: s.https,
        };
        let mut snap =
            Snapshot::build_with_edge(&specs, default, previous.as_deref(), &self.metrics, &edge);
        snap.conflicts.extend(cert_problems);
        // Looked up in the table just built: a host's `/` is whichever
        // source's route won it.
        let (passthrough, problems) = Passthrough::build(&s.discovered.passthrough, &snap);
        snap.passthrough = passthrough;
        snap.conflicts.extend(problems);
        let now: HashSet<String> = snap.conflicts.iter().cloned().collect();
        for c in now.difference(&s.conflicts) {
            tracing::warn!("{c}");
        }
        s.conflicts = now;
        let generation = snap.generation;
        let old = self.table.swap(Arc::new(snap));
        let live = self.table.load();
        let names: HashSet<&str> = live.all_routes().map(|r| &*r.name).collect();
        for gone in old.all_routes().filter(|o| !names.contains(&*o.name)) {
            self.metrics.forget_route(&gone.name);
        }
        generation
    }
}
