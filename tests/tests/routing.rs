//! Ingress routing semantics over real sockets: hosts, wildcards, path
//! types, longest match, the default backend and 404.

use sluice_integration::*;

async fn answer(s: &Sluice, host: &str, path: &str) -> (u16, String) {
    let (status, headers, body) = request(
        &client(None),
        s.listen,
        "GET",
        path,
        &[("host", host)],
        empty(),
    )
    .await
    .unwrap();
    let who = headers
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_else(|| body.trim().to_owned());
    (status, who)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_paths_and_default_backend() {
    let names = ["exact", "api", "apiv2exact", "wild", "any", "default"];
    let mut backends = Vec::new();
    for n in names {
        backends.push(Backend::start(n).await);
    }
    let addr = |n: &str| backends[names.iter().position(|x| *x == n).unwrap()].addr;
    let yaml = format!(
        r#"listen: [{{LISTEN}}]
admin: {{ADMIN}}
routes:
  - {{name: exact, host: app.example.com, path: /, backends: [{}]}}
  - {{name: api, host: app.example.com, path: /api/, path_type: Prefix, backends: [{}]}}
  - {{name: apiv2exact, host: app.example.com, path: /api/v2, path_type: Exact, backends: [{}]}}
  - {{name: wild, host: "*.example.com", path: /, backends: [{}]}}
  - {{name: any, path: /any, path_type: ImplementationSpecific, backends: [{}]}}
default_backend:
  backends: [{}]
"#,
        addr("exact"),
        addr("api"),
        addr("apiv2exact"),
        addr("wild"),
        addr("any"),
        addr("default")
    );
    let (s, _) = Sluice::with_config(&yaml).await;
    let cases = [
        ("app.example.com", "/", "exact"),
        ("APP.example.com:8080", "/page", "exact"),
        ("app.example.com", "/api", "api"),
        ("app.example.com", "/api/v1/users", "api"),
        ("app.example.com", "/apix", "exact"),
        ("app.example.com", "/api/v2", "apiv2exact"),
        ("app.example.com", "/api/v2/", "api"),
        ("app.example.com", "/api/v2?q=1", "apiv2exact"),
        ("other.example.com", "/x", "wild"),
        ("deep.other.example.com", "/any/thing", "any"),
        ("example.com", "/any", "any"),
        ("unknown.org", "/nowhere", "default"),
    ];
    for (host, path, want) in cases {
        assert_eq!(
            answer(&s, host, path).await,
            (200, want.to_owned()),
            "{host}{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_match_without_default_is_404() {
    let a = Backend::start("a").await;
    let yaml = format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\nroutes:\n  - {{host: a.example.com, path: /only, path_type: Exact, backends: [{}]}}\n",
        a.addr
    );
    let (s, _) = Sluice::with_config(&yaml).await;
    assert_eq!(
        answer(&s, "a.example.com", "/only").await,
        (200, "a".into())
    );
    let (status, _, body) = get_as(&client(None), s.listen, "a.example.com", "/other").await;
    assert_eq!(status, 404);
    assert!(body.len() < 100 && body.contains("no route"), "{body}");
    assert_eq!(answer(&s, "b.example.com", "/only").await.0, 404);
    assert_eq!(a.hits(), 1);
    assert_eq!(
        s.metric("sluice_requests_total{code=\"404\",route=\"none\"}")
            .await,
        Some(2.0)
    );
}

/// `upstream_protocol: http2` speaks h2c to the backend; the default is HTTP/1.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_upstreams() {
    let a = Backend::start("a").await;
    let yaml = format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\nroutes:\n  - {{path: /h2, upstream_protocol: http2, backends: [{0}]}}\n  - {{path: /, backends: [{0}]}}\n",
        a.addr
    );
    let (s, _) = Sluice::with_config(&yaml).await;
    let c = client(None);
    let (status, _, v1) = request(&c, s.listen, "GET", "/version", &[], empty())
        .await
        .unwrap();
    assert_eq!((status, v1.trim()), (200, "HTTP/1.1"));
    for _ in 0..3 {
        let (status, _, v2) = request(&c, s.listen, "GET", "/h2/version", &[], empty())
            .await
            .unwrap();
        assert_eq!((status, v2.trim()), (200, "HTTP/2.0"));
    }
    // One multiplexed connection carries all the h2 requests.
    assert_eq!(a.conns.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// `/public/../admin` is routed (and forwarded) as `/admin`: a client
/// cannot reach one route through another's prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_are_resolved_before_routing() {
    let public = Backend::start("public").await;
    let admin = Backend::start("admin").await;
    let yaml = format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\nroutes:\n  - {{path: /public, backends: [{}]}}\n  - {{path: /admin, backends: [{}]}}\n",
        public.addr, admin.addr
    );
    let (s, _) = Sluice::with_config(&yaml).await;
    // curl would resolve the dots itself; --path-as-is sends them as typed.
    let out = run(
        "curl",
        &[
            "-s",
            "--path-as-is",
            "-D",
            "-",
            &s.url("/public/../admin/x/./version?q=1"),
        ],
    );
    assert!(out.contains("x-backend: admin"), "{out}");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(public.hits(), 0);
    let (status, _) = get(s.listen, "/public/./page").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(public.hits(), 1);
}

/// Percent-encoded paths are routed in normal form (RFC 3986 6.2.2):
/// `/%61dmin` and `/public/%2e%2e/admin` reach the `/admin` route, and the
/// backend is sent the same normal path it routed on. Escapes of reserved
/// characters stay (in upper case), and a broken escape is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_paths_cannot_slip_past_a_route() {
    let public = Backend::start("public").await;
    let admin = RawBackend::start(|_| {
        RawAnswer::whole(
            &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-backend: admin\r\n\r\nadmin"[..],
        )
    })
    .await;
    let yaml = format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\nroutes:\n  - {{path: /, backends: [{}]}}\n  - {{path: /admin, backends: [{}]}}\n",
        public.addr, admin.addr
    );
    let (s, _) = Sluice::with_config(&yaml).await;
    let send = |path: &str| {
        let url = s.url(path);
        run("curl", &["-s", "--path-as-is", "-D", "-", &url])
    };
    for (path, forwarded) in [
        ("/%61dmin", "/admin"),
        ("/%61%64%6D%69%6E/x?q=%61", "/admin/x?q=%61"),
        ("/public/%2e%2e/admin/keys", "/admin/keys"),
        ("/public/%2E%2e/%61dmin/a%2fb", "/admin/a%2Fb"),
    ] {
        let out = send(path);
        assert!(out.starts_with("HTTP/1.1 200"), "{path}: {out}");
        assert!(out.contains("x-backend: admin"), "{path}: {out}");
        let seen = admin.received();
        let last = seen.last().expect("the admin backend got it");
        assert!(
            last.starts_with(&format!("GET {forwarded} HTTP/1.1\r\n")),
            "{path} was forwarded as {last:?}"
        );
    }
    assert_eq!(public.hits(), 0, "nothing reached the other route");
    // An escaped slash is not a slash: not the /admin route.
    let out = send("/admin%2Fkeys");
    assert!(out.contains("x-backend: public"), "{out}");
    // Broken escapes are refused before routing.
    for bad in ["/%zz", "/admin%2", "/%"] {
        let out = send(bad);
        assert!(out.starts_with("HTTP/1.1 400"), "{bad}: {out}");
    }
    assert_eq!(admin.received().len(), 4);
}
