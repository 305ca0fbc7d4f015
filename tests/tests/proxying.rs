//! What a request looks like on the way through: protocols the client may
//! speak, headers the backend sees, bodies in both directions, upgrades,
//! upstream keep-alive, and the requests the proxy refuses itself.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use sluice_integration::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// A proxy in front of one backend, from the command line.
async fn one(name: &str) -> (Backend, Sluice) {
    let b = Backend::start(name).await;
    let s = Sluice::serve(&["--backend", &b.addr.to_string()]).await;
    (b, s)
}

/// Runs curl off the async workers (the backend lives on them).
async fn curl(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("/usr/bin/curl", &args)
    })
    .await
    .unwrap()
}

/// The backend's `/headers` answer as (name, value) pairs, in order.
fn parse_headers(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap_or((l, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Every value of header `name` the backend saw.
fn values<'a>(seen: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    seen.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// GET /headers through the proxy with `headers`; what the backend saw.
async fn seen_by_backend(s: &Sluice, headers: &[(&str, &str)]) -> Vec<(String, String)> {
    let (status, _, body) = request(&client(None), s.listen, "GET", "/headers", headers, empty())
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    parse_headers(&body)
}

/// Writes `req` on a fresh connection and reads until the proxy closes it
/// (10 s at most). Returns everything read.
async fn exchange(addr: SocketAddr, req: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(req).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the proxy kept the connection open; got so far: {:?}",
        String::from_utf8_lossy(&out)
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// A response's status code, header block and body, split from raw text.
fn split_response(raw: &str) -> (u16, String, String) {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response head in {raw:?}"));
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 status line: {raw:?}"));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// Deterministic, incompressible-looking bytes (xorshift).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

// ------------------------------------------------------------------ protocols

/// A client speaking h2c with prior knowledge is served over HTTP/2 and
/// reaches the HTTP/1.1 backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_through_curl() {
    let (b, s) = one("h2-backend").await;
    let out = curl(&[
        "--http2-prior-knowledge",
        "-s",
        "-w",
        "%{http_code} %{http_version}",
        &s.url("/"),
    ])
    .await;
    assert_eq!(out, "h2-backend\n200 2");
    assert_eq!(b.hits(), 1);

    // HTTP/2 carries the host as :authority; the HTTP/1.1 backend gets it
    // as Host (and X-Forwarded-Host).
    let out = curl(&[
        "--http2-prior-knowledge",
        "-s",
        "-H",
        "Host: app.example.com",
        &s.url("/headers"),
    ])
    .await;
    let seen = parse_headers(&out);
    assert_eq!(values(&seen, "host"), ["app.example.com"], "{seen:?}");
    assert_eq!(
        values(&seen, "x-forwarded-host"),
        ["app.example.com"],
        "{seen:?}"
    );
    assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"], "{seen:?}");

    // A request body over HTTP/2 reaches the HTTP/1.1 backend and back.
    let out = curl(&[
        "--http2-prior-knowledge",
        "-s",
        "--data-binary",
        "sent over h2",
        &s.url("/echo"),
    ])
    .await;
    assert_eq!(out, "sent over h2");
}

/// A plain HTTP/1.1 client through curl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_through_curl() {
    let (b, s) = one("h1-backend").await;
    let out = curl(&[
        "--http1.1",
        "-s",
        "-w",
        "%{http_code} %{http_version}",
        &s.url("/anything?q=1"),
    ])
    .await;
    assert_eq!(out, "h1-backend\n200 1.1");
    assert_eq!(b.hits(), 1);
}

// ------------------------------------------------------------------ headers

/// X-Forwarded-For is appended to, -Proto and -Host are set, and the Host
/// the client sent reaches the backend unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_and_host() {
    let (_b, s) = one("a").await;
    let seen = seen_by_backend(
        &s,
        &[("host", "app.example.com"), ("x-forwarded-for", "1.2.3.4")],
    )
    .await;
    assert_eq!(
        values(&seen, "x-forwarded-for"),
        ["1.2.3.4, 127.0.0.1"],
        "{seen:?}"
    );
    assert_eq!(values(&seen, "x-forwarded-proto"), ["http"], "{seen:?}");
    assert_eq!(
        values(&seen, "x-forwarded-host"),
        ["app.example.com"],
        "{seen:?}"
    );
    assert_eq!(values(&seen, "host"), ["app.example.com"], "{seen:?}");

    // Without a prior X-Forwarded-For, the client address alone.
    let seen = seen_by_backend(&s, &[("host", "app.example.com")]).await;
    assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"], "{seen:?}");
}

/// X-Request-Id is added (32 hex digits, new per request) when absent and
/// kept as sent when present.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_added_or_kept() {
    let (_b, s) = one("a").await;
    let first = seen_by_backend(&s, &[]).await;
    let second = seen_by_backend(&s, &[]).await;
    let ids: Vec<&str> = [&first, &second]
        .iter()
        .map(|seen| {
            let v = values(seen, "x-request-id");
            assert_eq!(v.len(), 1, "{seen:?}");
            v[0]
        })
        .collect();
    for id in &ids {
        assert_eq!(id.len(), 32, "{id:?}");
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()), "{id:?}");
    }
    assert_ne!(ids[0], ids[1], "two requests got the same id");

    let seen = seen_by_backend(&s, &[("x-request-id", "client-chosen-id-7")]).await;
    assert_eq!(
        values(&seen, "x-request-id"),
        ["client-chosen-id-7"],
        "{seen:?}"
    );
}

