//! Floods of clients that hold connections open by going slowly (issue 11,
//! points 1 and 3): thousands of idle connections past
//! `limits.max_connections`, slowloris clients that trickle their headers,
//! and slow readers that take their answer a byte a second. Good clients
//! are served throughout; every attacker is closed by its limit or its
//! timeout; memory stays under a stated bound. Latency figures go to the
//! reliability report, never into an assertion.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_integration::report::Case;
use sluice_integration::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `n` requests on one keep-alive connection, one after another: their
/// latencies, and the failures.
async fn good_requests(addr: SocketAddr, n: usize) -> (Vec<Duration>, Vec<String>) {
    let mut c = Connection::open(addr).await;
    let mut took = Vec::with_capacity(n);
    let mut failures = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        match c.get("/").await {
            Ok((200, body)) if body == "a\n" => took.push(t.elapsed()),
            other => failures.push(format!("{other:?}")),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (took, failures)
}

/// The 99th percentile, in milliseconds.
fn p99_ms(mut d: Vec<Duration>) -> f64 {
    if d.is_empty() {
        return 0.0;
    }
    d.sort();
    d[(d.len() * 99 / 100).min(d.len() - 1)].as_secs_f64() * 1000.0
}

/// 11,000 idle connections against the default `limits.max_connections`
/// (10,000): the 1,000 past it are closed at once and counted, the open
/// count never passes the limit, a good client's keep-alive connection is
/// served throughout, and the admin listener answers (its latency under
/// the flood reported).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_past_max_connections_is_refused_and_the_rest_served() {
    if hyper_only() {
        // Connections are counted and refused at accept, before either
        // HTTP path: one pass covers it.
        return;
    }
    const FLOOD: usize = 11_000;
    let b = Backend::start("a").await;
    // A long header timeout: the flood's idle connections stay open.
    let (s, _) = Sluice::with_config(&format!(
        "listen: {{LISTEN}}\nadmin: {{ADMIN}}\ntimeouts:\n  request_header: 120s\nroutes:\n  - backends: [{}]\n",
        b.addr
    ))
    .await;
    let (before, _) = s.memory_kib();
    // The good client's connection is open before the flood.
    let mut good = Connection::open(s.listen).await;
    assert_eq!(good.get("/").await.unwrap().0, 200);

    let began = Instant::now();
    let mut held = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        match TcpStream::connect(s.listen).await {
            Ok(c) => held.push(c),
            Err(e) => panic!("connect {}: {e}", held.len()),
        }
    }
    let opened = began.elapsed();
    wait_until(
        "the connections past the limit refused",
        Duration::from_secs(60),
        || async {
            s.metric("sluice_connections_refused_total{reason=\"max_connections\"}")
                .await
                .unwrap_or(0.0)
                >= (FLOOD + 1 - 10_000) as f64
        },
    )
    .await;
    // With the flood held: the count is at the limit, the admin listener
    // answers, and the good client is served on its open connection.
    let mut admin = Vec::new();
    let mut good_failures = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let r = get(s.admin, "/healthz").await;
        assert_eq!(r.map(|r| r.0), Ok(200), "the admin listener failed");
        admin.push(t.elapsed());
        match good.get("/").await {
            Ok((200, _)) => {}
            other => good_failures.push(format!("{other:?}")),
        }
    }
    let open = s.metric("sluice_client_connections").await.unwrap();
    let (rss, peak) = s.memory_kib();
    let refused = s
        .metric("sluice_connections_refused_total{reason=\"max_connections\"}")
        .await
        .unwrap();
    drop(held);
    // Once the flood leaves, newcomers are served again.
    wait_until("a newcomer served", Duration::from_secs(60), || async {
        matches!(get(s.listen, "/").await, Ok((200, _)))
    })
    .await;
    let per_conn = (rss.saturating_sub(before)) * 1024 / 10_000;
    Case::new("max-connections", "limits", "A connection flood past limits.max_connections")
        .tried(format!(
            "{FLOOD} idle connections opened in {:.1} s against the default limit of 10,000, a good keep-alive client and /healthz polled alongside",
            opened.as_secs_f64()
        ))
        .attacks(FLOOD as u64)
        .requests(50, good_failures.len() as u64)
        .peak_rss_kib(peak)
        .outcome(format!(
            "{refused} refused at accept, {open} open at the limit; /healthz p99 {:.1} ms under the flood; about {per_conn} bytes per idle connection (a debug build)",
            p99_ms(admin)
        ))
        .record();
    assert!(open <= 10_000.0, "{open} connections open");
    assert!(
        good_failures.is_empty(),
        "the good client failed: {good_failures:?}"
    );
}

