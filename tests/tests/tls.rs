//! HTTPS: certificates picked by SNI (wildcards, a default for unknown
//! names), HTTP/2 and HTTP/1.1 by ALPN, certificates rotated without a
//! failed request, broken ones refused, hostile ClientHellos closed, and
//! plain HTTP redirected for hosts that have a certificate.

use std::time::{Duration, Instant};

use sluice_integration::tls::{self, Ca, Issued};
use sluice_integration::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `--tls-cert` / `--tls-key` flags for each certificate, written to `dir`.
fn cert_flags(dir: &TempDir, certs: &[(&str, &Issued)]) -> Vec<String> {
    let mut out = Vec::new();
    for (stem, c) in certs {
        let (cert, key) = c.write(&dir.0, stem);
        out.extend([
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ]);
    }
    out
}

async fn serve_tls(backend: &Backend, flags: &[String]) -> Sluice {
    let mut args: Vec<&str> = vec![
        "--backend",
        Box::leak(backend.addr.to_string().into_boxed_str()),
        "--listen-tls",
        "{LISTEN_TLS}",
    ];
    args.extend(flags.iter().map(String::as_str));
    Sluice::serve(&args).await
}

fn curl_https(s: &Sluice, ca: &std::path::Path, host: &str, path: &str, extra: &[&str]) -> String {
    let port = s.tls().port();
    let resolve = format!("{host}:{port}:127.0.0.1");
    let url = format!("https://{host}:{port}{path}");
    let mut args = vec![
        "-sS",
        "--max-time",
        "10",
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-w",
        "\n%{http_code} %{http_version}",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    run("curl", &args)
}

/// Each name gets its own certificate, a wildcard covers one label, and
/// an unknown name (or none at all) gets the self-signed default. curl,
/// checking against the test CA, proves the chain and the names are right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_each_hosts_certificate() {
    let backend = Backend::start("app").await;
    let ca = Ca::new();
    let a = ca.issue(&["a.example.test"]);
    let b = ca.issue(&["b.example.test", "www.b.example.test"]);
    let w = ca.issue(&["*.wild.example.test"]);
    let dir = TempDir::new();
    let flags = cert_flags(&dir, &[("a", &a), ("b", &b), ("w", &w)]);
    let s = serve_tls(&backend, &flags).await;

    for (host, want) in [
        ("a.example.test", &a),
        ("www.b.example.test", &b),
        ("B.Example.Test", &b),
        ("x.wild.example.test", &w),
    ] {
        let r = tls::get(s.tls(), host, "/headers", false).await.unwrap();
        assert_eq!(r.status, 200, "{host}");
        assert!(r.cert == want.der, "{host} got another certificate");
        assert!(
            r.body.contains("x-forwarded-proto: https"),
            "{host}: {}",
            r.body
        );
    }
    // Not covered: two labels under the wildcard, an unknown name, and no
    // SNI at all (an IP address). The default answers, and so does the app.
    for host in ["y.x.wild.example.test", "unknown.test", "127.0.0.1"] {
        let r = tls::get(s.tls(), host, "/", false).await.unwrap();
        assert_eq!(r.status, 200, "{host}");
        assert!(
            r.cert != a.der && r.cert != b.der && r.cert != w.der && !r.cert.is_empty(),
            "{host} should get the default certificate"
        );
    }

    let ca_file = ca.write(&dir.0);
    let out = curl_https(&s, &ca_file, "a.example.test", "/", &["--http1.1"]);
    assert_eq!(out, "app\n\n200 1.1");
    let out = curl_https(&s, &ca_file, "x.wild.example.test", "/", &[]);
    assert_eq!(out, "app\n\n200 2");
    // The admin view lists what each certificate serves.
    let (_, routes) = get(s.admin, "/routes").await.unwrap();
    assert!(routes.contains("*.wild.example.test"), "{routes}");
}

