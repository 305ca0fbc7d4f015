//! Kubernetes discovery against a test API server speaking the real list
//! and watch protocol (`sluice_integration::kube_api`), with the proxy's
//! unmodified kube client: Ingresses, Services and EndpointSlices drive
//! the routes, pods come and go under load without a failed request, and
//! the API server's absence costs nothing.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_integration::cluster::*;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_routes_and_unroutes() {
    let api = KubeApi::start().await;
    let (backends, port) = pods(3, "web").await;
    api.apply(ingress_class());
    api.apply(service("shop", "web"));
    let eps = ready_eps(&backends, "web");
    api.apply(slice("shop", "web-abc", "web", port, eps));
    let s = proxy(&api, &[]).await;
    assert_eq!(get_host(&s, "shop.example.com").await.0, 404);

    api.apply(ingress("shop", "shop", "sluice", "shop.example.com", "web"));
    let applied = Instant::now();
    wait_until("the Ingress to route", WAIT, || async {
        get_host(&s, "shop.example.com").await.0 == 200
    })
    .await;
    eprintln!(
        "routed {:?} after the Ingress was created",
        applied.elapsed()
    );
    wait_until("every pod to answer", WAIT, || async {
        get_host(&s, "shop.example.com").await;
        backends.iter().all(|b| b.hits() > 0)
    })
    .await;

    // Deleting it takes the route away again.
    api.delete("Ingress", "shop", "shop");
    wait_until("the route to go", WAIT, || async {
        get_host(&s, "shop.example.com").await.0 == 404
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_classes_and_namespaces_are_ignored() {
    let api = KubeApi::start().await;
    let (backends, port) = pods(1, "web").await;
    api.apply(ingress_class());
    for ns in ["shop", "other"] {
        api.apply(service(ns, "web"));
        api.apply(slice(
            ns,
            "web-1",
            "web",
            port,
            vec![endpoint(backends[0].addr, "web-0", true, false)],
        ));
    }
    api.apply(ingress(
        "shop",
        "theirs",
        "nginx",
        "nginx.example.com",
        "web",
    ));
    api.apply(ingress(
        "other",
        "elsewhere",
        "sluice",
        "other.example.com",
        "web",
    ));
    api.apply(ingress("shop", "ours", "sluice", "shop.example.com", "web"));
    let s = proxy(&api, &["--namespace", "shop"]).await;
    wait_until("our Ingress to route", WAIT, || async {
        get_host(&s, "shop.example.com").await.0 == 200
    })
    .await;
    assert_eq!(
        get_host(&s, "nginx.example.com").await.0,
        404,
        "another class was served"
    );
    assert_eq!(
        get_host(&s, "other.example.com").await.0,
        404,
        "another namespace was served"
    );
}

/// A Service scaled from 3 to 10 to 1 pods, under concurrent load: not a
/// request fails, and every pod that is in the slice gets traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_under_load_loses_no_request() {
    let api = KubeApi::start().await;
    let (backends, port) = pods(10, "web").await;
    let eps = |n: usize| -> Vec<Value> { ready_eps(&backends[..n], "web") };
    shop(&api, port, eps(3));
    let s = proxy(&api, &[]).await;
    routes(&s).await;
    let load = Load::start(&s, "shop.example.com", 4);
    all_serving(&backends[..3], WAIT).await;
    api.apply(slice("shop", "web-abc", "web", port, eps(10)));
    all_serving(&backends, WAIT).await;
    api.apply(slice("shop", "web-abc", "web", port, eps(1)));
    // Only the first pod gets traffic from now on: between two polls, it
    // answered and no other pod did.
    let last = std::sync::Mutex::new(None::<(usize, Vec<usize>)>);
    wait_until("traffic to settle on one pod", WAIT, || {
        let now = (
            backends[0].hits(),
            backends[1..].iter().map(Backend::hits).collect::<Vec<_>>(),
        );
        let prev = last.lock().unwrap().replace(now.clone());
        let settled = prev.is_some_and(|(first, others)| now.0 > first && now.1 == others);
        async move { settled }
    })
    .await;
    let ok = load.finish_none_failed().await;
    // The load ran throughout (every pod set above saw its requests).
    assert!(ok > 0, "no request went through");
}

/// A change after a quiet spell reaches the traffic at once, without
/// waiting out the debounce; a change that follows within the debounce of
/// the last rebuild waits for it, so a rollout's burst of events costs one
/// rebuild per debounce, not one per event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_change_is_rebuilt_at_once_and_a_burst_waits_the_debounce() {
    const DEBOUNCE: Duration = Duration::from_secs(5);
    let api = KubeApi::start().await;
    let (set, port) = pods(3, "web").await;
    shop(&api, port, ready_eps(&set[..2], "web"));
    let kc = api.kubeconfig().display().to_string();
    let s = Sluice::serve(&["--kube", "--kubeconfig", &kc, "--kube-debounce", "5s"]).await;
    routes(&s).await;
    let rebuilds = || async {
        s.metric("sluice_kube_rebuild_seconds_count")
            .await
            .expect("sluice_kube_rebuild_seconds_count")
    };
    let load = Load::start(&s, "shop.example.com", 2);
    // The quiet spell: a debounce with no change.
    tokio::time::sleep(DEBOUNCE + Duration::from_millis(500)).await;
    let before = rebuilds().await;

    // A third pod turns ready: rebuilt at once.
    let first = Instant::now();
    api.apply(slice(
        "shop",
        "web-abc",
        "web",
        port,
        ready_eps(&set, "web"),
    ));
    all_serving(&set[2..], WAIT).await;
    let took = first.elapsed();
    assert!(
        took < DEBOUNCE,
        "the lone change reached traffic after {took:?}, as if it had waited out the {DEBOUNCE:?} debounce"
    );
    let after_first = rebuilds().await;
    assert_eq!(after_first, before + 1.0, "one rebuild for one change");

    // It goes away again right after: that waits for the debounce.
    api.apply(slice(
        "shop",
        "web-abc",
        "web",
        port,
        ready_eps(&set[..2], "web"),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        rebuilds().await,
        after_first,
        "a change within the debounce of the last rebuild was rebuilt at once"
    );
    wait_until("the deferred rebuild", WAIT, || async {
        rebuilds().await > after_first
    })
    .await;
    assert!(
        first.elapsed() >= DEBOUNCE,
        "the second change was rebuilt {:?} after the first, within the debounce",
        first.elapsed()
    );
    settled_on(
        &set[..2],
        &set[2..],
        "traffic to leave the pod that went away",
    )
    .await;
    load.finish_none_failed().await;
}

/// A rolling update: new pods become ready, the old ones terminate (still
/// serving), then leave the slice and stop. Not a request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_loses_no_request() {
    let api = KubeApi::start().await;
    let (mut all, port) = pods(6, "web").await;
    let new = all.split_off(3);
    let old = all;
    let eps = |set: &[Backend], prefix: &str, ready: bool, terminating: bool| -> Vec<Value> {
        set.iter()
            .enumerate()
            .map(|(i, b)| endpoint(b.addr, &format!("{prefix}-{i}"), ready, terminating))
            .collect()
    };
    shop(&api, port, eps(&old, "old", true, false));
    let s = proxy(&api, &[]).await;
    routes(&s).await;
    let load = Load::start(&s, "shop.example.com", 4);
    all_serving(&old, WAIT).await;

    // New pods ready next to the old.
    let mut both = eps(&old, "old", true, false);
    both.extend(eps(&new, "new", true, false));
    api.apply(slice("shop", "web-abc", "web", port, both));
    all_serving(&new, WAIT).await;
    // Old pods terminating: still serving, but no longer picked.
    let mut both = eps(&old, "old", false, true);
    both.extend(eps(&new, "new", true, false));
    api.apply(slice("shop", "web-abc", "web", port, both));
    settled_on(&new, &old, "traffic to leave the terminating pods").await;
    // Gone from the slice, then stopped once idle.
    api.apply(slice(
        "shop",
        "web-abc",
        "web",
        port,
        eps(&new, "new", true, false),
    ));
    for b in old {
        let active = b.active.clone();
        wait_until("the old pod to finish its requests", WAIT, || {
            let idle = active.load(Ordering::SeqCst) == 0;
            async move { idle }
        })
        .await;
        b.stop().await;
    }
    all_serving(&new, WAIT).await;
    let ok = load.finish_none_failed().await;
    // The load ran throughout (every pod set above saw its requests).
    assert!(ok > 0, "no request went through");
}