/// Hop-by-hop headers, fixed ones and those the Connection header names,
/// stop at the proxy; an ordinary custom header goes through. Sent raw, so
/// that no client library drops any of them first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_removed() {
    let (_b, s) = one("a").await;
    let raw = exchange(
        s.listen,
        b"GET /headers HTTP/1.1\r\n\
          Host: app.example.com\r\n\
          Connection: x-hop, close\r\n\
          x-hop: 1\r\n\
          Keep-Alive: timeout=5\r\n\
          TE: trailers\r\n\
          Proxy-Connection: keep-alive\r\n\
          X-Custom: kept\r\n\
          \r\n",
    )
    .await;
    let (status, _, body) = split_response(&raw);
    assert_eq!(status, 200, "{raw}");
    let seen = parse_headers(&body);
    assert_eq!(values(&seen, "x-custom"), ["kept"], "{seen:?}");
    for gone in ["x-hop", "keep-alive", "te", "proxy-connection"] {
        assert!(
            values(&seen, gone).is_empty(),
            "{gone} reached the backend: {seen:?}"
        );
    }
    // Whatever Connection header the upstream hop carries is its own.
    for v in values(&seen, "connection") {
        assert!(!v.contains("x-hop"), "{seen:?}");
    }
}

/// An absolute-form request is routed by its target's host, and that host
/// is what the backend sees: RFC 9112 3.2.2 has a proxy replace the Host
/// header with the target's host, so routing and backend agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn absolute_form_target_replaces_host() {
    let b = Backend::start("app").await;
    let (s, _) = Sluice::with_config(&format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\nroutes:\n  - name: app\n    host: app.example.com\n    path: /\n    backends: [{}]\n",
        b.addr
    ))
    .await;
    let raw = exchange(
        s.listen,
        b"GET http://app.example.com/headers HTTP/1.1\r\nHost: other.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (status, head, body) = split_response(&raw);
    assert_eq!(status, 200, "{raw}");
    assert!(head.contains("x-backend: app"), "{raw}");
    let seen = parse_headers(&body);
    assert_eq!(values(&seen, "host"), ["app.example.com"], "{seen:?}");
    assert_eq!(
        values(&seen, "x-forwarded-host"),
        ["app.example.com"],
        "{seen:?}"
    );
}

// ------------------------------------------------------------------ bodies

/// An 8 MiB request body goes up and comes back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_body_round_trip() {
    let (_b, s) = one("a").await;
    let data = Bytes::from(pattern(8 << 20, 0x5eed));
    let req = Request::post(s.url("/echo"))
        .body(body(data.clone()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), async {
        let resp = client(None).request(req).await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    })
    .await
    .expect("8 MiB echo within 30 s");
    assert_eq!(resp.0, 200);
    assert_eq!(resp.1.len(), data.len());
    assert_eq!(first_difference(&resp.1, &data), None);
}

