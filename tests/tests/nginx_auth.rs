//! ingress-nginx's external authentication and CORS (issue 13, point 3)
//! through discovery with real traffic. The auth service is a small
//! server started here that stands in for oauth2-proxy's `/oauth2/auth`:
//! 202 with X-Auth-Request-User / -Email (and a refreshed cookie) for the
//! right cookie, 403 when asked to, 401 otherwise; it records every
//! subrequest so that what ingress-nginx's template sends (X-Original-URL
//! and the rest) is asserted exactly. The manifests are
//! `tests/corpus/ingress-nginx/auth.yaml`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sluice_integration::cluster::*;
use sluice_integration::corpus::manifests;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;

/// One subrequest as the auth service received it.
#[derive(Debug, Clone)]
struct Asked {
    method: String,
    target: String,
    headers: HeaderMap,
    body: usize,
}

/// The oauth2-proxy stand-in.
struct AuthServer {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<Asked>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AuthServer {
    async fn start() -> AuthServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        async move { Ok::<_, Infallible>(decide(req, &log).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        AuthServer { addr, asked, task }
    }

    fn last(&self) -> Asked {
        self.asked
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the auth service was asked")
    }

    fn count(&self) -> usize {
        self.asked.lock().unwrap().len()
    }
}

/// oauth2-proxy's `/oauth2/auth`, as far as the tests need it.
async fn decide(req: Request<Incoming>, log: &Mutex<Vec<Asked>>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    log.lock().unwrap().push(Asked {
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body,
    });
    let cookie = parts
        .headers
        .get("cookie")
        .and_then(|c| c.to_str().ok())
        .unwrap_or("");
    let b = Response::builder();
    let resp = if parts.headers.contains_key("x-deny") {
        b.status(403)
    } else if cookie.contains("_oauth2_proxy=good") {
        b.status(202)
            .header("x-auth-request-user", "alice")
            .header("x-auth-request-email", "alice@example.com")
            .header("set-cookie", "_oauth2_proxy=refreshed; Path=/; HttpOnly")
    } else {
        b.status(401)
            .header("www-authenticate", "Bearer realm=\"shop\"")
    };
    resp.body(Full::new(Bytes::from_static(b"auth says\n")))
        .unwrap()
}

/// `method` `path` on `host`: status, headers, body.
async fn send(
    s: &Sluice,
    method: &str,
    host: &str,
    path: &str,
    extra: &[(&str, &str)],
    payload: &'static str,
) -> (u16, HeaderMap, String) {
    let mut headers = vec![("host", host)];
    headers.extend_from_slice(extra);
    let b = if payload.is_empty() {
        empty()
    } else {
        body(payload)
    };
    request(&client(None), s.listen, method, path, &headers, b)
        .await
        .unwrap_or_else(|e| panic!("{method} {host}{path}: {e}"))
}

/// Waits until GET / on `host` answers `status`.
async fn until(s: &Sluice, host: &str, status: u16) {
    wait_until(&format!("{host} to answer {status}"), WAIT, || async {
        send(s, "GET", host, "/", &[], "").await.0 == status
    })
    .await;
}

fn apply_corpus(api: &KubeApi, web: u16, auth: u16, dead: u16) {
    for m in manifests(
        "ingress-nginx/auth.yaml",
        &[
            ("PORT", &web.to_string()),
            ("AUTH", &auth.to_string()),
            ("DEAD", &dead.to_string()),
        ],
    ) {
        api.apply(m);
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_auth_asks_the_service_as_ingress_nginx_does() {
    let api = KubeApi::start().await;
    let web = Backend::start("web").await;
    let auth = AuthServer::start().await;
    let dead = dead();
    apply_corpus(&api, web.addr.port(), auth.addr.port(), dead.addr.port());
    let s = proxy(&api, &[]).await;
    until(&s, "auth.example.com", 401).await;

    // Allowed: the service's headers replace the client's claims.
    let (status, h, text) = send(
        &s,
        "GET",
        "auth.example.com",
        "/headers?x=1",
        &[
            ("cookie", "_oauth2_proxy=good"),
            ("x-auth-request-email", "mallory@evil.io"),
            ("x-forwarded-proto", "https"),
        ],
        "",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("x-auth-request-user: alice\n"), "{text}");
    assert!(
        text.contains("x-auth-request-email: alice@example.com\n"),
        "{text}"
    );
    assert!(!text.contains("mallory"), "{text}");
    assert_eq!(
        header(&h, "set-cookie"),
        Some("_oauth2_proxy=refreshed; Path=/; HttpOnly")
    );
    // What the service was told, exactly as ingress-nginx's template
    // sets it.
    let asked = auth.last();
    assert_eq!(asked.method, "GET");
    assert_eq!(asked.target, "/oauth2/auth");
    let a = &asked.headers;
    assert_eq!(header(a, "host"), Some("127.0.0.1"));
    assert_eq!(
        header(a, "x-original-url"),
        Some("http://auth.example.com/headers?x=1")
    );
    assert_eq!(header(a, "x-original-method"), Some("GET"));
    assert_eq!(header(a, "x-sent-from"), Some("nginx-ingress-controller"));
    assert_eq!(header(a, "x-real-ip"), Some("127.0.0.1"));
    assert_eq!(header(a, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header(a, "x-auth-request-redirect"), Some("/headers?x=1"));
    assert_eq!(header(a, "cookie"), Some("_oauth2_proxy=good"));
    assert_eq!(header(a, "x-forwarded-proto"), None);
    assert_eq!(header(a, "x-original-uri"), None);
    // The service and the backend saw one request id.
    let id = header(a, "x-request-id").expect("a request id");
    assert!(text.contains(&format!("x-request-id: {id}\n")), "{text}");

    // Refused: the service's 401 (with its challenge) and 403 are the
    // client's answers, and nothing reaches the backend.
    let hits = web.hits();
    let (status, h, _) = send(&s, "GET", "auth.example.com", "/", &[], "").await;
    assert_eq!(status, 401);
    assert_eq!(
        header(&h, "www-authenticate"),
        Some("Bearer realm=\"shop\"")
    );
    assert_eq!(header(&h, "set-cookie"), None);
    let (status, _, _) = send(&s, "GET", "auth.example.com", "/", &[("x-deny", "1")], "").await;
    assert_eq!(status, 403);
    assert_eq!(web.hits(), hits, "a refused request reached the backend");

    // oauth2-proxy's setup: a 401 becomes a 302 to the sign-in URL, rd=
    // the original request URI, escaped as set_escape_uri does.
    let (status, h, _) = send(&s, "GET", "signin.example.com", "/headers?x=1&y=2", &[], "").await;
    assert_eq!(status, 302);
    assert_eq!(
        header(&h, "location"),
        Some("https://signin.example.com/oauth2/start?rd=%2Fheaders%3Fx%3D1%26y%3D2")
    );
    let (status, _, _) = send(
        &s,
        "GET",
        "signin.example.com",
        "/",
        &[("cookie", "_oauth2_proxy=good")],
        "",
    )
    .await;
    assert_eq!(status, 200);

    // auth-method: the service gets GET and no body whatever the client
    // sent, with X-Original-URI and X-Scheme; the sign-in URL without rd
    // gets ingress-nginx's.
    let (status, h, _) = send(&s, "POST", "method.example.com", "/p?q=1", &[], "hello").await;
    assert_eq!(status, 302);
    assert_eq!(
        header(&h, "location"),
        Some("https://login.example.com/start?rd=http://method.example.com%2Fp%3Fq%3D1")
    );
    let asked = auth.last();
    assert_eq!(
        (asked.method.as_str(), asked.target.as_str(), asked.body),
        ("GET", "/oauth2/auth?for=method.example.com", 0)
    );
    let a = &asked.headers;
    assert_eq!(header(a, "x-original-method"), Some("POST"));
    assert_eq!(header(a, "x-original-uri"), Some("/p?q=1"));
    assert_eq!(header(a, "x-scheme"), Some("http"));
    assert_eq!(header(a, "content-length"), None);

    // A service that cannot be reached: 500, never the backend.
    let asked_before = auth.count();
    let (status, _, _) = send(&s, "GET", "down.example.com", "/", &[], "").await;
    assert_eq!(status, 500);
    assert_eq!(auth.count(), asked_before);
    assert_eq!(
        web.hits(),
        hits + 1,
        "only the signed-in request got through"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_and_headers_as_ingress_nginx_answers() {
    let api = KubeApi::start().await;
    let web = Backend::start("web").await;
    let dead = dead();
    // No auth service here: the auth Ingresses answer 500, unused.
    apply_corpus(&api, web.addr.port(), dead.addr.port(), dead.addr.port());
    let s = proxy(&api, &[]).await;
    until(&s, "cors.example.com", 200).await;

    // A preflight from an allowed origin: 204 from the proxy.
    let hits = web.hits();
    let (status, h, text) = send(
        &s,
        "OPTIONS",
        "cors.example.com",
        "/api",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
        ],
        "",
    )
    .await;
    assert_eq!(status, 204, "{text}");
    assert_eq!(web.hits(), hits, "a preflight reached the backend");
    assert_eq!(
        header(&h, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        header(&h, "access-control-allow-methods"),
        Some("GET, POST")
    );
    assert_eq!(
        header(&h, "access-control-allow-headers"),
        Some("DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization")
    );
    assert_eq!(header(&h, "access-control-expose-headers"), Some("X-Total"));
    assert_eq!(header(&h, "access-control-max-age"), Some("600"));
    assert_eq!(header(&h, "access-control-allow-credentials"), None);
    assert_eq!(header(&h, "content-type"), Some("text/plain charset=UTF-8"));

    // A simple request from an origin the wildcard allows: the backend's
    // answer with the headers.
    let (status, h, text) = send(
        &s,
        "GET",
        "cors.example.com",
        "/",
        &[("origin", "https://shop.example.org")],
        "",
    )
    .await;
    assert_eq!((status, text.as_str()), (200, "web\n"));
    assert_eq!(
        header(&h, "access-control-allow-origin"),
        Some("https://shop.example.org")
    );
    assert_eq!(header(&h, "access-control-max-age"), Some("600"));

    // An origin not allowed: no CORS headers, and its OPTIONS is the
    // backend's to answer.
    let hits = web.hits();
    for method in ["GET", "OPTIONS"] {
        let (status, h, _) = send(
            &s,
            method,
            "cors.example.com",
            "/",
            &[("origin", "https://evil.io")],
            "",
        )
        .await;
        assert_eq!(status, 200, "{method}");
        assert_eq!(header(&h, "access-control-allow-origin"), None, "{method}");
    }
    assert_eq!(web.hits(), hits + 2);

    // ingress-nginx's defaults: every request gets `*` (with credentials
    // true, as ingress-nginx sends them), Origin or not.
    let (status, h, _) = send(&s, "GET", "cors-any.example.com", "/", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&h, "access-control-allow-credentials"), Some("true"));
    assert_eq!(
        header(&h, "access-control-allow-methods"),
        Some("GET, PUT, POST, DELETE, PATCH, OPTIONS")
    );
    assert_eq!(header(&h, "access-control-max-age"), Some("1728000"));
    let (status, _, _) = send(&s, "OPTIONS", "cors-any.example.com", "/", &[], "").await;
    assert_eq!(status, 204);
}
