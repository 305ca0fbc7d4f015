//! Memory with many Services, endpoints and certificates discovered, and
//! what the first table and one rebuild cost at 1k–10k Ingresses.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_integration::cluster::*;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;

use crate::watching;

/// `n` Services in namespace `bench`, each with one slice of `eps`
/// endpoints (127.a.b.c, never sent to) and one Ingress for host
/// `hI.bench.test`; the first `certs` Ingresses serve TLS from a Secret of
/// their own. The objects carry what a real API server's do (a Service's
/// IP families and policies, an endpoint's node, zone and pod uid, owner
/// references, `kubectl apply`'s annotation), so that what the proxy keeps
/// of them is measured, not what a test's minimal objects hold.
fn populate(api: &KubeApi, n: usize, eps: usize, certs: usize) {
    api.apply(ingress_class());
    let ca = tls::Ca::new();
    for i in 0..n {
        let svc = format!("svc-{i}");
        let host = format!("h{i}.bench.test");
        api.apply(real_service(&svc, i));
        let endpoints = (0..eps)
            .map(|j| {
                let ip = Ipv4Addr::new(127, 1 + j as u8, (i / 256) as u8, (i % 256) as u8);
                let mut e = endpoint(
                    SocketAddr::from((ip, 8080)),
                    &format!("{svc}-7d9f8c6b5-{j:05}"),
                    true,
                    false,
                );
                e["nodeName"] = json!(format!("pool-a-node-{}", j % 3));
                e["zone"] = json!(format!("nyc1-{}", j % 3));
                e["targetRef"]["namespace"] = json!("bench");
                e["targetRef"]["uid"] = json!(format!("0a1b2c3d-{i:04}-{j:04}-8e9f-0123456789ab"));
                e
            })
            .collect();
        let mut sl = slice("bench", &format!("{svc}-x7k2p"), &svc, 8080, endpoints);
        sl["metadata"]["generateName"] = json!(format!("{svc}-"));
        sl["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] =
            json!("endpointslice-controller.k8s.io");
        sl["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Service",
            "name": svc, "uid": format!("uid-Service-{svc}"), "controller": true, "blockOwnerDeletion": true}]);
        sl["metadata"]["annotations"] =
            json!({"endpoints.kubernetes.io/last-change-trigger-time": "2026-12-01T10:00:00Z"});
        api.apply(sl);
        let mut ing = ingress("bench", &svc, "sluice", &host, &svc);
        if i < certs {
            let cert = ca.issue(&[&host]);
            let secret = format!("tls-{i}");
            api.apply(tls_secret("bench", &secret, &cert.cert, &cert.key));
            ing["spec"]["tls"] = json!([{"hosts": [host], "secretName": secret}]);
        }
        let applied = ing.to_string();
        ing["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/last-applied-configuration": applied});
        ing["metadata"]["generation"] = json!(1);
        api.apply(ing);
    }
}

/// A Service as the API server returns it after `kubectl expose`.
fn real_service(name: &str, i: usize) -> serde_json::Value {
    let ip = format!("10.96.{}.{}", i / 256, i % 256);
    json!({"kind": "Service", "metadata": {"name": name, "namespace": "bench",
            "labels": {"app": name}},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster", "sessionAffinity": "None",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]},
        "status": {"loadBalancer": {}}})
}

/// Waits until the last rebuild logged serves `n` Ingresses.
async fn serving(s: &Sluice, n: usize) {
    let want = format!("ingresses={n}");
    wait_until(
        "every Ingress to be served",
        Duration::from_secs(600),
        || async {
            s.log()
                .lines()
                .rev()
                .find(|l| l.contains("routes rebuilt from the cluster"))
                .is_some_and(|l| l.split_whitespace().any(|w| w == want))
        },
    )
    .await;
}

/// Resident memory in MiB, once it has stopped moving (the allocator
/// settles after the first rebuilds).
async fn settled_rss(s: &Sluice) -> f64 {
    let mut last = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = s.memory_kib().0;
        if now == last {
            break;
        }
        last = now;
    }
    last as f64 / 1024.0
}

pub async fn memory(services: usize, eps: usize, certs: usize) {
    let certs = certs.min(services);
    println!("## Memory with discovered objects (resident, after the table is built)");
    println!();
    println!("| cluster | RSS |");
    println!("|---|---:|");
    let empty = KubeApi::start().await;
    empty.apply(ingress_class());
    let s = watching(&empty, &[]).await;
    println!("| empty | {:.1} MiB |", settled_rss(&s).await);
    drop(s);
    for certs in [0, certs] {
        let api = KubeApi::start().await;
        eprintln!("populating {services} Services x {eps} endpoints, {certs} certificates");
        populate(&api, services, eps, certs);
        let s = watching(&api, &[]).await;
        serving(&s, services).await;
        let rss = settled_rss(&s).await;
        println!(
            "| {services} Services, {} endpoints, {services} Ingresses, {certs} TLS Secrets | {rss:.1} MiB |",
            services * eps
        );
    }
}

pub async fn scale(points: &[usize], eps: usize) {
    println!("## Discovery at scale ({eps} endpoints per Service)");
    println!();
    println!("| Ingresses | endpoints | first table | RSS | one rebuild (mean of 10) |");
    println!("|---:|---:|---:|---:|---:|");
    for &n in points {
        let api = KubeApi::start().await;
        eprintln!("populating {n} Services x {eps} endpoints");
        populate(&api, n, eps, 0);
        let started = Instant::now();
        let s = watching(&api, &[]).await;
        serving(&s, n).await;
        let first = started.elapsed();
        let rss = settled_rss(&s).await;
        let (sum0, count0) = rebuilds(&s).await;
        // Ten changes of one endpoint each, each after the last rebuild.
        for k in 0..10 {
            let svc = format!("svc-{}", k * n / 10);
            let ip = Ipv4Addr::new(127, 200, 0, k as u8 + 1);
            let endpoints = vec![endpoint(SocketAddr::from((ip, 8080)), "moved", true, false)];
            api.apply(slice(
                "bench",
                &format!("{svc}-x7k2p"),
                &svc,
                8080,
                endpoints,
            ));
            let want = count0 + k as f64 + 1.0;
            wait_until("the rebuild", Duration::from_secs(120), || async {
                rebuilds(&s).await.1 >= want
            })
            .await;
        }
        let (sum1, count1) = rebuilds(&s).await;
        let mean = (sum1 - sum0) / (count1 - count0);
        println!(
            "| {n} | {} | {:.2} s | {rss:.1} MiB | {:.1} ms |",
            n * eps,
            first.as_secs_f64(),
            mean * 1e3
        );
    }
}

/// `sluice_kube_rebuild_seconds`: (sum, count).
async fn rebuilds(s: &Sluice) -> (f64, f64) {
    let sum = s.metric("sluice_kube_rebuild_seconds_sum").await;
    let count = s.metric("sluice_kube_rebuild_seconds_count").await;
    (sum.unwrap_or(0.0), count.unwrap_or(0.0))
}
