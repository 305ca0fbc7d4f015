//! The test backend: a real HTTP/1.1 and HTTP/2 server on 127.0.0.1 that
//! answers by path (sleep, status, echo, headers, WebSocket, ...) and
//! counts requests and connections, so a test can see what reached it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::client::{full, Body};
use crate::wait_until;

/// A test backend. Answers by path:
/// - `/sleep/<ms>`: waits, then answers its name;
/// - `/status/<code>`: answers that status;
/// - `/bighead/<n>`: a response head of about n bytes;
/// - `/echo`: streams the request body back;
/// - `…/count-body`: reads the body, answers (and adds to its targets)
///   its size;
/// - `/headers`: the request headers, one `name: value` per line;
/// - `/ws`: a WebSocket echo;
/// - `/close`: its name, then it closes the connection;
/// - `…/version`: the HTTP version it was asked in;
/// - anything else: its name and a newline.
///
/// A reporting backend ([`Backend::start_reporting`]) answers every request
/// with what reached it instead: `<name> <path and query> host=<Host>`;
/// any backend does for a request whose query has `report=1`. A query's
/// `delay=<ms>` makes any request wait first (what a path rewritten or
/// matched by prefix still carries).
///
/// Every response carries `x-backend: <name>`.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    /// Requests answered.
    pub hits: Arc<AtomicUsize>,
    /// Connections accepted.
    pub conns: Arc<AtomicUsize>,
    /// Connections open right now.
    pub open: Arc<AtomicUsize>,
    /// Requests being answered right now.
    pub active: Arc<AtomicUsize>,
    /// A TLS backend's handshakes: the SNI each sent ("" for none) and the
    /// protocol agreed by ALPN ("" for none).
    pub handshakes: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    /// The path and query of each request, in order (the first
    /// [`TARGETS_KEPT`]).
    pub targets: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

/// How many request targets a backend keeps.
pub const TARGETS_KEPT: usize = 10_000;

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        Self::start_on(name, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(name: &str, addr: SocketAddr) -> Backend {
        Self::start_with(name, addr, Duration::ZERO).await
    }

    /// A backend that waits `delay` before every answer.
    pub async fn start_slow(name: &str, delay: Duration) -> Backend {
        Self::start_with(name, SocketAddr::from(([127, 0, 0, 1], 0)), delay).await
    }

    /// A backend that answers every request with its name, the request
    /// target (path and query) and Host it received, so that a test can
    /// assert exactly what the proxy sent (rewrites).
    pub async fn start_reporting(name: &str) -> Backend {
        Self::start_inner(
            name,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Duration::ZERO,
            true,
            None,
        )
        .await
    }

    pub async fn start_with(name: &str, addr: SocketAddr, delay: Duration) -> Backend {
        Self::start_inner(name, addr, delay, false, None).await
    }

    /// A backend that terminates TLS itself with `cert` (PEM chain and
    /// key), offering `alpn` (HTTP/1.1 and h2 are both served either way).
    pub async fn start_tls(name: &str, cert: &str, key: &str, alpn: &[&[u8]]) -> Backend {
        use rustls::pki_types::pem::PemObject;
        let chain = rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Self::start_inner(
            name,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Duration::ZERO,
            false,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    async fn start_inner(
        name: &str,
        addr: SocketAddr,
        delay: Duration,
        report: bool,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Backend {
        let listener = bind_with_deadline(addr).await;
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let o = open.clone();
        let active = Arc::new(AtomicUsize::new(0));
        let targets = Arc::new(std::sync::Mutex::new(Vec::new()));
        let st = BackendState {
            name: Arc::from(name),
            targets: targets.clone(),
            hits: hits.clone(),
            active: active.clone(),
            delay,
            report,
        };
        let c = conns.clone();
        let handshakes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = handshakes.clone();
        let task = tokio::spawn(async move {
            let mut set = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                o.fetch_add(1, Ordering::SeqCst);
                let st = st.clone();
                // Counts down when the connection ends, or is aborted.
                let open = OpenConn(o.clone());
                let (tls, seen) = (tls.clone(), seen.clone());
                set.spawn(async move {
                    let _open = open;
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(st.answer(req).await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                                .await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let (_, session) = stream.get_ref();
                            seen.lock().unwrap().push((
                                session.server_name().unwrap_or("").to_owned(),
                                session
                                    .alpn_protocol()
                                    .map(|p| String::from_utf8_lossy(p).into_owned())
                                    .unwrap_or_default(),
                            ));
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                                .await;
                        }
                    }
                });
                while set.try_join_next().is_some() {}
            }
        });
        Backend {
            name: name.to_owned(),
            addr,
            hits,
            conns,
            open,
            active,
            handshakes,
            targets,
            task,
        }
    }

    /// Stops the backend and waits until its listener and every connection
    /// are closed: the address can be bound again, and a proxy holding
    /// pooled connections to it finds them closed, as after a real restart.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
        // Aborting the accept loop aborts the connections' tasks, which the
        // runtime drops a moment later.
        let open = self.open.clone();
        wait_until(
            "the backend's connections to close",
            Duration::from_secs(5),
            || {
                let n = open.load(Ordering::SeqCst);
                async move { n == 0 }
            },
        )
        .await;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// One open backend connection, counted in `Backend::open` while it lives.
struct OpenConn(Arc<AtomicUsize>);

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Binds `addr`, retrying for a few seconds while the port is still held
/// (a listener of the same test closing, or a socket of another test).
async fn bind_with_deadline(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("backend binds {addr}: {e}"),
        }
    }
}

