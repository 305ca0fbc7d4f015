//! ingress-nginx's upstream annotations (issue 13, point 1), through
//! discovery against the tests' API server, with real traffic:
//! `backend-protocol: HTTPS` to pods that terminate TLS themselves (not
//! verified, no SNI, by default; verified against a CA Secret with
//! `proxy-ssl-verify`), `upstream-vhost`, `x-forwarded-prefix` and
//! `service-upstream`. gRPC backends are in `nginx_grpc.rs`.

use serde_json::{json, Value};
use sluice_integration::cluster::*;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::tls::Ca;
use sluice_integration::*;

const NGINX: &str = "nginx.ingress.kubernetes.io/";

/// Ingress shop/shop (shop.example.com → web:80) with ingress-nginx
/// annotations.
fn annotated(notes: &[(&str, &str)]) -> Value {
    let mut ing = ingress("shop", "shop", "sluice", "shop.example.com", "web");
    let map: serde_json::Map<String, Value> = notes
        .iter()
        .map(|(k, v)| (format!("{NGINX}{k}"), json!(v)))
        .collect();
    ing["metadata"]["annotations"] = Value::Object(map);
    ing
}

/// GET `path` on shop.example.com through the proxy: status and body (0
/// and the error when the request failed).
async fn shop_get(s: &Sluice, path: &str) -> (u16, String) {
    match request(
        &client(None),
        s.listen,
        "GET",
        path,
        &[("host", "shop.example.com")],
        empty(),
    )
    .await
    {
        Ok((status, _, body)) => (status, body),
        Err(e) => (0, e),
    }
}

/// Waits until GET `path` answers `status`, and returns the body.
async fn until_status(s: &Sluice, path: &str, status: u16, what: &str) -> String {
    let mut last = (0, String::new());
    let found = tokio::time::timeout(WAIT, async {
        loop {
            last = shop_get(s, path).await;
            if last.0 == status {
                return last.1.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("{what}: still {last:?} after {WAIT:?}"))
}

/// A pod that terminates TLS itself with a certificate from the test's
/// CA: spoken to unverified and without SNI by default, as ingress-nginx
/// does; with `proxy-ssl-verify` its certificate is checked against the
/// CA in `proxy-ssl-secret` for `proxy-ssl-name`, sent in SNI with
/// `proxy-ssl-server-name`, and a name the certificate does not hold gets
/// no traffic (502).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_backends_unverified_by_default_verified_when_asked() {
    let api = KubeApi::start().await;
    let ca = Ca::new();
    let leaf = ca.issue(&["web.shop.internal"]);
    let pod = Backend::start_tls("tls-pod", &leaf.cert, &leaf.key, &[]).await;
    shop_backend(
        &api,
        pod.addr.port(),
        vec![endpoint(pod.addr, "web-0", true, false)],
    );
    api.apply(annotated(&[("backend-protocol", "HTTPS")]));
    let s = proxy(&api, &[]).await;
    assert_eq!(
        until_status(&s, "/", 200, "HTTPS to the pod").await,
        "tls-pod\n"
    );
    assert_eq!(
        shop_get(&s, "/version").await,
        (200, "HTTP/1.1\n".into()),
        "HTTPS backends are spoken to in HTTP/1.1, as nginx does"
    );
    {
        let seen = pod.handshakes.lock().unwrap();
        assert!(!seen.is_empty());
        assert!(
            seen.iter()
                .all(|(sni, alpn)| sni.is_empty() && alpn.is_empty()),
            "no SNI and no ALPN by default: {seen:?}"
        );
    }

    // The CA in a Secret (cert-manager's kind: kubernetes.io/tls with ca.crt).
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let client_leaf = ca.issue(&["sluice.shop.internal"]);
    api.apply(json!({"kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "web-ca", "namespace": "shop"},
        "data": {"ca.crt": b64(&ca.pem), "tls.crt": b64(&client_leaf.cert),
                 "tls.key": b64(&client_leaf.key)}}));
    api.apply(annotated(&[
        ("backend-protocol", "HTTPS"),
        ("proxy-ssl-verify", "on"),
        ("proxy-ssl-secret", "shop/web-ca"),
        ("proxy-ssl-name", "web.shop.internal"),
        ("proxy-ssl-server-name", "on"),
    ]));
    wait_until("a handshake with SNI", WAIT, || async {
        let _ = shop_get(&s, "/").await;
        pod.handshakes
            .lock()
            .unwrap()
            .iter()
            .any(|(sni, _)| sni == "web.shop.internal")
    })
    .await;
    assert_eq!(shop_get(&s, "/").await, (200, "tls-pod\n".into()));

    // A name the certificate does not hold: verification fails, and no
    // request reaches the pod unverified.
    api.apply(annotated(&[
        ("backend-protocol", "HTTPS"),
        ("proxy-ssl-verify", "on"),
        ("proxy-ssl-secret", "shop/web-ca"),
        ("proxy-ssl-name", "other.shop.internal"),
    ]));
    until_status(&s, "/", 502, "a certificate for another name refused").await;
    let hits = pod.hits();
    assert_eq!(shop_get(&s, "/").await.0, 502);
    assert_eq!(pod.hits(), hits, "a request reached an unverified pod");
    // Verification on without its Secret: the route answers 503.
    api.apply(annotated(&[
        ("backend-protocol", "HTTPS"),
        ("proxy-ssl-verify", "on"),
        ("proxy-ssl-secret", "shop/nothing-here"),
    ]));
    until_status(&s, "/", 503, "verification without a CA").await;
    // The log line may reach the test's pipe a moment after the table
    // that answers 503 is in force.
    wait_until("the problem is logged", WAIT, || async {
        s.log().contains("shop/nothing-here: not found")
    })
    .await;
    assert!(
        !s.log().contains(&b64(&client_leaf.key)[..40]),
        "secret data in the log"
    );
}

/// `upstream-vhost` replaces the Host the pod sees (X-Forwarded-Host keeps
/// the client's), and `x-forwarded-prefix` is sent as X-Forwarded-Prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_vhost_and_forwarded_prefix() {
    let api = KubeApi::start().await;
    let pod = Backend::start("pod").await;
    shop_backend(
        &api,
        pod.addr.port(),
        vec![endpoint(pod.addr, "web-0", true, false)],
    );
    api.apply(annotated(&[
        ("upstream-vhost", "internal.shop.svc"),
        ("x-forwarded-prefix", "/shop"),
    ]));
    let s = proxy(&api, &[]).await;
    let seen = until_status(&s, "/headers", 200, "the route").await;
    let lines: Vec<&str> = seen.lines().collect();
    for want in [
        "host: internal.shop.svc",
        "x-forwarded-host: shop.example.com",
        "x-forwarded-prefix: /shop",
    ] {
        assert!(lines.contains(&want), "{want:?} not in:\n{seen}");
    }
    // An HTTP/2 client's :authority is replaced the same way.
    let (mut send, conn) = h2c(s.listen).await;
    tokio::spawn(conn);
    let req = http::Request::get("http://shop.example.com/headers")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.lines().any(|l| l == "host: internal.shop.svc"),
        "{body}"
    );
}

