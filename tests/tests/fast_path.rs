//! HTTP/1.1 framing at the edges, where the fast path and hyper must agree:
//! response bodies delimited every way (length, chunks with trailers, close,
//! none), interim answers, pipelining, malformed upstream answers, ambiguous
//! request framing, and clients or upstreams that go away mid-message.
//!
//! Every test holds in both modes: `scripts/test.sh` runs the suite with the
//! fast path on (the default) and again with `SLUICE_TEST_HYPER_ONLY=1`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use sluice_integration::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn proxy_to(backend: SocketAddr) -> Sluice {
    Sluice::serve(&["--backend", &backend.to_string()]).await
}

/// GET through a pooled client: status and whole body.
async fn fetch(s: &Sluice, path: &str) -> (u16, Bytes) {
    let req = Request::get(s.url(path)).body(empty()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        let resp = client(None).request(req).await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    })
    .await
    .expect("an answer within 10 s")
}

/// Counts complete responses in `raw`, each a head plus `Content-Length`
/// body; stops at the first incomplete one.
fn responses(raw: &[u8]) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
        let status: u16 = head[9..12].parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        let no_body = status == 204 || status == 304 || head.contains("x-head: 1");
        let body_len = if no_body { 0 } else { len };
        if rest.len() < end + 4 + body_len {
            break;
        }
        let body = String::from_utf8_lossy(&rest[end + 4..end + 4 + body_len]).into_owned();
        out.push((status, body));
        rest = &rest[end + 4 + body_len..];
    }
    out
}

/// A chunked response, trailers included, arriving in pieces, is
/// delivered whole; and its end is found exactly, since the same upstream
/// connection serves the next response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_response_with_trailers_arrives_whole() {
    let b = RawBackend::start(|_| RawAnswer {
        parts: vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5\r\nhel"
                .to_vec(),
            b"lo\r\n6;ext=1\r\n world\r\n".to_vec(),
            b"0\r\nx-sum: 42\r\n\r\n".to_vec(),
        ],
        close: false,
    })
    .await;
    let s = proxy_to(b.addr).await;
    for _ in 0..3 {
        let (status, body) = fetch(&s, "/chunked").await;
        assert_eq!(status, 200);
        assert_eq!(&body[..], b"hello world");
    }
    assert_eq!(b.requests.lock().unwrap().len(), 3);
    assert_eq!(
        b.conns.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the upstream connection was not reused"
    );
}