/// With only terminating pods left, they still serve: a rollout's last
/// moments do not answer 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_pods_serve_when_no_pod_is_ready() {
    let api = KubeApi::start().await;
    let (backends, port) = pods(1, "web").await;
    shop(
        &api,
        port,
        vec![endpoint(backends[0].addr, "web-0", false, true)],
    );
    let s = proxy(&api, &[]).await;
    wait_until("the terminating pod to serve", WAIT, || async {
        get_host(&s, "shop.example.com").await.0 == 200
    })
    .await;
    // And a pod that is neither ready nor terminating does not.
    api.apply(slice(
        "shop",
        "web-abc",
        "web",
        port,
        vec![endpoint(backends[0].addr, "web-0", false, false)],
    ));
    wait_until("the not-ready pod to leave", WAIT, || async {
        get_host(&s, "shop.example.com").await.0 == 503
    })
    .await;
}

/// The API server goes away for 10 s while traffic flows: the last routes
/// keep serving, /readyz stays 200, the errors are counted, and changes
/// made once it is back reach traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_outage_costs_nothing() {
    let api = KubeApi::start().await;
    let (backends, port) = pods(3, "web").await;
    let eps = |n: usize| -> Vec<Value> { ready_eps(&backends[..n], "web") };
    shop(&api, port, eps(2));
    let s = proxy(&api, &[]).await;
    routes(&s).await;
    let load = Load::start(&s, "shop.example.com", 2);
    api.stop();
    let down = Instant::now();
    wait_until(
        "watch errors to be counted",
        Duration::from_secs(10),
        || async {
            s.metric("sluice_kube_watch_errors_total")
                .await
                .unwrap_or(0.0)
                > 0.0
                || scrape_sum(&s, "sluice_kube_watch_errors_total").await > 0.0
        },
    )
    .await;
    // Ten seconds without an API server, ready all along.
    while down.elapsed() < Duration::from_secs(10) {
        assert_eq!(get(s.admin, "/readyz").await.map(|r| r.0), Ok(200));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    api.restart().await;
    api.apply(slice("shop", "web-abc", "web", port, eps(3)));
    all_serving(&backends, Duration::from_secs(15)).await;
    load.finish_none_failed().await;
}