/// A chunked upload (no length known up front) is streamed: each chunk's
/// echo comes back before the next chunk is sent, and the whole is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_streams_both_ways() {
    let (_b, s) = one("a").await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, hyper::Error>(Frame::data(b)), rx))
    });
    let req = Request::post(s.url("/echo"))
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap();
    let chunks: Vec<Bytes> = (0..5u64)
        .map(|i| Bytes::from(pattern(1000 + 37 * i as usize, i + 1)))
        .collect();
    let c = client(None);
    tx.send(chunks[0].clone()).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), c.request(req))
        .await
        .expect("response head while the upload is still open")
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        if i > 0 {
            tx.send(chunk.clone()).await.unwrap();
        }
        let want: usize = chunks[..=i].iter().map(Bytes::len).sum();
        // The echo of this chunk arrives while the upload is still open.
        while got.len() < want {
            let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
                .await
                .unwrap_or_else(|_| panic!("chunk {i} not echoed while the upload is open"))
                .expect("body ended early")
                .unwrap();
            if let Ok(d) = frame.into_data() {
                got.extend_from_slice(&d);
            }
        }
        assert_eq!(got.len(), want, "chunk {i}");
    }
    drop(tx);
    let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("body ends once the upload does")
        .unwrap()
        .to_bytes();
    got.extend_from_slice(&rest);
    let sent: Vec<u8> = chunks.concat();
    assert_eq!(got.len(), sent.len());
    assert_eq!(first_difference(&got, &sent), None);
}

// ------------------------------------------------------------------ upgrades

/// A WebSocket through the proxy: text and binary messages echo back intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo() {
    let (_b, s) = one("a").await;
    let tcp = TcpStream::connect(s.listen).await.unwrap();
    let (mut ws, resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(format!("ws://{}/ws", s.listen), tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake succeeds");
    assert_eq!(resp.status(), 101);
    let sent = [
        Message::text("hello"),
        Message::text("through the sluice"),
        Message::text("ü ∑ 🚀"),
        Message::binary(pattern(3000, 9)),
    ];
    for m in &sent {
        ws.send(m.clone()).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("echo in time")
            .expect("stream open")
            .unwrap();
        assert_eq!(&back, m);
    }
    ws.close(None).await.unwrap();
}

// ------------------------------------------------------------------ pooling

/// Sequential requests reuse pooled upstream connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused() {
    let (b, s) = one("a").await;
    let c = client(None);
    for _ in 0..50 {
        let (status, _, body) = request(&c, s.listen, "GET", "/", &[], empty())
            .await
            .unwrap();
        assert_eq!((status, body.as_str()), (200, "a\n"));
    }
    assert_eq!(b.hits(), 50);
    let conns = b.conns.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        conns <= 5,
        "50 sequential requests opened {conns} upstream connections"
    );
}

// ------------------------------------------------------------------ refusals

/// HTTP/1.1 without a Host header gets 400 from the proxy itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_host_is_400() {
    let (b, s) = one("a").await;
    let raw = exchange(s.listen, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    let (status, head, body) = split_response(&raw);
    assert_eq!(status, 400, "{raw}");
    assert!(head.contains("content-type: text/plain"), "{raw}");
    assert!(!body.is_empty() && body.len() < 200, "{raw}");
    assert_eq!(b.hits(), 0);
}

/// Two Host headers, or a Host that is not a valid host, get 400 (RFC 9112
/// 3.2): otherwise the proxy routes by one Host while the backend may read
/// the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn duplicate_or_invalid_host_is_400() {
    let (b, s) = one("a").await;
    for req in [
        &b"GET /headers HTTP/1.1\r\nHost: one.example\r\nHost: two.example\r\nConnection: close\r\n\r\n"[..],
        &b"GET /headers HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n"[..],
        // Routed on one host, sent upstream as another: refused.
        &b"GET /headers HTTP/1.1\r\nHost: a.example.com:evil.com\r\nConnection: close\r\n\r\n"[..],
        &b"GET http://a.example.com:1@evil.com/headers HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n"[..],
        &b"GET /headers HTTP/1.1\r\nHost: :80\r\nConnection: close\r\n\r\n"[..],
    ] {
        let raw = exchange(s.listen, req).await;
        let (status, _, _) = split_response(&raw);
        assert_eq!(status, 400, "{}\n->\n{raw}", String::from_utf8_lossy(req));
    }
    assert_eq!(b.hits(), 0);
}

/// A request line that is not HTTP gets hyper's automatic 400 with an
/// empty body, and the connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_request_line_is_400() {
    let (b, s) = one("a").await;
    let raw = exchange(s.listen, b"THIS IS NOT HTTP\r\n\r\n").await;
    let (status, head, body) = split_response(&raw);
    assert_eq!(status, 400, "{raw}");
    assert!(head.contains("content-length: 0"), "{raw}");
    assert_eq!(body, "", "{raw}");
    assert_eq!(b.hits(), 0);
}