/// A response with neither length nor chunks runs until the upstream
/// closes; the client gets all of it, and the next request gets a fresh
/// upstream connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_delimited_response_arrives_whole() {
    let b = RawBackend::start(|_| RawAnswer {
        parts: vec![
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nfirst part, ".to_vec(),
            b"second part".to_vec(),
        ],
        close: true,
    })
    .await;
    let s = proxy_to(b.addr).await;
    for _ in 0..2 {
        let (status, body) = fetch(&s, "/eof").await;
        assert_eq!(status, 200);
        assert_eq!(&body[..], b"first part, second part");
    }
    assert_eq!(b.conns.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// HEAD, 204 and 304 answers have no body whatever their headers say; an
/// interim 103 is skipped. Pipelined on one connection, each answer comes
/// back in order and nothing of one bleeds into the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_answers_and_pipelining_stay_in_step() {
    let b = RawBackend::start(|req| {
        let line = String::from_utf8_lossy(req).lines().next().unwrap_or("").to_owned();
        let answer: &[u8] = if line.starts_with("HEAD") {
            b"HTTP/1.1 200 OK\r\nx-head: 1\r\nContent-Length: 50\r\n\r\n"
        } else if line.contains("/204") {
            b"HTTP/1.1 204 No Content\r\n\r\n"
        } else if line.contains("/304") {
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"
        } else if line.contains("/103") {
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhints"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        };
        RawAnswer::whole(answer)
    })
    .await;
    let s = proxy_to(b.addr).await;
    let mut tcp = TcpStream::connect(s.listen).await.unwrap();
    tcp.write_all(
        b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /103 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /ok HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await
    .unwrap();
    let got = read_until(&mut tcp, Duration::from_secs(10), |b| {
        responses(b).len() >= 5
    })
    .await;
    let answers = responses(&got.bytes);
    assert_eq!(
        answers,
        vec![
            (200, String::new()),
            (204, String::new()),
            (304, String::new()),
            (200, "hints".into()),
            (200, "ok".into()),
        ],
        "raw: {}",
        got.text()
    );
    // Nothing more: no stray body bytes after the last answer.
    let extra = read_until(&mut tcp, Duration::from_millis(200), |b| !b.is_empty()).await;
    assert!(extra.bytes.is_empty(), "stray bytes: {:?}", extra.text());
}

/// An upstream that answers with garbage, or with two different lengths,
/// gets its client a 502; the proxy goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_upstream_answers_are_502() {
    let b = RawBackend::start(|req| {
        let line = String::from_utf8_lossy(req)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        if line.contains("/garbage") {
            RawAnswer {
                parts: vec![b"hello there\r\n\r\n".to_vec()],
                close: true,
            }
        } else if line.contains("/two-lengths") {
            RawAnswer {
                parts: vec![
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
                ],
                close: true,
            }
        } else if line.contains("/http10-chunked") {
            RawAnswer {
                parts: vec![b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n".to_vec()],
                close: false,
            }
        } else {
            RawAnswer::whole(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..])
        }
    })
    .await;
    let s = proxy_to(b.addr).await;
    for path in ["/garbage", "/two-lengths", "/http10-chunked"] {
        let (status, _) = fetch(&s, path).await;
        assert_eq!(status, 502, "{path}");
    }
    assert_eq!(fetch(&s, "/fine").await, (200, Bytes::from_static(b"ok")));
}

/// A body cut short by the upstream is never passed off as whole: the
/// client connection is closed before the promised length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_upstream_body_closes_the_client() {
    let b = RawBackend::start(|_| RawAnswer {
        parts: vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789".to_vec()],
        close: true,
    })
    .await;
    let s = proxy_to(b.addr).await;
    let mut tcp = TcpStream::connect(s.listen).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let got = read_until(&mut tcp, Duration::from_secs(10), until_closed).await;
    assert!(!got.timed_out, "the client connection was left hanging");
    let text = got.text();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert!(
        body.len() < 100,
        "a truncated body arrived as whole: {text:?}"
    );
}

/// Requests whose framing could be read two ways never reach the upstream
/// in that form: they are refused with 400, or forwarded with one framing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_request_framing_is_refused() {
    let b = RawBackend::start(|_| {
        RawAnswer::whole(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..])
    })
    .await;
    let s = proxy_to(b.addr).await;
    let attempts: [&[u8]; 6] = [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded: yes\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    ];
    for raw in attempts {
        let mut tcp = TcpStream::connect(s.listen).await.unwrap();
        tcp.write_all(raw).await.unwrap();
        let got = read_until(&mut tcp, Duration::from_secs(10), |b| {
            b.windows(4).any(|w| w == b"\r\n\r\n")
        })
        .await;
        assert!(
            got.text().starts_with("HTTP/1.1 400"),
            "{:?} got {:?}",
            String::from_utf8_lossy(raw),
            got.text()
        );
    }
    assert!(b.received().is_empty(), "forwarded: {:?}", b.received());
}

/// A request that declares both Content-Length and chunked is framed by
/// the chunks alone (RFC 9112 6.3) or refused: the upstream never sees
/// both, and never sees the bytes hidden behind the length as a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_and_chunked_together_never_reach_the_upstream() {
    let backend = Backend::start("a").await;
    let s = proxy_to(backend.addr).await;
    let mut tcp = TcpStream::connect(s.listen).await.unwrap();
    tcp.write_all(
        b"POST /headers HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await
    .unwrap();
    let got = read_until(&mut tcp, Duration::from_secs(5), until_closed).await;
    let text = got.text().to_ascii_lowercase();
    assert!(
        text.starts_with("http/1.1 400") || !text.contains("content-length: 40"),
        "{text}"
    );
    assert!(
        !text.contains("transfer-encoding: chunked\r\ncontent-length"),
        "{text}"
    );
}

