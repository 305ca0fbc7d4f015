//! ingress-nginx's `ssl-passthrough`, driven through discovery: the
//! Ingresses of `tests/corpus/ingress-nginx/passthrough.yaml` are applied to
//! the tests' API server, and real TLS clients check what ingress-nginx
//! (started with `--enable-ssl-passthrough`) would do with them — a
//! passthrough host's connections reach a backend that terminates TLS
//! itself (the client sees the backend's certificate, and the backend the
//! client's SNI), whatever path or other annotation its Ingresses carry;
//! every other name, or none, is terminated by sluice on the same listener;
//! a dead endpoint is skipped for a live one; a PROXY header is read and not
//! passed on; a drain waits for a spliced connection; and without the flag
//! the annotation changes nothing.

use sluice_integration::cluster::{proxy, WAIT};
use sluice_integration::corpus::manifests;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::tls::{self, Ca, Issued};
use sluice_integration::*;

/// The corpus applied, and a proxy serving it on an HTTPS listener.
struct Cluster {
    _api: KubeApi,
    s: Sluice,
    /// Terminates TLS itself, for pass.example.com and failover.example.com.
    secure: Backend,
    secure_cert: Issued,
    /// Plain HTTP, behind web.example.com, whose TLS sluice terminates.
    web: Backend,
    web_cert: Issued,
    dead: Dead,
    /// Sent in the clear before each client's TLS (a PROXY header).
    prefix: Vec<u8>,
}

impl Cluster {
    async fn start(flags: &[&str]) -> Cluster {
        Self::start_after(flags, b"").await
    }

    /// [`Cluster::start`], every probe's TLS after `prefix`.
    async fn start_after(flags: &[&str], prefix: &[u8]) -> Cluster {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let api = KubeApi::start().await;
        let ca = Ca::new();
        let secure_cert = ca.issue(&["pass.example.com", "failover.example.com"]);
        let web_cert = ca.issue(&["web.example.com"]);
        let secure = Backend::start_tls(
            "secure",
            &secure_cert.cert,
            &secure_cert.key,
            &[b"h2", b"http/1.1"],
        )
        .await;
        let web = Backend::start("web").await;
        let dead = dead();
        let vars = [
            ("SECURE_PORT", secure.addr.port().to_string()),
            ("WEB_PORT", web.addr.port().to_string()),
            ("DEAD_PORT", dead.addr.port().to_string()),
            ("WEB_CRT", b64(&web_cert.cert)),
            ("WEB_KEY", b64(&web_cert.key)),
        ];
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, &**v)).collect();
        for m in manifests("ingress-nginx/passthrough.yaml", &vars) {
            api.apply(m);
        }
        let mut args = vec!["--listen-tls", "{LISTEN_TLS}"];
        args.extend_from_slice(flags);
        let s = proxy(&api, &args).await;
        let c = Cluster {
            _api: api,
            s,
            secure,
            secure_cert,
            web,
            web_cert,
            dead,
            prefix: prefix.to_vec(),
        };
        // The ordinary host is served with its own certificate: the
        // cluster has been read.
        wait_until("web.example.com to be served over TLS", WAIT, || async {
            tls::get_after(c.s.tls(), &c.prefix, "web.example.com", "/", false)
                .await
                .is_ok_and(|a| a.status == 200 && a.cert == c.web_cert.der)
        })
        .await;
        c
    }

    /// Waits until a TLS client naming `host` is shown the backend's own
    /// certificate.
    async fn spliced(&self, host: &str) {
        wait_until(&format!("{host} to be spliced"), WAIT, || async {
            tls::get_after(self.s.tls(), &self.prefix, host, "/", false)
                .await
                .is_ok_and(|a| a.cert == self.secure_cert.der)
        })
        .await;
    }

    /// The SNIs the TLS backend has seen.
    fn backend_saw(&self) -> Vec<String> {
        let h = self.secure.handshakes.lock().unwrap();
        h.iter().map(|(sni, _)| sni.clone()).collect()
    }
}