/// CONNECT is refused with 405; nothing reaches the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_405() {
    let (b, s) = one("a").await;
    let raw = exchange(
        s.listen,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (status, head, body) = split_response(&raw);
    assert_eq!(status, 405, "{raw}");
    assert!(head.contains("content-type: text/plain"), "{raw}");
    assert!(!body.is_empty() && body.len() < 200, "{raw}");
    assert_eq!(b.hits(), 0);
}

/// With only a host-specific route, another host gets a short plain 404
/// while the route's own host is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_host_is_404() {
    let b = Backend::start("app").await;
    let (s, _) = Sluice::with_config(&format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\nroutes:\n  - name: app\n    host: app.example.com\n    path: /\n    backends: [{}]\n",
        b.addr
    ))
    .await;
    let c = client(None);
    let (status, headers, body) = get_as(&c, s.listen, "other.example.com", "/").await;
    assert_eq!(status, 404, "{body}");
    let ct = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        ct.as_deref().is_some_and(|t| t.starts_with("text/plain")),
        "{ct:?}"
    );
    assert!(
        !body.is_empty() && body.len() < 200 && body.ends_with('\n'),
        "{body:?}"
    );
    assert_eq!(b.hits(), 0);

    let (status, _, body) = get_as(&c, s.listen, "app.example.com", "/").await;
    assert_eq!((status, body.as_str()), (200, "app\n"));
}

/// A `Connection` header naming Host (or X-Forwarded-Host) cannot strip
/// it: the backend always sees the Host that was routed on, and never a
/// forged X-Forwarded-Host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_tokens_cannot_remove_host() {
    let (_b, s) = one("a").await;
    let raw = exchange(
        s.listen,
        b"GET /headers HTTP/1.1\r\nHost: app.example.com\r\nX-Forwarded-Host: evil.com\r\nConnection: host, x-forwarded-host\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (status, _, body) = split_response(&raw);
    assert_eq!(status, 200, "{raw}");
    let seen = parse_headers(&body);
    assert_eq!(values(&seen, "host"), ["app.example.com"], "{body}");
    assert_eq!(
        values(&seen, "x-forwarded-host"),
        ["app.example.com"],
        "{body}"
    );
}

/// A connection that sends nothing at all is closed after
/// `request_header`, like one that sends half a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed() {
    let b = Backend::start("a").await;
    let yaml = format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\ntimeouts: {{request_header: 500ms}}\nroutes:\n  - {{path: /, backends: [{}]}}\n",
        b.addr
    );
    let (s, _) = Sluice::with_config(&yaml).await;
    let start = std::time::Instant::now();
    let mut tcp = TcpStream::connect(s.listen).await.unwrap();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "still open: {r:?}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}

/// Cookie fields an HTTP/2 client sends apart reach an HTTP/1.1 upstream as
/// one Cookie header, joined with "; ".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_cookies_reach_h1_upstreams_joined() {
    let (_b, s) = one("a").await;
    let url = s.url("/headers");
    let out = curl(&[
        "-s",
        "--http2-prior-knowledge",
        "-H",
        "cookie: a=1",
        "-H",
        "cookie: b=2",
        &url,
    ])
    .await;
    let seen = parse_headers(&out);
    let cookies = values(&seen, "cookie");
    assert_eq!(cookies.len(), 1, "{out}");
    assert!(cookies[0] == "a=1; b=2", "{out}");
}

/// `max_request_body`: a body declared or streamed past the limit gets a
/// 413 and never reaches the backend whole; one within it passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_over_the_limit_are_413() {
    // A backend that answers only after a while, as one that reads the
    // whole body first does: an upstream that answers mid-upload gets its
    // answer through (the body is streamed), and this test is about the
    // limit.
    let backend = Backend::start_slow("a", Duration::from_secs(2)).await;
    let yaml = format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\nmax_request_body: 1k\nroutes:\n  - backends: [{}]\n",
        backend.addr
    );
    let (s, _) = Sluice::with_config(&yaml).await;
    let c = client(None);
    let post = |len: usize| {
        Request::post(s.url("/echo"))
            .body(body(vec![b'x'; len]))
            .unwrap()
    };
    let resp = c.request(post(1024)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c.request(post(1025)).await.unwrap();
    assert_eq!(resp.status(), 413);
    // Streamed without a length: counted as it comes. The client goes
    // past the limit, then waits for its answer (as an uploader reading
    // the response does).
    let chunks = futures_util::stream::iter(
        (0..3).map(|_| Ok::<_, hyper::Error>(Frame::data(Bytes::from(vec![b'y'; 400])))),
    )
    .chain(futures_util::stream::pending());
    let req = Request::post(s.url("/echo"))
        .body(BodyExt::boxed(StreamBody::new(chunks)))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), c.request(req))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    assert_eq!(resp.status(), 413);
}

