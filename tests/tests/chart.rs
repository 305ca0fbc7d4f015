//! The Helm chart: `helm lint`, `helm template` at defaults and at the
//! value sets people use, every object parsed into its k8s-openapi type,
//! RBAC and ports asserted, the generated config checked by `sluice check`,
//! and the defaults compared with what `sluice-deploy render --with-proxy`
//! installs — one source of truth for the proxy's objects.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde_json::Value;
use sluice_integration::{deploy_bin, sluice_bin, workspace_root, TempDir};

/// helm, which `scripts/test.sh` installs when it is missing.
fn helm() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("helm"))
            .find(|f| f.is_file())
    });
    found.expect("helm is not on PATH: run ./scripts/test.sh, which installs it")
}

fn chart() -> String {
    workspace_root().join("charts/sluice").display().to_string()
}

/// `helm template sluice charts/sluice -n sluice-system ARGS…`: its
/// objects, or helm's error.
fn template(args: &[&str]) -> Result<Vec<Value>, String> {
    let chart = chart();
    let out = Command::new(helm())
        .args(["template", "sluice", &chart, "--namespace", "sluice-system"])
        .args(args)
        .output()
        .expect("helm runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(documents(&String::from_utf8_lossy(&out.stdout)))
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|d| {
            let v: Value = serde::Deserialize::deserialize(d).expect("valid YAML");
            (!v.is_null()).then_some(v)
        })
        .collect()
}

/// Every object parsed into its k8s-openapi type (which fails on a wrong
/// field type or shape), keyed by kind and name.
fn typed(objs: &[Value]) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for o in objs {
        let kind = o["kind"].as_str().expect("kind").to_owned();
        let name = o["metadata"]["name"].as_str().expect("name").to_owned();
        let parsed = match kind.as_str() {
            "Deployment" => serde_json::from_value::<Deployment>(o.clone()).map(|_| ()),
            "DaemonSet" => serde_json::from_value::<DaemonSet>(o.clone()).map(|_| ()),
            "Service" => serde_json::from_value::<Service>(o.clone()).map(|_| ()),
            "ServiceAccount" => serde_json::from_value::<ServiceAccount>(o.clone()).map(|_| ()),
            "ConfigMap" => serde_json::from_value::<ConfigMap>(o.clone()).map(|_| ()),
            "ClusterRole" => serde_json::from_value::<ClusterRole>(o.clone()).map(|_| ()),
            "ClusterRoleBinding" => {
                serde_json::from_value::<ClusterRoleBinding>(o.clone()).map(|_| ())
            }
            "Role" => serde_json::from_value::<Role>(o.clone()).map(|_| ()),
            "RoleBinding" => serde_json::from_value::<RoleBinding>(o.clone()).map(|_| ()),
            "IngressClass" => serde_json::from_value::<IngressClass>(o.clone()).map(|_| ()),
            "PodDisruptionBudget" => {
                serde_json::from_value::<PodDisruptionBudget>(o.clone()).map(|_| ())
            }
            "HorizontalPodAutoscaler" => {
                serde_json::from_value::<HorizontalPodAutoscaler>(o.clone()).map(|_| ())
            }
            "Namespace" => {
                serde_json::from_value::<k8s_openapi::api::core::v1::Namespace>(o.clone())
                    .map(|_| ())
            }
            // CRDs' kinds: no k8s-openapi type; their shape is asserted
            // below.
            "ServiceMonitor" | "GatewayClass" => Ok(()),
            other => panic!("unexpected kind {other}"),
        };
        if let Err(e) = parsed {
            panic!("{kind} {name} does not parse as a {kind}: {e}\n{o:#}");
        }
        assert!(
            out.insert((kind.clone(), name.clone()), o.clone())
                .is_none(),
            "{kind} {name} twice"
        );
    }
    out
}

fn get<'a>(objs: &'a BTreeMap<(String, String), Value>, kind: &str, name: &str) -> &'a Value {
    objs.get(&(kind.to_owned(), name.to_owned()))
        .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", objs.keys()))
}

fn kinds(objs: &BTreeMap<(String, String), Value>) -> Vec<&str> {
    let mut k: Vec<&str> = objs.keys().map(|(k, _)| k.as_str()).collect();
    k.dedup();
    k
}

