//! ingress-nginx's limit annotations (issue 13, point 4) through discovery
//! with real traffic: `limit-rps` with `limit-burst-multiplier` held
//! within 10 % over every path of an Ingress while the routing table is
//! rebuilt under it, each client address limited on its own,
//! `limit-whitelist` exempt, `limit-connections`, and 503 for the refused
//! as ingress-nginx answers. The manifests are
//! `tests/corpus/ingress-nginx/limits.yaml`.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_integration::cluster::*;
use sluice_integration::corpus::manifests;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;

fn ip(d: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, d)
}

/// GET `path` on `host` from source address `from`: the status.
async fn status_from(s: &Sluice, from: Ipv4Addr, host: &str, path: &str) -> u16 {
    match request(
        &client(Some(from)),
        s.listen,
        "GET",
        path,
        &[("host", host)],
        empty(),
    )
    .await
    {
        Ok((status, _, _)) => status,
        Err(e) => panic!("GET {host}{path} from {from}: {e}"),
    }
}

async fn start(api: &KubeApi, port: u16, slow_port: u16) -> Sluice {
    for m in manifests(
        "ingress-nginx/limits.yaml",
        &[
            ("PORT", &port.to_string()),
            ("SLOW_PORT", &slow_port.to_string()),
        ],
    ) {
        api.apply(m);
    }
    proxy(api, &[]).await
}

/// Waits until `host` routes, asking from 127.0.0.9 (an address the
/// tests measure nothing on).
async fn routed(s: &Sluice, host: &str, path: &str) {
    wait_until("the Ingress to route", WAIT, || async {
        status_from(s, ip(9), host, path).await == 200
    })
    .await;
}

/// What one client saw sending as fast as it could.
#[derive(Debug)]
struct Sent {
    ok: usize,
    refused: usize,
    other: Vec<u16>,
    took: Duration,
}

