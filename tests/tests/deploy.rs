//! `sluice-deploy` against the tests' Kubernetes API server: server-side
//! apply, rollouts the fake completes or never completes, scale, status,
//! down, a 403, no cluster at all, and `up` end to end through a real
//! Sluice to a real backend.

use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};
use sluice_integration::kube_api::{KubeApi, Rollouts};
use sluice_integration::*;

/// Runs `sluice-deploy --kubeconfig KC ARGS…` off the runtime's threads
/// (the API server runs on them).
async fn deploy(api: Option<&KubeApi>, args: &[&str]) -> Output {
    let mut full: Vec<String> = Vec::new();
    if let Some(api) = api {
        full.push("--kubeconfig".into());
        full.push(api.kubeconfig().display().to_string());
    }
    full.extend(args.iter().map(|s| s.to_string()));
    let bin = deploy_bin();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(&full)
            .env("NO_COLOR", "1")
            .output()
            .expect("sluice-deploy runs")
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const UP: &[&str] = &[
    "up",
    "--name",
    "shop",
    "--image",
    "registry.example.com/team/shop:1.0",
    "--replicas",
    "2",
    "--port",
    "8000",
    "--host",
    "shop.example.com",
    "--strategy",
    "ip-hash",
    "--timeout",
    "20s",
    "--no-probe",
];

/// An API server whose Deployments roll out and whose LoadBalancers get
/// 127.0.0.1.
async fn cluster() -> KubeApi {
    let api = KubeApi::start().await;
    api.require_namespaces();
    api.set_rollouts(Rollouts::Complete);
    api.set_lb_address(Some("127.0.0.1"));
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_installs_the_proxy_and_the_app_and_a_second_up_changes_nothing() {
    let api = cluster().await;
    let out = deploy(Some(&api), UP).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "up failed:\n{stdout}\n{stderr}");
    println!("{stdout}");

    // The app: Deployment, ClusterIP Service, Ingress of class sluice with
    // the strategy.
    let dep = api
        .get("Deployment", "default", "shop")
        .expect("Deployment");
    assert_eq!(dep["spec"]["replicas"], 2);
    let container = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example.com/team/shop:1.0");
    assert_eq!(container["ports"][0]["containerPort"], 8000);
    let svc = api.get("Service", "default", "shop").expect("Service");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    let ing = api.get("Ingress", "default", "shop").expect("Ingress");
    assert_eq!(ing["spec"]["ingressClassName"], "sluice");
    assert_eq!(
        ing["metadata"]["annotations"]["sluice.dev/load-balance"],
        "ip-hash"
    );
    assert_eq!(ing["spec"]["rules"][0]["host"], "shop.example.com");

    // The proxy, installed because no controller served class sluice.
    for (kind, ns, name) in [
        ("Namespace", "", "sluice-system"),
        ("Deployment", "sluice-system", "sluice"),
        ("Service", "sluice-system", "sluice"),
        ("ClusterRole", "", "sluice"),
        ("ClusterRoleBinding", "", "sluice"),
        ("IngressClass", "", "sluice"),
        ("ConfigMap", "sluice-system", "sluice"),
    ] {
        assert!(
            api.get(kind, ns, name).is_some(),
            "{kind} {ns}/{name} missing"
        );
    }
    let lb = api.get("Service", "sluice-system", "sluice").unwrap();
    assert_eq!(lb["spec"]["type"], "LoadBalancer");

    // Every write was a server-side apply by sluice-deploy.
    let managers = api.field_managers();
    assert!(!managers.is_empty());
    assert!(
        managers.iter().all(|m| m == "sluice-deploy"),
        "{managers:?}"
    );

    // It says where the app is and how to reach it.
    assert!(
        stdout.contains("LoadBalancer address: 127.0.0.1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("curl -H 'Host: shop.example.com' http://127.0.0.1/"),
        "{stdout}"
    );
    assert!(stdout.contains("pods ready 2/2"), "{stdout}");

    // The same again: nothing written, and it says so.
    let writes = api.writes();
    let out = deploy(Some(&api), UP).await;
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "second up failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(
        api.writes(),
        writes,
        "a second identical up wrote something"
    );
    assert!(stdout.contains("nothing changed"), "{stdout}");
    assert!(
        stdout.contains("found in namespace sluice-system"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_status_and_down() {
    let api = cluster().await;
    assert!(deploy(Some(&api), UP).await.status.success());
    api.apply(json!({"kind": "EndpointSlice",
        "metadata": {"name": "shop-abc", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "shop"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8000}],
        "endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
            {"addresses": ["10.0.0.2"], "conditions": {"ready": true}},
            {"addresses": ["10.0.0.3"], "conditions": {"ready": false}}]}));

    let out = deploy(
        Some(&api),
        &["scale", "shop", "--replicas", "4", "--timeout", "20s"],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "scale failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("pods ready 4/4"), "{stdout}");
    assert_eq!(
        api.get("Deployment", "default", "shop").unwrap()["spec"]["replicas"],
        4
    );

    let out = deploy(Some(&api), &["status", "shop", "--output", "json"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "status failed:\n{stdout}\n{stderr}");
    let s: Value = serde_json::from_str(&stdout).expect("status --output json is JSON");
    let app = &s["apps"][0];
    assert_eq!(app["name"], "shop");
    assert_eq!(app["replicas"], 4);
    assert_eq!(app["ready"], 4);
    assert_eq!(app["endpoints"], 2, "ready endpoints only");
    assert_eq!(app["strategy"], "ip-hash");
    assert_eq!(app["host"], "shop.example.com");
    assert_eq!(s["proxy"]["address"], "127.0.0.1");
    assert_eq!(s["proxy"]["healthy"], true);
    assert_eq!(s["proxy"]["installed_by"], "sluice-deploy");

    // `up` without --replicas keeps what `scale` set.
    let keep: Vec<&str> = UP
        .iter()
        .copied()
        .filter(|a| *a != "--replicas" && *a != "2")
        .collect();
    let out = deploy(Some(&api), &keep).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        api.get("Deployment", "default", "shop").unwrap()["spec"]["replicas"],
        4
    );

    let out = deploy(Some(&api), &["status"]).await;
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("default/shop") && stdout.contains("4/4 ready"),
        "{stdout}"
    );

    // Another team's Ingress of class sluice: the app goes, the proxy stays.
    api.apply(
        json!({"kind": "Ingress", "metadata": {"name": "other", "namespace": "team"},
        "spec": {"ingressClassName": "sluice", "rules": [{"host": "other.example.com"}]}}),
    );
    let out = deploy(Some(&api), &["down", "shop", "--with-proxy"]).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("still serves team/other"), "{stderr}");
    assert!(api.get("Deployment", "default", "shop").is_none());
    assert!(api.get("Deployment", "sluice-system", "sluice").is_some());
    api.delete("Ingress", "team", "other");

    // What sluice-deploy did not make, it does not delete.
    api.apply(
        json!({"kind": "Deployment", "metadata": {"name": "legacy", "namespace": "default"},
        "spec": {"replicas": 1}}),
    );
    let out = deploy(Some(&api), &["down", "legacy"]).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("Deployment default/legacy was not made by sluice-deploy"),
        "{stderr}"
    );
    assert!(api.get("Deployment", "default", "legacy").is_some());

    let out = deploy(Some(&api), &["down", "shop", "--with-proxy"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "down failed:\n{stdout}\n{stderr}");
    for (kind, ns, name) in [
        ("Deployment", "default", "shop"),
        ("Service", "default", "shop"),
        ("Ingress", "default", "shop"),
        ("Deployment", "sluice-system", "sluice"),
        ("ClusterRole", "", "sluice"),
        ("IngressClass", "", "sluice"),
        ("Namespace", "", "sluice-system"),
    ] {
        assert!(
            api.get(kind, ns, name).is_none(),
            "{kind} {ns}/{name} left behind"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_that_never_finishes_times_out_with_the_pods_reason() {
    let cases = [
        (
            Rollouts::Stuck {
                reason: "ImagePullBackOff".into(),
                message: "Back-off pulling image \"registry.example.com/team/shop:nope\"".into(),
            },
            ["ImagePullBackOff (container shop)", "check the image name"],
        ),
        (
            Rollouts::Stuck {
                reason: "CrashLoopBackOff".into(),
                message: "back-off 40s restarting failed container=shop".into(),
            },
            ["CrashLoopBackOff (container shop)", "kubectl logs"],
        ),
        (
            Rollouts::Unschedulable {
                message: "0/3 nodes are available: 3 Insufficient cpu.".into(),
            },
            [
                "Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.",
                "add nodes",
            ],
        ),
    ];
    for (rollout, expect) in cases {
        let api = cluster().await;
        api.set_rollouts(rollout);
        let mut args: Vec<&str> = UP.to_vec();
        let t = args.iter().position(|a| *a == "20s").unwrap();
        args[t] = "2s";
        let out = deploy(Some(&api), &args).await;
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
        assert!(
            stderr.contains("Deployment default/shop did not become ready within 2s"),
            "{stderr}"
        );
        assert!(stderr.contains("0/2 pods ready"), "{stderr}");
        for e in expect {
            assert!(stderr.contains(e), "{e:?} missing from: {stderr}");
        }
        assert!(stdout.contains("✗ rollout of shop: timed out"), "{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_names_the_verb_and_the_resource() {
    let api = cluster().await;
    api.forbid("patch", "deployments");
    let out = deploy(Some(&api), UP).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("forbidden: your credentials may not patch deployments in namespace"),
        "{stderr}"
    );
    assert!(stderr.contains("ask a cluster admin"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cluster_and_bad_input_say_what_to_do() {
    // A kubeconfig whose server does not answer.
    let dir = TempDir::new();
    let kc = dir.0.join("kubeconfig");
    let dead = free_addr();
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{dead}\n\
             users:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n\
             current-context: c\n"
        ),
    )
    .unwrap();
    let kc = kc.display().to_string();
    let mut args = vec!["--kubeconfig", &kc];
    args.extend_from_slice(UP);
    let out = deploy(None, &args).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no cluster reachable"), "{stderr}");
    assert!(stderr.contains(&dead.to_string()), "{stderr}");

    // Input refused before anything is touched.
    let api = cluster().await;
    for (bad, expect) in [
        (["--image", "Not A Reference!"], "invalid image reference"),
        (
            ["--name", "Shop_App"],
            "--name \"Shop_App\" is not a valid name",
        ),
        (["--path", "shop"], "--path \"shop\" must start with /"),
    ] {
        let mut args: Vec<&str> = UP.to_vec();
        match args.iter().position(|a| *a == bad[0]) {
            Some(i) => args[i + 1] = bad[1],
            None => args.extend_from_slice(&bad),
        }
        let out = deploy(Some(&api), &args).await;
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(stderr.contains(expect), "{bad:?}: {stderr}");
    }
    assert_eq!(api.writes(), 0, "bad input wrote to the cluster");
}

/// A Sluice controller as `helm install` leaves it, seen from the API: our
/// IngressClass, and the chart's LoadBalancer Service (whose http port is
/// where the test's real Sluice listens).
fn helm_installed(api: &KubeApi, http: SocketAddr) {
    let labels = json!({"app.kubernetes.io/name": "sluice", "app.kubernetes.io/instance": "sluice",
        "app.kubernetes.io/component": "controller", "app.kubernetes.io/managed-by": "Helm"});
    api.apply(json!({"kind": "IngressClass",
        "metadata": {"name": "sluice", "labels": labels},
        "spec": {"controller": "sluice.dev/ingress-controller"}}));
    api.apply(json!({"kind": "Deployment",
        "metadata": {"name": "sluice", "namespace": "sluice-system", "labels": labels, "generation": 1},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                   "readyReplicas": 1, "availableReplicas": 1}}));
    api.apply(json!({"kind": "Service",
        "metadata": {"name": "sluice", "namespace": "sluice-system", "labels": labels},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                 "selector": {"app.kubernetes.io/name": "sluice", "app.kubernetes.io/instance": "sluice",
                              "app.kubernetes.io/component": "controller"},
                 "ports": [{"name": "http", "port": http.port(), "targetPort": "http"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": http.ip().to_string()}]}}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_uses_a_helm_installed_proxy_and_a_request_goes_through_it() {
    let api = KubeApi::start().await;
    api.set_rollouts(Rollouts::Complete);
    let kc = api.kubeconfig().display().to_string();
    let proxy = Sluice::serve(&["--kube", "--kubeconfig", &kc, "--kube-debounce", "20ms"]).await;
    helm_installed(&api, proxy.listen);
    let backend = Backend::start("shop-pod").await;

    // The cluster's EndpointSlice controller: once the app's Service is
    // there, its pod (the backend) is an endpoint.
    let endpoints = async {
        let addr = backend.addr;
        for _ in 0..1500 {
            if api.get("Service", "default", "shop").is_some() {
                api.apply(json!({"kind": "EndpointSlice",
                    "metadata": {"name": "shop-1", "namespace": "default",
                                 "labels": {"kubernetes.io/service-name": "shop"}},
                    "addressType": "IPv4",
                    "ports": [{"name": "http", "port": addr.port(), "protocol": "TCP"}],
                    "endpoints": [{"addresses": [addr.ip().to_string()],
                                   "conditions": {"ready": true}}]}));
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let args: Vec<&str> = UP.iter().copied().filter(|a| *a != "--no-probe").collect();
    let (out, ()) = tokio::join!(deploy(Some(&api), &args), endpoints);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "up failed:\n{stdout}\n{stderr}");
    println!("{stdout}");
    assert!(
        stdout.contains("found in namespace sluice-system (installed by Helm)"),
        "{stdout}"
    );
    // Nothing of the proxy was installed a second time.
    assert!(api.get("ClusterRole", "", "sluice").is_none());
    assert!(api.get("ConfigMap", "sluice-system", "sluice").is_none());
    // The request through the LoadBalancer reached the app's pod.
    assert!(
        stdout.contains("one request through it: 200, shop-pod"),
        "{stdout}"
    );
    assert!(backend.hits() >= 1);

    // down --with-proxy leaves a Helm release alone and says how to remove it.
    let out = deploy(Some(&api), &["down", "shop", "--with-proxy"]).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("helm uninstall sluice --namespace sluice-system"),
        "{stderr}"
    );
    assert!(api.get("IngressClass", "", "sluice").is_some());
}

/// The fake API's credentials: base64 of user:password, read-write and
/// read-only.
const PUSH_AUTH: &str = "cHVzaGVyOnJlYWQtd3JpdGU=";
const PULL_AUTH: &str = "cHVsbGVyOnJlYWQtb25seQ==";

/// DigitalOcean's API as `registry-login` uses it, on 127.0.0.1: the
/// account's registry and its docker credentials, for one token.
async fn fake_digitalocean(token: &'static str, registry: Option<&'static str>) -> SocketAddr {
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use std::sync::{Arc, Mutex};

    let registry = Arc::new(Mutex::new(registry.map(str::to_owned)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let registry = registry.clone();
                    async move {
                        let authorized = req
                            .headers()
                            .get("authorization")
                            .is_some_and(|v| v.as_bytes() == format!("Bearer {token}").as_bytes());
                        let path = req.uri().path().to_owned();
                        let query = req.uri().query().unwrap_or("").to_owned();
                        let method = req.method().clone();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let current = registry.lock().unwrap().clone();
                        let (code, body) = if !authorized {
                            (
                                401,
                                json!({"id": "unauthorized", "message": "Unable to authenticate you"}),
                            )
                        } else if path == "/v2/registry" && method == http::Method::POST {
                            let asked: Value = serde_json::from_slice(&body).unwrap();
                            assert_eq!(asked["subscription_tier_slug"], "starter");
                            let name = asked["name"].as_str().unwrap().to_owned();
                            *registry.lock().unwrap() = Some(name.clone());
                            (201, json!({"registry": {"name": name}}))
                        } else if path == "/v2/registry" {
                            match current {
                                Some(name) => {
                                    (200, json!({"registry": {"name": name, "region": "fra1"}}))
                                }
                                None => (
                                    404,
                                    json!({"id": "not_found", "message": "registry not found"}),
                                ),
                            }
                        } else if path == "/v2/registry/docker-credentials" && current.is_some() {
                            // Read-write to push with, read-only for the cluster.
                            let auth = if query.contains("read_write=true") {
                                PUSH_AUTH
                            } else {
                                PULL_AUTH
                            };
                            (
                                200,
                                json!({"auths": {"registry.digitalocean.com": {"auth": auth}}}),
                            )
                        } else {
                            (404, json!({"id": "not_found", "message": "not found"}))
                        };
                        let resp = http::Response::builder()
                            .status(code)
                            .header("content-type", "application/json")
                            .body(Full::new(bytes::Bytes::from(body.to_string())))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Runs `sluice-deploy` with an environment of its own.
async fn deploy_env(api: &KubeApi, args: &[&str], env: Vec<(&'static str, String)>) -> Output {
    let mut full = vec![
        "--kubeconfig".to_owned(),
        api.kubeconfig().display().to_string(),
    ];
    full.extend(args.iter().map(|s| s.to_string()));
    let bin = deploy_bin();
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(bin);
        cmd.args(&full).env_remove("DIGITALOCEAN_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("sluice-deploy runs")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_login_saves_credentials_and_stores_the_pull_secret() {
    use base64::Engine;
    const TOKEN: &str = "dop_v1_secret-token-never-printed";
    let api = KubeApi::start().await;
    api.require_namespaces();
    let digitalocean = fake_digitalocean(TOKEN, Some("my-registry")).await;
    let docker = TempDir::new();
    let env = |token: &str| {
        vec![
            ("DIGITALOCEAN_TOKEN", token.to_owned()),
            ("DIGITALOCEAN_API_URL", format!("http://{digitalocean}")),
            ("DOCKER_CONFIG", docker.0.display().to_string()),
        ]
    };
    let args = [
        "registry-login",
        "--registry",
        "my-registry",
        "--namespace",
        "shop",
    ];
    let out = deploy_env(&api, &args, env(TOKEN)).await;
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "registry-login failed:\n{stdout}\n{stderr}"
    );
    assert!(
        !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
        "the token was printed"
    );

    // The push credentials, private to the user.
    let path = docker.0.join("config.json");
    let config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        config["auths"]["registry.digitalocean.com"]["auth"],
        PUSH_AUTH
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The pull Secret, applied by sluice-deploy.
    let secret = api
        .get("Secret", "shop", "my-registry")
        .expect("the pull Secret");
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    let doc = base64::engine::general_purpose::STANDARD
        .decode(secret["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    let doc: Value = serde_json::from_slice(&doc).unwrap();
    // Read-only: who can read the Secret cannot push images.
    assert_eq!(doc["auths"]["registry.digitalocean.com"]["auth"], PULL_AUTH);
    // The namespace did not exist: it was made first.
    assert!(api.get("Namespace", "", "shop").is_some());
    assert!(api.field_managers().iter().all(|m| m == "sluice-deploy"));

    // A refused token, another account's registry, no token: each says what to do.
    let out = deploy_env(&api, &args, env("dop_v1_wrong")).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("token was refused"), "{stderr}");
    let other = [
        "registry-login",
        "--registry",
        "someone-else",
        "--no-secret",
    ];
    let out = deploy_env(&api, &other, env(TOKEN)).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("my-registry"), "{stderr}");
    let out = deploy_env(&api, &args, vec![]).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("DIGITALOCEAN_TOKEN is not set"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_login_create_makes_the_registry_an_account_lacks() {
    const TOKEN: &str = "dop_v1_another-secret";
    let api = KubeApi::start().await;
    let digitalocean = fake_digitalocean(TOKEN, None).await;
    let docker = TempDir::new();
    let env = || {
        vec![
            ("DIGITALOCEAN_TOKEN", TOKEN.to_owned()),
            ("DIGITALOCEAN_API_URL", format!("http://{digitalocean}")),
            ("DOCKER_CONFIG", docker.0.display().to_string()),
        ]
    };
    // Without --create, the missing registry is named and the way out given.
    let args = ["registry-login", "--registry", "fresh", "--no-secret"];
    let out = deploy_env(&api, &args, env()).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("add --create"), "{stderr}");
    // With it, step 2 of the manual workflow (`doctl registry create`) is done.
    let args = [
        "registry-login",
        "--registry",
        "fresh",
        "--no-secret",
        "--create",
    ];
    let out = deploy_env(&api, &args, env()).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("registry.digitalocean.com/fresh"),
        "{stdout}"
    );
    assert!(docker.0.join("config.json").exists());
}

/// `render` prints what `up` applies, for review or GitOps: the same
/// objects, and nothing is sent to a cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_prints_what_up_applies() {
    let api = cluster().await;
    let app = [
        "--name",
        "shop",
        "--image",
        "registry.example.com/team/shop:1.0",
        "--namespace",
        "store",
        "--host",
        "shop.example.com",
        "--strategy",
        "least-request",
    ];
    let mut args = vec!["render"];
    args.extend(app);
    let out = deploy(Some(&api), &args).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(api.writes(), 0, "render wrote to the cluster");
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&stdout)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Namespace", "Deployment", "Service", "Ingress"]);

    let mut args = vec!["up", "--timeout", "20s", "--no-probe"];
    args.extend(app);
    let out = deploy(Some(&api), &args).await;
    assert!(out.status.success(), "{:?}", text(&out));
    for d in &docs[1..] {
        let kind = d["kind"].as_str().unwrap();
        let live = api.get(kind, "store", "shop").expect(kind);
        assert_eq!(
            live["spec"], d["spec"],
            "{kind}: applied differs from rendered"
        );
    }

    let out = deploy(None, &["render"]).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("render needs --name and --image"),
        "{stderr}"
    );
}
