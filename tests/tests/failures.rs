//! What the proxy does when upstreams fail: retries that are safe, the
//! status codes of each failure, passive health ejection and its limits,
//! and clients too slow to send their headers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::client::legacy::{connect::HttpConnector, Client};
use sluice_integration::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A config file with one route `name` over `backends`, plus `route_extra` lines
/// (already indented for the route) and `top` lines at the top level.
fn config(name: &str, backends: &[SocketAddr], route_extra: &str, top: &str) -> String {
    let list: Vec<String> = backends.iter().map(|a| a.to_string()).collect();
    format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\n{top}routes:\n  - name: {name}\n    path: /\n    backends: [{}]\n{route_extra}",
        list.join(", ")
    )
}

/// One scrape of `/metrics`; the value of each series asked for.
async fn scrape(s: &Sluice, series: &[&str]) -> Vec<Option<f64>> {
    let (status, text) = get(s.admin, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    series
        .iter()
        .map(|name| {
            text.lines()
                .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
        })
        .collect()
}

/// The `state` the admin `/routes` page gives the endpoint at `addr`.
async fn endpoint_state(s: &Sluice, addr: SocketAddr) -> String {
    let (status, json) = get(s.admin, "/routes").await.unwrap();
    assert_eq!(status, 200, "{json}");
    let key = format!("\"address\": \"{addr}\"");
    let at = json
        .find(&key)
        .unwrap_or_else(|| panic!("{addr} not in /routes: {json}"));
    let rest = &json[at..];
    let s = rest.find("\"state\": \"").expect("a state field") + "\"state\": \"".len();
    let end = rest[s..].find('"').unwrap();
    rest[s..s + end].to_owned()
}

fn connect_errors(route: &str) -> String {
    format!("sluice_upstream_connect_errors_total{{route=\"{route}\"}}")
}

fn endpoints_gauge(route: &str, state: &str) -> String {
    format!("sluice_upstream_endpoints{{route=\"{route}\",state=\"{state}\"}}")
}

fn is_short_plain(headers: &http::HeaderMap, body: &str) -> bool {
    let plain = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/plain"));
    plain && !body.is_empty() && body.len() < 200 && body.ends_with('\n')
}

// ------------------------------------------------------------------ retries

/// A GET whose endpoint refuses the connection is retried on another one:
/// with one live and two dead endpoints every request succeeds, and the
/// failed connects are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_are_retried_for_gets() {
    let live = Backend::start("live").await;
    let dead = [dead(), dead()];
    let s = Sluice::serve(&[
        "--strategy",
        "round-robin",
        "--backend",
        &live.addr.to_string(),
        "--backend",
        &dead[0].addr.to_string(),
        "--backend",
        &dead[1].addr.to_string(),
    ])
    .await;
    let c = client(None);
    for i in 0..30 {
        let (status, _, body) = request(&c, s.listen, "GET", "/", &[], empty())
            .await
            .unwrap();
        assert_eq!((status, body.as_str()), (200, "live\n"), "request {i}");
    }
    assert_eq!(live.hits(), 30);
    // The first three requests start on each endpoint once: two of them
    // start on a dead one.
    let errors = s.metric(&connect_errors("default")).await.unwrap_or(0.0);
    assert!(errors >= 2.0, "connect errors counted: {errors}");
}

/// An endpoint that takes the request and closes without a byte of an
/// answer (a pod killed under it): a GET goes on to the next endpoint and
/// is answered, as nginx's `proxy_next_upstream error` and HAProxy's
/// `retry-on empty-response` do; a POST, which may have had its effect,
/// gets 502. The endpoint is counted failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_whose_endpoint_closes_without_an_answer_goes_to_the_next() {
    let live = Backend::start("live").await;
    let dying = RawBackend::start(|_| RawAnswer {
        parts: Vec::new(),
        close: true,
    })
    .await;
    let args = [
        "--strategy".to_owned(),
        "round-robin".into(),
        "--backend".into(),
        live.addr.to_string(),
        "--backend".into(),
        dying.addr.to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Sluice::serve(&args).await;
    for i in 0..10 {
        // A fresh client each time: a fresh connection, both paths alike.
        let (status, _, body) = request(&client(None), s.listen, "GET", "/", &[], empty())
            .await
            .unwrap();
        assert_eq!((status, body.as_str()), (200, "live\n"), "request {i}");
    }
    assert!(
        !dying.received().is_empty(),
        "the closing endpoint was never tried"
    );
    // A POST that draws it is not sent again (on a fresh proxy: this one
    // has ejected the endpoint by now).
    let s = Sluice::serve(&args).await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        let (status, _, _) = request(&client(None), s.listen, "POST", "/", &[], body("x"))
            .await
            .unwrap();
        codes.push(status);
    }
    assert!(codes.contains(&502), "{codes:?}");
    assert!(codes.contains(&200), "{codes:?}");
}