/// A client that goes away in the middle of its upload costs the upstream
/// nothing, and the proxy goes on serving. The fast path buffers a small
/// body whole before it sends anything, so not a byte of the upload
/// reaches the upstream; hyper's path streams it, and the upstream
/// connection that carried part of it is closed, neither left waiting for
/// the rest nor reused. Either way no POST reaches the upstream whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_mid_upload() {
    let b = RawBackend::start(|_| {
        RawAnswer::whole(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..])
    })
    .await;
    let s = proxy_to(b.addr).await;
    {
        let mut tcp = TcpStream::connect(s.listen).await.unwrap();
        tcp.write_all(
            b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n0123456789",
        )
        .await
        .unwrap();
        // The client leaves only once the proxy has read all it sent: the
        // upload is under way.
        let (client_end, proxy_end) = (tcp.local_addr().unwrap(), s.listen);
        wait_until(
            "the proxy to read the partial upload",
            Duration::from_secs(10),
            || async move {
                let sent = tcp_queues(client_end, proxy_end).is_some_and(|q| q.unacked == 0);
                let read = tcp_queues(proxy_end, client_end).is_some_and(|q| q.unread == 0);
                sent && read
            },
        )
        .await;
    }
    assert_eq!(fetch(&s, "/after").await, (200, Bytes::from_static(b"ok")));
    let carried = || -> Vec<RawConn> {
        b.connections()
            .into_iter()
            .filter(|c| c.text().contains("POST /upload"))
            .collect()
    };
    wait_until(
        "the upstream connections that carried part of the upload to close",
        Duration::from_secs(10),
        || {
            let open = carried().iter().any(|c| !c.closed);
            async move { !open }
        },
    )
    .await;
    let carried = carried();
    if !hyper_only() {
        assert!(
            carried.is_empty(),
            "the fast path sent part of an unfinished upload upstream: {carried:?}"
        );
    }
    assert!(
        carried.iter().all(|c| !c.text().contains("/after")),
        "a connection with half an upload on it was used again: {carried:?}"
    );
    let received = b.received();
    assert!(
        received.iter().all(|r| !r.starts_with("POST")),
        "a partial upload was delivered whole: {received:?}"
    );
}

/// Bodies of every size round-trip intact: small ones (buffered by the
/// fast path) and ones past its buffering limit (streamed by hyper), on one
/// keep-alive connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_either_side_of_the_buffering_limit() {
    let backend = Backend::start("a").await;
    let s = proxy_to(backend.addr).await;
    let c = client(None);
    for len in [0usize, 1, 4096, 65_536, 65_537, 300_000] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let req = Request::post(s.url("/echo"))
            .body(body(data.clone()))
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(10), c.request(req))
            .await
            .expect("answer in time")
            .unwrap();
        assert_eq!(resp.status(), 200, "{len}");
        let got = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(got.len(), len);
        assert!(got[..] == data[..], "{len} bytes came back changed");
    }
}

/// A connection that starts on the fast path and meets a request it hands
/// to hyper (a chunked upload) goes on serving plain requests after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handed_over_connections_keep_serving() {
    let backend = Backend::start("a").await;
    let s = proxy_to(backend.addr).await;
    let mut tcp = TcpStream::connect(s.listen).await.unwrap();
    tcp.write_all(b"GET /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\none")
        .await
        .unwrap();
    let first = read_until(&mut tcp, Duration::from_secs(10), |b| b.ends_with(b"one")).await;
    assert!(first.text().starts_with("HTTP/1.1 200"), "{}", first.text());
    tcp.write_all(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    // The echo of a chunked upload is chunked: read to its last chunk.
    let second = read_until(&mut tcp, Duration::from_secs(10), |b| {
        String::from_utf8_lossy(b).contains("two") && b.ends_with(b"0\r\n\r\n")
    })
    .await;
    assert!(
        second.text().starts_with("HTTP/1.1 200"),
        "{}",
        second.text()
    );
    tcp.write_all(b"GET /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nthree")
        .await
        .unwrap();
    let third = read_until(&mut tcp, Duration::from_secs(10), |b| b.ends_with(b"three")).await;
    assert!(third.text().starts_with("HTTP/1.1 200"), "{}", third.text());
}

