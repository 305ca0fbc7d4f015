//! The edge: PROXY protocol from the LoadBalancer in front. The client
//! address it names is the one X-Forwarded-For, ip-hash and logs see; a
//! connection from an untrusted network, or with a malformed or truncated
//! header, is closed while others keep being served.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use sluice_integration::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A v2 PROXY header (PROXY command, TCP over IPv4) naming `src`.
fn v2(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11]);
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h
}

/// Sends `header` then a GET for `path` on a fresh connection; the whole
/// answer, or what came before the proxy closed.
async fn through(addr: SocketAddr, header: &[u8], path: &str) -> Received {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(
        format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    tcp.write_all(&bytes).await.unwrap();
    read_until(&mut tcp, Duration::from_secs(10), until_closed).await
}

/// Sluice balancing `backends` by ip-hash, with `extra` flags.
async fn ip_hash_over(backends: &[Backend], extra: &[&str]) -> Sluice {
    let mut args: Vec<String> = vec!["--strategy".into(), "ip-hash".into()];
    for b in backends {
        args.push("--backend".into());
        args.push(b.addr.to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Sluice::serve(&args).await
}

fn forwarded_for(answer: &str) -> Option<String> {
    answer
        .lines()
        .find_map(|l| l.strip_prefix("x-forwarded-for: "))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_v1_and_v2_name_the_client() {
    let backend = Backend::start("a").await;
    let s = Sluice::serve(&["--backend", &backend.addr.to_string(), "--proxy-protocol"]).await;
    let v1 = through(
        s.listen,
        b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n",
        "/headers",
    )
    .await;
    assert_eq!(
        forwarded_for(&v1.text()).as_deref(),
        Some("203.0.113.9"),
        "{}",
        v1.text()
    );
    let v2 = through(s.listen, &v2([198, 51, 100, 7], 4242), "/headers").await;
    assert_eq!(
        forwarded_for(&v2.text()).as_deref(),
        Some("198.51.100.7"),
        "{}",
        v2.text()
    );
    // A real client: curl's own PROXY v1 header, from 127.0.0.7.
    let out = run(
        "curl",
        &[
            "-s",
            "--haproxy-protocol",
            "--interface",
            "127.0.0.7",
            &s.url("/headers"),
        ],
    );
    assert_eq!(forwarded_for(&out).as_deref(), Some("127.0.0.7"), "{out}");
}

/// ip-hash spreads clients by the address the PROXY header names (they
/// all come from one LoadBalancer address), and keeps each on its backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_hash_uses_the_proxied_address() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let s = ip_hash_over(&backends, &["--proxy-protocol"]).await;
    let mut seen: HashMap<u8, HashSet<String>> = HashMap::new();
    for round in 0..2u16 {
        for last in 1..=30u8 {
            let answer = through(s.listen, &v2([203, 0, 113, last], 1000 + round), "/").await;
            let name = answer
                .text()
                .lines()
                .find_map(|l| l.strip_prefix("x-backend: ").map(str::to_owned))
                .unwrap_or_else(|| panic!("no answer: {}", answer.text()));
            seen.entry(last).or_default().insert(name);
        }
    }
    assert!(
        seen.values().all(|b| b.len() == 1),
        "a client moved: {seen:?}"
    );
    let used: HashSet<&String> = seen.values().flatten().collect();
    assert_eq!(used.len(), 3, "30 clients on {} backends only", used.len());
}

/// Untrusted peers, malformed and truncated headers: closed, no request
/// reaches a backend, and good connections are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_untrusted_headers_are_closed() {
    let backend = Backend::start("a").await;
    let b = backend.addr.to_string();
    let open = Sluice::serve(&["--backend", &b, "--proxy-protocol"]).await;
    let closed_to_us =
        Sluice::serve(&["--backend", &b, "--proxy-protocol-from", "10.0.0.0/8"]).await;

    let good = b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n";
    let refused = through(closed_to_us.listen, good, "/").await;
    assert!(
        refused.closed && refused.bytes.is_empty(),
        "{}",
        refused.text()
    );

    for bad in [
        &b""[..],
        b"PROXY TCP4 nonsense here 1 2\r\n",
        b"PROXY TCP4 203.0.113.9 127.0.0.1 99999 80\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x01\x02",
    ] {
        let r = through(open.listen, bad, "/").await;
        assert!(
            r.closed && !r.timed_out,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
        assert!(
            !r.text().contains("200 OK"),
            "served after {:?}: {}",
            String::from_utf8_lossy(bad),
            r.text()
        );
    }
    // A header cut short, then silence: closed when the client goes.
    {
        let mut tcp = TcpStream::connect(open.listen).await.unwrap();
        tcp.write_all(b"PROXY TCP4 203.0.").await.unwrap();
    }
    let hits = backend.hits();
    assert_eq!(hits, 0, "a request got through");
    let ok = through(open.listen, good, "/").await;
    assert!(ok.text().starts_with("HTTP/1.1 200"), "{}", ok.text());
}

/// A real HAProxy in front, sending PROXY v2 as a cloud LoadBalancer does
/// (`send-proxy-v2`). Clients on distinct 127.0.0.x addresses: each is
/// seen by its own address, and ip-hash spreads them by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_in_front_with_send_proxy_v2() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let s = ip_hash_over(&backends, &["--proxy-protocol"]).await;
    let lb = stable_addr();
    let dir = TempDir::new();
    let cfg = dir.0.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 256\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             frontend lb\n  bind {lb}\n  default_backend sluice\n\
             backend sluice\n  server s1 {} send-proxy-v2\n",
            s.listen
        ),
    )
    .unwrap();
    let haproxy = if std::path::Path::new("/usr/sbin/haproxy").exists() {
        "/usr/sbin/haproxy"
    } else {
        "haproxy"
    };
    /// Killed on drop, even when the test fails first.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _haproxy = Kill(
        std::process::Command::new(haproxy)
            .args(["-db", "-f", &cfg.display().to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("haproxy runs (scripts/test.sh installs it)"),
    );
    wait_until("haproxy to listen", Duration::from_secs(10), || async {
        TcpStream::connect(lb).await.is_ok()
    })
    .await;

    let mut placement: HashMap<u8, HashSet<String>> = HashMap::new();
    for round in 0..2 {
        for last in 20..44u8 {
            let ip = std::net::Ipv4Addr::new(127, 0, 0, last);
            let c = client(Some(ip));
            let (status, headers, body) =
                request(&c, lb, "GET", "/headers", &[("host", "a")], empty())
                    .await
                    .unwrap_or_else(|e| panic!("round {round}, client {ip}: {e}"));
            assert_eq!(status, 200);
            assert_eq!(
                forwarded_for(&body).as_deref(),
                Some(ip.to_string().as_str()),
                "{body}"
            );
            placement
                .entry(last)
                .or_default()
                .insert(headers["x-backend"].to_str().unwrap().to_owned());
        }
    }
    assert!(
        placement.values().all(|b| b.len() == 1),
        "a client moved: {placement:?}"
    );
    let used: HashSet<&String> = placement.values().flatten().collect();
    assert_eq!(used.len(), 3, "24 clients on {} backends only", used.len());
}

/// `--trust-forwarded-for`: behind a LoadBalancer that sets
/// X-Forwarded-For, ip-hash goes by the client it names, but only when the
/// connection comes from a trusted network; the header is still passed
/// on with the peer appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_forwarded_for_names_the_client() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let placement = |s: &Sluice| {
        let addr = s.listen;
        async move {
            let c = client(None);
            let mut seen: HashMap<u8, HashSet<String>> = HashMap::new();
            for _ in 0..2 {
                for last in 1..=30u8 {
                    let xff = format!("203.0.113.{last}");
                    let (status, headers, _) = request(
                        &c,
                        addr,
                        "GET",
                        "/",
                        &[("host", "a"), ("x-forwarded-for", &xff)],
                        empty(),
                    )
                    .await
                    .unwrap();
                    assert_eq!(status, 200);
                    seen.entry(last)
                        .or_default()
                        .insert(headers["x-backend"].to_str().unwrap().to_owned());
                }
            }
            seen
        }
    };
    let trusted = ip_hash_over(&backends, &["--trust-forwarded-for", "127.0.0.0/8"]).await;
    let seen = placement(&trusted).await;
    assert!(
        seen.values().all(|b| b.len() == 1),
        "a client moved: {seen:?}"
    );
    assert_eq!(
        seen.values().flatten().collect::<HashSet<_>>().len(),
        3,
        "not spread: {seen:?}"
    );
    let c = client(None);
    let (_, _, body) = request(
        &c,
        trusted.listen,
        "GET",
        "/headers",
        &[("host", "a"), ("x-forwarded-for", "203.0.113.5")],
        empty(),
    )
    .await
    .unwrap();
    assert_eq!(
        forwarded_for(&body).as_deref(),
        Some("203.0.113.5, 127.0.0.1"),
        "{body}"
    );

    // From an untrusted peer the header names nobody: one client, one backend.
    let untrusted = ip_hash_over(&backends, &["--trust-forwarded-for", "10.0.0.0/8"]).await;
    let seen = placement(&untrusted).await;
    assert_eq!(
        seen.values().flatten().collect::<HashSet<_>>().len(),
        1,
        "{seen:?}"
    );
}