/// The sum of every series of a metric family on /metrics.
async fn scrape_sum(s: &Sluice, family: &str) -> f64 {
    let Ok((_, text)) = get(s.admin, "/metrics").await else {
        return 0.0;
    };
    text.lines()
        .filter(|l| l.starts_with(family) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A watch that gets 410 Gone relists: the routes never empty meanwhile,
/// and changes made after it reach traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_watches_relist_without_emptying_the_table() {
    let api = KubeApi::start().await;
    let (backends, port) = pods(2, "web").await;
    shop(
        &api,
        port,
        vec![endpoint(backends[0].addr, "web-0", true, false)],
    );
    let s = proxy(&api, &[]).await;
    routes(&s).await;
    let load = Load::start(&s, "shop.example.com", 2);
    let (lists_before, _) = api.requests();
    api.expire_watches();
    wait_until("every kind to relist", Duration::from_secs(10), || {
        let relisted = api.requests().0 >= lists_before + 4;
        async move { relisted }
    })
    .await;
    api.apply(slice(
        "shop",
        "web-abc",
        "web",
        port,
        vec![
            endpoint(backends[0].addr, "web-0", true, false),
            endpoint(backends[1].addr, "web-1", true, false),
        ],
    ));
    all_serving(&backends, Duration::from_secs(10)).await;
    load.finish_none_failed().await;
}

/// ip-hash keeps every client on its pod while an unrelated Service
/// changes (and the table is rebuilt around it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_hash_is_stable_across_unrelated_changes() {
    let api = KubeApi::start().await;
    let (backends, port) = pods(4, "web").await;
    let (others, other_port) = pods(2, "other").await;
    api.apply(ingress_class());
    let mut svc = service("shop", "web");
    svc["metadata"]["annotations"] = json!({"sluice.dev/load-balance": "ip-hash"});
    api.apply(svc);
    api.apply(service("shop", "other"));
    let eps = ready_eps(&backends, "web");
    api.apply(slice("shop", "web-abc", "web", port, eps));
    api.apply(slice(
        "shop",
        "other-abc",
        "other",
        other_port,
        vec![endpoint(others[0].addr, "other-0", true, false)],
    ));
    api.apply(ingress("shop", "shop", "sluice", "shop.example.com", "web"));
    api.apply(ingress(
        "shop",
        "other",
        "sluice",
        "other.example.com",
        "other",
    ));
    let s = proxy(&api, &[]).await;
    routes(&s).await;
    // Which pod each of 40 client addresses lands on.
    let placement = || async {
        let mut seen = Vec::new();
        for i in 0..40u8 {
            let c = client(Some(Ipv4Addr::new(127, 0, 1, 10 + i)));
            let (status, headers, _) = get_as(&c, s.listen, "shop.example.com", "/").await;
            assert_eq!(status, 200);
            seen.push(headers["x-backend"].to_str().unwrap().to_owned());
        }
        seen
    };
    let before = placement().await;
    let distinct: std::collections::HashSet<&String> = before.iter().collect();
    assert!(
        distinct.len() >= 3,
        "40 clients on {} pods only",
        distinct.len()
    );
    let generation = |v: serde_json::Value| v["generation"].as_u64().unwrap_or(0);
    let gen_before =
        generation(serde_json::from_str(&get(s.admin, "/routes").await.unwrap().1).unwrap());
    api.apply(slice(
        "shop",
        "other-abc",
        "other",
        other_port,
        vec![
            endpoint(others[0].addr, "other-0", true, false),
            endpoint(others[1].addr, "other-1", true, false),
        ],
    ));
    wait_until("the table to be rebuilt", WAIT, || async {
        generation(serde_json::from_str(&get(s.admin, "/routes").await.unwrap().1).unwrap())
            > gen_before
    })
    .await;
    assert_eq!(placement().await, before, "clients moved between pods");
}

