//! Limits that hold under a flood (issue 11): what the proxy takes on at
//! most, what it refuses past that, and that what it already serves, and
//! the admin listener, are unaffected.

use std::time::Duration;

use sluice_integration::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `limits.max_connections`: with N open, the next connection is closed
/// at once and counted; the N keep being served; the admin listener
/// answers throughout; once one closes, a newcomer is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_newcomers_are_closed_and_the_open_ones_served() {
    let b = Backend::start("a").await;
    let s = Sluice::serve(&["--backend", &b.addr.to_string(), "--max-connections", "3"]).await;

    // Three connections held open, each with a request answered.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(s.listen).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let got = read_until(&mut c, Duration::from_secs(30), |b| b.ends_with(b"a\n")).await;
        assert!(got.text().starts_with("HTTP/1.1 200"), "{}", got.text());
        held.push(c);
    }
    wait_until(
        "three connections counted",
        Duration::from_secs(30),
        || async { s.metric("sluice_client_connections").await == Some(3.0) },
    )
    .await;

    // The fourth is closed without an answer, and counted.
    let mut extra = TcpStream::connect(s.listen).await.unwrap();
    let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let got = read_until(&mut extra, Duration::from_secs(30), until_closed).await;
    assert!(got.closed && got.bytes.is_empty(), "{:?}", got.text());
    assert_eq!(
        s.metric("sluice_connections_refused_total{reason=\"max_connections\"}")
            .await,
        Some(1.0)
    );
    // The admin listener is not subject to it.
    assert_eq!(get(s.admin, "/healthz").await.unwrap().0, 200);
    // The ones held are still served.
    let c = &mut held[0];
    c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let got = read_until(c, Duration::from_secs(30), |b| b.ends_with(b"a\n")).await;
    assert!(got.text().starts_with("HTTP/1.1 200"), "{}", got.text());

    // One goes: a newcomer is served again.
    drop(held.pop());
    wait_until("a newcomer served", Duration::from_secs(30), || async {
        let Ok(mut c) = TcpStream::connect(s.listen).await else {
            return false;
        };
        if c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .is_err()
        {
            return false;
        }
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
        out.starts_with(b"HTTP/1.1 200")
    })
    .await;
}

/// `limits.max_uri` (8 KiB by default, as nginx): a longer request target
/// gets 414 and is counted; one within it is routed. On HTTP/1.1 (either
/// path) and HTTP/2 alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_target_past_max_uri_is_a_414() {
    let b = Backend::start("a").await;
    let s = Sluice::serve(&["--backend", &b.addr.to_string()]).await;
    let long = format!("/{}", "a".repeat(9000));
    let fits = format!("/{}", "a".repeat(8000));
    assert_eq!(get(s.listen, &long).await.unwrap().0, 414);
    assert_eq!(get(s.listen, &fits).await.unwrap().0, 200);
    let url = format!("http://{}{long}", s.listen);
    let code = tokio::task::spawn_blocking(move || {
        run(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--http2-prior-knowledge",
                &url,
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, "414", "over HTTP/2");
    assert_eq!(
        s.metric("sluice_requests_refused_total{reason=\"uri_too_long\"}")
            .await,
        Some(2.0)
    );

    // Smaller in the file.
    let (s, _) = Sluice::with_config(&format!(
        "listen: {{LISTEN}}\nadmin: {{ADMIN}}\nlimits:\n  max_uri: 1k\nroutes:\n  - backends: [{}]\n",
        b.addr
    ))
    .await;
    let over = format!("/{}", "b".repeat(2000));
    assert_eq!(get(s.listen, &over).await.unwrap().0, 414);
    assert_eq!(get(s.listen, "/short").await.unwrap().0, 200);
}

/// The overload guard (`limits.max_in_flight`): with that many requests
/// waiting on upstreams, a new one gets a fast 503 with `Retry-After`
/// instead of queueing; once they are answered, requests pass again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_in_flight_new_requests_get_a_fast_503() {
    use std::sync::atomic::Ordering;
    let slow = Backend::start_slow("slow", Duration::from_secs(3)).await;
    let s = Sluice::serve(&["--backend", &slow.addr.to_string(), "--max-in-flight", "2"]).await;
    let listen = s.listen;
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(listen, "/").await }))
        .collect();
    wait_until(
        "two requests at the backend",
        Duration::from_secs(30),
        || async { slow.active.load(Ordering::SeqCst) == 2 },
    )
    .await;

    let c = client(None);
    let (status, headers, _) = request(&c, listen, "GET", "/", &[], empty()).await.unwrap();
    assert_eq!(status, 503);
    assert_eq!(
        headers.get("retry-after").map(|v| v.to_str().unwrap()),
        Some("1")
    );
    assert_eq!(
        slow.active.load(Ordering::SeqCst),
        2,
        "the refused request reached the backend"
    );
    assert_eq!(
        s.metric("sluice_requests_refused_total{reason=\"overload\"}")
            .await,
        Some(1.0)
    );

    for h in held {
        assert_eq!(
            h.await.unwrap().unwrap().0,
            200,
            "a request admitted before was cut"
        );
    }
    assert_eq!(get(listen, "/").await.unwrap().0, 200);
}