/// Sends GETs from `from` to rps.example.com, alternating /a and /b, on
/// `workers` keep-alive connections, for `window`.
async fn flood(s: &Sluice, from: Ipv4Addr, window: Duration, workers: usize) -> Sent {
    let c = client(Some(from));
    let ok = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let other = Arc::new(std::sync::Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (c, ok, refused, other, addr) = (
            c.clone(),
            ok.clone(),
            refused.clone(),
            other.clone(),
            s.listen,
        );
        tasks.spawn(async move {
            let mut n = w;
            while started.elapsed() < window {
                let path = if n % 2 == 0 { "/a" } else { "/b" };
                n += 1;
                match request(
                    &c,
                    addr,
                    "GET",
                    path,
                    &[("host", "rps.example.com")],
                    empty(),
                )
                .await
                {
                    Ok((200, _, _)) => ok.fetch_add(1, Ordering::Relaxed),
                    Ok((503, _, _)) => refused.fetch_add(1, Ordering::Relaxed),
                    Ok((status, _, _)) => {
                        other.lock().unwrap().push(status);
                        0
                    }
                    Err(e) => panic!("GET from {from}: {e}"),
                };
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let other = std::mem::take(&mut *other.lock().unwrap());
    Sent {
        ok: ok.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        other,
        took: started.elapsed(),
    }
}

/// Checks one client's count against nginx's leaky bucket: the burst and
/// the first request at once, then 10 a second.
fn within_ten_percent(who: &str, sent: &Sent) {
    let expected = 1.0 + 20.0 + 10.0 * sent.took.as_secs_f64();
    let ok = sent.ok as f64;
    eprintln!(
        "{who}: {} accepted, {} refused in {:?}; expected {expected:.1} ({:+.1} %)",
        sent.ok,
        sent.refused,
        sent.took,
        (ok - expected) / expected * 100.0
    );
    assert!(
        sent.other.is_empty(),
        "{who}: unexpected answers {:?}",
        sent.other
    );
    // The client must have sent well past the limit for the count to
    // measure it (not the machine's speed).
    assert!(
        (sent.ok + sent.refused) as f64 > 2.0 * expected,
        "{who}: sent only {} requests, too few to test a limit of {expected:.0}",
        sent.ok + sent.refused
    );
    assert!(
        (ok - expected).abs() <= 0.1 * expected,
        "{who}: {ok} accepted, not within 10 % of {expected:.1}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rps_holds_within_ten_percent_per_client_across_rebuilds() {
    let api = KubeApi::start().await;
    let web = Backend::start("web").await;
    let slow = Backend::start("slow").await;
    let s = start(&api, web.addr.port(), slow.addr.port()).await;
    routed(&s, "rps.example.com", "/a").await;
    let hits = web.hits();
    let before = generation(&s).await;
    // Rebuilds under the traffic: another Ingress changes every 200 ms,
    // and must not reset anyone's bucket.
    let window = Duration::from_secs(6);
    let churn = async {
        let started = Instant::now();
        let mut i = 0u32;
        while started.elapsed() < window {
            i += 1;
            let mut other = ingress("shop", "other", "sluice", "other.example.com", "web");
            other["metadata"]["annotations"] = json!({
                "nginx.ingress.kubernetes.io/proxy-read-timeout": (i % 50 + 1).to_string()
            });
            api.apply(other);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    // Two clients, each with its own bucket, and an exempt one.
    let (a, b, exempt, ()) = tokio::join!(
        flood(&s, ip(2), window, 3),
        flood(&s, ip(3), window, 3),
        flood(&s, ip(4), Duration::from_secs(2), 2),
        churn,
    );
    within_ten_percent("127.0.0.2", &a);
    within_ten_percent("127.0.0.3", &b);
    assert!(
        exempt.refused == 0 && exempt.other.is_empty() && exempt.ok > 60,
        "the allow-listed client was limited: {exempt:?}"
    );
    assert!(
        generation(&s).await >= before + 5,
        "the routing table was not rebuilt under the traffic"
    );
    // Refused requests never reached the backend.
    assert_eq!(web.hits() - hits, a.ok + b.ok + exempt.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_is_a_503_and_the_bucket_refills() {
    let api = KubeApi::start().await;
    let web = Backend::start("web").await;
    let slow = Backend::start("slow").await;
    let s = start(&api, web.addr.port(), slow.addr.port()).await;
    routed(&s, "rps.example.com", "/b").await;
    let c = client(Some(ip(5)));
    let mut statuses = Vec::new();
    // Burst and first request, then refusals (sent within much less than
    // the 100 ms one more request takes to drain).
    let t = Instant::now();
    for _ in 0..30 {
        let r = request(
            &c,
            s.listen,
            "GET",
            "/a",
            &[("host", "rps.example.com")],
            empty(),
        )
        .await
        .unwrap();
        statuses.push(r.0);
        if r.0 == 503 {
            assert!(r.2.contains("too many requests"), "{}", r.2);
        }
    }
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let allowed = 21 + (t.elapsed().as_secs_f64() * 10.0) as usize;
    assert!(
        (21..=allowed).contains(&ok) && statuses.iter().all(|&s| s == 200 || s == 503),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&503));
    // One request drains every 100 ms: within a deadline, it passes again.
    wait_until("the bucket to drain", Duration::from_secs(5), || async {
        status_from(&s, ip(5), "rps.example.com", "/b").await == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_connections_counts_requests_in_progress_per_client() {
    let api = KubeApi::start().await;
    let web = Backend::start("web").await;
    let slow = Backend::start_slow("slow", Duration::from_millis(1500)).await;
    let s = start(&api, web.addr.port(), slow.addr.port()).await;
    routed(&s, "conns.example.com", "/").await;
    // One slow request in progress from 127.0.0.2...
    let first = {
        let addr = s.listen;
        tokio::spawn(async move {
            request(
                &client(Some(ip(2))),
                addr,
                "GET",
                "/",
                &[("host", "conns.example.com")],
                empty(),
            )
            .await
            .map(|r| r.0)
        })
    };
    wait_until("the first request to reach the backend", WAIT, || async {
        slow.active.load(Ordering::SeqCst) >= 1
    })
    .await;
    // ...refuses a second from the same address at once, with a 503...
    let t = Instant::now();
    assert_eq!(status_from(&s, ip(2), "conns.example.com", "/").await, 503);
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    assert!(!first.is_finished());
    // ...but not one from another address.
    assert_eq!(status_from(&s, ip(3), "conns.example.com", "/").await, 200);
    assert_eq!(first.await.unwrap(), Ok(200));
    // Once it is done, the client may send again.
    assert_eq!(status_from(&s, ip(2), "conns.example.com", "/").await, 200);
}