/// `service-upstream`: requests go to the Service's ClusterIP and port
/// (kube-proxy balances from there), not to the pods in its slices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_upstream_sends_to_the_cluster_ip() {
    let api = KubeApi::start().await;
    // What stands for kube-proxy's virtual address: a listener on
    // 127.0.0.1 at the Service's port.
    let vip = Backend::start("cluster-ip").await;
    let pod = Backend::start("pod").await;
    api.apply(ingress_class());
    api.apply(
        json!({"kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"clusterIP": "127.0.0.1",
                 "ports": [{"name": "http", "port": vip.addr.port(), "targetPort": 8080}]}}),
    );
    api.apply(slice(
        "shop",
        "web-abc",
        "web",
        pod.addr.port(),
        vec![endpoint(pod.addr, "web-0", true, false)],
    ));
    let mut ing = annotated(&[("service-upstream", "true")]);
    ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] =
        json!({"number": vip.addr.port()});
    api.apply(ing);
    let s = proxy(&api, &[]).await;
    assert_eq!(
        until_status(&s, "/", 200, "the route").await,
        "cluster-ip\n"
    );
    for _ in 0..5 {
        assert_eq!(shop_get(&s, "/").await, (200, "cluster-ip\n".into()));
    }
    assert_eq!(pod.hits(), 0, "a pod was sent to directly");
}

