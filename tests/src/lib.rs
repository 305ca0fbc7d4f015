//! Support for the behaviour tests: backends, the `sluice` binary, clients
//! and deadlines. Every server binds 127.0.0.x with port 0 (or a port the
//! OS just handed out), never a fixed port; every wait has a deadline.

use std::convert::Infallible;
use std::future::Future;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub mod cluster;
pub mod kube_api;
pub mod report;
pub mod tls;

pub type Body = BoxBody<Bytes, hyper::Error>;

/// Waits until `check` is true, polling every 20 ms, or panics after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `N` distinct free addresses on 127.0.0.1: all bound at once, then
/// released, so two of them are never the same port. Good enough for a
/// process started right away.
pub fn free_addrs<const N: usize>() -> [SocketAddr; N] {
    let held: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap())
}

pub fn free_addr() -> SocketAddr {
    free_addrs::<1>()[0]
}

/// A free address that stays free until the test binds it, perhaps more
/// than once: for a backend stopped and started again on the same port, or
/// a listener another process (HAProxy) binds later. Ports from `free_addr()` come from the kernel's ephemeral
/// range, so once the first backend closes, an outgoing connection of a test
/// running beside this one may take the port and the restart fails with
/// "Address already in use". These ports lie below that range (10000–32767).
pub fn stable_addr() -> SocketAddr {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id().rotate_left(16);
    let mut x = seed | 1;
    for _ in 0..1000 {
        // xorshift: cheap, and good enough to spread parallel tests apart.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let port = 10_000 + (x % 22_768) as u16;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free port in 10000..32768 after 1000 tries");
}

/// An address that never completes a TCP handshake: a listener with a
/// backlog of one that never accepts, its queue filled by connections held
/// here. The kernel then drops further SYNs, so a connect to it hangs until
/// the connector's timeout, all on loopback.
pub struct Blackhole {
    pub addr: SocketAddr,
    _listener: socket2::Socket,
    _fill: Vec<std::net::TcpStream>,
}

pub fn blackhole() -> Blackhole {
    use socket2::{Domain, Protocol, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fill = Vec::new();
    // Fill the accept queue; stop once a connect no longer completes quickly.
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fill.push(s),
            Err(_) => break,
        }
    }
    Blackhole {
        addr,
        _listener: listener,
        _fill: fill,
    }
}

/// An address nothing listens on, held for the test's lifetime: a socket
/// bound to it that never listens, so connects are refused at once and no
/// other server can take the port the way it could a port merely bound
/// and released.
pub struct Dead {
    pub addr: SocketAddr,
    _socket: socket2::Socket,
}

pub fn dead() -> Dead {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    Dead {
        addr,
        _socket: socket,
    }
}

// ------------------------------------------------------------------ backends