/// ALPN picks HTTP/2 when the client offers it: curl makes several
/// requests on one HTTP/2 connection, and a Rust client gets h2 too; a
/// client offering only http/1.1 gets that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_with_curl() {
    let backend = Backend::start("app").await;
    let ca = Ca::new();
    let c = ca.issue(&["h2.example.test"]);
    let dir = TempDir::new();
    let s = serve_tls(&backend, &cert_flags(&dir, &[("c", &c)])).await;
    let ca_file = ca.write(&dir.0);
    let port = s.tls().port();
    let resolve = format!("h2.example.test:{port}:127.0.0.1");
    let urls: Vec<String> = (0..3)
        .map(|i| format!("https://h2.example.test:{port}/n{i}"))
        .collect();
    let mut args = vec![
        "-sS",
        "--max-time",
        "10",
        "--http2",
        "--cacert",
        ca_file.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-w",
        "%{http_version} %{num_connects}\n",
    ];
    args.extend(urls.iter().map(String::as_str));
    let out = run("curl", &args);
    // Three answers on one connection: the first connects, the others reuse it.
    assert_eq!(out, "app\n2 1\napp\n2 0\napp\n2 0\n");

    let r = tls::get(s.tls(), "h2.example.test", "/version", true)
        .await
        .unwrap();
    assert_eq!(r.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(r.status, 200);
    let r = tls::get(s.tls(), "h2.example.test", "/", false)
        .await
        .unwrap();
    assert_eq!(r.alpn.as_deref(), Some(&b"http/1.1"[..]));
    // TLS 1.2 is served; anything older is not even offered by rustls.
    let cfg = tls::client_config(&[b"http/1.1"], &[&rustls::version::TLS12]);
    let conn = tls::connect(s.tls(), "h2.example.test", cfg).await.unwrap();
    assert_eq!(
        conn.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

/// A stream of requests, each on a new connection, and one keep-alive
/// connection opened before, while the certificate files are replaced:
/// no request fails, new handshakes get the new certificate, and the old
/// connection keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_drops_nothing() {
    let backend = Backend::start("app").await;
    let ca = Ca::new();
    let old = ca.issue(&["rot.example.test"]);
    let new = ca.issue(&["rot.example.test"]);
    let dir = TempDir::new();
    let s = serve_tls(&backend, &cert_flags(&dir, &[("rot", &old)])).await;

    // A keep-alive HTTP/1.1 connection from before the rotation.
    let cfg = tls::client_config(&[b"http/1.1"], rustls::DEFAULT_VERSIONS);
    let held = tls::connect(s.tls(), "rot.example.test", cfg)
        .await
        .unwrap();
    assert!(tls::presented(&held) == old.der);
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(held))
            .await
            .unwrap();
    tokio::spawn(conn);
    let get_held = |send: &mut hyper::client::conn::http1::SendRequest<
        http_body_util::Empty<bytes::Bytes>,
    >| {
        send.send_request(
            http::Request::get("/")
                .header("host", "rot.example.test")
                .body(http_body_util::Empty::new())
                .unwrap(),
        )
    };
    assert_eq!(get_held(&mut send).await.unwrap().status(), 200);

    let tls_addr = s.tls();
    let (old_der, new_der) = (old.der.clone(), new.der.clone());
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress = sent.clone();
    let stream = tokio::spawn(async move {
        let (old, new) = (old_der, new_der);
        let mut seen_new_at = None;
        let mut failures = Vec::new();
        let start = Instant::now();
        let mut n = 0;
        // Until 40 requests after the new certificate showed, within 30 s.
        while start.elapsed() < Duration::from_secs(30) {
            n += 1;
            progress.store(n, std::sync::atomic::Ordering::SeqCst);
            match tls::get(tls_addr, "rot.example.test", "/", n % 2 == 0).await {
                Ok(r) if r.status == 200 => {
                    if r.cert == new && seen_new_at.is_none() {
                        seen_new_at = Some(n);
                    } else if r.cert != new && r.cert != old {
                        failures.push(format!("request {n}: an unknown certificate"));
                    } else if seen_new_at.is_some() && r.cert == old {
                        failures.push(format!("request {n}: the old certificate came back"));
                    }
                }
                Ok(r) => failures.push(format!("request {n}: status {}", r.status)),
                Err(e) => failures.push(format!("request {n}: {e}")),
            }
            if seen_new_at.is_some_and(|at| n >= at + 40) {
                break;
            }
        }
        (n, seen_new_at, failures)
    });
    // A few requests on the old certificate first, however slow the machine.
    wait_until(
        "requests before the rotation",
        Duration::from_secs(30),
        || {
            let n = sent.load(std::sync::atomic::Ordering::SeqCst);
            async move { n >= 3 }
        },
    )
    .await;
    new.write(&dir.0, "rot");
    let (n, seen_new_at, failures) = stream.await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        seen_new_at.is_some(),
        "the new certificate never showed in {n} requests"
    );
    assert!(seen_new_at.unwrap() > 1, "rotated before the stream began");
    // The connection from before still answers.
    assert_eq!(get_held(&mut send).await.unwrap().status(), 200);
    assert!(s.log().contains("certificates reloaded"), "{}", s.log());
}