/// A POST is not retried: over two dead endpoints it costs one connect
/// attempt and gets 502, where a GET tries both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_to_dead_endpoint_is_not_retried() {
    let dead = [dead(), dead()];
    let s = Sluice::serve(&[
        "--strategy",
        "round-robin",
        "--backend",
        &dead[0].addr.to_string(),
        "--backend",
        &dead[1].addr.to_string(),
    ])
    .await;
    let c = client(None);
    let (status, headers, body) = request(&c, s.listen, "POST", "/", &[], body("x"))
        .await
        .unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(is_short_plain(&headers, &body), "{headers:?} {body:?}");
    assert_eq!(s.metric(&connect_errors("default")).await, Some(1.0));

    let (status, _, body) = request(&c, s.listen, "GET", "/", &[], empty())
        .await
        .unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(s.metric(&connect_errors("default")).await, Some(3.0));
}

/// Over one live and one dead endpoint in round-robin, POSTs alternate
/// between 200 and 502: the ones that drew the dead endpoint are not
/// re-sent to the live one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_alternates_between_live_and_dead() {
    let live = Backend::start("live").await;
    let dead = dead();
    let s = Sluice::serve(&[
        "--strategy",
        "round-robin",
        "--backend",
        &live.addr.to_string(),
        "--backend",
        &dead.addr.to_string(),
        "--workers",
        "1",
    ])
    .await;
    let c = client(None);
    let mut statuses = Vec::new();
    // Four: fewer failures than the default ejection threshold (5).
    for _ in 0..4 {
        let (status, _, _) = request(&c, s.listen, "POST", "/echo", &[], body("x"))
            .await
            .unwrap();
        statuses.push(status);
    }
    assert!(
        statuses == [200, 502, 200, 502] || statuses == [502, 200, 502, 200],
        "{statuses:?}"
    );
    assert_eq!(live.hits(), 2);
    assert_eq!(s.metric(&connect_errors("default")).await, Some(2.0));
}

// ------------------------------------------------------------------ status codes

/// Every endpoint dead: 502 with a short plain-text body, and the log
/// names the route and each endpoint that failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_backends_dead_is_502_and_logged() {
    let dead = [dead(), dead()];
    let addrs = [dead[0].addr, dead[1].addr];
    let (s, _) = Sluice::with_config(&config("shop", &addrs, "", "")).await;
    let (status, headers, body) = request(&client(None), s.listen, "GET", "/cart", &[], empty())
        .await
        .unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(is_short_plain(&headers, &body), "{headers:?} {body:?}");
    for addr in &addrs {
        let addr = addr.to_string();
        wait_until("the failure is logged", Duration::from_secs(5), || {
            let log = s.log();
            let named = log.lines().any(|l| l.contains(&addr) && l.contains("shop"));
            async move { named }
        })
        .await;
    }
}

/// A route whose backend list is empty answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn empty_backend_list_is_503() {
    let (s, _) = Sluice::with_config(&config("empty", &[], "", "")).await;
    let (status, headers, body) = request(&client(None), s.listen, "GET", "/", &[], empty())
        .await
        .unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(is_short_plain(&headers, &body), "{headers:?} {body:?}");
}

/// A backend slower than the route's response-header timeout: 504, as soon
/// as the timeout passes rather than when the backend answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_header_timeout_is_504() {
    let b = Backend::start("slow").await;
    let (s, _) = Sluice::with_config(&config(
        "slow",
        &[b.addr],
        "    timeouts: {response_header: 300ms}\n",
        "",
    ))
    .await;
    let start = Instant::now();
    let (status, headers, body) =
        request(&client(None), s.listen, "GET", "/sleep/3000", &[], empty())
            .await
            .unwrap();
    let took = start.elapsed();
    assert_eq!(status, 504, "{body}");
    assert!(is_short_plain(&headers, &body), "{headers:?} {body:?}");
    assert!(
        took >= Duration::from_millis(250),
        "504 before the timeout: {took:?}"
    );
    assert!(took < Duration::from_millis(2500), "504 took {took:?}");
}