#[derive(Clone)]
struct BackendState {
    targets: Arc<std::sync::Mutex<Vec<String>>>,
    name: Arc<str>,
    hits: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
    delay: Duration,
    /// Answer with what reached it (see [`Backend::start_reporting`]).
    report: bool,
}

impl BackendState {
    async fn answer(&self, req: Request<Incoming>) -> Response<Body> {
        {
            let mut t = self.targets.lock().unwrap();
            if t.len() < TARGETS_KEPT {
                t.push(
                    req.uri()
                        .path_and_query()
                        .map_or("", |p| p.as_str())
                        .to_owned(),
                );
            }
        }
        self.active.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let mut resp = self.answer_inner(req).await;
        self.active.fetch_sub(1, Ordering::SeqCst);
        self.hits.fetch_add(1, Ordering::SeqCst);
        resp.headers_mut()
            .insert("x-backend", self.name.parse().unwrap());
        resp
    }

    async fn answer_inner(&self, mut req: Request<Incoming>) -> Response<Body> {
        let query = |name: &str| {
            req.uri().query().and_then(|q| {
                q.split('&')
                    .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
                    .map(str::to_owned)
            })
        };
        if let Some(ms) = query("delay").and_then(|ms| ms.parse().ok()) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if self.report || query("report").is_some() {
            let target = req.uri().path_and_query().map_or("", |p| p.as_str());
            let host = req
                .headers()
                .get("host")
                .map_or("", |h| h.to_str().unwrap_or("?"));
            return Response::new(full(format!("{} {target} host={host}\n", self.name)));
        }
        let path = req.uri().path().to_owned();
        if path.ends_with("/count-body") {
            // Reads the whole body; its size joins the targets seen.
            let target = req
                .uri()
                .path_and_query()
                .map_or("", |p| p.as_str())
                .to_owned();
            let n = match req.into_body().collect().await {
                Ok(b) => b.to_bytes().len().to_string(),
                Err(e) => format!("broken ({e})"),
            };
            self.targets
                .lock()
                .unwrap()
                .push(format!("{target} body={n}"));
            return Response::new(full(format!("got {n}\n")));
        }
        if let Some(ms) = path.strip_prefix("/sleep/") {
            let ms: u64 = ms.parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return Response::new(full(format!("{}\n", self.name)));
        }
        if let Some(n) = path.strip_prefix("/bytes/") {
            // N bytes of body, streamed 64 KiB at a time: a download that
            // holds its connection until the proxy has taken all of it.
            let n: usize = n.parse().unwrap_or(0);
            let chunks = (0..n.div_ceil(65536)).map(move |i| {
                Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from(vec![
                    b'x';
                    65536.min(
                        n - i * 65536
                    )
                ])))
            });
            let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
            return Response::new(body.map_err(|never| match never {}).boxed());
        }
        if let Some(n) = path.strip_prefix("/bighead/") {
            // A response head of about N bytes: one header that long.
            let n: usize = n.parse().unwrap_or(0);
            let mut r = Response::new(full(format!("{}\n", self.name)));
            r.headers_mut()
                .insert("x-big", "a".repeat(n).parse().unwrap());
            return r;
        }
        if let Some(code) = path.strip_prefix("/status/") {
            let mut r = Response::new(full(format!("{} {code}\n", self.name)));
            *r.status_mut() = StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
            return r;
        }
        match path.as_str() {
            "/echo" => Response::new(req.into_body().boxed()),
            "/headers" => {
                let mut out = String::new();
                for (k, v) in req.headers() {
                    out.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
                }
                Response::new(full(out))
            }
            "/ws" => websocket_echo(&mut req),
            "/close" => {
                let mut r = Response::new(full(format!("{}\n", self.name)));
                r.headers_mut()
                    .insert("connection", "close".parse().unwrap());
                r
            }
            p if p.ends_with("/version") => Response::new(full(format!("{:?}\n", req.version()))),
            _ => Response::new(full(format!("{}\n", self.name))),
        }
    }
}

/// Accepts a WebSocket handshake and echoes every message back.
fn websocket_echo(req: &mut Request<Incoming>) -> Response<Body> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let Some(key) = req.headers().get("sec-websocket-key") else {
        let mut r = Response::new(full("not a websocket request\n"));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() || msg.is_binary() {
                if ws.send(msg).await.is_err() {
                    break;
                }
            } else if msg.is_close() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(full(Bytes::new()))
        .unwrap()
}
