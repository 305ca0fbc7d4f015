//! The proxy's objects: what `helm install sluice charts/sluice --namespace
//! sluice-system` puts on a cluster at the chart's defaults, built here so
//! that `sluice-deploy up` can install the proxy without helm.
//!
//! The chart is the source of truth. A test renders it with `helm template`
//! and compares it with [`objects`]: kinds, names, images, ports, args,
//! RBAC rules, probes and LoadBalancer annotations must agree, so a change
//! to one without the other fails CI.

use serde_json::{json, Value};

/// The namespace `up` installs the proxy into.
pub const NAMESPACE: &str = "sluice-system";
/// The release name: every proxy object is called this.
pub const NAME: &str = "sluice";
/// The IngressClass the proxy serves and apps are given.
pub const INGRESS_CLASS: &str = "sluice";
/// `spec.controller` of Sluice's IngressClass.
pub const CONTROLLER: &str = "sluice.dev/ingress-controller";
/// The chart's `appVersion`, and so the proxy image's default tag.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The chart's default `image.repository`.
pub const IMAGE_REPOSITORY: &str = "ghcr.io/sluice-dev/sluice";
/// The label every object this tool manages carries.
pub const MANAGED_BY: &str = "sluice-deploy";

/// What can differ from the chart's defaults when `up` installs the proxy.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// The proxy image; the chart's default when `None`.
    pub image: Option<String>,
    pub replicas: u32,
    /// One value for both the LoadBalancer's PROXY annotation and the
    /// proxy's `--proxy-protocol`, as in the chart.
    pub proxy_protocol: bool,
    /// Image pull Secrets for the proxy's pods.
    pub pull_secrets: Vec<String>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            image: None,
            replicas: 2,
            proxy_protocol: true,
            pull_secrets: Vec::new(),
        }
    }
}

impl ProxyOptions {
    pub fn image(&self) -> String {
        self.image
            .clone()
            .unwrap_or_else(|| format!("{IMAGE_REPOSITORY}:{VERSION}"))
    }
}

/// The labels that select the proxy's pods.
pub fn selector_labels() -> Value {
    json!({
        "app.kubernetes.io/name": "sluice",
        "app.kubernetes.io/instance": NAME,
        "app.kubernetes.io/component": "controller",
    })
}

fn labels() -> Value {
    let mut l = selector_labels();
    l["app.kubernetes.io/managed-by"] = json!(MANAGED_BY);
    l["app.kubernetes.io/version"] = json!(VERSION);
    l
}

fn meta(name: &str, namespaced: bool) -> Value {
    let mut m = json!({"name": name, "labels": labels()});
    if namespaced {
        m["namespace"] = json!(NAMESPACE);
    }
    m
}

/// The proxy's config file, as the chart's ConfigMap holds it.
pub fn config_yaml() -> String {
    "listen:\n  - 0.0.0.0:8080\nlisten_tls:\n  - 0.0.0.0:8443\nadmin: 0.0.0.0:9901\n\
     access_log: text\ndrain_timeout: 30s\nshutdown_delay: 15s\n"
        .to_owned()
}

/// The proxy's command-line arguments, in the chart's order.
pub fn args(o: &ProxyOptions) -> Vec<String> {
    let mut a = vec![
        "serve".to_owned(),
        "--config=/etc/sluice/config.yaml".to_owned(),
        "--kube".to_owned(),
        format!("--ingress-class={INGRESS_CLASS}"),
        format!("--publish-service={NAMESPACE}/{NAME}"),
    ];
    if o.proxy_protocol {
        a.push("--proxy-protocol".to_owned());
    }
    a
}