/// `timeouts.request` bounds the request as a whole, retries included:
/// with a generous per-try timeout, a slow backend is answered 504 by the
/// request's bound. The fast path hands such a route over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_is_504_whatever_the_try_s_bound() {
    let b = Backend::start("slow").await;
    let (s, _) = Sluice::with_config(&config(
        "slow",
        &[b.addr],
        "    timeouts: {response_header: 60s, request: 300ms}\n",
        "",
    ))
    .await;
    let (status, _, body) = request(&client(None), s.listen, "GET", "/sleep/5000", &[], empty())
        .await
        .unwrap();
    assert_eq!(status, 504, "{body}");
    let (status, _, body) = request(&client(None), s.listen, "GET", "/", &[], empty())
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "slow\n"));
}

/// A backend that answers only once it has read a whole chunked request:
/// `ok` for each request, one request per connection.
async fn reads_whole_request_first() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut t, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.ends_with(b"\r\n0\r\n\r\n") {
                    match t.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = t
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n",
                    )
                    .await;
            });
        }
    });
    addr
}

/// The response-header timeout runs from the moment the request has been
/// sent (as the config documents: "request sent -> response headers
/// received"), so an upload that takes longer than the timeout is not cut
/// off with 504 when the backend answers promptly once it has it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn response_header_timeout_starts_after_the_upload() {
    let backend = reads_whole_request_first().await;
    let (s, _) = Sluice::with_config(&config(
        "upload",
        &[backend],
        "    timeouts: {response_header: 300ms}\n",
        "",
    ))
    .await;
    let (mut rd, mut wr) = TcpStream::connect(s.listen).await.unwrap().into_split();
    // Read all along: an early answer is seen even if the proxy then resets.
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    });
    wr.write_all(
        b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    // The upload itself is paced: four chunks 200 ms apart, 800 ms in all,
    // well over the 300 ms response-header timeout. A write error means the
    // proxy gave up on the request; the answer tells why.
    for _ in 0..4 {
        if wr.write_all(b"5\r\nhello\r\n").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = wr.write_all(b"0\r\n\r\n").await;
    let out = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("an answer and a close within 10 s")
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200 "), "{out:?}");
    assert!(out.ends_with("\r\n\r\nok\n"), "{out:?}");
}

// ------------------------------------------------------------------ passive health

/// Three connect failures eject an endpoint for the base back-off (1 s):
/// the admin table and the gauge show it, no request tries it meanwhile,
/// and once the back-off is over it is healthy and tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_eject_then_the_endpoint_returns() {
    let live = Backend::start("live").await;
    let dead_endpoint = dead();
    let dead = dead_endpoint.addr;
    let (s, _) = Sluice::with_config(&config(
        "flaky",
        &[live.addr, dead],
        "",
        "health: {consecutive_failures: 3, base_ejection: 1s}\n",
    ))
    .await;
    let c = client(None);
    let series = [
        connect_errors("flaky"),
        endpoints_gauge("flaky", "healthy"),
        endpoints_gauge("flaky", "ejected"),
    ];
    let series: Vec<&str> = series.iter().map(String::as_str).collect();
    let at_ejection = std::sync::Mutex::new(None);
    // Each round sends a GET (the dead endpoint's failure is retried on the
    // live one) and looks at the admin listener.
    wait_until(
        "the dead endpoint is ejected",
        Duration::from_secs(10),
        || async {
            let (status, _, body) = request(&c, s.listen, "GET", "/", &[], empty())
                .await
                .unwrap();
            assert_eq!((status, body.as_str()), (200, "live\n"));
            let m = scrape(&s, &series).await;
            if m[2] == Some(1.0) && endpoint_state(&s, dead).await == "ejected" {
                *at_ejection.lock().unwrap() = Some(m);
                true
            } else {
                false
            }
        },
    )
    .await;
    let m = at_ejection.lock().unwrap().take().unwrap();
    assert_eq!(m[0], Some(3.0), "ejected after exactly 3 connect failures");
    assert_eq!(m[1], Some(1.0), "the live endpoint stays healthy");
    assert_eq!(endpoint_state(&s, live.addr).await, "healthy");

    // While ejected, requests go straight to the live endpoint. If the
    // gauge still shows the ejection after the burst, it lasted the whole
    // burst (two failures cannot eject again), so no connect was tried.
    for _ in 0..4 {
        let (status, _, _) = request(&c, s.listen, "GET", "/", &[], empty())
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    let m = scrape(&s, &series).await;
    if m[2] == Some(1.0) {
        assert_eq!(m[0], Some(3.0), "an ejected endpoint was tried");
    }

    // The back-off ends by itself, without traffic.
    wait_until("the ejection ends", Duration::from_secs(5), || async {
        let m = scrape(&s, &series).await;
        m[1] == Some(2.0) && m[2] == Some(0.0) && endpoint_state(&s, dead).await == "healthy"
    })
    .await;
    // And the endpoint is tried again: two round-robin GETs, at least one
    // starts on it.
    let before = scrape(&s, &series).await[0].unwrap();
    for _ in 0..2 {
        let (status, _, _) = request(&c, s.listen, "GET", "/", &[], empty())
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    let after = scrape(&s, &series).await[0].unwrap();
    assert!(
        after > before,
        "connect errors {before} -> {after}: not tried again"
    );
}

/// GET /status/500 through the proxy: asserts the backend's own 500 came
/// back and returns the backend's name.
async fn backend_500(c: &Client<HttpConnector, Body>, listen: SocketAddr) -> String {
    let (status, headers, body) = request(c, listen, "GET", "/status/500", &[], empty())
        .await
        .unwrap();
    let from = headers
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body,
        format!("{from} 500\n"),
        "not the backend's own answer"
    );
    from
}

/// 5xx answers eject too, but ejection never leaves a route with nothing
/// to try: with both endpoints ejected (below the panic threshold) both are
/// still used, and clients keep getting the backends' own 500s, never 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_eject_but_never_empty_the_route() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let (s, _) = Sluice::with_config(&config(
        "errs",
        &[a.addr, b.addr],
        "",
        "health: {consecutive_failures: 3, base_ejection: 30s}\n",
    ))
    .await;
    let c = client(None);
    let mut sent = 0;
    // Round-robin: three each eject both (whichever goes first, the other
    // then takes every request until it is ejected too).
    for _ in 0..6 {
        backend_500(&c, s.listen).await;
        sent += 1;
    }
    let ejected = endpoints_gauge("errs", "ejected");
    let healthy = endpoints_gauge("errs", "healthy");
    let m = scrape(&s, &[&ejected, &healthy]).await;
    assert_eq!(m, [Some(2.0), Some(0.0)]);
    assert_eq!(endpoint_state(&s, a.addr).await, "ejected");
    assert_eq!(endpoint_state(&s, b.addr).await, "ejected");

    // In panic both are used, in turn.
    let mut froms = Vec::new();
    for _ in 0..10 {
        froms.push(backend_500(&c, s.listen).await);
        sent += 1;
    }
    let n = |name: &str| froms.iter().filter(|f| *f == name).count();
    assert_eq!((n("a"), n("b")), (5, 5), "{froms:?}");
    assert_eq!(a.hits() + b.hits(), sent, "5xx answers are not retried");
    // Still ejected (30 s): the requests above were all served in panic.
    assert_eq!(scrape(&s, &[&ejected]).await, [Some(2.0)]);
}