/// A key that does not match, or a file cut short, is refused with a log
/// line naming the file; the certificate in force keeps serving until a
/// good pair arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_certificates_are_refused_and_the_old_one_serves() {
    let backend = Backend::start("app").await;
    let ca = Ca::new();
    let good = ca.issue(&["safe.example.test"]);
    let dir = TempDir::new();
    let s = serve_tls(&backend, &cert_flags(&dir, &[("safe", &good)])).await;
    let (cert_path, key_path) = (dir.0.join("safe.pem"), dir.0.join("safe.key"));

    // A key from another certificate.
    let other = ca.issue(&["safe.example.test"]);
    tls::replace(&key_path, &other.key);
    wait_until("the mismatch refused", Duration::from_secs(10), || async {
        s.log().contains("does not belong to the certificate")
    })
    .await;
    let r = tls::get(s.tls(), "safe.example.test", "/", false)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.cert == good.der);

    // A certificate cut in half.
    tls::replace(&key_path, &good.key);
    tls::replace(&cert_path, &good.cert[..good.cert.len() / 2]);
    wait_until("the cut file refused", Duration::from_secs(10), || async {
        s.log().matches("certificate refused").count() >= 2
    })
    .await;
    assert!(s.log().contains(&cert_path.display().to_string()));
    let r = tls::get(s.tls(), "safe.example.test", "/", true)
        .await
        .unwrap();
    assert!(r.cert == good.der);
    assert!(
        s.metric("sluice_config_reloads_total{result=\"error\"}")
            .await
            >= Some(2.0)
    );

    // A good pair again is taken.
    let fixed = ca.issue(&["safe.example.test"]);
    fixed.write(&dir.0, "safe");
    let addr = s.tls();
    wait_until(
        "the fixed certificate served",
        Duration::from_secs(10),
        || {
            let want = fixed.der.clone();
            async move {
                tls::get(addr, "safe.example.test", "/", false)
                    .await
                    .is_ok_and(|r| r.cert == want)
            }
        },
    )
    .await;
    // The process never stopped serving.
    assert!(s.log().contains("certificates reloaded"));
}

