//! Taking over a cluster from ingress-nginx unchanged (issue 13, point 7):
//! with `--adopt-ingress-nginx`, sluice serves IngressClass `nginx`
//! (controller `k8s.io/ingress-nginx`) and the old class annotation,
//! leaves other controllers' classes alone, and answers what no rule
//! matches from `--default-backend-service`. The manifests are
//! `tests/corpus/ingress-nginx/adopt.yaml`.

use sluice_integration::cluster::*;
use sluice_integration::corpus::manifests;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_nginx_classes_are_served_as_they_are() {
    let api = KubeApi::start().await;
    let web = Backend::start("web").await;
    let fallback = Backend::start("fallback").await;
    let vars = [
        ("PORT", web.addr.port().to_string()),
        ("FALLBACK_PORT", fallback.addr.port().to_string()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for m in manifests("ingress-nginx/adopt.yaml", &vars) {
        api.apply(m);
    }
    let s = proxy(
        &api,
        &[
            "--adopt-ingress-nginx",
            "--default-backend-service",
            "ingress-nginx/ingress-nginx-defaultbackend",
        ],
    )
    .await;
    wait_until("the nginx-class Ingress to route", WAIT, || async {
        get_host(&s, "shop.example.com").await == (200, "web\n".into())
    })
    .await;
    assert_eq!(
        get_host(&s, "legacy.example.com").await,
        (200, "web\n".into())
    );
    // Another controller's class, and a host no rule names: the default
    // backend answers both, as ingress-nginx's does.
    assert_eq!(
        get_host(&s, "theirs.example.com").await,
        (200, "fallback\n".into())
    );
    assert_eq!(
        get_host(&s, "nobody.example.com").await,
        (200, "fallback\n".into())
    );
    assert_eq!(web.hits(), 2);
}

/// Without the flag, ingress-nginx's class is another controller's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_ingress_nginx_classes_are_left_alone() {
    let api = KubeApi::start().await;
    let web = Backend::start("web").await;
    let vars = [
        ("PORT", web.addr.port().to_string()),
        ("FALLBACK_PORT", "1".into()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for m in manifests("ingress-nginx/adopt.yaml", &vars) {
        api.apply(m);
    }
    api.apply(ingress_class());
    api.apply(ingress("shop", "ours", "sluice", "ours.example.com", "web"));
    let s = proxy(&api, &[]).await;
    wait_until("our own Ingress to route", WAIT, || async {
        get_host(&s, "ours.example.com").await.0 == 200
    })
    .await;
    assert_eq!(get_host(&s, "shop.example.com").await.0, 404);
    assert_eq!(get_host(&s, "legacy.example.com").await.0, 404);
}

/// ingress-nginx's controller ConfigMap (`--configmap`) sets the global
/// body limit and who may name the client in X-Forwarded-For; without
/// one, `--adopt-ingress-nginx` keeps ingress-nginx's 1 MiB default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_configmap_applies() {
    let api = KubeApi::start().await;
    let web = Backend::start("web").await;
    let vars = [
        ("PORT", web.addr.port().to_string()),
        ("FALLBACK_PORT", "1".into()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for m in manifests("ingress-nginx/adopt.yaml", &vars) {
        api.apply(m);
    }
    let post = |s: &Sluice, size: usize| {
        let addr = s.listen;
        async move {
            request(
                &client(None),
                addr,
                "POST",
                "/echo",
                &[("host", "shop.example.com")],
                body(vec![b'x'; size]),
            )
            .await
            .map(|r| r.0)
            .unwrap_or(0)
        }
    };
    // ingress-nginx's default limit: 1 MiB.
    let s = proxy(&api, &["--adopt-ingress-nginx"]).await;
    wait_until("the route", WAIT, || async {
        get_host(&s, "shop.example.com").await.0 == 200
    })
    .await;
    assert_eq!(post(&s, 512 * 1024).await, 200);
    assert_eq!(post(&s, 2 << 20).await, 413);
    // ingress-nginx names the client alone, in X-Forwarded-For and
    // X-Real-IP, whatever the client wrote there.
    assert_eq!(
        client_headers(&s).await,
        ["x-forwarded-for: 127.0.0.1", "x-real-ip: 127.0.0.1"]
    );
    drop(s);

    api.apply(serde_json::json!({"kind": "ConfigMap",
        "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"},
        "data": {"proxy-body-size": "1k", "use-forwarded-headers": "true",
                 "proxy-real-ip-cidr": "127.0.0.0/8", "worker-processes": "4"}}));
    let s = proxy(
        &api,
        &[
            "--adopt-ingress-nginx",
            "--configmap",
            "ingress-nginx/ingress-nginx-controller",
            "--access-log",
            "json",
        ],
    )
    .await;
    wait_until("the route", WAIT, || async {
        get_host(&s, "shop.example.com").await.0 == 200
    })
    .await;
    assert_eq!(post(&s, 512).await, 200);
    assert_eq!(post(&s, 2048).await, 413);
    assert!(
        s.log()
            .contains("ingress-nginx's controller ConfigMap read"),
        "{}",
        s.log()
    );
    // Behind a trusted peer, X-Forwarded-For names the client (the access
    // log's).
    let (status, _, seen) = request(
        &client(None),
        s.listen,
        "GET",
        "/headers?from=xff",
        &[
            ("host", "shop.example.com"),
            ("x-forwarded-for", "203.0.113.9"),
        ],
        empty(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    // Upstream, the client the trusted peer named, alone.
    assert!(seen.contains("x-forwarded-for: 203.0.113.9\n"), "{seen}");
    assert!(seen.contains("x-real-ip: 203.0.113.9\n"), "{seen}");
    wait_until("the access-log line", WAIT, || {
        let has = s.stdout().lines().any(|l| l.contains("from=xff"));
        async move { has }
    })
    .await;
    let out = s.stdout();
    let line = out.lines().find(|l| l.contains("from=xff")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["client"], "203.0.113.9", "{line}");
}

/// The client's address headers the upstream saw for a request that forged
/// both, from 127.0.0.1: each `name: value` line, sorted.
async fn client_headers(s: &Sluice) -> Vec<String> {
    client_headers_for(
        s,
        &[("x-forwarded-for", "6.6.6.6"), ("x-real-ip", "6.6.6.6")],
    )
    .await
}

/// The client's address headers the upstream saw for a request from
/// 127.0.0.1 carrying `sent`: each `name: value` line, sorted.
async fn client_headers_for(s: &Sluice, sent: &[(&str, &str)]) -> Vec<String> {
    let mut headers = vec![("host", "shop.example.com")];
    headers.extend_from_slice(sent);
    let (status, _, seen) = request(
        &client(None),
        s.listen,
        "GET",
        "/headers",
        &headers,
        empty(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{seen}");
    let mut lines: Vec<String> = seen
        .lines()
        .filter(|l| l.starts_with("x-forwarded-for:") || l.starts_with("x-real-ip:"))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// `compute-full-forwarded-for` (with `use-forwarded-headers`) appends to
/// X-Forwarded-For as ingress-nginx does; X-Real-IP stays the client's.
/// `forwarded-for-header` names another header to read the client from.
/// Without `--adopt-ingress-nginx`, sluice's own way: appended, and
/// X-Real-IP left as it came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compute_full_forwarded_for_appends() {
    let api = KubeApi::start().await;
    let web = Backend::start("web").await;
    let vars = [
        ("PORT", web.addr.port().to_string()),
        ("FALLBACK_PORT", "1".into()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for m in manifests("ingress-nginx/adopt.yaml", &vars) {
        api.apply(m);
    }
    controller_configmap(
        &api,
        serde_json::json!({"use-forwarded-headers": "true", "compute-full-forwarded-for": "true",
                 "proxy-real-ip-cidr": "127.0.0.0/8"}),
    );
    let s = serving(
        &api,
        &[
            "--adopt-ingress-nginx",
            "--configmap",
            "ingress-nginx/ingress-nginx-controller",
        ],
    )
    .await;
    assert_eq!(
        client_headers(&s).await,
        ["x-forwarded-for: 6.6.6.6, 127.0.0.1", "x-real-ip: 6.6.6.6"]
    );
    drop(s);

    // forwarded-for-header: a CDN's header names the client instead.
    controller_configmap(
        &api,
        serde_json::json!({"use-forwarded-headers": "true", "forwarded-for-header": "CF-Connecting-IP",
                 "proxy-real-ip-cidr": "127.0.0.0/8"}),
    );
    let s = serving(
        &api,
        &[
            "--adopt-ingress-nginx",
            "--configmap",
            "ingress-nginx/ingress-nginx-controller",
        ],
    )
    .await;
    assert_eq!(
        client_headers_for(
            &s,
            &[
                ("cf-connecting-ip", "198.51.100.7"),
                ("x-forwarded-for", "6.6.6.6")
            ]
        )
        .await,
        ["x-forwarded-for: 198.51.100.7", "x-real-ip: 198.51.100.7"]
    );
    drop(s);

    let s = serving(
        &api,
        &[
            "--ingress-class",
            "nginx",
            "--controller-name",
            "k8s.io/ingress-nginx",
        ],
    )
    .await;
    assert_eq!(
        client_headers(&s).await,
        ["x-forwarded-for: 6.6.6.6, 127.0.0.1", "x-real-ip: 6.6.6.6"]
    );
}

/// Starts sluice with `args` and waits until shop.example.com is served.
async fn serving(api: &KubeApi, args: &[&str]) -> Sluice {
    let s = proxy(api, args).await;
    wait_until("the route", WAIT, || async {
        get_host(&s, "shop.example.com").await.0 == 200
    })
    .await;
    s
}

/// Applies ingress-nginx's controller ConfigMap with `data`.
fn controller_configmap(api: &KubeApi, data: serde_json::Value) {
    api.apply(serde_json::json!({"kind": "ConfigMap",
        "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"},
        "data": data}));
}
