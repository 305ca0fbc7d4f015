//! ingress-nginx's custom error pages (issue 13, point 4) through
//! discovery with real traffic: `custom-http-errors` with
//! `default-backend`, the global default backend when none is named, the
//! proxy's own 502 caught like an upstream's, and a Service without
//! endpoints served by its `default-backend`. The error-page backends
//! echo what they were told, as ingress-nginx's custom-error-pages image
//! reads it; the manifests are `tests/corpus/ingress-nginx/errors.yaml`.

use std::sync::atomic::Ordering;

use sluice_integration::cluster::*;
use sluice_integration::corpus::manifests;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;

/// The request line and the headers of a raw request, names lower-cased.
fn head(req: &[u8]) -> (String, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(req);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("").to_owned();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (first, headers)
}

fn answer(status: u16, body: &str) -> RawAnswer {
    RawAnswer::whole(format!(
        "HTTP/1.1 {status} Whatever\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ))
}

/// An error-page backend: answers with the status X-Code names (as the
/// custom-error-pages image does), echoing the request line and the
/// headers ingress-nginx sets, `-` for one not sent.
async fn error_backend(name: &'static str) -> RawBackend {
    RawBackend::start(move |req| {
        let (first, headers) = head(req);
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map_or("-", |(_, v)| v.as_str())
        };
        let target = first.rsplit_once(' ').map_or("", |(t, _)| t);
        // "METHOD TARGET".
        let mut body = format!("{name} {target}\n");
        for h in [
            "x-code",
            "x-format",
            "x-original-uri",
            "x-namespace",
            "x-ingress-name",
            "x-service-name",
            "x-service-port",
        ] {
            body.push_str(&format!("{h}: {}\n", get(h)));
        }
        body.push_str(&format!("id: {}\n", get("x-request-id")));
        answer(get("x-code").parse().unwrap_or(200), &body)
    })
    .await
}

/// The application: 404 on /missing, 503 on /down, 418 on /teapot, else
/// 200, each with a body of its own.
async fn app_backend() -> RawBackend {
    RawBackend::start(|req| {
        let (first, _) = head(req);
        let path = first.split(' ').nth(1).unwrap_or("");
        let status = match path.split('?').next().unwrap_or("") {
            "/missing" => 404,
            "/down" => 503,
            "/teapot" => 418,
            _ => 200,
        };
        answer(status, &format!("app {path}\n"))
    })
    .await
}

struct World {
    _api: KubeApi,
    s: Sluice,
    app: RawBackend,
    errors: RawBackend,
}

async fn world() -> World {
    let api = KubeApi::start().await;
    let app = app_backend().await;
    let errors = error_backend("errors").await;
    let global = error_backend("global").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let vars = [
        ("APP_PORT", app.addr.port().to_string()),
        ("ERRORS_PORT", errors.addr.port().to_string()),
        ("GLOBAL_PORT", global.addr.port().to_string()),
        ("CLOSED_PORT", closed_port),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for m in manifests("ingress-nginx/errors.yaml", &vars) {
        api.apply(m);
    }
    let s = proxy(
        &api,
        &["--default-backend-service", "ops/default-http-backend"],
    )
    .await;
    wait_until("the error-page Ingresses to route", WAIT, || async {
        get(&s, "errors.example.com", "/ok", &[]).await.0 == 200
            && get(&s, "asleep.example.com", "/", &[])
                .await
                .1
                .starts_with("errors ")
            && get(&s, "refused.example.com", "/", &[])
                .await
                .1
                .starts_with("errors ")
    })
    .await;
    // Kept alive for the proxy to reach.
    std::mem::forget(global);
    World {
        _api: api,
        s,
        app,
        errors,
    }
}

/// `path` on `host`: status and body.
async fn get(s: &Sluice, host: &str, path: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let mut headers = vec![("host", host)];
    headers.extend_from_slice(extra);
    match request(&client(None), s.listen, "GET", path, &headers, empty()).await {
        Ok((status, _, body)) => (status, body),
        Err(e) => panic!("GET {host}{path}: {e}"),
    }
}

/// What an error backend echoes (`id:` line left out).
fn echoed(body: &str) -> String {
    body.lines()
        .filter(|l| !l.starts_with("id: "))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_codes_are_answered_by_the_default_backend() {
    let w = world().await;
    let s = &w.s;
    // Not an error: the application's answer.
    assert_eq!(
        get(s, "errors.example.com", "/ok", &[]).await,
        (200, "app /ok\n".into())
    );
    // 404 from the application: the error-page Service answers `/` (the
    // query kept), told what failed; its status is the client's.
    let accept = [("accept", "application/json")];
    let (status, body) = get(s, "errors.example.com", "/missing?x=1", &accept).await;
    assert_eq!(status, 404);
    assert_eq!(
        echoed(&body),
        "errors GET /?x=1\nx-code: 404\nx-format: application/json\n\
         x-original-uri: /missing?x=1\nx-namespace: shop\nx-ingress-name: annotated\n\
         x-service-name: app\nx-service-port: 80\n"
    );
    // The same request id as the application saw.
    let id = body.lines().find_map(|l| l.strip_prefix("id: ")).unwrap();
    assert_ne!(id, "-");
    let seen = w.app.requests.lock().unwrap().last().cloned().unwrap();
    let (_, app_headers) = head(&seen);
    assert!(
        app_headers
            .iter()
            .any(|(k, v)| k == "x-request-id" && v == id),
        "{app_headers:?}"
    );
    // 503, without Accept: no X-Format.
    let (status, body) = get(s, "errors.example.com", "/down", &[]).await;
    assert_eq!(status, 503);
    assert_eq!(
        echoed(&body),
        "errors GET /\nx-code: 503\nx-format: -\nx-original-uri: /down\nx-namespace: shop\n\
         x-ingress-name: annotated\nx-service-name: app\nx-service-port: 80\n"
    );
    // A code not listed passes through unchanged.
    assert_eq!(
        get(s, "errors.example.com", "/teapot", &[]).await,
        (418, "app /teapot\n".into())
    );
    // The replaced answers' connections went back to the pool: three more
    // errors open no connection to the application.
    let conns = w.app.conns.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(get(s, "errors.example.com", "/missing", &[]).await.0, 404);
    }
    assert_eq!(w.app.conns.load(Ordering::SeqCst), conns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_default_backend_the_global_one_answers() {
    let w = world().await;
    let errors_seen = w.errors.requests.lock().unwrap().len();
    let (status, body) = get(&w.s, "global.example.com", "/missing", &[]).await;
    assert_eq!(status, 404);
    assert_eq!(
        echoed(&body),
        "global GET /\nx-code: 404\nx-format: -\nx-original-uri: /missing\nx-namespace: shop\n\
         x-ingress-name: global\nx-service-name: app\nx-service-port: http\n"
    );
    // 503 is not listed on this Ingress.
    assert_eq!(
        get(&w.s, "global.example.com", "/down", &[]).await,
        (503, "app /down\n".into())
    );
    assert_eq!(w.errors.requests.lock().unwrap().len(), errors_seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxys_own_errors_are_caught_too() {
    let w = world().await;
    // Nothing listens on the pod's port: the proxy's 502, replaced.
    let (status, body) = get(&w.s, "refused.example.com", "/pay?now", &[]).await;
    assert_eq!(status, 502);
    assert_eq!(
        echoed(&body),
        "errors GET /?now\nx-code: 502\nx-format: -\nx-original-uri: /pay?now\nx-namespace: shop\n\
         x-ingress-name: refused\nx-service-name: refusing\nx-service-port: 80\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_endpoints_is_served_by_its_default_backend() {
    let w = world().await;
    // The request as it is (no rewrite to `/`, no X-Original-URI), told
    // X-Code 503, as ingress-nginx's custom-default-backend upstream.
    let accept = [("accept", "text/html")];
    let (status, body) = get(&w.s, "asleep.example.com", "/some/page?q=1", &accept).await;
    assert_eq!(status, 503);
    assert_eq!(
        echoed(&body),
        "errors GET /some/page?q=1\nx-code: 503\nx-format: text/html\nx-original-uri: -\n\
         x-namespace: shop\nx-ingress-name: asleep\nx-service-name: asleep\nx-service-port: 80\n"
    );
}