/// The admin port has the traffic listeners' header timeout: a client that
/// opens it and sends half a request head is closed once
/// `timeouts.request_header` passes, and the admin endpoints answer others
/// meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_closes_a_half_sent_head_at_the_header_timeout() {
    let b = Backend::start("a").await;
    let (s, _) = Sluice::with_config(&format!(
        "listen: {{LISTEN}}\nadmin: {{ADMIN}}\ntimeouts:\n  request_header: 1s\nroutes:\n  - backends: [{}]\n",
        b.addr
    ))
    .await;
    let began = Instant::now();
    let mut c = TcpStream::connect(s.admin).await.unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: a")
        .await
        .unwrap();
    assert_eq!(get(s.admin, "/healthz").await.unwrap().0, 200);
    let got = read_until(&mut c, Duration::from_secs(10), until_closed).await;
    let took = began.elapsed();
    assert!(got.closed, "still open after 10 s: {got:?}");
    assert!(
        took >= Duration::from_secs(1),
        "closed after {took:?}, before the 1 s timeout: {}",
        got.text()
    );
    assert!(
        took < Duration::from_secs(5),
        "closed after {took:?}, long past the 1 s timeout"
    );
}

/// Slowloris: 2,000 connections that send a request head a byte a second
/// and never finish it. Each is closed by `timeouts.request_header`; good
/// clients are served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_slowloris_clients_are_closed_by_the_header_timeout() {
    const ATTACKERS: usize = 2_000;
    let b = Backend::start("a").await;
    let (s, _) = Sluice::with_config(&format!(
        "listen: {{LISTEN}}\nadmin: {{ADMIN}}\ntimeouts:\n  request_header: 5s\nroutes:\n  - backends: [{}]\n",
        b.addr
    ))
    .await;
    let addr = s.listen;
    let (idle, _) = good_requests(addr, 100).await;

    let closed = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let mut attackers = Vec::with_capacity(ATTACKERS);
    for _ in 0..ATTACKERS {
        let closed = closed.clone();
        let mut c = TcpStream::connect(addr).await.unwrap();
        attackers.push(tokio::spawn(async move {
            let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ";
            let mut buf = [0u8; 512];
            // At most 120 bytes: two minutes, far past the timeout.
            for &byte in head.iter().chain(std::iter::repeat_n(&b'x', 80)) {
                if c.write_all(&[byte]).await.is_err() {
                    break;
                }
                // Closed (with or without an answer) before the next byte?
                match tokio::time::timeout(Duration::from_secs(1), c.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => {
                        // An answer (408): the close follows.
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await;
                        break;
                    }
                    Err(_) => {}
                }
            }
            closed.fetch_add(1, Ordering::SeqCst);
            began.elapsed()
        }));
    }
    let (during, failures) = good_requests(addr, 100).await;
    let mut last = Duration::ZERO;
    for a in attackers {
        last = last.max(a.await.unwrap());
    }
    let (_, peak) = s.memory_kib();
    Case::new("slowloris", "slow", "Slowloris: headers a byte a second")
        .tried(format!(
            "{ATTACKERS} connections each sending a request head a byte a second, never finishing it; timeouts.request_header 5s; 100 good keep-alive requests before and during"
        ))
        .attacks(ATTACKERS as u64)
        .requests(100, failures.len() as u64)
        .recovery(last)
        .peak_rss_kib(peak)
        .outcome(format!(
            "every attacker closed by the header timeout, the last {:.1} s after the flood began; good p99 {:.1} ms idle, {:.1} ms under attack",
            last.as_secs_f64(),
            p99_ms(idle),
            p99_ms(during)
        ))
        .record();
    assert!(failures.is_empty(), "the good client failed: {failures:?}");
    // Closed by the timeout (5 s after its first byte), not by running out
    // of bytes (80 s).
    assert!(
        last < Duration::from_secs(60),
        "an attacker lasted {last:?}"
    );
    assert_eq!(closed.load(Ordering::SeqCst), ATTACKERS);
    assert!(peak < 400 * 1024, "{peak} KiB");
}

