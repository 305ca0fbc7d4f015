//! Each strategy over real sockets: exact sequences where the strategy
//! promises them, stickiness by client source address for ip-hash.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use sluice_integration::*;

async fn three() -> [Backend; 3] {
    [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ]
}

/// The answering backend of `n` sequential GETs on one keep-alive client.
async fn sequence(s: &Sluice, n: usize, source: Option<Ipv4Addr>) -> Vec<String> {
    let c = client(source);
    let mut out = Vec::new();
    for _ in 0..n {
        let (status, _, body) = request(&c, s.listen, "GET", "/", &[], empty())
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        out.push(body.trim().to_owned());
    }
    out
}

/// `sluice serve` in the quick form: `--strategy` over `backends` (each
/// `IP:PORT` or `IP:PORT=WEIGHT`), plus `extra` flags.
async fn quick(strategy: &str, backends: &[String], extra: &[&str]) -> Sluice {
    let mut args = vec!["--strategy", strategy];
    for b in backends {
        args.extend(["--backend", b.as_str()]);
    }
    args.extend(extra);
    Sluice::serve(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_rotates_exactly() {
    let [a, b, c] = three().await;
    let s = quick(
        "round-robin",
        &[a.addr.to_string(), b.addr.to_string(), c.addr.to_string()],
        &["--workers", "1"],
    )
    .await;
    let seq = sequence(&s, 9, None).await;
    // Endpoints are ordered by address; the rotation is exact from there.
    let first: Vec<&str> = seq.iter().take(3).map(String::as_str).collect();
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, ["a", "b", "c"], "{seq:?}");
    for (i, name) in seq.iter().enumerate() {
        assert_eq!(name, first[i % 3], "{seq:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_five_one_one_is_smooth() {
    let [a, b, c] = three().await;
    let weighted = [
        format!("{}=5", a.addr),
        format!("{}=1", b.addr),
        format!("{}=1", c.addr),
    ];
    let s = quick("weighted", &weighted, &["--workers", "1"]).await;
    let seq = sequence(&s, 70, None).await;
    // The heavy endpoint is a; the two light ones come one each per 7 picks,
    // never two heavy bursts of more than two.
    let order: Vec<&str> = seq.iter().map(String::as_str).collect();
    for w in order.windows(7) {
        let count = |n| w.iter().filter(|&&x| x == n).count();
        assert_eq!((count("a"), count("b"), count("c")), (5, 1, 1), "{order:?}");
    }
    // a, a, x, a, y, a, a — the nginx order, with b and c in address order.
    let expected_shape = [true, true, false, true, false, true, true];
    for (i, name) in order.iter().take(7).enumerate() {
        assert_eq!(*name == "a", expected_shape[i], "{order:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_hash_keeps_each_client_address_on_one_backend() {
    let [a, b, c] = three().await;
    let s = quick(
        "ip-hash",
        &[a.addr.to_string(), b.addr.to_string(), c.addr.to_string()],
        &[],
    )
    .await;
    let mut by_client: HashMap<Ipv4Addr, String> = HashMap::new();
    let mut spread: HashMap<String, usize> = HashMap::new();
    for x in 2..=41u8 {
        let ip = Ipv4Addr::new(127, 0, 0, x);
        let seq = sequence(&s, 4, Some(ip)).await;
        assert!(seq.iter().all(|n| *n == seq[0]), "{ip} moved: {seq:?}");
        by_client.insert(ip, seq[0].clone());
        *spread.entry(seq[0].clone()).or_default() += 1;
    }
    // 40 clients over 3 backends: every backend gets some.
    assert_eq!(spread.len(), 3, "{spread:?}");
    // A second proxy with the backends listed in another order sends every
    // client to the same backend (the table depends only on the set).
    let s2 = quick(
        "ip-hash",
        &[c.addr.to_string(), a.addr.to_string(), b.addr.to_string()],
        &[],
    )
    .await;
    for (ip, name) in &by_client {
        let seq = sequence(&s2, 1, Some(*ip)).await;
        assert_eq!(&seq[0], name, "{ip} differs between replicas");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_avoids_the_slow_backend() {
    let slow = Backend::start_slow("slow", Duration::from_millis(150)).await;
    let b = Backend::start("b").await;
    let c = Backend::start("c").await;
    let s = quick(
        "least-request",
        &[
            slow.addr.to_string(),
            b.addr.to_string(),
            c.addr.to_string(),
        ],
        &[],
    )
    .await;
    // Four clients, 30 requests each. Round-robin would give the slow
    // backend 40; least-request sees its requests pile up and avoids it.
    let listen = s.listen;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(async move {
                let c = client(None);
                for _ in 0..30 {
                    let (status, _, _) =
                        request(&c, listen, "GET", "/", &[], empty()).await.unwrap();
                    assert_eq!(status, 200);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let total = slow.hits() + b.hits() + c.hits();
    assert_eq!(total, 120);
    assert!(slow.hits() <= 20, "slow backend got {} of 120", slow.hits());
    assert!(
        b.hits() > 30 && c.hits() > 30,
        "b {} c {}",
        b.hits(),
        c.hits()
    );
}