// ------------------------------------------------------------------ clients

/// A client that stops halfway through its headers is disconnected once
/// `request_header` passes, while other clients are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_headers_are_cut_off() {
    let b = Backend::start("a").await;
    let (s, _) = Sluice::with_config(&config(
        "app",
        &[b.addr],
        "",
        "timeouts: {request_header: 500ms}\n",
    ))
    .await;
    let start = Instant::now();
    let mut slow = TcpStream::connect(s.listen).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let reader = tokio::spawn(async move {
        let r = read_until(&mut slow, Duration::from_secs(5), until_closed).await;
        (r.closed, start.elapsed(), r.bytes)
    });
    // Another client is served while the slow one hangs.
    let (status, _, body) = request(&client(None), s.listen, "GET", "/", &[], empty())
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "a\n"));

    let (closed, took, got) = reader.await.unwrap();
    assert!(closed, "the slow connection was still open after 5 s");
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.is_empty() || got.starts_with("HTTP/1.1 408 "),
        "{got:?}"
    );
    assert!(took >= Duration::from_millis(450), "closed after {took:?}");
    assert!(took < Duration::from_millis(2500), "closed after {took:?}");
    assert_eq!(b.hits(), 1);
}

/// An idle keep-alive connection is closed once `request_header` passes
/// without a new request, after its earlier requests were served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    let b = Backend::start("a").await;
    let (s, _) = Sluice::with_config(&config(
        "app",
        &[b.addr],
        "",
        "timeouts: {request_header: 500ms}\n",
    ))
    .await;
    let mut conn = TcpStream::connect(s.listen).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Read the whole answer ("a\n" is its body), then wait for the close.
    let answered = Instant::now();
    let r = read_until(&mut conn, Duration::from_secs(5), until_closed).await;
    let closed: Result<(), ()> = if r.closed { Ok(()) } else { Err(()) };
    let got = r.text();
    assert!(
        got.starts_with("HTTP/1.1 200 ") && got.ends_with("\r\n\r\na\n"),
        "{got:?}"
    );
    assert!(
        closed.is_ok(),
        "the idle connection was still open after 5 s"
    );
    let idle = answered.elapsed();
    assert!(idle >= Duration::from_millis(400), "closed after {idle:?}");
    assert!(idle < Duration::from_millis(2500), "closed after {idle:?}");
}

