//! Soak (issue 11, point 6): a steady rate through churn, and nothing may
//! leak. `SLUICE_SOAK_SECONDS` sets the length: 60 s in the suite,
//! `scripts/soak.sh --duration 1h` by hand (the same test, in release).
//!
//! Throughout: 200 GET/s to a route from an Ingress; its EndpointSlice
//! changes every second (a pod in, a pod out), the config file is
//! reloaded every 5 s, a fresh TLS connection (full handshake) makes a
//! request every 100 ms, and a WebSocket opens, echoes and closes every
//! 200 ms. Measured: RSS at start, peak and end, open descriptors at start
//! and end, requests lost. It fails if a request is lost, descriptors
//! leak, or memory grows past the bound.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_integration::cluster::*;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::report::Case;
use sluice_integration::tls::{self as ttls, Ca};
use sluice_integration::*;

const HOST: &str = "shop.example.com";
/// Growth allowed from start to end, in KiB: a leak of a few hundred
/// bytes per request, or per connection, passes it well within a minute.
const GROWTH_BOUND_KIB: u64 = 32 * 1024;
/// Descriptors allowed above the start at the end: pooled upstream
/// connections to pods that came back meanwhile.
const FD_SLACK: usize = 16;

fn eps(pods: &[Backend], live: &[usize]) -> Vec<serde_json::Value> {
    live.iter()
        .map(|&i| endpoint(pods[i].addr, &format!("web-{i}"), true, false))
        .collect()
}