/// A `configuration-snippet`'s header directives apply (nginx's rules for
/// `add_header`: 2xx/3xx only, unless `always`), and its other directives
/// are refused by name, in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snippet_header_directives_apply_and_the_rest_is_refused() {
    let api = KubeApi::start().await;
    let pod = Backend::start("pod").await;
    shop_backend(
        &api,
        pod.addr.port(),
        vec![endpoint(pod.addr, "web-0", true, false)],
    );
    api.apply(annotated(&[(
        "configuration-snippet",
        "more_set_headers \"X-Frame-Options: DENY\";\nadd_header X-Only-Ok yes;\nadd_header X-Always yes always;\nproxy_set_header X-From-Snippet on;\nrewrite ^/old /new break;\n",
    )]));
    let s = proxy(&api, &[]).await;
    let seen = until_status(&s, "/headers", 200, "the route").await;
    assert!(seen.lines().any(|l| l == "x-from-snippet: on"), "{seen}");
    let c = client(None);
    let get = |path: &'static str| {
        let c = c.clone();
        let addr = s.listen;
        async move {
            request(
                &c,
                addr,
                "GET",
                path,
                &[("host", "shop.example.com")],
                empty(),
            )
            .await
            .unwrap()
        }
    };
    let (status, h, _) = get("/").await;
    assert_eq!(status, 200);
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-only-ok"], "yes");
    assert_eq!(h["x-always"], "yes");
    let (status, h, _) = get("/status/404").await;
    assert_eq!(status, 404);
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(
        h.get("x-only-ok").is_none(),
        "add_header without always on a 404"
    );
    assert_eq!(h["x-always"], "yes");
    assert!(
        s.log().contains("refused `rewrite ^/old /new break`"),
        "{}",
        s.log()
    );
}

/// Response heads past 64 KiB answer 502, as nginx's "upstream sent too
/// big header" does past its buffer; `proxy-buffer-size` raises the limit
/// for an Ingress whose pods send large cookies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_buffer_size_raises_the_response_head_limit() {
    let api = KubeApi::start().await;
    let pod = Backend::start("pod").await;
    shop_backend(
        &api,
        pod.addr.port(),
        vec![endpoint(pod.addr, "web-0", true, false)],
    );
    api.apply(annotated(&[]));
    let s = proxy(&api, &[]).await;
    until_status(&s, "/", 200, "the route").await;
    assert_eq!(shop_get(&s, "/bighead/1000").await.0, 200);
    assert_eq!(shop_get(&s, "/bighead/100000").await.0, 502);
    api.apply(annotated(&[("proxy-buffer-size", "128k")]));
    let body = until_status(&s, "/bighead/100000", 200, "a 128k head limit").await;
    assert_eq!(body, "pod\n");
    assert_eq!(shop_get(&s, "/bighead/200000").await.0, 502);
}

/// The first `n` answers once the route is there (the first one not a 404
/// of a host not yet routed).
async fn first_answers(s: &Sluice, n: usize) -> Vec<u16> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let first = loop {
        let status = shop_get(s, "/").await.0;
        if status != 404 {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no route after {WAIT:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let mut out = vec![first];
    for _ in 1..n {
        out.push(shop_get(s, "/").await.0);
    }
    out
}

/// `proxy-next-upstream-tries` bounds the endpoints a GET is tried on, and
/// `proxy-next-upstream: off` tries one: three of four pods refuse
/// connections (nothing listens on 127.0.0.2–4), round-robin sends each
/// of the first four requests to another pod, and only retries reach the
/// live one. Each phase starts a new proxy, so that no pod is ejected yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_upstream_tries_bound_the_endpoints_tried() {
    let api = KubeApi::start().await;
    let pod = Backend::start("pod").await;
    let port = pod.addr.port();
    let dead = |i: u8| {
        let addr = std::net::SocketAddr::from(([127, 0, 0, i], port));
        endpoint(addr, &format!("web-{i}"), true, false)
    };
    shop_backend(
        &api,
        port,
        vec![
            dead(2),
            dead(3),
            dead(4),
            endpoint(pod.addr, "web-0", true, false),
        ],
    );

    // Four tries: whichever pod a request starts on, it reaches the live one.
    api.apply(annotated(&[("proxy-next-upstream-tries", "4")]));
    let s = proxy(&api, &[]).await;
    assert_eq!(first_answers(&s, 4).await, [200; 4]);
    drop(s);

    // One try: a request sent to a dead pod answers 502. Round-robin
    // sends one of the first four there (a pod is ejected only after it
    // failed one).
    for notes in [
        &[("proxy-next-upstream-tries", "1")][..],
        &[("proxy-next-upstream", "off")][..],
    ] {
        api.apply(annotated(notes));
        let s = proxy(&api, &[]).await;
        let answers = first_answers(&s, 4).await;
        assert!(answers.contains(&502), "{notes:?}: {answers:?}");
        assert!(
            answers.iter().all(|&a| a == 200 || a == 502),
            "{notes:?}: {answers:?}"
        );
    }
}
