//! A small cluster for discovery tests: the objects the tests' API server
//! (`kube_api`) is given (IngressClass, Service, Ingress, EndpointSlice),
//! backends that stand for pods, a proxy watching it, and clients that
//! keep load on it while things change.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::kube_api::KubeApi;
use crate::*;

/// How long a test waits for a condition: generous, because a busy CI
/// machine can be many times slower than a quiet one. Tests wait for what
/// they are about, never for how much happens within a time.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn ingress_class() -> Value {
    json!({"kind": "IngressClass", "metadata": {"name": "sluice"},
           "spec": {"controller": "sluice.dev/ingress-controller"}})
}

pub fn service(ns: &str, name: &str) -> Value {
    json!({"kind": "Service", "metadata": {"name": name, "namespace": ns},
           "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
}

pub fn ingress(ns: &str, name: &str, class: &str, host: &str, svc: &str) -> Value {
    json!({"kind": "Ingress", "metadata": {"name": name, "namespace": ns},
           "spec": {"ingressClassName": class, "rules": [{"host": host, "http": {"paths": [
               {"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}}]}})
}

/// A `kubernetes.io/tls` Secret holding `cert` and its `key` (PEM).
pub fn tls_secret(ns: &str, name: &str, cert: &str, key: &str) -> Value {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    json!({"kind": "Secret", "type": "kubernetes.io/tls",
           "metadata": {"name": name, "namespace": ns},
           "data": {"tls.crt": b64(cert), "tls.key": b64(key)}})
}

/// One endpoint of a slice: a pod at `addr`.
pub fn endpoint(addr: SocketAddr, pod: &str, ready: bool, terminating: bool) -> Value {
    json!({"addresses": [addr.ip().to_string()],
           "conditions": {"ready": ready, "serving": true, "terminating": terminating},
           "targetRef": {"kind": "Pod", "name": pod, "namespace": "shop"}})
}

/// An EndpointSlice of `svc` whose endpoints all listen on `port`.
pub fn slice(ns: &str, name: &str, svc: &str, port: u16, endpoints: Vec<Value>) -> Value {
    json!({"kind": "EndpointSlice",
           "metadata": {"name": name, "namespace": ns,
                        "labels": {"kubernetes.io/service-name": svc}},
           "addressType": "IPv4",
           "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
           "endpoints": endpoints})
}

/// `n` backends on 127.0.0.1.. 127.0.0.n, all on one port, like pods of
/// one Deployment.
pub async fn pods(n: u8, prefix: &str) -> (Vec<Backend>, u16) {
    // A port below the ephemeral range (see `stable_addr`: these pods are
    // stopped and started again), free on every one of the n addresses.
    let addr_of = |i: u8, port: u16| SocketAddr::from((Ipv4Addr::new(127, 0, 0, 10 + i), port));
    let port = (0..100)
        .map(|_| stable_addr().port())
        .find(|&port| (0..n).all(|i| std::net::TcpListener::bind(addr_of(i, port)).is_ok()))
        .expect("a port free on every pod address in 100 tries");
    let mut out = Vec::new();
    for i in 0..n {
        out.push(Backend::start_on(&format!("{prefix}{i}"), addr_of(i, port)).await);
    }
    (out, port)
}

pub async fn proxy(api: &KubeApi, extra: &[&str]) -> Sluice {
    let kc = api.kubeconfig().display().to_string();
    let mut args = vec!["--kube", "--kubeconfig", &kc, "--kube-debounce", "20ms"];
    args.extend_from_slice(extra);
    Sluice::serve(&args).await
}

/// Ready endpoints for `set`, pods named `PREFIX-i`.
pub fn ready_eps(set: &[Backend], prefix: &str) -> Vec<Value> {
    set.iter()
        .enumerate()
        .map(|(i, b)| endpoint(b.addr, &format!("{prefix}-{i}"), true, false))
        .collect()
}

/// The usual cluster: our IngressClass, Service shop/web with one slice
/// of `eps` on `port`, and an Ingress sending shop.example.com to it.
pub fn shop(api: &KubeApi, port: u16, eps: Vec<Value>) {
    shop_backend(api, port, eps);
    api.apply(ingress("shop", "shop", "sluice", "shop.example.com", "web"));
}

/// [`shop`] without its Ingress, for tests that write their own.
pub fn shop_backend(api: &KubeApi, port: u16, eps: Vec<Value>) {
    api.apply(ingress_class());
    api.apply(service("shop", "web"));
    api.apply(slice("shop", "web-abc", "web", port, eps));
}

/// Waits until shop.example.com routes through `s`.
pub async fn routes(s: &Sluice) {
    wait_until("the Ingress to route", WAIT, || async {
        get_host(s, "shop.example.com").await.0 == 200
    })
    .await;
}

/// Keeps `workers` clients sending GETs to `host` until stopped; counts
/// answers and failures (anything but 200).
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<tokio::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(s: &Sluice, host: &'static str, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(tokio::sync::Mutex::new(Vec::new()));
        let tasks = (0..workers)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                let addr = s.listen;
                tokio::spawn(async move {
                    let c = client(None);
                    // Bounded in time as well as by the stop flag.
                    let deadline = Instant::now() + Duration::from_secs(120);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        match request(&c, addr, "GET", "/", &[("host", host)], empty()).await {
                            Ok((200, _, _)) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok((status, _, body)) => {
                                failed.lock().await.push(format!("{status} {body}"))
                            }
                            Err(e) => failed.lock().await.push(e),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    /// Stops, fails the test if any request failed (naming the first
    /// few), and returns how many were answered.
    pub async fn finish_none_failed(self) -> usize {
        let (ok, failed) = self.finish().await;
        assert!(
            failed.is_empty(),
            "{} of {} failed: {:?}",
            failed.len(),
            ok + failed.len(),
            &failed[..failed.len().min(5)]
        );
        ok
    }

    pub async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.lock().await.clone(),
        )
    }
}

/// Waits until every backend in `set` has answered at least once more.
pub async fn all_serving(set: &[Backend], limit: Duration) {
    let start: Vec<usize> = set.iter().map(Backend::hits).collect();
    wait_until("every endpoint to get traffic", limit, || {
        let now: Vec<usize> = set.iter().map(Backend::hits).collect();
        let all = now.iter().zip(&start).all(|(n, s)| n > s);
        async move { all }
    })
    .await;
}

/// Waits until, between two polls, the backends in `live` answered and
/// none in `idle` did: traffic has moved off `idle`.
pub async fn settled_on(live: &[Backend], idle: &[Backend], what: &str) {
    let last = std::sync::Mutex::new(None::<(usize, Vec<usize>)>);
    wait_until(what, WAIT, || {
        let now = (
            live.iter().map(Backend::hits).sum::<usize>(),
            idle.iter().map(Backend::hits).collect::<Vec<_>>(),
        );
        let prev = last.lock().unwrap().replace(now.clone());
        let settled = prev.is_some_and(|(l, i)| now.0 > l && now.1 == i);
        async move { settled }
    })
    .await;
}

/// A counting client at a fixed rate: a GET to `host` every `1/per_sec`
/// seconds, each on its tick whether or not earlier ones were answered
/// (open loop, as real traffic is), on a shared keep-alive pool. Bounded:
/// it stops by itself after five minutes.
pub struct Rate {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    counts: Arc<RateCounts>,
}

#[derive(Default)]
struct RateCounts {
    sent: AtomicUsize,
    ok: AtomicUsize,
    failed: std::sync::Mutex<Vec<String>>,
    latencies: std::sync::Mutex<Vec<Duration>>,
}

/// What a [`Rate`] saw.
#[derive(Debug)]
pub struct RateReport {
    pub sent: usize,
    pub ok: usize,
    pub failed: Vec<String>,
    pub p99: Duration,
}

impl RateReport {
    /// Fails the test if any request failed, naming the first few.
    pub fn assert_none_failed(&self) {
        assert!(
            self.failed.is_empty(),
            "{} of {} failed: {:?}",
            self.failed.len(),
            self.sent,
            &self.failed[..self.failed.len().min(5)]
        );
    }
}

impl Rate {
    pub fn start(addr: SocketAddr, host: &'static str, per_sec: u32) -> Rate {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(RateCounts::default());
        let (s, c) = (stop.clone(), counts.clone());
        let task = tokio::spawn(async move {
            let client = client(None);
            let mut tick = tokio::time::interval(Duration::from_secs(1) / per_sec);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let deadline = Instant::now() + Duration::from_secs(300);
            let mut inflight = tokio::task::JoinSet::new();
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                tick.tick().await;
                c.sent.fetch_add(1, Ordering::Relaxed);
                let (client, c) = (client.clone(), c.clone());
                inflight.spawn(async move {
                    let t = Instant::now();
                    match request(&client, addr, "GET", "/", &[("host", host)], empty()).await {
                        Ok((200, _, _)) => {
                            c.ok.fetch_add(1, Ordering::Relaxed);
                            c.latencies.lock().unwrap().push(t.elapsed());
                        }
                        Ok((status, _, body)) => {
                            c.failed.lock().unwrap().push(format!("{status} {body}"))
                        }
                        Err(e) => c.failed.lock().unwrap().push(e),
                    }
                });
                while inflight.try_join_next().is_some() {}
            }
            while inflight.join_next().await.is_some() {}
        });
        Rate { stop, task, counts }
    }

    /// Requests answered 200 so far.
    pub fn ok(&self) -> usize {
        self.counts.ok.load(Ordering::Relaxed)
    }

    /// Stops sending, waits for the answers still due, and reports.
    pub async fn finish(self) -> RateReport {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let mut lat = std::mem::take(&mut *self.counts.latencies.lock().unwrap());
        lat.sort();
        let p99 = lat
            .get((lat.len() * 99 / 100).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default();
        RateReport {
            sent: self.counts.sent.load(Ordering::Relaxed),
            ok: self.counts.ok.load(Ordering::Relaxed),
            failed: std::mem::take(&mut *self.counts.failed.lock().unwrap()),
            p99,
        }
    }
}