/// ingress-nginx's canary: a second Ingress for the same host and path
/// with `canary-weight: 20` takes 20 % of the requests (within 2 % over
/// 10,000), and `canary-by-header` sends `always` / `never` requests
/// where they ask, whatever the weight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_weights_and_header() {
    let api = KubeApi::start().await;
    let (main, port) = pods(1, "main").await;
    let (canary, canary_port) = pods(1, "canary").await;
    api.apply(ingress_class());
    api.apply(service("shop", "web"));
    api.apply(service("shop", "web-canary"));
    api.apply(slice(
        "shop",
        "web-abc",
        "web",
        port,
        vec![endpoint(main[0].addr, "web-0", true, false)],
    ));
    api.apply(slice(
        "shop",
        "web-canary-abc",
        "web-canary",
        canary_port,
        vec![endpoint(canary[0].addr, "canary-0", true, false)],
    ));
    api.apply(ingress("shop", "shop", "sluice", "shop.example.com", "web"));
    let mut canary_ing = ingress(
        "shop",
        "shop-canary",
        "sluice",
        "shop.example.com",
        "web-canary",
    );
    canary_ing["metadata"]["annotations"] = json!({
        "nginx.ingress.kubernetes.io/canary": "true",
        "nginx.ingress.kubernetes.io/canary-weight": "20",
    });
    api.apply(canary_ing.clone());
    let s = proxy(&api, &[]).await;
    wait_until("the canary to get traffic", WAIT, || async {
        get_host(&s, "shop.example.com").await;
        canary[0].hits() > 0
    })
    .await;

    let (m0, c0) = (main[0].hits(), canary[0].hits());
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let addr = s.listen;
            tokio::spawn(async move {
                let c = client(None);
                for _ in 0..2_500 {
                    let (status, _, _) = get_as(&c, addr, "shop.example.com", "/").await;
                    assert_eq!(status, 200);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let (m, c) = (main[0].hits() - m0, canary[0].hits() - c0);
    assert_eq!(m + c, 10_000);
    let share = c as f64 / 10_000.0;
    assert!(
        (0.18..=0.22).contains(&share),
        "canary share {share:.3} ({c} of 10,000)"
    );

    // The header decides before the weight.
    canary_ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-by-header"] =
        json!("X-Canary");
    api.apply(canary_ing);
    let ask = |value: &'static str| {
        let addr = s.listen;
        async move {
            let c = client(None);
            let mut backends = std::collections::HashSet::new();
            for _ in 0..50 {
                let (status, headers, _) = request(
                    &c,
                    addr,
                    "GET",
                    "/",
                    &[("host", "shop.example.com"), ("x-canary", value)],
                    empty(),
                )
                .await
                .unwrap();
                assert_eq!(status, 200);
                backends.insert(headers["x-backend"].to_str().unwrap().to_owned());
            }
            backends
        }
    };
    wait_until("the header rule to apply", WAIT, || async {
        ask("always").await == ["canary0".to_owned()].into()
    })
    .await;
    assert_eq!(ask("never").await, ["main0".to_owned()].into());
}

/// The address in an Ingress's status, as the test API server holds it.
fn status_ips(api: &KubeApi, ns: &str, name: &str) -> Vec<String> {
    api.get("Ingress", ns, name)
        .and_then(|i| i["status"]["loadBalancer"]["ingress"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["ip"].as_str().map(str::to_owned))
        .collect()
}

fn published(ip: &str) -> Value {
    let mut svc = service("ingress", "sluice");
    svc["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
    svc
}

/// Two replicas with `--publish-service`: one holds the Lease and writes
/// the LoadBalancer address into the Ingress's status, following it when
/// it changes; when that replica dies, the other takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_writes_ingress_status() {
    let api = KubeApi::start().await;
    let (backends, port) = pods(1, "web").await;
    shop(
        &api,
        port,
        vec![endpoint(backends[0].addr, "web-0", true, false)],
    );
    api.apply(published("203.0.113.7"));
    let flags = [
        "--publish-service",
        "ingress/sluice",
        "--status-lease-duration",
        "2s",
    ];
    let mut replicas = vec![proxy(&api, &flags).await, proxy(&api, &flags).await];
    wait_until("the status to be written", Duration::from_secs(10), || {
        let ips = status_ips(&api, "shop", "shop");
        async move { ips == ["203.0.113.7"] }
    })
    .await;
    let lease = api
        .get("Lease", "ingress", "sluice-status-sluice")
        .expect("a Lease");
    assert!(lease["spec"]["holderIdentity"].is_string(), "{lease}");
    let leading = |s: &Sluice| s.log().contains("leading=true");
    assert_eq!(
        replicas.iter().filter(|r| leading(r)).count(),
        1,
        "not exactly one leader"
    );

    api.apply(published("203.0.113.8"));
    wait_until("the status to follow", Duration::from_secs(10), || {
        let ips = status_ips(&api, "shop", "shop");
        async move { ips == ["203.0.113.8"] }
    })
    .await;

    // The leader goes; the other replica takes over and keeps it current.
    let leader = replicas.iter().position(&leading).unwrap();
    let other = replicas.remove(1 - leader);
    drop(replicas);
    wait_until("the other replica to lead", Duration::from_secs(10), || {
        let l = leading(&other);
        async move { l }
    })
    .await;
    api.apply(published("203.0.113.9"));
    wait_until(
        "the status to follow again",
        Duration::from_secs(10),
        || {
            let ips = status_ips(&api, "shop", "shop");
            async move { ips == ["203.0.113.9"] }
        },
    )
    .await;
}

/// A malformed or refused annotation is never fatal: the Ingress still
/// routes, and each problem is recorded once as a Warning Event on it
/// (not again at every rebuild).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_annotations_become_events_not_failures() {
    let api = KubeApi::start().await;
    let (backends, port) = pods(2, "web").await;
    shop_backend(
        &api,
        port,
        vec![endpoint(backends[0].addr, "web-0", true, false)],
    );
    let mut ing = ingress("shop", "shop", "sluice", "shop.example.com", "web");
    ing["metadata"]["annotations"] = json!({
        "sluice.dev/load-balance": "fastest",
        "nginx.ingress.kubernetes.io/configuration-snippet": "more_set_headers \"x: y\"; rewrite ^ /x;",
    });
    api.apply(ing);
    let s = proxy(&api, &[]).await;
    routes(&s).await;
    let notes = || -> Vec<String> {
        api.all("Event")
            .iter()
            .filter(|e| e["regarding"]["name"] == "shop" && e["type"] == "Warning")
            .filter_map(|e| e["note"].as_str().map(str::to_owned))
            .collect()
    };
    wait_until("two events", WAIT, || {
        let n = notes().len();
        async move { n >= 2 }
    })
    .await;
    let all = notes();
    assert!(all.iter().any(|n| n.contains("fastest")), "{all:?}");
    assert!(all.iter().any(|n| n.contains("refused")), "{all:?}");
    // More rebuilds: no more events.
    api.apply(slice(
        "shop",
        "web-abc",
        "web",
        port,
        vec![
            endpoint(backends[0].addr, "web-0", true, false),
            endpoint(backends[1].addr, "web-1", true, false),
        ],
    ));
    wait_until("the new pod to serve", WAIT, || async {
        get_host(&s, "shop.example.com").await;
        backends[1].hits() > 0
    })
    .await;
    assert_eq!(notes().len(), 2, "{:?}", notes());
    assert!(s.log().contains("refused `rewrite ^ /x`"), "{}", s.log());
}

/// `sluice.dev/weight` on pods, for a Service with
/// `sluice.dev/pod-weights: "true"`: traffic follows the weights. Pods are
/// watched only once a Service asks, and then by metadata alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_weights_from_a_metadata_only_watch() {
    let api = KubeApi::start().await;
    let (backends, port) = pods(2, "web").await;
    api.apply(ingress_class());
    api.apply(service("shop", "web"));
    let eps = ready_eps(&backends, "web");
    api.apply(slice("shop", "web-abc", "web", port, eps));
    for (i, w) in [(0, "5"), (1, "1")] {
        api.apply(
            json!({"kind": "Pod", "metadata": {"name": format!("web-{i}"), "namespace": "shop",
            "annotations": {"sluice.dev/weight": w}},
            "spec": {"containers": [{"name": "web", "image": "example/web"}]}}),
        );
    }
    api.apply(ingress("shop", "shop", "sluice", "shop.example.com", "web"));
    let s = proxy(&api, &[]).await;
    routes(&s).await;
    assert_eq!(
        api.pod_requests(),
        (0, 0),
        "pods were watched before any Service asked"
    );

    let mut svc = service("shop", "web");
    svc["metadata"]["annotations"] = json!({"sluice.dev/pod-weights": "true"});
    api.apply(svc);
    // Weighted once the pods' weights are in: 5 of every 6 to web-0.
    let split = || async {
        let before: Vec<usize> = backends.iter().map(Backend::hits).collect();
        for _ in 0..60 {
            assert_eq!(get_host(&s, "shop.example.com").await.0, 200);
        }
        (
            backends[0].hits() - before[0],
            backends[1].hits() - before[1],
        )
    };
    wait_until(
        "traffic to follow the pod weights",
        Duration::from_secs(10),
        || async { split().await == (50, 10) },
    )
    .await;
    let (full, meta) = api.pod_requests();
    assert_eq!(full, 0, "whole pods were fetched");
    assert!(meta >= 2, "no metadata-only list and watch ({meta})");
}