fn rules(o: &Value) -> Vec<PolicyRule> {
    serde_json::from_value(o["rules"].clone()).unwrap()
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let s = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
    PolicyRule {
        api_groups: s(groups),
        resources: s(resources),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn pod_spec(workload: &Value) -> PodSpec {
    serde_json::from_value(workload["spec"]["template"]["spec"].clone()).unwrap()
}

fn args(workload: &Value) -> Vec<String> {
    pod_spec(workload).containers[0]
        .args
        .clone()
        .unwrap_or_default()
}

#[test]
fn helm_lint_passes_strict() {
    let out = Command::new(helm())
        .args(["lint", "--strict", &chart()])
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm lint failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn defaults_render_least_privilege_rbac_and_only_traffic_ports_on_the_load_balancer() {
    let objs = typed(&template(&[]).unwrap());
    assert_eq!(
        kinds(&objs),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "IngressClass",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    // Exactly the README's RBAC: no pods (pod weights are off), status and
    // Lease for --publish-service.
    assert_eq!(
        rules(get(&objs, "ClusterRole", "sluice")),
        vec![
            rule(&[""], &["services"], &["list", "watch"]),
            rule(&[""], &["secrets"], &["list", "watch"]),
            rule(
                &["discovery.k8s.io"],
                &["endpointslices"],
                &["list", "watch"]
            ),
            rule(
                &["networking.k8s.io"],
                &["ingresses", "ingressclasses"],
                &["list", "watch"]
            ),
            rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
            rule(&["networking.k8s.io"], &["ingresses/status"], &["patch"]),
        ]
    );
    let role = rules(get(&objs, "Role", "sluice"));
    assert_eq!(
        role[0],
        rule(&["coordination.k8s.io"], &["leases"], &["create"])
    );
    assert_eq!(
        role[1].resource_names.as_deref(),
        Some(&["sluice-status-sluice".to_owned()][..])
    );
    assert_eq!(role[1].verbs, ["get", "update"]);
    assert_eq!(
        get(&objs, "Role", "sluice")["metadata"]["namespace"],
        "sluice-system"
    );

    // The LoadBalancer: 80 and 443 only, Local policy, the DigitalOcean
    // annotations, no health-check override.
    let svc: Service = serde_json::from_value(get(&objs, "Service", "sluice").clone()).unwrap();
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
    let ports: Vec<(i32, String)> = spec
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.port, format!("{:?}", p.target_port)))
        .collect();
    assert_eq!(
        ports,
        [
            (80, "Some(String(\"http\"))".to_owned()),
            (443, "Some(String(\"https\"))".to_owned())
        ]
    );
    let ann = svc.metadata.annotations.unwrap();
    assert_eq!(
        ann.get("service.beta.kubernetes.io/do-loadbalancer-enable-proxy-protocol")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        ann.get("service.beta.kubernetes.io/do-loadbalancer-type")
            .map(String::as_str),
        Some("REGIONAL")
    );
    assert!(
        !ann.keys()
            .any(|k| k.contains("health-check") || k.contains("healthcheck")),
        "the health check must follow kube-proxy's node port, not an override: {ann:?}"
    );

    // The pod: probes on the admin port, hardened, drained in time.
    let dep = get(&objs, "Deployment", "sluice");
    assert_eq!(dep["spec"]["replicas"], 2);
    let pod = pod_spec(dep);
    let c = &pod.containers[0];
    let a = args(dep);
    assert!(a.contains(&"--proxy-protocol".to_owned()), "{a:?}");
    assert!(
        a.contains(&"--publish-service=sluice-system/sluice".to_owned()),
        "{a:?}"
    );
    assert!(a.contains(&"--kube".to_owned()), "{a:?}");
    let probe = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let g = p.as_ref().unwrap().http_get.as_ref().unwrap();
        (g.path.clone().unwrap(), format!("{:?}", g.port))
    };
    assert_eq!(
        probe(&c.liveness_probe),
        ("/healthz".into(), "String(\"admin\")".into())
    );
    assert_eq!(
        probe(&c.readiness_probe),
        ("/readyz".into(), "String(\"admin\")".into())
    );
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_owned()][..])
    );
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
    assert!(pod.termination_grace_period_seconds.unwrap() > 45);
    assert_eq!(
        pod.topology_spread_constraints.as_ref().unwrap()[0].topology_key,
        "kubernetes.io/hostname"
    );
    assert_eq!(
        get(&objs, "IngressClass", "sluice")["spec"]["controller"],
        "sluice.dev/ingress-controller"
    );
}