/// A passthrough host's connections reach the backend unread: the client
/// sees the backend's certificate, the backend the client's SNI and ALPN,
/// and the request as the client sent it (no X-Forwarded-For, nothing
/// rewritten), over HTTP/1.1 and HTTP/2 alike; a path another Ingress of
/// the host routes elsewhere with a rewrite goes there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passthrough_host_is_spliced_to_a_backend_that_terminates_tls() {
    let c = Cluster::start(&["--enable-ssl-passthrough"]).await;
    c.spliced("pass.example.com").await;
    for h2 in [false, true] {
        let a = tls::get(c.s.tls(), "pass.example.com", "/headers", h2)
            .await
            .unwrap();
        assert_eq!(a.status, 200);
        assert!(a.cert == c.secure_cert.der, "not the backend's certificate");
        assert_eq!(a.headers["x-backend"], "secure");
        assert!(!a.body.contains("x-forwarded-for"), "{}", a.body);
        let want: &[u8] = if h2 { b"h2" } else { b"http/1.1" };
        assert_eq!(a.alpn.as_deref(), Some(want));
        // `/api` is another Ingress's, with a rewrite, for plain HTTP.
        let a = tls::get(c.s.tls(), "pass.example.com", "/api/x", h2)
            .await
            .unwrap();
        assert_eq!(a.headers["x-backend"], "secure");
    }
    assert!(c.backend_saw().iter().all(|sni| sni == "pass.example.com"));
    let handshakes = c.secure.handshakes.lock().unwrap().clone();
    assert!(handshakes.iter().any(|(_, alpn)| alpn == "h2"));
    // Counted.
    let spliced =
        c.s.metric("sluice_passthrough_connections_total{outcome=\"spliced\"}")
            .await
            .unwrap_or(0.0);
    assert!(spliced >= 4.0, "{spliced}");
    // Listed on the admin listener (the last field of `/routes`);
    // web.example.com is not.
    let (_, routes) = get(c.s.admin, "/routes").await.unwrap();
    let at = routes.find("\"passthrough\"").expect("a passthrough list");
    let listed = &routes[at..];
    assert!(listed.contains("pass.example.com"), "{listed}");
    assert!(listed.contains("failover.example.com"), "{listed}");
    assert!(!listed.contains("web.example.com"), "{listed}");
}

/// On the same listener, a host without the annotation, a name no host
/// has, and no name at all are terminated by sluice, as ingress-nginx
/// hands them to nginx; the backend never sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_names_and_none_are_terminated_by_sluice() {
    let c = Cluster::start(&["--enable-ssl-passthrough"]).await;
    c.spliced("pass.example.com").await;
    let before = c.backend_saw().len();

    let a = tls::get(c.s.tls(), "web.example.com", "/", true)
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    assert!(a.cert == c.web_cert.der, "not the Secret's certificate");
    assert_eq!(a.headers["x-backend"], "web");
    assert!(c.web.hits() > 0);

    // An unknown name: sluice's default certificate, and no route.
    let a = tls::get(c.s.tls(), "unknown.example.com", "/", false)
        .await
        .unwrap();
    assert!(a.cert != c.secure_cert.der && a.cert != c.web_cert.der);
    assert_eq!(a.status, 404);

    // No SNI (an IP address): terminated too.
    let cfg = tls::client_config(&[b"http/1.1"], rustls::DEFAULT_VERSIONS);
    let stream = tls::connect(c.s.tls(), "127.0.0.1", cfg).await.unwrap();
    let cert = tls::presented(&stream);
    assert!(!cert.is_empty() && cert != c.secure_cert.der);

    assert_eq!(c.backend_saw().len(), before, "{:?}", c.backend_saw());
}

/// A passthrough host's endpoints are tried in the balancer's order: one
/// that refuses connections is skipped for a live one, and every client is
/// spliced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_is_skipped_for_a_live_one() {
    let c = Cluster::start(&["--enable-ssl-passthrough"]).await;
    c.spliced("failover.example.com").await;
    for _ in 0..4 {
        let a = tls::get(c.s.tls(), "failover.example.com", "/", false)
            .await
            .unwrap();
        assert_eq!(a.status, 200);
        assert!(a.cert == c.secure_cert.der);
    }
    wait_until("the dead endpoint to be reported", WAIT, || async {
        let log = c.s.log();
        log.contains("TLS passthrough: upstream connect failed")
            && log.contains(&c.dead.addr.to_string())
    })
    .await;
    let none =
        c.s.metric("sluice_passthrough_connections_total{outcome=\"no_endpoint\"}")
            .await;
    assert_eq!(none, Some(0.0));
}