/// The TLS Secrets Ingresses name are watched, and only those of type
/// kubernetes.io/tls (a field selector): a missing one is reported as an
/// Event on the Ingress, which routes all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_secrets_are_watched_by_type_and_missing_ones_reported() {
    let api = KubeApi::start().await;
    let (backends, port) = pods(1, "web").await;
    shop_backend(
        &api,
        port,
        vec![endpoint(backends[0].addr, "web-0", true, false)],
    );
    // Same name, wrong type: invisible to the proxy.
    api.apply(json!({"kind": "Secret", "type": "Opaque",
        "metadata": {"name": "shop-tls", "namespace": "shop"}, "data": {"password": "aHVudGVyMg=="}}));
    let mut ing = ingress("shop", "shop", "sluice", "shop.example.com", "web");
    ing["spec"]["tls"] = json!([{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]);
    api.apply(ing);
    let s = proxy(&api, &[]).await;
    routes(&s).await;
    wait_until("an Event for the missing Secret", WAIT, || {
        let found = api.all("Event").iter().any(|e| {
            e["regarding"]["name"] == "shop"
                && e["note"]
                    .as_str()
                    .is_some_and(|n| n.contains("shop/shop-tls: not found"))
        });
        async move { found }
    })
    .await;
    let selectors = api.secret_selectors();
    assert!(!selectors.is_empty());
    assert!(
        selectors.iter().all(|s| s == "type=kubernetes.io/tls"),
        "{selectors:?}"
    );
    assert!(!s.log().contains("aHVudGVyMg"), "secret data in the log");
}