/// Slow readers: 2,000 clients that ask for 1 MB and read it a byte a
/// second. Each is closed by `timeouts.send` once the proxy can write it
/// nothing more, and its upstream request is released; good clients are
/// served throughout and memory stays bounded.
///
/// A download the proxy did read to its end (the last of it queued for
/// the client, as nginx's buffering would hold it) is not held: its
/// upstream socket went back to the pool, idle. `upstream_idle: 2s` closes
/// those, so that every upstream connection must close either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_slow_readers_are_closed_by_the_send_timeout() {
    const ATTACKERS: usize = 2_000;
    let big = Backend::start("big").await;
    let b = Backend::start("a").await;
    let (s, _) = Sluice::with_config(&format!(
        "listen: {{LISTEN}}\nadmin: {{ADMIN}}\ntimeouts:\n  send: 5s\n  upstream_idle: 2s\nroutes:\n  - path: /bytes\n    backends: [{}]\n  - backends: [{}]\n",
        big.addr, b.addr
    ))
    .await;
    let addr = s.listen;
    let (idle, _) = good_requests(addr, 100).await;
    let (before, _) = s.memory_kib();

    let began = Instant::now();
    let mut attackers = Vec::with_capacity(ATTACKERS);
    for _ in 0..ATTACKERS {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /bytes/1048576 HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        attackers.push(tokio::spawn(async move {
            // A byte a second, for at most two minutes.
            let mut byte = [0u8; 1];
            for _ in 0..120 {
                if !matches!(c.read(&mut byte).await, Ok(1)) {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }
    let (during, failures) = good_requests(addr, 100).await;
    // Every slow reader's connection is closed by the proxy (only the good
    // client's may stay), and every upstream download is let go.
    wait_until(
        "the slow readers closed",
        Duration::from_secs(90),
        || async {
            s.metric("sluice_client_connections")
                .await
                .unwrap_or(f64::MAX)
                <= 1.0
        },
    )
    .await;
    wait_until(
        "the upstream downloads released",
        Duration::from_secs(30),
        || async { big.open.load(Ordering::SeqCst) == 0 },
    )
    .await;
    let took = began.elapsed();
    let (_, peak) = s.memory_kib();
    for a in attackers {
        a.abort();
    }
    Case::new("slow-readers", "slow", "Slow readers: answers taken a byte a second")
        .tried(format!(
            "{ATTACKERS} connections each asking for 1 MB and reading it a byte a second; timeouts.send 5s; 100 good keep-alive requests before and during"
        ))
        .attacks(ATTACKERS as u64)
        .requests(100, failures.len() as u64)
        .recovery(took)
        .peak_rss_kib(peak)
        .outcome(format!(
            "every reader closed by the send timeout and its upstream released {:.1} s after the flood began; RSS {before} KiB before; good p99 {:.1} ms idle, {:.1} ms under attack",
            took.as_secs_f64(),
            p99_ms(idle),
            p99_ms(during)
        ))
        .record();
    assert!(failures.is_empty(), "the good client failed: {failures:?}");
    assert!(peak < 600 * 1024, "{peak} KiB");
}