/// The ClusterRole's rules: exactly what the README's RBAC section lists,
/// with ingresses/status for `--publish-service`.
pub fn cluster_rules() -> Value {
    json!([
        {"apiGroups": [""], "resources": ["services"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"], "verbs": ["list", "watch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["patch"]},
    ])
}

/// Every object of the proxy, the Namespace first, in apply order.
pub fn objects(o: &ProxyOptions) -> Vec<Value> {
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(NAME, true)});
    let subject = json!([{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]);
    let cluster_role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": meta(NAME, false), "rules": cluster_rules(),
    });
    let cluster_binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": meta(NAME, false),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
        "subjects": subject,
    });
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": meta(NAME, true),
        "rules": [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": [format!("sluice-status-{INGRESS_CLASS}")], "verbs": ["get", "update"]},
        ],
    });
    let role_binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": meta(NAME, true),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
        "subjects": subject,
    });
    let config = json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(NAME, true),
        "data": {"config.yaml": config_yaml()},
    });
    let mut pod_spec = json!({
        "serviceAccountName": NAME,
        "terminationGracePeriodSeconds": 60,
        "securityContext": {
            "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector_labels()},
        }],
        "containers": [{
            "name": "sluice",
            "image": o.image(),
            "imagePullPolicy": "IfNotPresent",
            "args": args(o),
            "ports": [
                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                {"name": "https", "containerPort": 8443, "protocol": "TCP"},
                {"name": "admin", "containerPort": 9901, "protocol": "TCP"},
            ],
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "admin"},
                "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3},
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "admin"},
                "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 2},
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
            "securityContext": {
                "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [{"name": "config", "mountPath": "/etc/sluice", "readOnly": true}],
        }],
        "volumes": [{"name": "config", "configMap": {"name": NAME}}],
    });
    if !o.pull_secrets.is_empty() {
        pod_spec["imagePullSecrets"] = o.pull_secrets.iter().map(|s| json!({"name": s})).collect();
    }
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(NAME, true),
        "spec": {
            "replicas": o.replicas,
            "selector": {"matchLabels": selector_labels()},
            "template": {"metadata": {"labels": selector_labels()}, "spec": pod_spec},
        },
    });
    let mut annotations = json!({
        "service.beta.kubernetes.io/do-loadbalancer-type": "REGIONAL",
        "service.beta.kubernetes.io/do-loadbalancer-http-idle-timeout-seconds": "600",
    });
    if o.proxy_protocol {
        annotations["service.beta.kubernetes.io/do-loadbalancer-enable-proxy-protocol"] =
            json!("true");
    }
    let mut svc_meta = meta(NAME, true);
    svc_meta["annotations"] = annotations;
    let service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": svc_meta,
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "selector": selector_labels(),
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"},
            ],
        },
    });
    let class = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": meta(INGRESS_CLASS, false),
        "spec": {"controller": CONTROLLER},
    });
    let mut objs = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}}}),
        sa,
        cluster_role,
        cluster_binding,
        role,
        role_binding,
        config,
        deployment,
        service,
        class,
    ];
    if o.replicas > 1 {
        objs.push(json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(NAME, true),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": selector_labels()}},
        }));
    }
    objs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_protocol_is_one_switch() {
        for on in [true, false] {
            let o = ProxyOptions {
                proxy_protocol: on,
                ..Default::default()
            };
            let objs = objects(&o);
            let svc = objs.iter().find(|o| o["kind"] == "Service").unwrap();
            let dep = objs.iter().find(|o| o["kind"] == "Deployment").unwrap();
            let annotated = svc["metadata"]["annotations"]
                .get("service.beta.kubernetes.io/do-loadbalancer-enable-proxy-protocol")
                .is_some();
            let flagged = dep["spec"]["template"]["spec"]["containers"][0]["args"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "--proxy-protocol");
            assert_eq!((annotated, flagged), (on, on));
        }
    }

    #[test]
    fn the_admin_port_is_never_on_the_load_balancer() {
        let objs = objects(&ProxyOptions::default());
        let svc = objs.iter().find(|o| o["kind"] == "Service").unwrap();
        let ports: Vec<&str> = svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["targetPort"].as_str().unwrap())
            .collect();
        assert_eq!(ports, ["http", "https"]);
    }

    #[test]
    fn the_config_parses_as_the_proxy_reads_it() {
        let v: serde_yaml::Value = serde_yaml::from_str(&config_yaml()).unwrap();
        assert_eq!(v["admin"].as_str(), Some("0.0.0.0:9901"));
    }
}