/// An Ingress's `spec.tls` Secret serves its host by SNI; plain HTTP to
/// that host is redirected; an updated Secret swaps the certificate for new
/// handshakes; a broken update is refused with a Warning Event on the
/// Ingress while the last good certificate keeps serving; and
/// `ssl-redirect: "false"` turns the redirect off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_tls_secrets_serve_rotate_and_refuse_broken_ones() {
    use sluice_integration::tls;
    let api = KubeApi::start().await;
    let (backends, port) = pods(1, "web").await;
    shop_backend(
        &api,
        port,
        vec![endpoint(backends[0].addr, "web-0", true, false)],
    );
    let ca = tls::Ca::new();
    let v1 = ca.issue(&["shop.example.com"]);
    api.apply(tls_secret("shop", "shop-tls", &v1.cert, &v1.key));
    let mut ing = ingress("shop", "shop", "sluice", "shop.example.com", "web");
    ing["spec"]["tls"] = json!([{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]);
    api.apply(ing.clone());
    // ingress-nginx's --default-ssl-certificate: names nobody holds.
    let fallback = ca.issue(&["fallback.example.com"]);
    api.apply(tls_secret(
        "shop",
        "fallback",
        &fallback.cert,
        &fallback.key,
    ));
    let s = proxy(
        &api,
        &[
            "--listen-tls",
            "{LISTEN_TLS}",
            "--default-tls-secret",
            "shop/fallback",
        ],
    )
    .await;
    let serves = |want: Vec<u8>| {
        let addr = s.tls();
        async move {
            tls::get(addr, "shop.example.com", "/", false)
                .await
                .is_ok_and(|r| r.status == 200 && r.cert == want)
        }
    };
    wait_until("the Secret's certificate", WAIT, || serves(v1.der.clone())).await;
    let other = tls::get(s.tls(), "unknown.example.net", "/", false)
        .await
        .unwrap();
    assert!(
        other.cert == fallback.der,
        "the default Secret's certificate"
    );
    let (status, headers, _) =
        get_as(&client(None), s.listen, "shop.example.com", "/cart?id=7").await;
    assert_eq!(status, 308);
    assert_eq!(headers["location"], "https://shop.example.com/cart?id=7");

    // Rotated: the next handshakes get the new one.
    let v2 = ca.issue(&["shop.example.com"]);
    api.apply(tls_secret("shop", "shop-tls", &v2.cert, &v2.key));
    wait_until("the rotated certificate", WAIT, || serves(v2.der.clone())).await;

    // Broken: a key from elsewhere. Refused, with an Event; v2 stays.
    let stray = ca.issue(&["shop.example.com"]);
    api.apply(tls_secret("shop", "shop-tls", &v2.cert, &stray.key));
    wait_until("an Event for the broken Secret", WAIT, || {
        let found = api.all("Event").iter().any(|e| {
            e["regarding"]["name"] == "shop"
                && e["reason"] == "BadTLSSecret"
                && e["note"]
                    .as_str()
                    .is_some_and(|n| n.contains("previous certificate keeps serving"))
        });
        async move { found }
    })
    .await;
    for _ in 0..5 {
        assert!(serves(v2.der.clone()).await, "v2 should still serve");
    }
    // Deleted while the Ingress still names it: v2 still serves.
    assert!(api.delete("Secret", "shop", "shop-tls"));

    wait_until("an Event for the missing Secret", WAIT, || {
        let found = api.all("Event").iter().any(|e| {
            e["note"]
                .as_str()
                .is_some_and(|n| n.contains("shop/shop-tls: not found"))
        });
        async move { found }
    })
    .await;
    assert!(
        serves(v2.der.clone()).await,
        "v2 should serve after the delete"
    );

    // The redirect turned off for this Ingress.
    ing["metadata"]["annotations"] = json!({"nginx.ingress.kubernetes.io/ssl-redirect": "false"});
    api.apply(ing);
    routes(&s).await;
    // Key material never reaches the log.
    let key_line = stray.key.lines().nth(1).unwrap();
    assert!(!s.log().contains(key_line), "key material in the log");
}