/// An upstream that closes its connection after each answer costs no
/// request: the closed connection is never reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connection_close_is_respected() {
    let b = Backend::start("a").await;
    let s = Sluice::serve(&["--backend", &b.addr.to_string()]).await;
    let c = client(None);
    for _ in 0..20 {
        let (status, _, body) = request(&c, s.listen, "GET", "/close", &[], empty())
            .await
            .unwrap();
        assert_eq!((status, body.as_str()), (200, "a\n"));
    }
    assert_eq!(b.conns.load(std::sync::atomic::Ordering::SeqCst), 20);
}

/// A backend restarted on the same address leaves the proxy holding dead
/// pooled connections; the next requests still succeed, even POSTs, since a
/// request on a connection found closed was never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_restart_costs_no_request() {
    let b = Backend::start_on("old", stable_addr()).await;
    let addr = b.addr;
    let s = Sluice::serve(&["--backend", &addr.to_string()]).await;
    // Fill the pool with a few idle connections.
    let listen = s.listen;
    let warm: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(async move {
                request(&client(None), listen, "GET", "/sleep/50", &[], empty()).await
            })
        })
        .collect();
    for w in warm {
        assert_eq!(w.await.unwrap().unwrap().0, 200);
    }
    b.stop().await;
    let b = Backend::start_on("new", addr).await;
    let c = client(None);
    for method in ["GET", "POST", "GET", "POST", "GET"] {
        let (status, _, body) = request(&c, listen, method, "/", &[], body("x"))
            .await
            .unwrap();
        assert_eq!((status, body.as_str()), (200, "new\n"), "{method}");
    }
    assert_eq!(b.hits(), 5);
}

/// A connect that never completes times out after `timeouts.connect`; the
/// request is retried on another endpoint, and with none left it is a 504.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_retries_then_504() {
    let hole = blackhole();
    let live = Backend::start("live").await;
    let yaml = format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\ntimeouts: {{connect: 300ms}}\nroutes:\n  - {{name: both, path: /, backends: [{}, {}]}}\n  - {{name: hole, path: /hole, backends: [{}]}}\n",
        hole.addr, live.addr, hole.addr
    );
    let (s, _) = Sluice::with_config(&yaml).await;
    let c = client(None);
    // Round-robin over [hole, live]: every GET still succeeds.
    for _ in 0..4 {
        let (status, _, body) = request(&c, s.listen, "GET", "/", &[], empty())
            .await
            .unwrap();
        assert_eq!((status, body.as_str()), (200, "live\n"));
    }
    let start = Instant::now();
    let (status, _, body) = request(&c, s.listen, "GET", "/hole", &[], empty())
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("connect timed out"), "{body}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(s.log().contains(&hole.addr.to_string()));
}

/// Pooled upstream connections idle longer than `upstream_idle` are closed
/// even when no request comes to notice them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_are_closed() {
    let b = Backend::start("a").await;
    let (s, _) = Sluice::with_config(&config(
        "app",
        &[b.addr],
        "",
        "timeouts: {upstream_idle: 500ms}\n",
    ))
    .await;
    assert_eq!(get(s.listen, "/").await.unwrap().0, 200);
    assert_eq!(b.open.load(std::sync::atomic::Ordering::SeqCst), 1);
    wait_until(
        "the idle upstream connection to close",
        Duration::from_secs(5),
        || async { b.open.load(std::sync::atomic::Ordering::SeqCst) == 0 },
    )
    .await;
}

