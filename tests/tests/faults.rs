//! Faults under load at cluster scale (issue 11, point 5), against the
//! tests' Kubernetes API server, with a counting client at a fixed rate:
//! a rollout of a 10-pod Service with pods killed at random, the API
//! server gone for 30 s during a rollout, 50 config reloads and 50 Ingress
//! changes, and SIGTERM with 200 WebSockets open. Not one idempotent
//! request may fail; every figure goes to the reliability report.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_integration::cluster::*;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::report::Case;
use sluice_integration::*;

const HOST: &str = "shop.example.com";

fn eps(set: &[(usize, SocketAddr)], prefix: &str) -> Vec<Value> {
    set.iter()
        .map(|(i, a)| endpoint(*a, &format!("{prefix}-{i}"), true, false))
        .collect()
}

/// Every pod of a 10-pod Service replaced one by one under 200 requests a
/// second, while 5 % of the backends (one of the twenty) is killed at
/// random and left in the EndpointSlice, as a crashed pod is until its
/// kubelet notices. Not one request fails: a connection refused or closed
/// without an answer goes to the next endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_with_pods_killed_at_random_loses_no_request() {
    let api = KubeApi::start().await;
    let (all, port) = pods(20, "web").await;
    let mut all: Vec<Option<Backend>> = all.into_iter().map(Some).collect();
    let addrs: Vec<SocketAddr> = all.iter().map(|b| b.as_ref().unwrap().addr).collect();
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    // The one killed: any of the twenty, at any step of the ten.
    let (victim, at_step) = (rng.usize(..20), rng.usize(..10));
    eprintln!("seed {seed}: backend {victim} is killed at step {at_step}");
    let old: Vec<(usize, SocketAddr)> = (0..10).map(|i| (i, addrs[i])).collect();
    shop(&api, port, eps(&old, "old"));
    let s = proxy(&api, &[]).await;
    routes(&s).await;
    let rate = Rate::start(s.listen, HOST, 200);
    let began = Instant::now();

    for step in 0..10 {
        if step == at_step {
            if let Some(b) = all[victim].take() {
                b.stop().await;
            }
        }
        // New pod `step` ready beside the old ones left; old pod `step` gone.
        let mut live: Vec<(usize, SocketAddr)> = (10..=10 + step).map(|i| (i, addrs[i])).collect();
        live.extend((step + 1..10).map(|i| (i, addrs[i])));
        let mut objs = eps(&live[..step + 1], "new");
        objs.extend(eps(&live[step + 1..], "old"));
        api.apply(slice("shop", "web-abc", "web", port, objs));
        // The new pod takes traffic (unless it is the one killed)...
        if let Some(b) = &all[10 + step] {
            let hits = b.hits();
            wait_until("the new pod to take traffic", WAIT, || async {
                b.hits() > hits
            })
            .await;
        }
        // A step lasts 100 answers or more (half a second at this rate).
        let seen = rate.ok();
        wait_until("100 answers in this step", WAIT, || async {
            rate.ok() >= seen + 100
        })
        .await;
        // ...and the old one, once idle, stops.
        if let Some(b) = all[step].take() {
            let active = b.active.clone();
            wait_until("the old pod to finish its requests", WAIT, || {
                let idle = active.load(Ordering::SeqCst) == 0;
                async move { idle }
            })
            .await;
            b.stop().await;
        }
    }
    let r = rate.finish().await;
    let took = began.elapsed();
    Case::new("rollout-kills", "faults", "A rollout with pods killed at random")
        .tried(format!(
            "a 10-pod Service replaced pod by pod under 200 GET/s, backend {victim} of 20 killed at step {at_step} and left in the EndpointSlice (seed {seed})"
        ))
        .requests(r.sent as u64, r.failed.len() as u64)
        .recovery(took)
        .peak_rss_kib(s.memory_kib().1)
        .outcome(format!(
            "{} of {} requests answered 200 over the {:.1} s rollout; p99 {:.1} ms",
            r.ok,
            r.sent,
            took.as_secs_f64(),
            r.p99.as_secs_f64() * 1000.0
        ))
        .record();
    r.assert_none_failed();
    assert!(r.ok > 0);
}