#[test]
fn the_generated_config_is_one_sluice_accepts() {
    let objs = typed(
        &template(&[
            "--set",
            "controller.proxyProtocol.trustedCIDRs={10.10.0.0/16}",
        ])
        .unwrap(),
    );
    let cm = get(&objs, "ConfigMap", "sluice");
    let config = cm["data"]["config.yaml"].as_str().unwrap();
    assert!(config.contains("10.10.0.0/16"), "{config}");
    let dir = TempDir::new();
    let path = dir.0.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(sluice_bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sluice check refused the chart's config:\n{config}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What holds at every value set: the LoadBalancer carries 80 and 443
/// only, and the ClusterRole asks for nothing beyond the README's list.
fn invariants(set: &str, objs: &BTreeMap<(String, String), Value>) {
    let svc = get(objs, "Service", "sluice");
    let ports: Vec<(u64, &str)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_u64().unwrap(),
                p["targetPort"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [(80, "http"), (443, "https")],
        "{set}: LoadBalancer ports"
    );
    let allowed = [
        rule(&[""], &["services"], &["list", "watch"]),
        rule(&[""], &["secrets"], &["list", "watch"]),
        rule(
            &["discovery.k8s.io"],
            &["endpointslices"],
            &["list", "watch"],
        ),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "ingressclasses"],
            &["list", "watch"],
        ),
        rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
        rule(&["networking.k8s.io"], &["ingresses/status"], &["patch"]),
        rule(&[""], &["pods"], &["list", "watch"]),
    ]
    .into_iter()
    .chain(gateway_rules())
    .collect::<Vec<_>>();
    for r in rules(get(objs, "ClusterRole", "sluice")) {
        assert!(allowed.contains(&r), "{set}: unexpected rule {r:?}");
    }
}

/// The rules `controller.gatewayAPI.enabled` adds: reading the kinds,
/// their status (with publishService), namespaces (watching all).
fn gateway_rules() -> [PolicyRule; 3] {
    [
        rule(
            &["gateway.networking.k8s.io"],
            &[
                "gatewayclasses",
                "gateways",
                "httproutes",
                "grpcroutes",
                "referencegrants",
            ],
            &["list", "watch"],
        ),
        rule(
            &["gateway.networking.k8s.io"],
            &[
                "gatewayclasses/status",
                "gateways/status",
                "httproutes/status",
                "grpcroutes/status",
            ],
            &["patch"],
        ),
        rule(&[""], &["namespaces"], &["list", "watch"]),
    ]
}

#[test]
fn every_value_set_keeps_the_admin_port_off_and_rbac_least() {
    for set in [
        &[][..],
        &["--set", "controller.kind=DaemonSet"][..],
        &["--set", "controller.autoscaling.enabled=true"][..],
        &["--set", "controller.metrics.serviceMonitor.enabled=true"][..],
        &["--set", "controller.proxyProtocol.enabled=false"][..],
        &["--set", "controller.podWeights=true"][..],
        &["--set", "controller.publishService.enabled=false"][..],
        &["--set", "grafana.dashboard.enabled=true"][..],
        &["--set", "controller.gatewayAPI.enabled=true"][..],
    ] {
        let objs = typed(&template(set).unwrap());
        invariants(&format!("{set:?}"), &objs);
    }
}

