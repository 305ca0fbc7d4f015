//! One routing table from several sources: the config file's routes and
//! the routes discovered in Kubernetes.
//!
//! Each source hands over its whole current set; the publisher builds one
//! snapshot from all of them, off the request path, and swaps it in whole.
//! The file's routes come first, so they win a duplicate host and path;
//! discovered routes come oldest Ingress first. The file's default backend
//! wins over an Ingress's.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::config::RouteSpec;
use crate::metrics::Metrics;
use crate::routing::{Snapshot, Table};

#[derive(Default)]
struct Sources {
    file: Vec<RouteSpec>,
    file_default: Option<RouteSpec>,
    discovered: Vec<RouteSpec>,
    discovered_default: Option<RouteSpec>,
    /// Conflicts already logged, so that a rebuild does not log them again.
    conflicts: HashSet<String>,
}

/// Builds and swaps in the routing table when a source changes.
pub struct Publisher {
    table: Table,
    metrics: Arc<Metrics>,
    sources: Mutex<Sources>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    /// Starts from the file's routes, and builds the first table.
    pub fn new(
        routes: Vec<RouteSpec>,
        default: Option<RouteSpec>,
        metrics: Arc<Metrics>,
    ) -> (Arc<Self>, Table) {
        let table: Table = Arc::default();
        let p = Arc::new(Publisher {
            table: table.clone(),
            metrics,
            sources: Mutex::new(Sources {
                file: routes,
                file_default: default,
                ..Sources::default()
            }),
        });
        p.publish(true);
        (p, table)
    }

    /// The config file changed. Returns the new table's generation.
    pub fn set_file(&self, routes: Vec<RouteSpec>, default: Option<RouteSpec>) -> u64 {
        {
            let mut s = self.lock();
            s.file = routes;
            s.file_default = default;
        }
        self.publish(false)
    }

    /// The discovered routes changed. Returns the new table's generation.
    pub fn set_discovered(&self, routes: Vec<RouteSpec>, default: Option<RouteSpec>) -> u64 {
        {
            let mut s = self.lock();
            s.discovered = routes;
            s.discovered_default = default;
        }
        self.publish(false)
    }

    /// The sources. A panic while they were held (it should not happen)
    /// leaves them whole, so the lock is taken back rather than given up.
    fn lock(&self) -> std::sync::MutexGuard<'_, Sources> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, first: bool) -> u64 {
        // The lock is held through the build, so that two sources changing
        // at once cannot swap in their tables out of order.
        let mut s = self.lock();
        let specs: Vec<RouteSpec> = s.file.iter().chain(&s.discovered).cloned().collect();
        let default = s.file_default.as_ref().or(s.discovered_default.as_ref());
        let previous = (!first).then(|| self.table.load_full());
        let snap = Snapshot::build(&specs, default, previous.as_deref(), &self.metrics);
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