/// Bytes that are not TLS, a ClientHello cut short and then silence, and
/// garbage after a valid record header are all closed (the stalled one by
/// the header timeout) while a real client is served alongside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_client_hellos_are_closed_while_others_are_served() {
    let backend = Backend::start("app").await;
    let ca = Ca::new();
    let c = ca.issue(&["ok.example.test"]);
    let dir = TempDir::new();
    let (cert, key) = c.write(&dir.0, "ok");
    let yaml = format!(
        "listen: [{{LISTEN}}]\nlisten_tls: [{{LISTEN_TLS}}]\nadmin: {{ADMIN}}\ntimeouts: {{request_header: 1s}}\ntls:\n  certificates: [{{cert: {}, key: {}}}]\nroutes:\n  - backends: [{}]\n",
        cert.display(),
        key.display(),
        backend.addr
    );
    let (s, _) = Sluice::with_config(&yaml).await;

    let hello = tls::client_hello("ok.example.test");
    assert!(hello.len() > 100 && hello[0] == 0x16, "a handshake record");
    let mut junk_after_header = hello[..5].to_vec();
    junk_after_header.extend(std::iter::repeat_n(0xAB, 300));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "plain HTTP",
            b"GET / HTTP/1.1\r\nHost: ok.example.test\r\n\r\n".to_vec(),
        ),
        ("garbage", junk_after_header),
        ("a truncated ClientHello", hello[..hello.len() / 2].to_vec()),
        ("a record header alone", hello[..3].to_vec()),
    ];
    let mut tasks = Vec::new();
    for (what, bytes) in cases {
        let addr = s.tls();
        tasks.push(tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(&bytes).await.unwrap();
            let start = Instant::now();
            // The proxy may answer with an alert first; then it closes.
            let mut buf = [0u8; 512];
            let mut got = Vec::new();
            loop {
                match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                    Err(_) => panic!("{what}: still open after 5 s"),
                }
            }
            // Whatever came back is a TLS alert record, never HTTP.
            assert!(got.is_empty() || got[0] == 0x15, "{what}: {got:?}");
            (what, start.elapsed())
        }));
    }
    // A handshake that picks HTTP/2, then silence: hyper has no timer of
    // its own for the preface, so the header timeout closes it.
    let idle_h2 = {
        let addr = s.tls();
        tokio::spawn(async move {
            let cfg = tls::client_config(&[b"h2"], rustls::DEFAULT_VERSIONS);
            let mut conn = tls::connect(addr, "ok.example.test", cfg).await.unwrap();
            assert_eq!(conn.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            let start = Instant::now();
            let mut buf = [0u8; 64];
            loop {
                match tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => {}
                    Err(_) => panic!("an idle HTTP/2 connection still open after 5 s"),
                }
            }
            start.elapsed()
        })
    };
    // Served while those are pending.
    for _ in 0..5 {
        let r = tls::get(s.tls(), "ok.example.test", "/", false)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    for t in tasks {
        let (what, took) = t.await.unwrap();
        assert!(took < Duration::from_secs(4), "{what} took {took:?}");
    }
    let took = idle_h2.await.unwrap();
    assert!(took < Duration::from_secs(4), "idle h2 took {took:?}");
    let r = tls::get(s.tls(), "ok.example.test", "/", true)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(
        s.metric("sluice_tls_handshake_errors_total{reason=\"error\"}")
            .await
            >= Some(2.0)
    );
    assert!(
        s.metric("sluice_tls_handshake_errors_total{reason=\"timeout\"}")
            .await
            >= Some(2.0)
    );
}

