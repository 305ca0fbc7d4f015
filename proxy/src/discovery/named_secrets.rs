//! Secrets that annotations name (`auth-secret`, `proxy-ssl-secret`),
//! each watched on its own, by name, for as long as some Ingress names it.
//!
//! TLS Secrets are watched as a kind (a field selector on their type), but
//! the Secrets these annotations name are mostly Opaque, and watching every
//! Opaque Secret of a cluster would put all of them (tokens, passwords,
//! Helm releases) in the proxy's memory. A watch per named Secret reads
//! only those.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::Notify;

use super::{drive, WatchBackoff};
use crate::metrics::Metrics;
use crate::tasks::{TaskHandle, Tasks};

/// The watches of named Secrets.
#[derive(Default)]
pub(super) struct NamedSecrets {
    watches: HashMap<(String, String), (Store<Secret>, TaskHandle)>,
}

impl NamedSecrets {
    /// Watches what `wanted` names and is not watched yet, and stops
    /// watching what it no longer names. A new watch wakes the rebuild
    /// loop when its Secret arrives (or is found missing).
    pub(super) fn want(
        &mut self,
        wanted: &BTreeSet<(String, String)>,
        client: &Client,
        changed: &Arc<Notify>,
        metrics: &Arc<Metrics>,
        tasks: &Tasks,
    ) {
        self.watches.retain(|key, (_, task)| {
            let keep = wanted.contains(key);
            if !keep {
                task.stop();
            }
            keep
        });
        for (ns, name) in wanted {
            if self.watches.contains_key(&(ns.clone(), name.clone())) {
                continue;
            }
            tracing::debug!(secret = %format!("{ns}/{name}"), "watching a Secret an annotation names");
            let api: Api<Secret> = Api::namespaced(client.clone(), ns);
            let (reader, writer) = reflector::store();
            let stream = watcher(
                api,
                watcher::Config::default().fields(&format!("metadata.name={name}")),
            )
            .backoff(WatchBackoff::default())
            .modify(super::slim::Slim::slim)
            .reflect(writer);
            let task = drive(stream, "secret", changed, metrics, tasks);
            self.watches
                .insert((ns.clone(), name.clone()), (reader, task));
        }
    }

    /// Every named Secret found so far.
    pub(super) fn stores(&self) -> Vec<Store<Secret>> {
        self.watches.values().map(|(s, _)| s.clone()).collect()
    }
}
