//! Talking to the cluster: one kube client, server-side apply with field
//! manager `sluice-deploy`, and reads that turn API errors into advice.
//! Never kubectl: what a user sees does not depend on which kubectl is on
//! their PATH.

use std::path::Path;

use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::{Api, Client, Config};
use serde_json::Value;

use crate::error::{Error, Result};

/// The field manager every apply uses, so the API server knows which
/// fields this tool owns (and a later `kubectl apply` can take them over).
pub const FIELD_MANAGER: &str = "sluice-deploy";

/// What an apply did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Configured,
    Unchanged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Configured => "configured",
            Change::Unchanged => "unchanged",
        }
    }
}

/// The kinds this tool writes: (kind, apiVersion, plural, namespaced).
const KINDS: &[(&str, &str, &str, bool)] = &[
    ("Namespace", "v1", "namespaces", false),
    ("ServiceAccount", "v1", "serviceaccounts", true),
    ("ConfigMap", "v1", "configmaps", true),
    ("Secret", "v1", "secrets", true),
    ("Service", "v1", "services", true),
    ("Pod", "v1", "pods", true),
    ("Deployment", "apps/v1", "deployments", true),
    ("DaemonSet", "apps/v1", "daemonsets", true),
    (
        "ClusterRole",
        "rbac.authorization.k8s.io/v1",
        "clusterroles",
        false,
    ),
    (
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        false,
    ),
    ("Role", "rbac.authorization.k8s.io/v1", "roles", true),
    (
        "RoleBinding",
        "rbac.authorization.k8s.io/v1",
        "rolebindings",
        true,
    ),
    ("Ingress", "networking.k8s.io/v1", "ingresses", true),
    (
        "IngressClass",
        "networking.k8s.io/v1",
        "ingressclasses",
        false,
    ),
    (
        "PodDisruptionBudget",
        "policy/v1",
        "poddisruptionbudgets",
        true,
    ),
    (
        "EndpointSlice",
        "discovery.k8s.io/v1",
        "endpointslices",
        true,
    ),
];

/// The API resource of a kind, and whether it lives in a namespace.
pub fn resource(kind: &str) -> Result<(ApiResource, bool)> {
    let (_, api_version, plural, namespaced) = KINDS
        .iter()
        .find(|k| k.0 == kind)
        .ok_or_else(|| Error::Invalid(format!("sluice-deploy does not manage {kind} objects")))?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Ok((ApiResource::from_gvk_with_plural(&gvk, plural), *namespaced))
}

/// The cluster as this tool uses it.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
}

