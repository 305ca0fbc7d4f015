//! Ingress status: the LoadBalancer address of `--publish-service`,
//! written into `status.loadBalancer` of every Ingress we serve, so that
//! `kubectl get ingress` (and external-dns, cert-manager) see where traffic
//! enters. With `--gateway-class`, Gateway API's status too (written by
//! `gateway::status`, under the same Lease).
//!
//! One replica writes at a time: the holder of a coordination.k8s.io
//! Lease. The Lease is taken when free or expired and renewed at a third
//! of its duration; every change goes through the API server's
//! resourceVersion check, so two replicas cannot both win a race. A
//! replica that cannot renew (the API server is away) stops writing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::gateway::attach::Verdicts;
use super::gateway::status as gateway_status;

/// Where the address comes from, and the Lease that elects the writer.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// The Service of type LoadBalancer in front of the proxy.
    pub service_namespace: String,
    pub service_name: String,
    /// The Lease, in the Service's namespace.
    pub lease_name: String,
    /// This replica's name in the Lease.
    pub identity: String,
    pub lease_duration: Duration,
}

/// `--publish-service` does not name a Service as `NAMESPACE/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--publish-service {0:?} is not NAMESPACE/NAME")]
pub struct NotNamespacedName(pub String);

impl StatusOptions {
    /// From `NAMESPACE/NAME`; the Lease is named after the class.
    pub fn parse(
        publish_service: &str,
        class: &str,
        lease_duration: Duration,
    ) -> Result<Self, NotNamespacedName> {
        let (ns, name) = publish_service
            .split_once('/')
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
            .ok_or_else(|| NotNamespacedName(publish_service.to_owned()))?;
        let host = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "sluice".into());
        Ok(StatusOptions {
            service_namespace: ns.into(),
            service_name: name.into(),
            lease_name: format!("sluice-status-{class}"),
            identity: format!("{host}-{:08x}", fastrand::u32(..)),
            lease_duration,
        })
    }
}

/// Runs the election and writes status while elected. `owned` carries the
/// Ingresses served (`namespace/name`), sent after every rebuild; `gateway`
/// (with `--gateway-class`) what Gateway API's objects were judged.
pub async fn run(
    client: Client,
    opts: StatusOptions,
    services: Store<Service>,
    ingresses: Store<Ingress>,
    mut owned: watch::Receiver<Arc<Vec<String>>>,
    mut gateway: Option<watch::Receiver<Arc<Verdicts>>>,
) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &opts.service_namespace);
    let renew_every = opts.lease_duration / 3;
    let mut leading = false;
    loop {
        let now_leading = match hold_lease(&leases, &opts).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(lease = %opts.lease_name, error = %e, "cannot renew the status lease; not writing Ingress status");
                false
            }
        };
        if now_leading != leading {
            tracing::info!(lease = %opts.lease_name, identity = %opts.identity, leading = now_leading, "status lease changed hands");
            leading = now_leading;
        }
        if leading {
            let list = owned.borrow_and_update().clone();
            write_status(&client, &opts, &services, &ingresses, &list).await;
            if let Some(g) = &mut gateway {
                let verdicts = g.borrow_and_update().clone();
                gateway_status::write(&client, &addresses(&services, &opts), &verdicts).await;
            }
        }
        let gateway_changed = async {
            match &mut gateway {
                Some(g) => g.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(renew_every) => {}
            r = owned.changed(), if leading => if r.is_err() { return },
            r = gateway_changed, if leading => if r.is_err() { return },
        }
    }
}

/// Takes or renews the Lease. True while this replica holds it.
async fn hold_lease(api: &Api<Lease>, opts: &StatusOptions) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let duration = i32::try_from(opts.lease_duration.as_secs().max(1)).unwrap_or(15);
    match api.get_opt(&opts.lease_name).await? {
        None => {
            let lease = Lease {
                metadata: kube::api::ObjectMeta {
                    name: Some(opts.lease_name.clone()),
                    namespace: Some(opts.service_namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(opts.identity.clone()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            // Another replica may create it first: then it leads.
            Ok(api.create(&PostParams::default(), &lease).await.is_ok())
        }
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            let ours = spec.holder_identity.as_deref() == Some(opts.identity.as_str());
            let held_for = SignedDuration::from_secs(i64::from(
                spec.lease_duration_seconds.unwrap_or(duration),
            ));
            let expired = spec
                .renew_time
                .as_ref()
                .and_then(|t| t.0.checked_add(held_for).ok())
                .is_none_or(|until| until < now);
            if !(ours || expired || spec.holder_identity.is_none()) {
                return Ok(false);
            }
            if !ours {
                spec.holder_identity = Some(opts.identity.clone());
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(duration);
            // The resourceVersion in the object makes this fail if another
            // replica changed the Lease since we read it.
            Ok(api
                .replace(&opts.lease_name, &PostParams::default(), &lease)
                .await
                .is_ok())
        }
    }
}

/// The published Service's LoadBalancer addresses, as Ingress status
/// entries (ip or hostname).
fn addresses(services: &Store<Service>, opts: &StatusOptions) -> Vec<Value> {
    let svc = services.get(&ObjectRef::new(&opts.service_name).within(&opts.service_namespace));
    svc.and_then(|s| s.status.clone())
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .unwrap_or_default()
        .into_iter()
        .map(|i| {
            let mut v = BTreeMap::new();
            if let Some(ip) = i.ip {
                v.insert("ip", json!(ip));
            }
            if let Some(h) = i.hostname {
                v.insert("hostname", json!(h));
            }
            json!(v)
        })
        .collect()
}

async fn write_status(
    client: &Client,
    opts: &StatusOptions,
    services: &Store<Service>,
    ingresses: &Store<Ingress>,
    owned: &[String],
) {
    let want = addresses(services, opts);
    for id in owned {
        let Some((ns, name)) = id.split_once('/') else {
            continue;
        };
        let Some(ing) = ingresses.get(&ObjectRef::new(name).within(ns)) else {
            continue;
        };
        let have: Vec<Value> = ing
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|list| {
                list.iter()
                    .map(|i| {
                        let mut v = BTreeMap::new();
                        if let Some(ip) = &i.ip {
                            v.insert("ip", json!(ip));
                        }
                        if let Some(h) = &i.hostname {
                            v.insert("hostname", json!(h));
                        }
                        json!(v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        if have == want {
            continue;
        }
        let api: Api<Ingress> = Api::namespaced(client.clone(), ns);
        let patch = json!({"status": {"loadBalancer": {"ingress": want}}});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(ingress = %id, addresses = %json!(want), "Ingress status updated")
            }
            Err(e) => tracing::warn!(ingress = %id, error = %e, "cannot update Ingress status"),
        }
    }
}