/// The access log's writer batches its lines (every 10 ms while requests
/// keep coming): those of the last requests before a SIGTERM are on
/// stdout when the process has exited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_access_log_lines_are_out_when_the_process_exits() {
    let backend = Backend::start("a").await;
    let mut s = Sluice::serve(&[
        "--backend",
        &backend.addr.to_string(),
        "--access-log",
        "text",
    ])
    .await;
    for i in 0..20 {
        let answer = through(s.listen, b"", &format!("/last/{i}")).await;
        assert!(
            answer.text().starts_with("HTTP/1.1 200"),
            "{}",
            answer.text()
        );
    }
    s.signal("TERM");
    assert_eq!(s.wait_exit(Duration::from_secs(20)).await, Some(0));
    let out = s.stdout();
    for i in 0..20 {
        let path = format!("\"/last/{i}\"");
        assert!(out.contains(&path), "no line for {path:?} in:\n{out}");
    }
}

/// The access log, as JSON: one line per request with the client (as the
/// PROXY header names it), host, method, path, status, bytes, upstream
/// endpoint, duration and the request id the upstream saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_name_the_client_and_the_upstream() {
    let backend = Backend::start("a").await;
    let s = Sluice::serve(&[
        "--backend",
        &backend.addr.to_string(),
        "--proxy-protocol",
        "--access-log",
        "json",
    ])
    .await;
    let answer = through(
        s.listen,
        b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n",
        "/headers?x=1",
    )
    .await;
    let text = answer.text();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let seen_id = text
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("the upstream saw a request id")
        .to_owned();
    wait_until("an access-log line", Duration::from_secs(5), || {
        let has = s.stdout().lines().any(|l| l.contains("/headers"));
        async move { has }
    })
    .await;
    let out = s.stdout();
    let line = out.lines().find(|l| l.contains("/headers")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["client"], "203.0.113.9", "{line}");
    assert_eq!(v["host"], "a");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/headers?x=1");
    assert_eq!(v["status"], 200);
    assert!(v["bytes"].as_u64().is_some_and(|b| b > 0), "{line}");
    assert_eq!(v["upstream"], backend.addr.to_string());
    assert!(
        v["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{line}"
    );
    assert_eq!(v["request_id"], seen_id.as_str());
    assert!(
        v["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{line}"
    );
}