/// An upstream that answers before the request body has been sent whole
/// (as nginx's `return 403` does) and keeps reading it: that connection is
/// not reused, so the next request does not wait behind the upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_answer_during_upload_does_not_block_the_next_request() {
    // A raw backend: answers as soon as it has the headers, then reads
    // and discards the chunked body before it reads the next request.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // Headers.
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    buf.drain(..end);
                    if conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nearly\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if head.contains("transfer-encoding: chunked") {
                        while !buf.windows(5).any(|w| w == b"0\r\n\r\n") {
                            match conn.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buf.windows(5).position(|w| w == b"0\r\n\r\n").unwrap() + 5;
                        buf.drain(..end);
                    }
                }
            });
        }
    });
    let s = Sluice::serve(&["--backend", &backend.to_string()]).await;
    // Client A starts a chunked upload and stalls halfway, connection open.
    let mut a = TcpStream::connect(s.listen).await.unwrap();
    a.write_all(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await
    .unwrap();
    let answered = read_until(&mut a, Duration::from_secs(5), |b| b.ends_with(b"early\n")).await;
    let got = answered.bytes.clone();
    assert!(
        !answered.timed_out && !answered.closed,
        "A got no early answer: {:?}",
        answered.text()
    );
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // Client B, while A's upload is still open: answered at once.
    let r = tokio::time::timeout(
        Duration::from_secs(3),
        request(&client(None), s.listen, "GET", "/", &[], empty()),
    )
    .await;
    let (status, _, body) = r.expect("B waited behind A's upload").unwrap();
    assert_eq!((status, body.as_str()), (200, "early\n"));
    drop(a);
}

/// A client that stops sending its request body midway gets a 408 after
/// `request_body`, and the endpoint is not blamed for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_upload_is_408() {
    let b = Backend::start("a").await;
    let (s, _) = Sluice::with_config(&config(
        "app",
        &[b.addr],
        "    timeouts: {request_body: 500ms}\n    health: {consecutive_failures: 1}\n",
        "",
    ))
    .await;
    let start = Instant::now();
    let mut c = TcpStream::connect(s.listen).await.unwrap();
    c.write_all(b"POST /sleep/3000 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let r = read_until(&mut c, Duration::from_secs(5), |b| {
        b.windows(4).any(|w| w == b"\r\n\r\n")
    })
    .await;
    let took = start.elapsed();
    let got = r.text();
    assert!(got.starts_with("HTTP/1.1 408 "), "{got:?}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    // Not the endpoint's fault: with consecutive_failures 1 it would be ejected otherwise.
    let (_, routes) = get(s.admin, "/routes").await.unwrap();
    assert!(routes.contains("\"state\": \"healthy\""), "{routes}");
}

/// A client that asks for a large answer and then takes nothing is cut off
/// after `timeouts.send` (nginx's send_timeout), instead of holding its
/// connection and the upstream's for ever; others are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_takes_nothing_is_cut_off() {
    const LEN: usize = 16 << 20;
    let upstream = RawBackend::start(|req| {
        if req.starts_with(b"GET /big") {
            let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {LEN}\r\n\r\n").into_bytes();
            r.extend(std::iter::repeat_n(b'x', LEN));
            RawAnswer::whole(r)
        } else {
            RawAnswer::whole(&b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"[..])
        }
    })
    .await;
    let yaml = format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\ntimeouts: {{send: 1s}}\nroutes:\n  - backends: [{}]\n",
        upstream.addr
    );
    let (s, _) = Sluice::with_config(&yaml).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    let mut tcp = socket.connect(s.listen).await.unwrap();
    tcp.write_all(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // Taking nothing, while another client is served, until the proxy has
    // let go of every client connection: this one's included.
    let (status, _) = get(s.listen, "/small").await.unwrap();
    assert_eq!(status, 200);
    wait_until(
        "the proxy to cut off the client that takes nothing",
        Duration::from_secs(10),
        || async { s.metric("sluice_client_connections").await == Some(0.0) },
    )
    .await;
    let got = read_until(&mut tcp, Duration::from_secs(10), until_closed).await;
    assert!(got.closed, "still open after the send timeout");
    assert!(
        got.bytes.len() < LEN,
        "the whole answer fit in the buffers: {} bytes",
        got.bytes.len()
    );
}