/// A test backend. Answers by path:
/// - `/sleep/<ms>`: waits, then answers its name;
/// - `/status/<code>`: answers that status;
/// - `/echo`: streams the request body back;
/// - `/headers`: the request headers, one `name: value` per line;
/// - `/ws`: a WebSocket echo;
/// - `/close`: its name, then it closes the connection;
/// - `…/version`: the HTTP version it was asked in;
/// - anything else: its name and a newline.
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
    task: tokio::task::JoinHandle<()>,
}

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

    pub async fn start_with(name: &str, addr: SocketAddr, delay: Duration) -> Backend {
        let listener = bind_with_deadline(addr).await;
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let o = open.clone();
        let active = Arc::new(AtomicUsize::new(0));
        let st = BackendState {
            name: Arc::from(name),
            hits: hits.clone(),
            active: active.clone(),
            delay,
        };
        let c = conns.clone();
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
                set.spawn(async move {
                    let _open = open;
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(st.answer(req).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
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
    name: Arc<str>,
    hits: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
    delay: Duration,
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

impl BackendState {
    async fn answer(&self, req: Request<Incoming>) -> Response<Body> {
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
        let path = req.uri().path().to_owned();
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

// ------------------------------------------------------------------ the binary

/// The `sluice` binary, built once per test process so tests never run a
/// stale one.
pub fn sluice_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    workspace_bin(&BUILD, "sluice", "sluice")
}

/// The `sluice-deploy` binary, built once per test process.
pub fn deploy_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    workspace_bin(&BUILD, "sluice-deploy", "sluice-deploy")
}

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn workspace_bin(once: &Once, package: &str, bin: &str) -> PathBuf {
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    once.call_once(|| {
        if std::env::var_os("SLUICE_SKIP_BUILD").is_some() {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", package, "--bin", bin])
            .current_dir(&root);
        // What `cargo test` sets for this crate is not the environment of a
        // plain build: left in, it makes build scripts that watch it (ring
        // watches CARGO_MANIFEST_DIR) rebuild, and the binary with them.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_MANIFEST_")
                || k.starts_with("CARGO_CRATE_")
                || k.starts_with("CARGO_BIN_")
                || k == "CARGO_PRIMARY_PACKAGE"
                || k == "CARGO_TARGET_TMPDIR"
            {
                cmd.env_remove(&*k);
            }
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building the {bin} binary failed");
    });
    let bin = target.join("debug").join(bin);
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}

/// A running `sluice` process, killed on drop. Its stderr goes to a file
/// that [`Sluice::log`] reads.
pub struct Sluice {
    pub child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// Reserved for HTTPS: arguments and config templates name it
    /// `{LISTEN_TLS}`.
    pub tls: SocketAddr,
    log: PathBuf,
    _dir: TempDir,
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "sluice-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Sluice {
    /// Starts `sluice serve` with `--listen` and `--admin` on fresh ports
    /// plus `args` (where `{LISTEN_TLS}` becomes a third fresh port), and
    /// waits until `/readyz` answers 200.
    pub async fn serve(args: &[&str]) -> Sluice {
        // The addresses are free when chosen, but another socket may take
        // one before the proxy binds it: then it is tried again, afresh.
        for _ in 0..3 {
            let [listen, admin, tls] = free_addrs();
            let mut full: Vec<String> = vec![
                "serve".into(),
                "--listen".into(),
                listen.to_string(),
                "--admin".into(),
                admin.to_string(),
            ];
            full.extend(
                args.iter()
                    .map(|s| s.replace("{LISTEN_TLS}", &tls.to_string())),
            );
            if let Some(s) = Self::spawn(full, [listen, admin, tls], TempDir::new()).await {
                return s;
            }
        }
        panic!("three sets of free addresses were all taken before sluice could bind them");
    }

    /// Starts `sluice serve --config FILE` where FILE holds `yaml` with
    /// `{LISTEN}`, `{ADMIN}` and `{LISTEN_TLS}` replaced by fresh
    /// addresses (and `{TLS_PORT}` by the last one's port). Returns the
    /// process and the file's path, for reload tests.
    pub async fn with_config(yaml: &str) -> (Sluice, PathBuf) {
        Self::with_config_args(yaml, &[]).await
    }

    /// [`Sluice::with_config`] with flags after `--config FILE`.
    pub async fn with_config_args(yaml: &str, extra: &[&str]) -> (Sluice, PathBuf) {
        for _ in 0..3 {
            let [listen, admin, tls] = free_addrs();
            let dir = TempDir::new();
            let path = dir.0.join("sluice.yaml");
            let text = fill(yaml, listen, admin)
                .replace("{LISTEN_TLS}", &tls.to_string())
                .replace("{TLS_PORT}", &tls.port().to_string());
            std::fs::write(&path, text).unwrap();
            let mut args = vec![
                "serve".to_string(),
                "--config".into(),
                path.display().to_string(),
            ];
            args.extend(extra.iter().map(|a| a.to_string()));
            if let Some(s) = Self::spawn(args, [listen, admin, tls], dir).await {
                return (s, path);
            }
        }
        panic!("three sets of free addresses were all taken before sluice could bind them");
    }

    /// Starts the process and waits for `/readyz`. `None` when it could
    /// not bind an address (taken since it was chosen); any other early
    /// exit fails the test.
    async fn spawn(args: Vec<String>, addrs: [SocketAddr; 3], dir: TempDir) -> Option<Sluice> {
        let [listen, admin, tls] = addrs;
        let log = dir.0.join("sluice.log");
        let mut args = args;
        if args.first().is_some_and(|a| a == "serve") && hyper_only() {
            args.push("--no-fast-path".into());
        }
        let stdout = dir.0.join("stdout.log");
        let child = Command::new(sluice_bin())
            .args(&args)
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("sluice starts");
        let mut s = Sluice {
            child,
            listen,
            admin,
            tls,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = s.child.try_wait() {
                let log = s.log();
                if log.contains("Address already in use") {
                    return None;
                }
                panic!("sluice exited with {status} before it was ready:\n{log}");
            }
            if let Ok((200, _)) = get(s.admin, "/readyz").await {
                return Some(s);
            }
            assert!(
                Instant::now() < deadline,
                "sluice not ready in time:\n{}",
                s.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.listen, path)
    }

    /// What the process has logged so far.
    /// What the process wrote on stdout: the access log.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self._dir.0.join("stdout.log")).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Sends a signal (`TERM`, `HUP`, `INT`) to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit; returns its exit code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "sluice did not exit in {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process's resident memory now, and at its peak so far, in KiB
    /// (VmRSS and VmHWM).
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// The process's open file descriptors.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// A metric's value from `/metrics` (the first line starting with `series`).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = get(self.admin, "/metrics").await.ok()?;
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Sluice {
    /// A config template filled with this process's addresses.
    pub fn fill(&self, yaml: &str) -> String {
        fill(yaml, self.listen, self.admin)
            .replace("{LISTEN_TLS}", &self.tls.to_string())
            .replace("{TLS_PORT}", &self.tls.port().to_string())
    }
}

/// Replaces a file at once (write beside, then rename), as a config
/// manager would.
pub fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The routing table's generation, from `/routes`.
pub async fn generation(s: &Sluice) -> u64 {
    let (_, json) = get(s.admin, "/routes").await.unwrap();
    let line = json
        .lines()
        .find(|l| l.contains("\"generation\""))
        .expect("generation in /routes");
    line.trim()
        .trim_start_matches("\"generation\":")
        .trim_end_matches(',')
        .trim()
        .parse()
        .unwrap()
}

/// Rewrites the config file and waits until the new table serves.
pub async fn reload_to(s: &Sluice, path: &std::path::Path, text: &str) {
    let before = generation(s).await;
    replace_file(path, &fill(text, s.listen, s.admin));
    wait_until(
        "the reload to take effect",
        Duration::from_secs(10),
        || async { generation(s).await > before },
    )
    .await;
}

/// Replaces `{LISTEN}` and `{ADMIN}` in a config template.
pub fn fill(yaml: &str, listen: SocketAddr, admin: SocketAddr) -> String {
    yaml.replace("{LISTEN}", &listen.to_string())
        .replace("{ADMIN}", &admin.to_string())
}

// ------------------------------------------------------------------ clients

/// An HTTP/1.1 client with keep-alive, optionally bound to a source address.
pub fn client(source: Option<Ipv4Addr>) -> Client<HttpConnector, Body> {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    if let Some(ip) = source {
        c.set_local_address(Some(IpAddr::V4(ip)));
    }
    Client::builder(TokioExecutor::new()).build(c)
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub fn body(b: impl Into<Bytes>) -> Body {
    full(b)
}

/// One GET on a fresh connection: status and body.
pub async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let (status, _, body) = request(&client(None), addr, "GET", path, &[], empty()).await?;
    Ok((status, body))
}

/// GET `/` with Host `host` through the proxy's plain listener: status
/// and body, or status 0 and the error.
pub async fn get_host(s: &Sluice, host: &str) -> (u16, String) {
    match request(
        &client(None),
        s.listen,
        "GET",
        "/",
        &[("host", host)],
        empty(),
    )
    .await
    {
        Ok((status, _, body)) => (status, body),
        Err(e) => (0, e),
    }
}

/// GET `path` with Host `host` on `client`'s connections to `addr`:
/// status, headers, body. A failed request fails the test.
pub async fn get_as(
    client: &Client<HttpConnector, Body>,
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> (u16, http::HeaderMap, String) {
    request(client, addr, "GET", path, &[("host", host)], empty())
        .await
        .unwrap_or_else(|e| panic!("GET {host}{path}: {e}"))
}

/// An HTTP/2 client connection with prior knowledge (h2c) to `addr`: the
/// sender, and the connection's future, which resolves when it closes.
pub async fn h2c(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    impl Future<Output = hyper::Result<()>> + Send,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("an HTTP/2 handshake")
}

/// One request with a 30 s limit: status, headers, body.
pub async fn request(
    client: &Client<HttpConnector, Body>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> Result<(u16, http::HeaderMap, String), String> {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(body).map_err(|e| e.to_string())?;
    let fut = async {
        let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((
            parts.status.as_u16(),
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        ))
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .map_err(|_| "request timed out".to_string())?
}

/// Runs a command-line client (curl and friends) and returns its stdout,
/// panicking with its stderr when it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} cannot run ({e}): the test command installs it"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What [`read_until`] saw on a raw connection.
#[derive(Debug)]
pub struct Received {
    pub bytes: Vec<u8>,
    /// The peer closed the connection (or it failed).
    pub closed: bool,
    /// `limit` passed before `done` held or the connection closed.
    pub timed_out: bool,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Reads from a raw connection until `done(bytes so far)` holds, the peer
/// closes, or `limit` passes.
pub async fn read_until(
    stream: &mut tokio::net::TcpStream,
    limit: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> Received {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    let mut closed = false;
    let mut buf = [0u8; 4096];
    let finished = tokio::time::timeout(limit, async {
        while !done(&bytes) {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    closed = true;
                    break;
                }
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    Received {
        bytes,
        closed,
        timed_out: finished.is_err(),
    }
}

/// Never done: read until the peer closes (or the limit).
pub fn until_closed(_: &[u8]) -> bool {
    false
}

/// Collects lines from concurrent tasks.
pub type Shared<T> = Arc<Mutex<T>>;

/// True when the suite runs with the HTTP/1.1 fast path turned off
/// (`SLUICE_TEST_HYPER_ONLY=1`): every test then goes through hyper alone,
/// and the two runs check that both paths behave alike.
pub fn hyper_only() -> bool {
    std::env::var_os("SLUICE_TEST_HYPER_ONLY").is_some_and(|v| v == "1")
}

/// A backend speaking raw HTTP/1.1 from a script, for responses a real
/// server would not send: odd framing, trailers, malformed heads. It reads
/// each request (head and Content-Length body), records it, and writes
/// what `answer(request)` returns; the connection closes after an answer
/// whose `close` is set.
pub struct RawBackend {
    pub addr: SocketAddr,
    /// Every request received, raw, in order.
    pub requests: Shared<Vec<Vec<u8>>>,
    /// Connections accepted.
    pub conns: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

/// What a [`RawBackend`] writes back: parts written one at a time with a
/// short pause between, so the proxy sees them in separate reads.
pub struct RawAnswer {
    pub parts: Vec<Vec<u8>>,
    pub close: bool,
}

impl RawAnswer {
    pub fn whole(bytes: impl Into<Vec<u8>>) -> Self {
        RawAnswer {
            parts: vec![bytes.into()],
            close: false,
        }
    }
}

impl RawBackend {
    pub async fn start(answer: impl Fn(&[u8]) -> RawAnswer + Send + Sync + 'static) -> RawBackend {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests: Shared<Vec<Vec<u8>>> = Arc::default();
        let conns = Arc::new(AtomicUsize::new(0));
        let answer = Arc::new(answer);
        let (reqs, count) = (requests.clone(), conns.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let (reqs, answer) = (reqs.clone(), answer.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        // One whole request: head, then a Content-Length body.
                        let len = loop {
                            if let Some(n) = raw_request_len(&buf) {
                                break n;
                            }
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let req: Vec<u8> = buf.drain(..len).collect();
                        let a = answer(&req);
                        reqs.lock().unwrap().push(req);
                        for (i, part) in a.parts.iter().enumerate() {
                            if i > 0 {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            if s.write_all(part).await.is_err() {
                                return;
                            }
                        }
                        if a.close {
                            return;
                        }
                    }
                });
            }
        });
        RawBackend {
            addr,
            requests,
            conns,
            task,
        }
    }

    /// The requests received so far, as text.
    pub fn received(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The length of the first whole request in `buf` (head plus
/// Content-Length body), if it is all there.
fn raw_request_len(buf: &[u8]) -> Option<usize> {
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
    let body: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (buf.len() >= head + body).then_some(head + body)
}