/// Runs `f` every `every` until `stop`, counting its failures.
fn churn<F, Fut>(
    stop: &Arc<AtomicBool>,
    every: Duration,
    failures: &Arc<AtomicUsize>,
    mut f: F,
) -> tokio::task::JoinHandle<usize>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let (stop, failures) = (stop.clone(), failures.clone());
    tokio::spawn(async move {
        let mut done = 0;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            if !f().await {
                failures.fetch_add(1, Ordering::Relaxed);
            }
            done += 1;
        }
        done
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_through_churn_leaks_nothing() {
    if hyper_only() {
        // One pass is enough: it uses both HTTP paths, HTTP/2 and TLS.
        return;
    }
    let seconds: u64 = std::env::var("SLUICE_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let api = Arc::new(KubeApi::start().await);
    let (pods, port) = pods(4, "web").await;
    shop(&api, port, eps(&pods, &[0, 1, 2]));
    let static_backend = Backend::start("static").await;
    let ca = Ca::new();
    let dir = TempDir::new();
    let (cert, key) = ca.issue(&["tls.example.test"]).write(&dir.0, "site");
    let static_addr = static_backend.addr;
    let template = move |n: usize| {
        format!(
            "listen: [{{LISTEN}}]\nlisten_tls: [{{LISTEN_TLS}}]\nadmin: {{ADMIN}}\ntls:\n  certificates: [{{cert: {}, key: {}}}]\nroutes:\n  - name: static-{n}\n    host: tls.example.test\n    backends: [{}]\n",
            cert.display(),
            key.display(),
            static_addr
        )
    };
    let kc = api.kubeconfig().display().to_string();
    let (s, path) = Sluice::with_config_args(
        &template(0),
        &["--kube", "--kubeconfig", &kc, "--kube-debounce", "20ms"],
    )
    .await;
    let s = Arc::new(s);
    routes(&s).await;

    // Warm: pools filled, every kind of connection made once.
    let rate = Rate::start(s.listen, HOST, 200);
    wait_until("the load to flow", WAIT, || async { rate.ok() > 200 }).await;
    let (rss_start, _) = s.memory_kib();
    let fds_start = s.open_fds();

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    // The EndpointSlice: a pod in, a pod out, every second.
    {
        let api = api.clone();
        let pods: Vec<SocketAddr> = pods.iter().map(|b| b.addr).collect();
        let mut n = 0usize;
        tasks.push(churn(&stop, Duration::from_secs(1), &failures, move || {
            n += 1;
            let live: Vec<usize> = (0..4).filter(|i| *i != n % 4).collect();
            let objs = live
                .iter()
                .map(|&i| endpoint(pods[i], &format!("web-{i}"), true, false))
                .collect();
            api.apply(slice("shop", "web-abc", "web", port, objs));
            async { true }
        }));
    }
    // The config file, every 5 s (SIGHUP).
    {
        let s = s.clone();
        let mut n = 0usize;
        tasks.push(churn(&stop, Duration::from_secs(5), &failures, move || {
            n += 1;
            replace_file(&path, &s.fill(&template(n)));
            s.signal("HUP");
            async { true }
        }));
    }
    // A full TLS handshake and a request, every 100 ms.
    {
        let tls_addr = s.tls();
        let config = ttls::client_config(&[b"http/1.1"], &[&rustls::version::TLS13]);
        tasks.push(churn(
            &stop,
            Duration::from_millis(100),
            &failures,
            move || {
                let config = config.clone();
                async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let Ok(mut c) = ttls::connect(tls_addr, "tls.example.test", config).await
                    else {
                        return false;
                    };
                    let req =
                        b"GET / HTTP/1.1\r\nHost: tls.example.test\r\nConnection: close\r\n\r\n";
                    if c.write_all(req).await.is_err() {
                        return false;
                    }
                    let mut out = Vec::new();
                    let read =
                        tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut out))
                            .await;
                    matches!(read, Ok(Ok(_))) && out.starts_with(b"HTTP/1.1 200")
                }
            },
        ));
    }
    // A WebSocket opened, echoed and closed, every 200 ms.
    {
        let listen = s.listen;
        tasks.push(churn(
            &stop,
            Duration::from_millis(200),
            &failures,
            move || async move {
                use futures_util::{SinkExt, StreamExt};
                use tokio_tungstenite::tungstenite::Message;
                let Ok(tcp) = tokio::net::TcpStream::connect(listen).await else {
                    return false;
                };
                use tokio_tungstenite::tungstenite::client::IntoClientRequest;
                let mut req = format!("ws://{listen}/ws")
                    .into_client_request()
                    .expect("a ws:// URL");
                req.headers_mut().insert("host", HOST.parse().unwrap());
                let Ok((mut ws, _)) = tokio_tungstenite::client_async(req, tcp).await else {
                    return false;
                };
                if ws.send(Message::text("soak")).await.is_err() {
                    return false;
                }
                let back = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
                let ok = matches!(back, Ok(Some(Ok(Message::Text(ref t)))) if t.as_str() == "soak");
                let _ = ws.close(None).await;
                ok
            },
        ));
    }

    let began = Instant::now();
    let mut samples = 0;
    while began.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples += 1;
        if samples % 10 == 0 {
            let (rss, _) = s.memory_kib();
            eprintln!(
                "soak: {:>4} s, RSS {rss} KiB, {} descriptors, {} answered",
                began.elapsed().as_secs(),
                s.open_fds(),
                rate.ok()
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut churned = Vec::new();
    for t in tasks {
        churned.push(t.await.unwrap());
    }
    let r = rate.finish().await;
    // Settled: the last pod set holds every pod again, its connections
    // pooled; the clients' connections closed.
    api.apply(slice(
        "shop",
        "web-abc",
        "web",
        port,
        eps(&pods, &[0, 1, 2]),
    ));
    let (rss_end, peak) = s.memory_kib();
    let fds_end = {
        let mut fds = s.open_fds();
        let deadline = Instant::now() + Duration::from_secs(30);
        while fds > fds_start + FD_SLACK && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            fds = s.open_fds();
        }
        fds
    };
    let failed_churn = failures.load(Ordering::Relaxed);
    Case::new("soak", "soak", "Soak through churn")
        .tried(format!(
            "{seconds} s at 200 GET/s to an Ingress route whose EndpointSlice changed every second, with {} config reloads, {} fresh TLS connections and {} WebSockets opened, echoed and closed",
            churned[1], churned[2], churned[3]
        ))
        .requests((r.sent + churned[2] + churned[3]) as u64, (r.failed.len() + failed_churn) as u64)
        .peak_rss_kib(peak)
        .outcome(format!(
            "{} of {} requests answered; RSS {rss_start} KiB at start, {peak} KiB peak, {rss_end} KiB at end; {fds_start} descriptors at start, {fds_end} at end; p99 {:.1} ms",
            r.ok,
            r.sent,
            r.p99.as_secs_f64() * 1000.0
        ))
        .record();
    assert!(
        r.failed.is_empty() && failed_churn == 0,
        "{} requests and {failed_churn} churn steps failed: {:?}",
        r.failed.len(),
        &r.failed[..r.failed.len().min(5)]
    );
    assert!(
        fds_end <= fds_start + FD_SLACK,
        "descriptors leaked: {fds_start} at start, {fds_end} at end"
    );
    assert!(
        rss_end <= rss_start + GROWTH_BOUND_KIB,
        "memory grew from {rss_start} KiB to {rss_end} KiB"
    );
}