/// The API server goes away for 30 s in the middle of a rollout: the last
/// routes serve throughout, and once it is back the rollout's new pods
/// take traffic within about a second (watches retry every second at
/// most).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_gone_for_30s_during_a_rollout_costs_nothing() {
    if hyper_only() {
        // Discovery is the same whichever path serves: one pass covers it.
        return;
    }
    let api = KubeApi::start().await;
    let (all, port) = pods(6, "web").await;
    let old: Vec<(usize, SocketAddr)> = (0..3).map(|i| (i, all[i].addr)).collect();
    let new: Vec<(usize, SocketAddr)> = (3..6).map(|i| (i, all[i].addr)).collect();
    shop(&api, port, eps(&old, "old"));
    let s = proxy(&api, &[]).await;
    routes(&s).await;
    let rate = Rate::start(s.listen, HOST, 100);
    api.stop();
    let down = Instant::now();
    // The rollout goes on in the cluster meanwhile: the new pods are
    // ready, which the proxy cannot see.
    while down.elapsed() < Duration::from_secs(30) {
        assert_eq!(get(s.admin, "/readyz").await.map(|r| r.0), Ok(200));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let before: Vec<usize> = all[3..].iter().map(Backend::hits).collect();
    api.restart().await;
    let back = Instant::now();
    api.apply(slice("shop", "web-abc", "web", port, eps(&new, "new")));
    wait_until("the new pods to take traffic", WAIT, || {
        let now: Vec<usize> = all[3..].iter().map(Backend::hits).collect();
        let moved = now.iter().zip(&before).any(|(n, b)| n > b);
        async move { moved }
    })
    .await;
    let picked_up = back.elapsed();
    settled_on(&all[3..], &all[..3], "traffic to leave the old pods").await;
    let r = rate.finish().await;
    Case::new("api-outage", "faults", "The API server gone for 30 s during a rollout")
        .tried("100 GET/s; the API server stopped for 30 s, the rollout's new EndpointSlice written as it came back")
        .requests(r.sent as u64, r.failed.len() as u64)
        .recovery(picked_up)
        .outcome(format!(
            "the old pods served throughout and /readyz stayed 200; the new pods took traffic {:.2} s after the API server's return; p99 {:.1} ms",
            picked_up.as_secs_f64(),
            r.p99.as_secs_f64() * 1000.0
        ))
        .record();
    r.assert_none_failed();
}