/// The HTTP/2 SETTINGS a client is given: at most 128 concurrent streams
/// by default (nginx's number), `limits.http2_max_concurrent_streams` in
/// the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_concurrent_streams_are_bounded_as_configured() {
    async fn advertised(addr: std::net::SocketAddr) -> usize {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.expect("h2c");
        tokio::spawn(conn);
        let mut client = client.ready().await.unwrap();
        let req = http::Request::get(format!("http://{addr}/"))
            .body(())
            .unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        // An answer means the server's SETTINGS have been read.
        assert_eq!(resp.await.unwrap().status(), 200);
        client.current_max_send_streams()
    }
    let b = Backend::start("a").await;
    let s = Sluice::serve(&["--backend", &b.addr.to_string()]).await;
    assert_eq!(advertised(s.listen).await, 128);
    let (s, _) = Sluice::with_config(&format!(
        "listen: {{LISTEN}}\nadmin: {{ADMIN}}\nlimits:\n  http2_max_concurrent_streams: 16\nroutes:\n  - backends: [{}]\n",
        b.addr
    ))
    .await;
    assert_eq!(advertised(s.listen).await, 16);
}

/// Rapid reset (CVE-2023-44487): an attacker opens streams and resets them
/// at once, as fast as it can. Its connection gets a GOAWAY long before
/// 5,000 streams; a well-behaved client on its own connection is served
/// throughout without an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_cut_off_and_a_good_client_is_served() {
    let b = Backend::start("a").await;
    let s = Sluice::serve(&["--backend", &b.addr.to_string()]).await;
    let addr = s.listen;
    let good = tokio::spawn(async move {
        let c = client(None);
        let mut failures = Vec::new();
        for _ in 0..50 {
            match request(&c, addr, "GET", "/", &[], empty()).await {
                Ok((200, _, _)) => {}
                other => failures.push(format!("{other:?}")),
            }
        }
        failures
    });

    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2c");
    let conn = tokio::spawn(conn);
    let mut client = client;
    let mut sent = 0;
    for _ in 0..5000 {
        let Ok(ready) = client.clone().ready().await else {
            break;
        };
        client = ready;
        let req = http::Request::get(format!("http://{addr}/"))
            .body(())
            .unwrap();
        let Ok((_, mut stream)) = client.send_request(req, false) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
        sent += 1;
    }
    eprintln!("the attacker was cut off after {sent} resets");
    // The server's GOAWAY ends the attacker's connection.
    let ended = tokio::time::timeout(Duration::from_secs(30), conn)
        .await
        .unwrap_or_else(|_| panic!("the attacker's connection is still open after {sent} resets"))
        .unwrap();
    // A GOAWAY (ENHANCE_YOUR_CALM), or, when the attacker was still
    // writing as the server closed, the broken pipe that follows it.
    let e = ended.expect_err("the connection ended without an error");
    assert!(
        (e.is_go_away() && e.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM)) || e.is_io(),
        "{e}"
    );
    let failures = good.await.unwrap();
    assert!(failures.is_empty(), "the good client failed: {failures:?}");
    // The proxy is still well.
    assert_eq!(get(s.admin, "/healthz").await.unwrap().0, 200);
    assert_eq!(get(addr, "/").await.unwrap().0, 200);
}