/// Plain HTTP to a host with a certificate gets a 308 to the same URL on
/// HTTPS (curl follows it to the app); a route can turn that off; hosts
/// without a certificate are served as they are. HSTS goes on HTTPS
/// answers only. A trusted LoadBalancer's `X-Forwarded-Proto: https` is
/// believed, and nobody else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_redirected_for_hosts_with_certificates() {
    let backend = Backend::start("app").await;
    let ca = Ca::new();
    let c = ca.issue(&["secure.example.test"]);
    let dir = TempDir::new();
    let (cert, key) = c.write(&dir.0, "secure");
    let ca_file = ca.write(&dir.0);
    // The redirect names the HTTPS listener's own port here; behind a
    // LoadBalancer it is 443 and the URL carries none.
    let yaml = format!(
        "listen: [{{LISTEN}}]\nlisten_tls: [{{LISTEN_TLS}}]\nadmin: {{ADMIN}}\ntrust_forwarded_for: [127.0.0.2/32]\n\
         tls:\n  certificates: [{{cert: {}, key: {}}}]\n  redirect_port: {{TLS_PORT}}\n  hsts: {{max_age: 1h, include_subdomains: true}}\n\
         routes:\n  - {{host: secure.example.test, backends: [{b}]}}\n  - {{host: secure.example.test, path: /hooks, ssl_redirect: false, backends: [{b}]}}\n  - {{host: plain.example.test, backends: [{b}]}}\n",
        cert.display(),
        key.display(),
        b = backend.addr
    );
    let (s, _) = Sluice::with_config(&yaml).await;
    let tls_addr = s.tls();
    let plain = client(None);
    let lb = client(Some(std::net::Ipv4Addr::new(127, 0, 0, 2)));
    let listen = s.listen;
    let req = |from_lb: bool,
               host: &'static str,
               path: &'static str,
               extra: Option<(&'static str, &'static str)>| {
        let c = if from_lb { lb.clone() } else { plain.clone() };
        async move {
            let mut h = vec![("host", host)];
            h.extend(extra);
            request(&c, listen, "GET", path, &h, empty()).await.unwrap()
        }
    };

    let (status, headers, _) = req(false, "secure.example.test", "/a/b?x=1", None).await;
    assert_eq!(status, 308);
    assert_eq!(
        headers["location"],
        format!("https://secure.example.test:{}/a/b?x=1", tls_addr.port())
    );
    assert!(headers.get("strict-transport-security").is_none());
    let (status, headers, _) = req(false, "secure.example.test", "/hooks/x", None).await;
    assert_eq!(status, 200, "ssl_redirect: false");
    assert!(headers.get("strict-transport-security").is_none());
    let (status, _, _) = req(false, "plain.example.test", "/", None).await;
    assert_eq!(status, 200, "no certificate, no redirect");
    // An untrusted client's X-Forwarded-Proto changes nothing.
    let https = Some(("x-forwarded-proto", "https"));
    let (status, _, _) = req(false, "secure.example.test", "/", https).await;
    assert_eq!(status, 308);
    // The trusted LoadBalancer ended TLS itself: no redirect loop, and the
    // app is told https.
    let (status, headers, body) = req(true, "secure.example.test", "/headers", https).await;
    assert_eq!(status, 200);
    assert!(body.contains("x-forwarded-proto: https"), "{body}");
    assert_eq!(
        headers["strict-transport-security"],
        "max-age=3600; includeSubDomains"
    );

    // curl follows the redirect to the app, over HTTPS, with HSTS.
    let http_resolve = format!("secure.example.test:{}:127.0.0.1", s.listen.port());
    let tls_resolve = format!("secure.example.test:{}:127.0.0.1", tls_addr.port());
    let url = format!("http://secure.example.test:{}/headers", s.listen.port());
    let out = run(
        "curl",
        &[
            "-sSL",
            "-D",
            "-",
            "--max-time",
            "10",
            "--cacert",
            ca_file.to_str().unwrap(),
            "--resolve",
            &http_resolve,
            "--resolve",
            &tls_resolve,
            "-w",
            "%{url_effective}",
            &url,
        ],
    )
    .to_ascii_lowercase();
    assert!(out.contains(" 308"), "{out}");
    assert!(
        out.contains("strict-transport-security: max-age=3600; includesubdomains"),
        "{out}"
    );
    assert!(out.contains("x-forwarded-proto: https"), "{out}");
    assert!(
        out.ends_with(&format!(
            "https://secure.example.test:{}/headers",
            tls_addr.port()
        )),
        "{out}"
    );
}

/// TLS passthrough at the LoadBalancer with PROXY protocol: the header
/// comes in the clear, then the client's handshake. The address it names
/// is the one the app sees, over HTTP/1.1 and HTTP/2 alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_then_tls() {
    let backend = Backend::start("app").await;
    let ca = Ca::new();
    let c = ca.issue(&["pp.example.test"]);
    let dir = TempDir::new();
    let mut flags = cert_flags(&dir, &[("pp", &c)]);
    flags.push("--proxy-protocol".into());
    let s = serve_tls(&backend, &flags).await;
    for (h2, client) in [(false, "203.0.113.7"), (true, "198.51.100.9")] {
        let header = format!("PROXY TCP4 {client} 10.0.0.1 40000 443\r\n");
        let r = tls::get_after(
            s.tls(),
            header.as_bytes(),
            "pp.example.test",
            "/headers",
            h2,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200);
        assert!(r.cert == c.der);
        assert!(
            r.body.contains(&format!("x-forwarded-for: {client}")),
            "{}",
            r.body
        );
        assert!(r.body.contains("x-forwarded-proto: https"), "{}", r.body);
    }
    // Without the header, the connection is refused before any TLS.
    assert!(tls::get(s.tls(), "pp.example.test", "/", false)
        .await
        .is_err());
}