/// An upstream that closes without answering is not sent the request
/// again and again: at most once more, on a fresh connection, then 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_hangs_up_is_not_replayed_to() {
    let b = RawBackend::start(|req| {
        if String::from_utf8_lossy(req).starts_with("GET /drop") {
            RawAnswer {
                parts: vec![],
                close: true,
            }
        } else {
            RawAnswer::whole(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..])
        }
    })
    .await;
    let s = proxy_to(b.addr).await;
    // Several pooled upstream connections, from concurrent requests.
    let warm: Vec<_> = (0..6).map(|_| fetch(&s, "/ok")).collect();
    for (status, _) in futures_util::future::join_all(warm).await {
        assert_eq!(status, 200);
    }
    let (status, _) = fetch(&s, "/drop").await;
    assert_eq!(status, 502);
    let drops = b
        .received()
        .iter()
        .filter(|r| r.starts_with("GET /drop"))
        .count();
    assert!(
        (1..=2).contains(&drops),
        "the request was sent {drops} times"
    );
}

/// An upstream that streams interim answers without end is cut off: the
/// client gets an error, not an ever-growing wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_interim_answers_are_cut_off() {
    let b = RawBackend::start(|_| RawAnswer {
        parts: vec![b"HTTP/1.1 102 Processing\r\n\r\n".repeat(10_000)],
        close: false,
    })
    .await;
    let yaml = format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\ntimeouts:\n  response_header: 2s\nroutes:\n  - backends: [{}]\n",
        b.addr
    );
    let (s, _) = Sluice::with_config(&yaml).await;
    let (status, _) = fetch(&s, "/").await;
    assert!(status == 502 || status == 504, "{status}");
}

/// A response body that stops coming is not waited for forever: after
/// `response_header` of silence the client connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_response_body_is_cut_off() {
    let b = RawBackend::start(|_| RawAnswer {
        parts: vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789".to_vec()],
        close: false,
    })
    .await;
    let yaml = format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\ntimeouts:\n  response_header: 1s\nroutes:\n  - backends: [{}]\n",
        b.addr
    );
    let (s, _) = Sluice::with_config(&yaml).await;
    let mut tcp = TcpStream::connect(s.listen).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let got = read_until(&mut tcp, Duration::from_secs(10), until_closed).await;
    assert!(!got.timed_out, "still open after 10 s: {:?}", got.text());
    assert!(got.text().starts_with("HTTP/1.1 200"), "{}", got.text());
}

/// A request whose head was still arriving when the drain began is served
/// in full, even when it is one the fast path hands to hyper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_arriving_during_the_drain_is_answered() {
    let backend = Backend::start("a").await;
    let s = proxy_to(backend.addr).await;
    let mut tcp = TcpStream::connect(s.listen).await.unwrap();
    tcp.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n")
        .await
        .unwrap();
    // The partial head is in the proxy's socket before the signal.
    s.signal("TERM");
    wait_until("the drain to begin", Duration::from_secs(5), || async {
        s.log().contains("draining client connections")
    })
    .await;
    tcp.write_all(b"\r\n5\r\nhello\r\n0\r\n\r\n").await.unwrap();
    let got = read_until(&mut tcp, Duration::from_secs(10), until_closed).await;
    let text = got.text();
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    assert!(text.contains("hello"), "{text:?}");
}

/// An upstream answer framed by its connection's end (no length, no
/// chunks) that fails partway (the upstream resets): the client must be
/// able to tell it was cut. The fast path passes such framing through,
/// so it resets the client's connection; hyper re-frames it in chunks,
/// and leaves out the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_framed_by_close_and_cut_by_a_reset_is_not_a_clean_end() {
    use tokio::io::AsyncReadExt;
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = upstream.local_addr().unwrap();
    let (cut_tx, cut_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut t, _) = upstream.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match t.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        t.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npartial-body")
            .await
            .unwrap();
        // Once the client has the first part: a reset, not a close.
        let _ = cut_rx.await;
        t.set_zero_linger().unwrap();
        drop(t);
    });
    let s = proxy_to(addr).await;
    let mut c = TcpStream::connect(s.listen).await.unwrap();
    c.write_all(b"GET /eof HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut cut = Some(cut_tx);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e),
            }
            if got.windows(12).any(|w| w == b"partial-body") {
                if let Some(tx) = cut.take() {
                    let _ = tx.send(());
                }
            }
        }
    })
    .await
    .expect("the client's connection ends");
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.contains("partial-body"), "{text}");
    let chunked = text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    match ended {
        // The fast path: reset.
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{text}"),
        // hyper: chunks, the last one missing.
        Ok(()) => assert!(
            chunked && !text.ends_with("0\r\n\r\n"),
            "a clean end: {text:?}"
        ),
    }
}