/// An HTTP/2 client that never opens its flow-control window (it answers
/// PINGs, so keep-alive alone would never close it): each of its streams
/// is reset once it could send nothing for `timeouts.send`, and the
/// upstream connection behind it is released, as nginx does. A good
/// client on its own connection is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_never_opens_resets_the_stream_and_frees_the_upstream() {
    const STREAMS: usize = 50;
    // Downloads from one backend, the good client's requests to another
    // (whose pooled connections would muddle the count).
    let b = Backend::start("big").await;
    let small = Backend::start("a").await;
    let (s, _) = Sluice::with_config(&format!(
        "listen: {{LISTEN}}\nadmin: {{ADMIN}}\ntimeouts:\n  send: 2s\nroutes:\n  - path: /bytes\n    backends: [{}]\n  - backends: [{}]\n",
        b.addr, small.addr
    ))
    .await;
    let addr = s.listen;

    // The attacker: a window of 0 for every stream, never raised.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .expect("h2c");
    let conn = tokio::spawn(conn);
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let mut c = client.clone().ready().await.unwrap();
        let req = http::Request::get(format!("http://{addr}/bytes/8000000"))
            .body(())
            .unwrap();
        let (resp, _) = c.send_request(req, true).unwrap();
        streams.push(resp);
    }
    // Every stream is answered (headers need no window), then stuck.
    let mut bodies = Vec::new();
    for r in streams {
        let r = tokio::time::timeout(Duration::from_secs(30), r)
            .await
            .expect("response headers")
            .expect("a response");
        assert_eq!(r.status(), 200);
        bodies.push(r.into_body());
    }
    assert_eq!(b.open.load(std::sync::atomic::Ordering::SeqCst), STREAMS);

    // A good client meanwhile.
    let good = client_h2(addr, 20).await;
    assert!(good.is_empty(), "the good client failed: {good:?}");

    // Each stream is reset with CANCEL...
    for mut body in bodies {
        let got = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match body.data().await {
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Some(e),
                    None => return None,
                }
            }
        })
        .await
        .expect("the stream is still open");
        let e = got.expect("the stream ended as if complete");
        assert_eq!(e.reason(), Some(h2::Reason::CANCEL), "{e}");
    }
    // ...its upstream connection released, and counted.
    wait_until(
        "the upstream connections released",
        Duration::from_secs(30),
        || async { b.open.load(std::sync::atomic::Ordering::SeqCst) == 0 },
    )
    .await;
    assert_eq!(
        s.metric("sluice_http2_send_timeouts_total").await,
        Some(STREAMS as f64)
    );
    // The attacker's connection itself lives on (it did nothing wrong at
    // the connection level), and the proxy is well.
    assert!(!conn.is_finished());
    assert_eq!(get(addr, "/").await.unwrap().0, 200);
}

/// `n` requests from a well-behaved HTTP/2 client on a connection of its
/// own; the failures, if any.
async fn client_h2(addr: std::net::SocketAddr, n: usize) -> Vec<String> {
    let mut failures = Vec::new();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, conn) = match h2::client::handshake(tcp).await {
        Ok(x) => x,
        Err(e) => return vec![format!("handshake: {e}")],
    };
    tokio::spawn(conn);
    for _ in 0..n {
        let res = async {
            let mut c = client.clone().ready().await?;
            let req = http::Request::get(format!("http://{addr}/"))
                .body(())
                .unwrap();
            let (resp, _) = c.send_request(req, true)?;
            let resp = resp.await?;
            let status = resp.status();
            let mut body = resp.into_body();
            let mut got = Vec::new();
            while let Some(d) = body.data().await {
                let d = d?;
                let _ = body.flow_control().release_capacity(d.len());
                got.extend_from_slice(&d);
            }
            Ok::<_, h2::Error>((status, got))
        };
        match tokio::time::timeout(Duration::from_secs(30), res).await {
            Ok(Ok((s, b))) if s == 200 && b == b"a\n" => {}
            other => failures.push(format!("{other:?}")),
        }
    }
    failures
}