/// A config edit that names a broken certificate is refused whole (its new
/// route does not serve either); once the certificate file is fixed, the
/// edit applies without touching the config again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_refused_for_its_certificate_applies_once_the_file_is_fixed() {
    let backend = Backend::start("app").await;
    let ca = Ca::new();
    let first = ca.issue(&["one.example.test"]);
    let second = ca.issue(&["two.example.test"]);
    let dir = TempDir::new();
    let (c1, k1) = first.write(&dir.0, "one");
    let template = |certs: &str, routes: &str| {
        format!(
            "listen: [{{LISTEN}}]\nlisten_tls: [{{LISTEN_TLS}}]\nadmin: {{ADMIN}}\ntls:\n  redirect: false\n  certificates: [{certs}]\nroutes:\n{routes}"
        )
    };
    let one = format!("{{cert: {}, key: {}}}", c1.display(), k1.display());
    let one_route = format!(
        "  - {{host: one.example.test, backends: [{}]}}\n",
        backend.addr
    );
    let (s, path) = Sluice::with_config(&template(&one, &one_route)).await;

    // The edit: a second host and its certificate, whose key is not there yet.
    let (c2, k2) = (dir.0.join("two.pem"), dir.0.join("two.key"));
    tls::replace(&c2, &second.cert);
    tls::replace(&k2, "not a key\n");
    let two = format!("{one}, {{cert: {}, key: {}}}", c2.display(), k2.display());
    let routes = format!(
        "{one_route}  - {{host: two.example.test, backends: [{}]}}\n",
        backend.addr
    );
    tls::replace(&path, &s.fill(&template(&two, &routes)));
    wait_until("the edit refused", Duration::from_secs(10), || async {
        s.log()
            .contains("config refused, the current routes and certificates keep serving")
    })
    .await;
    let (status, _) = get_host(&s, "two.example.test").await;
    assert_eq!(status, 404, "the refused edit's route must not serve");
    // Meanwhile the running config's own certificate is still renewed.
    let renewed = ca.issue(&["one.example.test"]);
    renewed.write(&dir.0, "one");
    let addr = s.tls();
    wait_until("the renewed certificate", Duration::from_secs(10), || {
        let want = renewed.der.clone();
        async move {
            tls::get(addr, "one.example.test", "/", false)
                .await
                .is_ok_and(|r| r.cert == want)
        }
    })
    .await;

    // Only the key file changes.
    tls::replace(&k2, &second.key);
    wait_until("the edit applied", Duration::from_secs(10), || async {
        get_host(&s, "two.example.test").await.0 == 200
    })
    .await;
    let r = tls::get(s.tls(), "two.example.test", "/", false)
        .await
        .unwrap();
    assert!(r.cert == second.der);
    let r = tls::get(s.tls(), "one.example.test", "/", false)
        .await
        .unwrap();
    assert!(r.cert == renewed.der && renewed.der != first.der);
}