/// 50 config reloads and 50 Ingress changes, alternating, under 200
/// requests a second to a route of each kind: not one fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_and_fifty_ingress_changes_lose_no_request() {
    let api = KubeApi::start().await;
    let (pods, port) = pods(2, "web").await;
    let static_backend = Backend::start("static").await;
    shop(
        &api,
        port,
        eps(&[(0, pods[0].addr), (1, pods[1].addr)], "web"),
    );
    let template = |n: usize| {
        format!(
            "listen: {{LISTEN}}\nadmin: {{ADMIN}}\nroutes:\n  - name: static\n    host: static.example.com\n    backends: [{}]\n  - name: extra-{n}\n    host: extra{n}.example.com\n    backends: [{}]\n",
            static_backend.addr, static_backend.addr
        )
    };
    let kc = api.kubeconfig().display().to_string();
    let (s, path) = Sluice::with_config_args(
        &template(0),
        &["--kube", "--kubeconfig", &kc, "--kube-debounce", "20ms"],
    )
    .await;
    routes(&s).await;
    let discovered = Rate::start(s.listen, HOST, 100);
    let from_file = Rate::start(s.listen, "static.example.com", 100);
    let began = Instant::now();
    for n in 1..=50 {
        // The file rewritten and SIGHUP sent, as a config manager does;
        // the new file's own route proves it is in.
        replace_file(&path, &s.fill(&template(n)));
        s.signal("HUP");
        let host = format!("extra{n}.example.com");
        wait_until("the reload to take effect", WAIT, || async {
            get_host(&s, &host).await.0 == 200
        })
        .await;
        // An Ingress change: a second path to the same Service, or not.
        let mut ing = ingress("shop", "shop", "sluice", HOST, "web");
        if n % 2 == 1 {
            ing["spec"]["rules"][0]["http"]["paths"]
                .as_array_mut()
                .unwrap()
                .push(json!({"path": format!("/v{n}"), "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}));
        }
        api.apply(ing);
        // 20 answers or more between two changes.
        let seen = discovered.ok() + from_file.ok();
        wait_until("answers between changes", WAIT, || async {
            discovered.ok() + from_file.ok() >= seen + 20
        })
        .await;
    }
    let took = began.elapsed();
    let a = discovered.finish().await;
    let b = from_file.finish().await;
    let failed: Vec<String> = a.failed.iter().chain(&b.failed).cloned().collect();
    Case::new("reloads-and-ingress-changes", "faults", "50 reloads and 50 Ingress changes under load")
        .tried("200 GET/s split over a route from the file and one from an Ingress; the file rewritten 50 times and the Ingress changed 50 times, alternating")
        .requests((a.sent + b.sent) as u64, failed.len() as u64)
        .recovery(took)
        .outcome(format!(
            "{} of {} requests answered 200 over {:.1} s of changes; p99 {:.1} ms (file route), {:.1} ms (Ingress route)",
            a.ok + b.ok,
            a.sent + b.sent,
            took.as_secs_f64(),
            b.p99.as_secs_f64() * 1000.0,
            a.p99.as_secs_f64() * 1000.0
        ))
        .record();
    a.assert_none_failed();
    b.assert_none_failed();
}

/// SIGTERM under 200 requests a second with 200 WebSockets open: the
/// proxy turns not ready at once and keeps serving through its shutdown
/// delay (the LoadBalancer's time to stop sending), then drains: every
/// request sent before its listener closed is answered, every WebSocket
/// keeps echoing until its client closes it, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_with_200_websockets_loses_nothing() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    const SOCKETS: usize = 200;
    let b = Backend::start("a").await;
    let mut s = Sluice::serve(&["--backend", &b.addr.to_string(), "--shutdown-delay", "5s"]).await;
    let mut sockets = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        let tcp = tokio::net::TcpStream::connect(s.listen).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", s.listen), tcp)
            .await
            .unwrap();
        sockets.push(ws);
    }
    let rate = Rate::start(s.listen, "a", 200);
    wait_until("the load to flow", WAIT, || async { rate.ok() > 50 }).await;
    let term = Instant::now();
    s.signal("TERM");
    // As a LoadBalancer would: sending goes on until its health checks
    // have seen /readyz say 503 (here: 200 more answers, a second at this
    // rate, well within the shutdown delay), then stops.
    wait_until("/readyz to say 503", WAIT, || async {
        matches!(get(s.admin, "/readyz").await, Ok((503, _)))
    })
    .await;
    let seen = rate.ok();
    wait_until("200 answers while not ready", WAIT, || async {
        rate.ok() >= seen + 200
    })
    .await;
    let r = rate.finish().await;
    // Every WebSocket still echoes while the proxy drains...
    let mut echoed = 0;
    for ws in &mut sockets {
        ws.send(Message::text("during")).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        if matches!(back, Ok(Some(Ok(Message::Text(ref t)))) if t.as_str() == "during") {
            echoed += 1;
        }
    }
    // ...and the process leaves once their clients close them.
    for mut ws in sockets {
        let _ = ws.close(None).await;
    }
    let code = s.wait_exit(Duration::from_secs(60)).await;
    let took = term.elapsed();
    Case::new("sigterm-websockets", "faults", "SIGTERM under load with 200 WebSockets open")
        .tried(format!(
            "200 GET/s and {SOCKETS} WebSockets open; SIGTERM with shutdown_delay 5s; requests went on for 200 answers after /readyz said 503, then stopped, as behind a LoadBalancer whose health checks take it out"
        ))
        .attacks(SOCKETS as u64)
        .requests(r.sent as u64, r.failed.len() as u64)
        .recovery(took)
        .outcome(format!(
            "every request answered; {echoed} of {SOCKETS} WebSockets echoed during the drain; exit code {} {:.1} s after SIGTERM, once the WebSockets were closed",
            code.map_or("none".to_owned(), |c| c.to_string()),
            took.as_secs_f64()
        ))
        .record();
    r.assert_none_failed();
    assert_eq!(echoed, SOCKETS, "WebSockets cut during the drain");
    assert_eq!(code, Some(0));
}