#[test]
fn value_sets_render_what_they_say() {
    // DaemonSet: no Deployment, no replicas.
    let objs = typed(&template(&["--set", "controller.kind=DaemonSet"]).unwrap());
    assert!(kinds(&objs).contains(&"DaemonSet") && !kinds(&objs).contains(&"Deployment"));
    assert!(get(&objs, "DaemonSet", "sluice")["spec"]
        .get("replicas")
        .is_none());

    // HPA: the Deployment leaves replicas to it.
    let objs = typed(&template(&["--set", "controller.autoscaling.enabled=true"]).unwrap());
    let hpa: HorizontalPodAutoscaler =
        serde_json::from_value(get(&objs, "HorizontalPodAutoscaler", "sluice").clone()).unwrap();
    let hspec = hpa.spec.unwrap();
    assert_eq!(hspec.scale_target_ref.kind, "Deployment");
    assert!(hspec.max_replicas >= hspec.min_replicas.unwrap_or(1));
    assert!(get(&objs, "Deployment", "sluice")["spec"]
        .get("replicas")
        .is_none());

    // ServiceMonitor: scrapes the admin port through a ClusterIP Service,
    // never the LoadBalancer.
    let objs =
        typed(&template(&["--set", "controller.metrics.serviceMonitor.enabled=true"]).unwrap());
    let sm = get(&objs, "ServiceMonitor", "sluice");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "admin");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    let metrics = get(&objs, "Service", "sluice-metrics");
    assert_eq!(metrics["spec"]["type"], "ClusterIP");
    assert_eq!(metrics["spec"]["ports"][0]["targetPort"], "admin");
    let lb = get(&objs, "Service", "sluice");
    assert!(lb["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["targetPort"] != "admin"));

    // PROXY protocol off: both sides at once.
    let objs = typed(&template(&["--set", "controller.proxyProtocol.enabled=false"]).unwrap());
    let ann = &get(&objs, "Service", "sluice")["metadata"]["annotations"];
    assert!(ann
        .get("service.beta.kubernetes.io/do-loadbalancer-enable-proxy-protocol")
        .is_none());
    assert!(!args(get(&objs, "Deployment", "sluice")).contains(&"--proxy-protocol".to_owned()));

    // Pod weights: pods, list and watch (metadata is all Sluice asks for).
    let objs = typed(&template(&["--set", "controller.podWeights=true"]).unwrap());
    assert!(rules(get(&objs, "ClusterRole", "sluice")).contains(&rule(
        &[""],
        &["pods"],
        &["list", "watch"]
    )));

    // publishService off: no Lease, no status writes.
    let objs = typed(&template(&["--set", "controller.publishService.enabled=false"]).unwrap());
    assert!(!kinds(&objs).contains(&"Role"));
    assert!(!rules(get(&objs, "ClusterRole", "sluice")).iter().any(|r| r
        .resources
        .as_ref()
        .unwrap()
        .contains(&"ingresses/status".to_owned())));

    // The dashboard: a ConfigMap Grafana's sidecar picks up, valid JSON
    // asking for the metrics Sluice exports.
    let objs = typed(&template(&["--set", "grafana.dashboard.enabled=true"]).unwrap());
    let dash = get(&objs, "ConfigMap", "sluice-dashboard");
    let json = dash["data"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    let parsed: Value = serde_json::from_str(json).expect("the dashboard is JSON");
    let text = parsed.to_string();
    for metric in [
        "sluice_requests_total",
        "sluice_request_duration_seconds_bucket",
        "sluice_upstream_endpoints",
        "sluice_config_reloads_total",
    ] {
        assert!(text.contains(metric), "the dashboard lacks {metric}");
    }

    // Gateway API: the flag, our GatewayClass, read RBAC on its kinds,
    // status with publishService, namespaces' labels when all are watched.
    let gateway_rules = gateway_rules();
    let objs = typed(&template(&["--set", "controller.gatewayAPI.enabled=true"]).unwrap());
    let class = get(&objs, "GatewayClass", "sluice");
    assert_eq!(class["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(
        class["spec"]["controllerName"],
        "sluice.dev/gateway-controller"
    );
    assert!(args(get(&objs, "Deployment", "sluice")).contains(&"--gateway-class=sluice".to_owned()));
    let granted = rules(get(&objs, "ClusterRole", "sluice"));
    for r in &gateway_rules {
        assert!(granted.contains(r), "{r:?} missing from {granted:?}");
    }
    let objs = typed(
        &template(&[
            "--set",
            "controller.gatewayAPI.enabled=true",
            "--set",
            "controller.watchNamespace=shop",
            "--set",
            "controller.publishService.enabled=false",
            "--set",
            "controller.gatewayAPI.gatewayClass.create=false",
            "--set",
            "controller.gatewayAPI.gatewayClass.name=edge",
        ])
        .unwrap(),
    );
    assert!(!kinds(&objs).contains(&"GatewayClass"));
    assert!(args(get(&objs, "Deployment", "sluice")).contains(&"--gateway-class=edge".to_owned()));
    let granted = rules(get(&objs, "ClusterRole", "sluice"));
    assert!(granted.contains(&gateway_rules[0]));
    assert!(!granted.contains(&gateway_rules[1]), "no status writes");
    assert!(!granted.contains(&gateway_rules[2]), "no namespaces");
    // Off (the default): none of it.
    let objs = typed(&template(&[]).unwrap());
    assert!(!kinds(&objs).contains(&"GatewayClass"));
    assert!(!args(get(&objs, "Deployment", "sluice"))
        .iter()
        .any(|a| a.starts_with("--gateway-class")));

    // A hostname for in-cluster clients (cert-manager's self-check).
    let objs = typed(
        &template(&[
            "--set",
            "controller.service.digitalocean.hostname=lb.example.com",
        ])
        .unwrap(),
    );
    assert_eq!(
        get(&objs, "Service", "sluice")["metadata"]["annotations"]
            ["service.beta.kubernetes.io/do-loadbalancer-hostname"],
        "lb.example.com"
    );
}

#[test]
fn a_wrong_value_type_fails_with_a_clear_message() {
    let err = template(&["--set", "controller.replicaCount=two"]).unwrap_err();
    assert!(err.contains("replicaCount"), "{err}");
    let err = template(&["--set", "controller.replicas=3"]).unwrap_err();
    assert!(err.contains("replicas"), "{err}");
    let err = template(&["--set", "controller.kind=StatefulSet"]).unwrap_err();
    assert!(err.contains("DaemonSet"), "{err}");
    // Combinations that would install something broken are refused.
    let err = template(&["--set", "serviceAccount.create=false"]).unwrap_err();
    assert!(err.contains("serviceAccount.name is required"), "{err}");
    let err = template(&["--set", "controller.watchNamespace=shop"]).unwrap_err();
    assert!(err.contains("--publish-service"), "{err}");
    assert!(template(&[
        "--set",
        "controller.watchNamespace=shop",
        "--set",
        "controller.publishService.enabled=false"
    ])
    .is_ok());
}

/// The chart at defaults and `sluice-deploy render --with-proxy`: the same
/// objects, field for field, but for who manages them.
#[test]
fn the_chart_and_sluice_deploy_install_the_same_proxy() {
    let chart = typed(&template(&[]).unwrap());
    let out = Command::new(deploy_bin())
        .args(["render", "--with-proxy"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = typed(&documents(&String::from_utf8_lossy(&out.stdout)));
    let without_ns: Vec<_> = rendered.keys().filter(|(k, _)| k != "Namespace").collect();
    assert_eq!(
        chart.keys().collect::<Vec<_>>(),
        without_ns,
        "different objects"
    );
    for (key, c) in &chart {
        let mut c = c.clone();
        let mut d = rendered[key].clone();
        for v in [&mut c, &mut d] {
            // Who manages an object is the one difference allowed.
            v["metadata"].as_object_mut().unwrap().remove("labels");
            // The config file is compared as what it says, not its layout.
            if let Some(cfg) = v["data"].get("config.yaml").and_then(Value::as_str) {
                let parsed: Value = serde_yaml::from_str(cfg).unwrap();
                v["data"]["config.yaml"] = parsed;
            }
        }
        assert_eq!(
            c, d,
            "{key:?} differs between the chart (left) and sluice-deploy (right)"
        );
    }
}

/// The chart's own pod arguments and config file, run against the tests'
/// API server: Sluice gets ready, serves an Ingress of class `sluice` to a
/// client coming through a PROXY-protocol LoadBalancer (curl's
/// `--haproxy-protocol`), refuses one without the header, and publishes
/// the LoadBalancer's address into the Ingress's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_pod_serves_ingresses_through_a_proxy_protocol_load_balancer() {
    use serde_json::json;
    use sluice_integration::kube_api::KubeApi;
    use sluice_integration::{get as http_get, wait_until, Backend, Sluice};
    use std::time::Duration;

    let objs = typed(&template(&[]).unwrap());
    let dep = get(&objs, "Deployment", "sluice");
    let config = get(&objs, "ConfigMap", "sluice")["data"]["config.yaml"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = TempDir::new();
    let config_path = dir.0.join("config.yaml");
    std::fs::write(&config_path, config).unwrap();
    let config_arg = format!("--config={}", config_path.display());

    let api = KubeApi::start().await;
    let backend = Backend::start("shop-pod").await;
    api.apply(
        json!({"kind": "IngressClass", "metadata": {"name": "sluice"},
        "spec": {"controller": "sluice.dev/ingress-controller"}}),
    );
    api.apply(
        json!({"kind": "Service", "metadata": {"name": "sluice", "namespace": "sluice-system"},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}),
    );
    api.apply(
        json!({"kind": "Service", "metadata": {"name": "shop", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
    );
    api.apply(json!({"kind": "EndpointSlice",
        "metadata": {"name": "shop-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "shop"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": backend.addr.port(), "protocol": "TCP"}],
        "endpoints": [{"addresses": [backend.addr.ip().to_string()], "conditions": {"ready": true}}]}));
    api.apply(json!({"kind": "Ingress", "metadata": {"name": "shop", "namespace": "default"},
        "spec": {"ingressClassName": "sluice", "rules": [{"host": "shop.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "shop", "port": {"name": "http"}}}}]}}]}}));

    // The chart's arguments, with the config at this test's path, the
    // listeners on free loopback ports, and the test's kubeconfig.
    let kc = api.kubeconfig().display().to_string();
    let chart_args = args(dep);
    assert_eq!(chart_args[0], "serve");
    let mut run: Vec<String> = chart_args[1..]
        .iter()
        .map(|a| {
            if a.starts_with("--config=") {
                config_arg.clone()
            } else {
                a.clone()
            }
        })
        .collect();
    run.extend([
        "--kubeconfig".into(),
        kc,
        "--listen-tls".into(),
        "{LISTEN_TLS}".into(),
    ]);
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    let proxy = Sluice::serve(&run).await;
    assert_eq!(http_get(proxy.admin, "/readyz").await.unwrap().0, 200);

    let url = format!("http://{}/", proxy.listen);
    let through_lb = || {
        let url = url.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new("curl")
                    .args([
                        "-s",
                        "--max-time",
                        "5",
                        "--haproxy-protocol",
                        "-H",
                        "Host: shop.example.com",
                        &url,
                    ])
                    .output()
                    .expect("curl runs")
            })
            .await
            .unwrap()
        }
    };
    wait_until(
        "the Ingress to route through the PROXY listener",
        Duration::from_secs(30),
        || async { String::from_utf8_lossy(&through_lb().await.stdout).contains("shop-pod") },
    )
    .await;
    // Without the header the listener closes the connection: the two sides
    // of the one PROXY value must agree.
    assert!(
        http_get(proxy.listen, "/").await.is_err(),
        "a request without a PROXY header was served"
    );

    // --publish-service=sluice-system/sluice: the address lands in status.
    wait_until(
        "the Ingress status to name the LoadBalancer",
        Duration::from_secs(30),
        || async {
            api.get("Ingress", "default", "shop")
                .is_some_and(|i| i["status"]["loadBalancer"]["ingress"][0]["ip"] == "203.0.113.7")
        },
    )
    .await;
}

/// What the chart refuses to render, the binary refuses too: a published
/// Service outside the one namespace watched could never be read.
#[test]
fn sluice_refuses_a_published_service_it_could_not_watch() {
    let out = Command::new(sluice_bin())
        .args([
            "serve",
            "--kube",
            "--namespace",
            "shop",
            "--publish-service",
            "sluice-system/sluice",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--publish-service sluice-system/sluice is outside --namespace shop"),
        "{stderr}"
    );
}