/// The keep-alive race on hyper's path (an HTTP/2 client, so hyper serves
/// it in both modes): the upstream closes a connection that sat idle just as
/// a GET goes out on it. The GET is sent again on a fresh connection and
/// succeeds; nothing is sent twice to a live connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_closed_under_a_get_is_retried_fresh() {
    let seen = Arc::new(AtomicUsize::new(0));
    let n = seen.clone();
    let upstream = RawBackend::start(move |_| {
        // The second request ever is the one the race loses: the upstream
        // closes without a word, as its keep-alive timer fires.
        if n.fetch_add(1, Ordering::SeqCst) == 1 {
            RawAnswer {
                parts: vec![],
                close: true,
            }
        } else {
            RawAnswer::whole(&b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"[..])
        }
    })
    .await;
    let s = Sluice::serve(&["--backend", &upstream.addr.to_string()]).await;
    let (mut send, conn) = h2c(s.listen).await;
    tokio::spawn(conn);
    let get = || {
        http::Request::get(format!("http://{}/", s.listen))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    let first = send.send_request(get()).await.unwrap();
    assert_eq!(first.status(), 200);
    http_body_util::BodyExt::collect(first.into_body())
        .await
        .unwrap();
    // Idle long enough for the request to be kept aside.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = send.send_request(get()).await.unwrap();
    assert_eq!(second.status(), 200, "the closed connection's GET");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "first, lost, and sent again"
    );
    assert_eq!(upstream.conns.load(Ordering::SeqCst), 2);
}

/// A gRPC client gets the proxy's own answers as gRPC statuses (HTTP 200,
/// `grpc-status`, `grpc-message`, no body), since it reads nothing else;
/// the metrics still count the HTTP status the answer stands for. An
/// HTTP/1.1 request with the same content type gets the plain answer, as on
/// the fast path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_clients_get_grpc_statuses() {
    let down = dead();
    let yaml = format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\nroutes:\n  - name: down\n    host: down.example\n    path: /\n    backends: [{}]\n",
        down.addr
    );
    let (s, _dir) = Sluice::with_config(&yaml).await;
    let grpc = |host: &'static str, version: &'static str| {
        let url = s.url("/pkg.Service/Method");
        async move {
            let out = tokio::task::spawn_blocking(move || {
                run(
                    "/usr/bin/curl",
                    &[
                        version,
                        "-s",
                        "-D",
                        "-",
                        "-o",
                        "/dev/null",
                        "-H",
                        &format!("Host: {host}"),
                        "-H",
                        "content-type: application/grpc",
                        "-H",
                        "te: trailers",
                        // No body: the proxy answers before reading one, and
                        // curl may report the stream's end (RST_STREAM
                        // NO_ERROR, RFC 9113 8.1) as an error while it is
                        // still sending.
                        "-X",
                        "POST",
                        &url,
                    ],
                )
            })
            .await
            .unwrap();
            out.to_ascii_lowercase()
        }
    };
    // No route: UNIMPLEMENTED (12), as gRPC maps a 404.
    let head = grpc("nowhere.example", "--http2-prior-knowledge").await;
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(
        head.contains("content-type: application/grpc\r\n"),
        "{head}"
    );
    assert!(head.contains("grpc-status: 12\r\n"), "{head}");
    assert!(
        head.contains("grpc-message: no route for this host and path\r\n"),
        "{head}"
    );
    // The endpoint refuses connections: UNAVAILABLE (14), which gRPC
    // clients retry.
    let head = grpc("down.example", "--http2-prior-knowledge").await;
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(head.contains("grpc-status: 14\r\n"), "{head}");
    assert!(
        head.contains("grpc-message: no upstream could be reached\r\n"),
        "{head}"
    );
    let bad = s
        .metric(r#"sluice_requests_total{code="502",route="down"}"#)
        .await;
    assert_eq!(bad, Some(1.0), "counted as the 502 it stands for");
    // The same request over HTTP/1.1: the plain 502.
    let head = grpc("down.example", "--http1.1").await;
    assert!(head.starts_with("http/1.1 502"), "{head}");
    assert!(!head.contains("grpc-status"), "{head}");
}