/// A config file and the cluster together: the file's routes serve next
/// to the discovered ones, and win a duplicate host and path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_routes_and_discovered_routes_serve_together() {
    let api = KubeApi::start().await;
    let (backends, port) = pods(1, "web").await;
    let file_backend = Backend::start("file").await;
    shop(
        &api,
        port,
        vec![endpoint(backends[0].addr, "web-0", true, false)],
    );
    api.apply(ingress(
        "shop",
        "taken",
        "sluice",
        "static.example.com",
        "web",
    ));
    let yaml = format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\nroutes:\n  - host: static.example.com\n    backends: [{}]\n",
        file_backend.addr
    );
    // The listeners the file names are replaced by the command line's.
    let any: std::net::SocketAddr = ANY_PORT.parse().unwrap();
    let dir = TempDir::new();
    let path = dir.0.join("sluice.yaml");
    std::fs::write(&path, fill(&yaml, any, any)).unwrap();
    let kc = api.kubeconfig().display().to_string();
    let p = path.display().to_string();
    let s = Sluice::serve(&["--config", &p, "--kube", "--kubeconfig", &kc]).await;
    wait_until("the discovered route", WAIT, || async {
        get_host(&s, "shop.example.com").await.0 == 200
    })
    .await;
    let c = client(None);
    let (status, headers, _) = get_as(&c, s.listen, "static.example.com", "/").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-backend"], "file", "the file's route did not win");
    assert!(
        s.log().contains("is shadowed"),
        "the conflict was not logged"
    );
}