/// A large answer to a client that reads slowly: the socket fills, and the
/// last TLS records wait in the proxy's buffer. They must still reach the
/// client before the proxy waits for its next request, over keep-alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_all_of_a_large_answer() {
    use tokio::io::AsyncBufReadExt;
    const LEN: usize = 8 << 20;
    let upstream = RawBackend::start(|_| {
        let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {LEN}\r\n\r\n").into_bytes();
        r.extend(std::iter::repeat_n(b'x', LEN));
        RawAnswer::whole(r)
    })
    .await;
    let ca = Ca::new();
    let c = ca.issue(&["big.example.test"]);
    let dir = TempDir::new();
    let mut args: Vec<String> = vec![
        "--backend".into(),
        upstream.addr.to_string(),
        "--listen-tls".into(),
        "{LISTEN_TLS}".into(),
    ];
    args.extend(cert_flags(&dir, &[("big", &c)]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Sluice::serve(&args).await;

    let cfg = tls::client_config(&[b"http/1.1"], rustls::DEFAULT_VERSIONS);
    // A small receive window, so that the proxy's writes find it full.
    const WINDOW: usize = 16 << 10;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(WINDOW as u32).unwrap();
    let tcp = socket.connect(s.tls()).await.unwrap();
    let (proxy_end, client_end) = (s.tls(), tcp.local_addr().unwrap());
    let name = rustls::pki_types::ServerName::try_from("big.example.test").unwrap();
    let conn = tls::handshake(tcp, name, cfg).await.unwrap();
    let mut conn = tokio::io::BufReader::new(conn);
    for round in 0..4 {
        conn.get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: big.example.test\r\n\r\n")
            .await
            .unwrap();
        // The socket fills before anything is read: the proxy's writes
        // wait on the client's closed window.
        wait_until(
            "the client's window to close",
            Duration::from_secs(10),
            || async move { tcp_queues(proxy_end, client_end).is_some_and(|q| q.window_closed) },
        )
        .await;
        let read = async {
            let mut line = String::new();
            let mut length = 0;
            loop {
                line.clear();
                conn.read_line(&mut line).await.unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse::<usize>().unwrap();
                }
            }
            // Slowly, so that the proxy's writes keep finding the socket
            // full: each read waits until the proxy has filled the socket
            // again (it holds a window's worth, or the proxy's end probes
            // a closed window), or has nothing queued for it (the answer's
            // end is all sent). The socket's own count is polled every
            // millisecond; the proxy's end, costlier to read, every 50.
            let mut got = 0;
            let mut chunk = vec![0u8; 32 << 10];
            while got < length {
                for waited in 1.. {
                    if unread(conn.get_ref().get_ref().0) >= WINDOW {
                        break;
                    }
                    if waited % 50 == 0 {
                        let q = tcp_queues(proxy_end, client_end);
                        if q.is_none_or(|q| q.window_closed || q.unacked == 0) {
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                // All it holds, so that the window opens whole.
                loop {
                    let want = chunk.len().min(length - got);
                    let n = conn.read(&mut chunk[..want]).await.unwrap();
                    assert!(n > 0, "closed after {got} of {length} bytes");
                    got += n;
                    if got == length || unread(conn.get_ref().get_ref().0) == 0 {
                        break;
                    }
                }
            }
            got
        };
        let got = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the answer's end never came"));
        assert_eq!(got, LEN, "round {round}");
    }
}

/// A WebSocket over TLS (wss://): the upgrade goes through, and messages
/// echo both ways in the tunnel, with X-Forwarded-Proto https upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_tls() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let backend = Backend::start("app").await;
    let ca = Ca::new();
    let c = ca.issue(&["ws.example.test"]);
    let dir = TempDir::new();
    let s = serve_tls(&backend, &cert_flags(&dir, &[("ws", &c)])).await;
    let cfg = tls::client_config(&[b"http/1.1"], rustls::DEFAULT_VERSIONS);
    let stream = tls::connect(s.tls(), "ws.example.test", cfg).await.unwrap();
    let (mut ws, resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async("wss://ws.example.test/ws", stream),
    )
    .await
    .expect("handshake in time")
    .expect("handshake succeeds");
    assert_eq!(resp.status(), 101);
    for m in [
        Message::text("over tls"),
        Message::binary(vec![7u8; 70_000]),
    ] {
        ws.send(m.clone()).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("echo in time")
            .expect("stream open")
            .unwrap();
        assert_eq!(back, m);
    }
    ws.close(None).await.unwrap();
}