/// Behind a LoadBalancer that sends a PROXY header, the header is read by
/// sluice and not passed on: the backend gets the client's TLS bytes only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_header_is_read_and_not_passed_on() {
    let header = b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 443\r\n";
    let flags = ["--enable-ssl-passthrough", "--proxy-protocol"];
    let c = Cluster::start_after(&flags, header).await;
    c.spliced("pass.example.com").await;
    let a = tls::get_after(c.s.tls(), header, "pass.example.com", "/headers", false)
        .await
        .unwrap();
    assert!(a.cert == c.secure_cert.der);
    assert_eq!(a.headers["x-backend"], "secure");
    assert!(!a.body.contains("203.0.113.7"), "{}", a.body);
    assert_eq!(
        c.backend_saw().last().map(String::as_str),
        Some("pass.example.com")
    );
    // Without the header, nothing reaches the backend.
    let before = c.backend_saw().len();
    assert!(tls::get(c.s.tls(), "pass.example.com", "/", false)
        .await
        .is_err());
    assert_eq!(c.backend_saw().len(), before);
}

/// Without `--enable-ssl-passthrough`, as in ingress-nginx, the annotation
/// changes nothing: sluice terminates the host's TLS and proxies to its
/// backend over HTTPS (the Ingress's backend-protocol).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_the_annotation_is_ignored() {
    let c = Cluster::start(&[]).await;
    wait_until("pass.example.com to be served by sluice", WAIT, || async {
        tls::get(c.s.tls(), "pass.example.com", "/", false)
            .await
            .is_ok_and(|a| a.status == 200)
    })
    .await;
    let a = tls::get(c.s.tls(), "pass.example.com", "/", false)
        .await
        .unwrap();
    assert!(a.cert != c.secure_cert.der, "spliced without the flag");
    assert_eq!(a.headers["x-backend"], "secure");
    assert!(c.s.log().contains("--enable-ssl-passthrough"));
}

/// A spliced connection open at SIGTERM keeps working through the drain,
/// as a WebSocket does, and the process exits as soon as it closes (not at
/// the drain timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spliced_connection_is_drained_then_lets_the_process_go() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = Cluster::start(&["--enable-ssl-passthrough"]).await;
    c.spliced("pass.example.com").await;
    let cfg = tls::client_config(&[b"http/1.1"], rustls::DEFAULT_VERSIONS);
    let mut stream = tls::connect(c.s.tls(), "pass.example.com", cfg)
        .await
        .unwrap();
    assert!(tls::presented(&stream) == c.secure_cert.der);
    // One request, by hand, and the head of its answer.
    let ask = async |stream: &mut tokio_rustls::client::TlsStream<_>| {
        let req = b"GET / HTTP/1.1\r\nhost: pass.example.com\r\n\r\n";
        stream.write_all(req).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .expect("an answer in time")
                .unwrap();
            assert!(n > 0, "closed");
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).to_lowercase()
    };
    assert!(ask(&mut stream).await.contains("x-backend: secure"));
    c.s.signal("TERM");
    let tls_port = c.s.tls();
    wait_until("the listener to close", WAIT, || async {
        tokio::net::TcpStream::connect(tls_port).await.is_err()
    })
    .await;
    // Still spliced while draining, and holding the process up.
    assert!(ask(&mut stream).await.contains("x-backend: secure"));
    assert!(
        c.s.child.try_wait().unwrap().is_none(),
        "exited with a spliced connection open"
    );
    let closed_at = Instant::now();
    stream.shutdown().await.unwrap();
    drop(stream);
    assert_eq!(c.s.wait_exit(Duration::from_secs(10)).await, Some(0));
    assert!(
        closed_at.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        closed_at.elapsed()
    );
}