/// An HTTP/2 connection with no request in flight for `timeouts.http2_idle`
/// gets a GOAWAY and is closed, while one whose request outlasts that
/// limit is not cut short: hyper answers pings for ever, so only this bounds
/// what an idle client holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed() {
    let backend = Backend::start("a").await;
    let yaml = format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\ntimeouts: {{http2_idle: 1s}}\nroutes:\n  - backends: [{}]\n",
        backend.addr
    );
    let (s, _) = Sluice::with_config(&yaml).await;
    let (mut send, conn) = h2c(s.listen).await;
    let closed = tokio::spawn(async move {
        let _ = conn.await;
        std::time::Instant::now()
    });
    let get = |path: &str| {
        Request::get(format!("http://{}{path}", s.listen))
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap()
    };
    // A request in flight for 1.5 s: longer than the idle limit.
    let start = std::time::Instant::now();
    let resp = send.send_request(get("/sleep/1500")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"a\n");
    assert!(!closed.is_finished(), "closed under a request in flight");
    // Then nothing: closed about a second after the answer.
    let answered = std::time::Instant::now();
    let at = tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("an idle HTTP/2 connection still open after 5 s")
        .unwrap();
    let quiet = at - answered;
    assert!(
        quiet >= Duration::from_millis(800) && quiet < Duration::from_secs(4),
        "closed {quiet:?} after the answer ({:?} after the start)",
        at - start
    );
}