impl Cluster {
    /// Connects with `--kubeconfig`, else KUBECONFIG, else
    /// `~/.kube/config`, else the in-cluster account, and checks the API
    /// server answers.
    pub async fn connect(kubeconfig: Option<&Path>) -> Result<Cluster> {
        let config = match kubeconfig {
            Some(path) => {
                let kc =
                    kube::config::Kubeconfig::read_from(path).map_err(|e| Error::NoCluster {
                        reason: format!("cannot read kubeconfig {}: {e}", path.display()),
                    })?;
                Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .map_err(|e| Error::NoCluster {
                        reason: format!("kubeconfig {}: {e}", path.display()),
                    })?
            }
            None => Config::infer().await.map_err(|e| Error::NoCluster {
                reason: format!("no kubeconfig found ({e})"),
            })?,
        };
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| Error::NoCluster {
            reason: format!("{server}: {e}"),
        })?;
        client.apiserver_version().await.map_err(|e| match e {
            kube::Error::Api(_) => Error::kube(
                "asking the API server its version",
                "get",
                "version",
                None,
                e,
            ),
            e => Error::NoCluster {
                reason: format!(
                    "{server} does not answer: {}",
                    crate::error::source_chain(&e)
                ),
            },
        })?;
        Ok(Cluster { client })
    }

    fn api(
        &self,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<(Api<DynamicObject>, ApiResource)> {
        let (ar, namespaced) = resource(kind)?;
        let api = match (namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        };
        Ok((api, ar))
    }

    /// Server-side apply of one object (its kind, namespace and name say
    /// which); says whether anything changed. A no-op apply leaves the
    /// resourceVersion alone, which is how "unchanged" is told.
    pub async fn apply(&self, obj: &Value) -> Result<Change> {
        let kind = obj["kind"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let ns = obj["metadata"]["namespace"].as_str();
        let (api, ar) = self.api(kind, ns)?;
        let what = describe(kind, ns, name);
        let before = api
            .get_opt(name)
            .await
            .map_err(|e| Error::kube(format!("reading {what}"), "get", &ar.plural, ns, e))?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let after = api
            .patch(name, &params, &Patch::Apply(obj))
            .await
            .map_err(|e| Error::kube(format!("applying {what}"), "patch", &ar.plural, ns, e))?;
        Ok(match before {
            None => Change::Created,
            Some(b) if b.metadata.resource_version == after.metadata.resource_version => {
                Change::Unchanged
            }
            Some(_) => Change::Configured,
        })
    }

    /// Sets a Deployment's replicas with a merge patch (not an apply: an
    /// apply of just `spec.replicas` would drop every other field this
    /// manager owns).
    pub async fn scale(&self, ns: &str, name: &str, replicas: u32) -> Result<()> {
        let (api, ar) = self.api("Deployment", Some(ns))?;
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let patch = Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}}));
        api.patch(name, &pp, &patch).await.map_err(|e| {
            Error::kube(
                format!("scaling Deployment {ns}/{name}"),
                "patch",
                &ar.plural,
                Some(ns),
                e,
            )
        })?;
        Ok(())
    }

    /// One object as JSON, or `None` when there is none.
    pub async fn get(&self, kind: &str, ns: Option<&str>, name: &str) -> Result<Option<Value>> {
        let (api, ar) = self.api(kind, ns)?;
        let obj = api.get_opt(name).await.map_err(|e| {
            Error::kube(
                format!("reading {}", describe(kind, ns, name)),
                "get",
                &ar.plural,
                ns,
                e,
            )
        })?;
        Ok(obj.map(to_json))
    }

    /// Every object of a kind (in a namespace, or all) matching a label
    /// selector.
    pub async fn list(&self, kind: &str, ns: Option<&str>, labels: &str) -> Result<Vec<Value>> {
        let (api, ar) = self.api(kind, ns)?;
        let lp = if labels.is_empty() {
            ListParams::default()
        } else {
            ListParams::default().labels(labels)
        };
        let list = api.list(&lp).await.map_err(|e| {
            Error::kube(format!("listing {}", ar.plural), "list", &ar.plural, ns, e)
        })?;
        Ok(list.items.into_iter().map(to_json).collect())
    }

    /// Deletes one object; false when there was none.
    pub async fn delete(&self, kind: &str, ns: Option<&str>, name: &str) -> Result<bool> {
        let (api, ar) = self.api(kind, ns)?;
        let dp = DeleteParams::foreground();
        match api.delete(name, &dp).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(Error::kube(
                format!("deleting {}", describe(kind, ns, name)),
                "delete",
                &ar.plural,
                ns,
                e,
            )),
        }
    }
}

fn to_json(o: DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

/// `Deployment shop/web`, or `ClusterRole sluice`.
pub fn describe(kind: &str, ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// `describe` for an object.
pub fn describe_obj(obj: &Value) -> String {
    describe(
        obj["kind"].as_str().unwrap_or("?"),
        obj["metadata"]["namespace"].as_str(),
        obj["metadata"]["name"].as_str().unwrap_or("?"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_written_is_known() {
        let app = crate::app::AppSpec {
            name: "a".into(),
            namespace: "shop".into(),
            image: "r.example/a:1".into(),
            replicas: 1,
            port: 80,
            host: None,
            path: "/".into(),
            strategy: crate::app::Strategy::RoundRobin,
            pull_secret: None,
        };
        let objs = crate::proxy::objects(&Default::default());
        for o in objs.iter().chain(app.objects().iter()) {
            let kind = o["kind"].as_str().unwrap();
            let (ar, namespaced) = resource(kind).unwrap();
            assert_eq!(ar.api_version, o["apiVersion"].as_str().unwrap(), "{kind}");
            assert_eq!(
                namespaced,
                o["metadata"].get("namespace").is_some(),
                "{kind}"
            );
        }
    }
}