/// HTTP/2 clients' bodiless requests to a plain HTTP/1.1 upstream go over
/// raw pooled sockets, not hyper's client: every framing of the answer
/// reaches the client as data frames (chunk framing, trailers and interim
/// answers taken off, values and statuses intact), the socket serves the
/// next request when the answer allowed it, and a body broken off mid-way
/// resets the client's stream instead of ending it as if whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_clients_get_every_framing_of_an_h1_answer() {
    let upstream = RawBackend::start(|req| {
        let head = String::from_utf8_lossy(req);
        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
        let whole = |s: &str| RawAnswer::whole(s.as_bytes().to_vec());
        match path.as_str() {
            "/length" if head.starts_with("HEAD ") => {
                whole("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kind: length\r\n\r\n")
            }
            "/length" => whole("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kind: length\r\n\r\nhello"),
            "/chunked" => RawAnswer {
                parts: vec![
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhel".to_vec(),
                    b"lo\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec(),
                ],
                close: false,
            },
            "/interim" => whole("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"),
            "/empty" => whole("HTTP/1.1 204 No Content\r\nX-Kind: none\r\n\r\n"),
            "/eof" => RawAnswer {
                parts: vec![b"HTTP/1.1 200 OK\r\n\r\nuntil ".to_vec(), b"the close".to_vec()],
                close: true,
            },
            "/cut" => RawAnswer {
                parts: vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this".to_vec()],
                close: true,
            },
            "/bad-chunk" => RawAnswer {
                parts: vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX".to_vec()],
                close: false,
            },
            "/bad-head" => whole("HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx"),
            _ => whole("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        }
    })
    .await;
    let s = Sluice::serve(&["--backend", &upstream.addr.to_string()]).await;
    let (mut send, conn) = h2c(s.listen).await;
    tokio::spawn(conn);
    let url = |p: &str| format!("http://{}{p}", s.listen);
    let get = |method: &str, p: &str| {
        http::Request::builder()
            .method(method)
            .uri(url(p))
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap()
    };
    // Whole answers: status, a header, the body; one connection for all.
    for (method, path, status, body) in [
        ("GET", "/length", 200, "hello"),
        ("GET", "/chunked", 200, "hello, world"),
        ("GET", "/interim", 201, "ok"),
        ("GET", "/empty", 204, ""),
        ("HEAD", "/length", 200, ""),
        ("GET", "/length", 200, "hello"),
    ] {
        let resp = send.send_request(get(method, path)).await.unwrap();
        assert_eq!(resp.status(), status, "{method} {path}");
        if path == "/length" {
            assert_eq!(resp.headers()["x-kind"], "length");
            assert_eq!(resp.headers()["content-length"], "5", "{method} {path}");
        }
        assert!(
            !resp.headers().contains_key("transfer-encoding"),
            "{method} {path}"
        );
        let got = resp.into_body().collect().await.unwrap();
        assert!(got.trailers().is_none(), "{method} {path}: no trailers");
        assert_eq!(got.to_bytes(), body.as_bytes(), "{method} {path}");
    }
    assert_eq!(
        upstream.conns.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "every answer above let its connection serve the next"
    );
    // A client that takes trailers gets the upstream's (through hyper's
    // client); the others do not, as from nginx.
    let mut req = get("GET", "/chunked");
    req.headers_mut()
        .insert("te", http::HeaderValue::from_static("trailers"));
    let got = send
        .send_request(req)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    assert_eq!(
        got.trailers().and_then(|t| t.get("x-trailer")),
        Some(&http::HeaderValue::from_static("t"))
    );
    assert_eq!(got.to_bytes(), &b"hello, world"[..]);
    // To the close: whole, and that connection is not kept.
    let resp = send.send_request(get("GET", "/eof")).await.unwrap();
    let got = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(got, &b"until the close"[..]);
    // Broken off: the stream is reset (before or after its head went
    // out), never ended as if whole; or, when the break is seen before
    // anything went out (the bad chunk comes with the head), the proxy's
    // 502, as the fast path answers an HTTP/1.1 client.
    for path in ["/cut", "/bad-chunk"] {
        if let Ok(resp) = send.send_request(get("GET", path)).await {
            if path == "/bad-chunk" && resp.status() == 502 {
                continue;
            }
            assert_eq!(resp.status(), 200, "{path}");
            assert!(
                resp.into_body().collect().await.is_err(),
                "{path}: a broken body reads as broken"
            );
        }
    }
    // A head that cannot be read is the proxy's 502.
    let resp = send.send_request(get("GET", "/bad-head")).await.unwrap();
    assert_eq!(resp.status(), 502);
    // The connection still serves, on a socket of its own.
    let resp = send.send_request(get("GET", "/length")).await.unwrap();
    assert_eq!(
        resp.into_body().collect().await.unwrap().to_bytes(),
        &b"hello"[..]
    );
    // What the upstream was sent: HTTP/1.1 heads, Host from :authority.
    let first = &upstream.received()[0];
    assert!(first.starts_with("GET /length HTTP/1.1\r\n"), "{first}");
    assert!(
        first
            .to_ascii_lowercase()
            .contains(&format!("\r\nhost: {}\r\n", s.listen)),
        "{first}"
    );
}

/// A large HTTP/2 download to a client that reads slowly, with windows
/// wide open: the proxy's output backs up past what it buffers, drains,
/// backs up again, and the answer still arrives whole, without a stall.
/// A connection whose output had drained without another turn of its
/// loop once sat until its next timer (the PING, 30 s) before it went
/// on: the deadline below is under that, and far over the second or two
/// the download takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_http2_download_to_a_slow_reader_arrives_whole() {
    const SIZE: usize = 8_000_000;
    let b = Backend::start("bytes").await;
    let s = Sluice::serve(&["--backend", &b.addr.to_string()]).await;
    // A small receive buffer: the proxy's writes block early and often.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let tcp = socket.connect(s.listen).await.unwrap();
    let (client, conn) = h2::client::Builder::new()
        .initial_window_size(16 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake::<_, Bytes>(tcp)
        .await
        .expect("h2c");
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let req = Request::get(format!("http://{}/bytes/{SIZE}", s.listen))
        .body(())
        .unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(25), async {
        let mut body = resp.await.expect("a response").into_body();
        let mut n = 0;
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("the body");
            n += chunk.len();
            let _ = body.flow_control().release_capacity(chunk.len());
            // A slow reader: the proxy's writes back up behind it.
            if n % (64 * 1024) < chunk.len() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        n
    })
    .await
    .expect("the whole body, with no 30 s stall");
    assert_eq!(got, SIZE);
}
