//! Config churn at scale: `hosts` hosts, a steady `rate` of GETs spread
//! over them and `websockets` WebSockets open, then one change of one
//! host's routes a second for `changes` seconds, in `rounds` windows
//! that take turns with as many quiet ones (`before` seconds in all). The
//! peers:
//!
//! - `kube`: Sluice watching the tests' API server, one Ingress per host;
//!   a change adds a path to one Ingress.
//! - `file`: Sluice from a config file of the same routes; a change
//!   rewrites the file and sends SIGHUP.
//! - `nginx`: nginx with one server block per host; a change rewrites the
//!   file and reloads it (SIGHUP, what `nginx -s reload` sends), which is
//!   what ingress-nginx does on every Ingress change. Old workers drain
//!   for at most 240 s (`worker_shutdown_timeout`, ingress-nginx's value).
//!
//! The peer runs on CPU 1 with one worker; this process (client, backends,
//! API server) on CPU 0. Reported per peer: requests failed, WebSockets
//! dropped (an echo not back within 5 s, or the connection closed), p99
//! of the quiet windows ("before") and of the churn's ("during"), CPU
//! per change (first ten changes with no traffic, the CPU past the idle
//! rate; then under load, the CPU of the churn windows past the quiet
//! windows' rate, a noisier figure), and memory (PSS of the process tree).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use sluice_integration::cluster::*;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::{ms, percentile, procs, watching};

pub struct Options {
    pub hosts: usize,
    pub rate: usize,
    pub websockets: usize,
    pub changes: usize,
    pub before: Duration,
    /// The quiet time and the churn, each cut into this many windows
    /// taken in turn (quiet, churn, quiet, ...), so that what drifts on
    /// the machine over minutes (a neighbour on the VM, the page cache
    /// filling with the access log) falls on both sides alike; 1 is one
    /// quiet phase, then the churn.
    pub rounds: usize,
    pub peers: Vec<String>,
}

fn host(i: usize) -> String {
    format!("h{i}.bench.test")
}

/// The host the `k`th change touches: spread over the hosts.
fn changed_host(k: usize, hosts: usize) -> usize {
    (k * 7919) % hosts
}

/// A peer under churn.
enum Peer {
    Kube {
        api: KubeApi,
        s: Sluice,
    },
    File {
        s: Sluice,
        path: PathBuf,
    },
    Nginx {
        child: Child,
        conf: PathBuf,
        addr: SocketAddr,
        _dir: TempDir,
    },
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Peer::Nginx { child, .. } = self {
            // The master stops its workers, old ones included, on QUIT/TERM.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// The routes of every peer: each host `/` to the pods, plus the path the
/// last change gave it, `/churn-K`.
#[derive(Clone)]
struct Routes {
    hosts: usize,
    pods: Vec<SocketAddr>,
    extra: BTreeMap<usize, usize>,
}

impl Routes {
    fn ingress(&self, i: usize) -> serde_json::Value {
        let mut ing = ingress("bench", &format!("web-{i}"), "sluice", &host(i), "web");
        if let Some(k) = self.extra.get(&i) {
            let paths = &mut ing["spec"]["rules"][0]["http"]["paths"];
            let extra = json!({"path": format!("/churn-{k}"), "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}});
            paths.as_array_mut().unwrap().push(extra);
        }
        ing
    }

    fn sluice_yaml(&self) -> String {
        let backends = self
            .pods
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mut y = String::from(
            "listen: [\"{LISTEN}\"]\nadmin: \"{ADMIN}\"\nreload_interval: 1h\nroutes:\n",
        );
        for i in 0..self.hosts {
            y += &format!(
                "  - host: {}\n    path: /\n    backends: [{backends}]\n",
                host(i)
            );
            if let Some(k) = self.extra.get(&i) {
                y += &format!(
                    "  - host: {}\n    path: /churn-{k}\n    backends: [{backends}]\n",
                    host(i)
                );
            }
        }
        y
    }

    fn nginx_conf(&self, dir: &std::path::Path, listen: SocketAddr) -> String {
        let d = dir.display();
        let servers: String = self.pods.iter().map(|p| format!("server {p}; ")).collect();
        let location = |path: &str| {
            format!(
                "location {path} {{ proxy_pass http://pool; proxy_http_version 1.1; \
                 proxy_set_header Host $host; proxy_set_header Upgrade $http_upgrade; \
                 proxy_set_header Connection $connection_upgrade; proxy_read_timeout 3600s; }}\n"
            )
        };
        let mut c = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx.err warn;\n\
             worker_shutdown_timeout 240s;\nevents {{ worker_connections 20000; }}\nhttp {{\n\
             access_log off;\nkeepalive_requests 100000000;\nkeepalive_timeout 300s;\n\
             server_names_hash_max_size 4096;\nserver_names_hash_bucket_size 128;\n\
             client_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
             map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}\n\
             upstream pool {{ {servers}keepalive 128; keepalive_requests 100000000; keepalive_timeout 300s; }}\n\
             server {{ listen {listen} default_server backlog=4096; return 404; }}\n"
        );
        for i in 0..self.hosts {
            c += &format!("server {{ listen {listen}; server_name {};\n", host(i));
            c += &location("/");
            if let Some(k) = self.extra.get(&i) {
                c += &location(&format!("/churn-{k}"));
            }
            c += "}\n";
        }
        c + "}\n"
    }
}

impl Peer {
    async fn start(name: &str, routes: &Routes, port: u16) -> Peer {
        match name {
            "kube" => {
                let api = KubeApi::start().await;
                api.apply(ingress_class());
                api.apply(service("bench", "web"));
                let eps = routes
                    .pods
                    .iter()
                    .enumerate()
                    .map(|(i, p)| endpoint(*p, &format!("pod-{i}"), true, false))
                    .collect();
                api.apply(slice("bench", "web-a", "web", port, eps));
                for i in 0..routes.hosts {
                    api.apply(routes.ingress(i));
                }
                let s = watching(&api, &["--workers", "1"]).await;
                procs::pin(s.child.id(), "1");
                Peer::Kube { api, s }
            }
            "file" => {
                let (s, path) =
                    Sluice::with_config_args(&routes.sluice_yaml(), &["--workers", "1"]).await;
                procs::pin(s.child.id(), "1");
                Peer::File { s, path }
            }
            "nginx" => {
                let dir = TempDir::new();
                let addr = free_addr();
                let conf = dir.0.join("nginx.conf");
                std::fs::write(&conf, routes.nginx_conf(&dir.0, addr)).unwrap();
                let child = Command::new("taskset")
                    .args(["-c", "1", "nginx", "-p"])
                    .arg(&dir.0)
                    .arg("-c")
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("nginx runs (apt-get install nginx)");
                Peer::Nginx {
                    child,
                    conf,
                    addr,
                    _dir: dir,
                }
            }
            other => panic!("unknown peer {other}: kube, file or nginx"),
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Peer::Kube { s, .. } | Peer::File { s, .. } => s.child.id(),
            Peer::Nginx { child, .. } => child.id(),
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Peer::Kube { s, .. } | Peer::File { s, .. } => s.listen,
            Peer::Nginx { addr, .. } => *addr,
        }
    }

    /// Applies `routes` after its change to host `i`.
    ///
    /// A file is written and signalled from a blocking thread, with a
    /// `kill` system call: made on the client's runtime, the text of 1,000
    /// routes, its write and the fork of `kill(1)` held up the load
    /// generator a few milliseconds each second, and the requests it was
    /// timing counted that against the peer (the file peer's p99 during
    /// the churn was 2.4 ms in every run, whatever the proxy did).
    async fn change(&self, routes: &Routes, i: usize) {
        use rustix::process::{kill_process, Pid, Signal};
        let hup = |pid: u32| {
            let pid = Pid::from_raw(pid as i32).expect("a child's pid");
            kill_process(pid, Signal::HUP).expect("SIGHUP sent");
        };
        let routes = routes.clone();
        let job: Box<dyn FnOnce() + Send> = match self {
            Peer::Kube { api, .. } => {
                api.apply(routes.ingress(i));
                return;
            }
            Peer::File { s, path } => {
                let (fill, path, pid) = (s.filler(), path.clone(), s.child.id());
                Box::new(move || {
                    replace_file(&path, &fill(&routes.sluice_yaml()));
                    hup(pid);
                })
            }
            Peer::Nginx {
                child, conf, addr, ..
            } => {
                let (conf, addr, pid) = (conf.clone(), *addr, child.id());
                Box::new(move || {
                    let dir = conf.parent().unwrap();
                    replace_file(&conf, &routes.nginx_conf(dir, addr));
                    hup(pid);
                })
            }
        };
        tokio::task::spawn_blocking(job).await.unwrap();
    }
}

/// What the client saw in one phase (0: before the churn, 1: during).
#[derive(Default)]
struct Phase {
    latencies: Mutex<Vec<Duration>>,
    failed: AtomicUsize,
    errors: Mutex<Vec<String>>,
    peak_pss: AtomicUsize,
}

#[derive(Default)]
struct Seen {
    /// 0: warming up (not counted), 1: before, 2: during the churn.
    phase: AtomicUsize,
    phases: [Phase; 2],
    ws_open: AtomicUsize,
    ws_dropped: AtomicUsize,
}

impl Seen {
    fn phase(&self) -> Option<&Phase> {
        match self.phase.load(Ordering::Relaxed) {
            1 => Some(&self.phases[0]),
            2 => Some(&self.phases[1]),
            _ => None,
        }
    }

    fn fail(&self, e: String) {
        if let Some(p) = self.phase() {
            p.failed.fetch_add(1, Ordering::Relaxed);
            let mut errors = p.errors.lock().unwrap();
            if errors.len() < 5 {
                errors.push(e);
            }
        }
    }
}

struct Row {
    peer: String,
    requests: [usize; 2],
    failed: [usize; 2],
    errors: Vec<String>,
    ws_open: usize,
    ws_dropped: usize,
    p99: [Duration; 2],
    cpu_per_change: f64,
    quiet_cpu_per_change: f64,
    cpu_before: f64,
    pss: [f64; 2],
    processes: usize,
}

pub async fn run(o: Options) {
    procs::pin(std::process::id(), "0");
    let (pods, port) = pods(3, "pod").await;
    let mut rows = Vec::new();
    for name in &o.peers {
        let mut routes = Routes {
            hosts: o.hosts,
            pods: pods.iter().map(|p| p.addr).collect(),
            extra: BTreeMap::new(),
        };
        eprintln!("{name}: {} hosts", o.hosts);
        let peer = Peer::start(name, &routes, port).await;
        let addr = peer.addr();
        wait_until("every host to answer", Duration::from_secs(120), || async {
            let c = client(None);
            for i in [0, o.hosts / 2, o.hosts - 1] {
                let h = host(i);
                match request(&c, addr, "GET", "/", &[("host", &h)], empty()).await {
                    Ok((200, _, _)) => {}
                    _ => return false,
                }
            }
            true
        })
        .await;
        rows.push(measure(name, &peer, &mut routes, &o).await);
    }
    report(&rows, &o);
}

/// Changes made with no traffic, to time what a change alone costs.
const QUIET_CHANGES: usize = 10;

/// Applies change `k` to `peer`.
async fn change(peer: &Peer, routes: &mut Routes, k: usize) {
    let i = changed_host(k, routes.hosts);
    routes.extra.insert(i, k);
    peer.change(routes, i).await;
}

/// CPU seconds per change with no traffic: the rate before subtracted.
async fn quiet_cpu_per_change(peer: &Peer, routes: &mut Routes) -> f64 {
    let pid = peer.pid();
    let (c0, t0) = (procs::cpu_seconds(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (c1, t1) = (procs::cpu_seconds(pid), Instant::now());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for k in 0..QUIET_CHANGES {
        tick.tick().await;
        change(peer, routes, k).await;
    }
    tick.tick().await;
    let (c2, t2) = (procs::cpu_seconds(pid), Instant::now());
    let idle = (c1 - c0) / (t1 - t0).as_secs_f64();
    ((c2 - c1) - idle * (t2 - t1).as_secs_f64()) / QUIET_CHANGES as f64
}

async fn measure(name: &str, peer: &Peer, routes: &mut Routes, o: &Options) -> Row {
    let quiet = quiet_cpu_per_change(peer, routes).await;
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let addr = peer.addr();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(load(addr, o.rate, o.hosts, seen.clone(), stop.clone()));
    for j in 0..o.websockets {
        tasks.spawn(websocket(
            addr,
            host(j % o.hosts),
            seen.clone(),
            stop.clone(),
        ));
    }
    let pid = peer.pid();
    tasks.spawn({
        let (seen, stop) = (seen.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                // Reading /proc for the process tree and its smaps takes
                // milliseconds: on a blocking thread, not on the runtime
                // that times the requests.
                let kib = tokio::task::spawn_blocking(move || procs::pss_kib(pid))
                    .await
                    .unwrap_or(0) as usize;
                if let Some(p) = seen.phase() {
                    p.peak_pss.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    // Warm-up: connections, pools, every WebSocket open.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ws_open = seen.ws_open.load(Ordering::Relaxed);
    // Quiet and churn windows in turn; the CPU of each kind summed.
    let rounds = o.rounds.max(1);
    let (mut quiet_cpu, mut quiet_time) = (0.0, Duration::ZERO);
    let (mut churn_cpu, mut churn_time) = (0.0, Duration::ZERO);
    let mut k = QUIET_CHANGES;
    for round in 0..rounds {
        let c0 = procs::cpu_seconds(pid);
        let t0 = Instant::now();
        seen.phase.store(1, Ordering::Relaxed);
        tokio::time::sleep(o.before / rounds as u32).await;
        let c1 = procs::cpu_seconds(pid);
        let t1 = Instant::now();
        quiet_cpu += c1 - c0;
        quiet_time += t1 - t0;
        seen.phase.store(2, Ordering::Relaxed);
        // This window's share of the changes, one a second.
        let share = o.changes * (round + 1) / rounds - o.changes * round / rounds;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for _ in 0..share {
            tick.tick().await;
            change(peer, routes, k).await;
            k += 1;
        }
        tick.tick().await;
        churn_cpu += procs::cpu_seconds(pid) - c1;
        churn_time += t1.elapsed();
    }
    let processes = procs::tree(pid).len();
    seen.phase.store(0, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}

    let before_rate = quiet_cpu / quiet_time.as_secs_f64();
    let extra = churn_cpu - before_rate * churn_time.as_secs_f64();
    let summary = |p: &Phase| {
        let mut l = std::mem::take(&mut *p.latencies.lock().unwrap());
        l.sort();
        (l.len(), percentile(&l, 99))
    };
    let (n0, p0) = summary(&seen.phases[0]);
    let (n1, p1) = summary(&seen.phases[1]);
    let mut errors = seen.phases[0].errors.lock().unwrap().clone();
    errors.extend(seen.phases[1].errors.lock().unwrap().iter().cloned());
    Row {
        peer: name.to_owned(),
        requests: [n0, n1],
        failed: [0, 1].map(|i| seen.phases[i].failed.load(Ordering::Relaxed)),
        errors,
        ws_open,
        ws_dropped: seen.ws_dropped.load(Ordering::Relaxed),
        p99: [p0, p1],
        cpu_per_change: extra / o.changes.max(1) as f64,
        quiet_cpu_per_change: quiet,
        cpu_before: before_rate,
        pss: [0, 1].map(|i| seen.phases[i].peak_pss.load(Ordering::Relaxed) as f64 / 1024.0),
        processes,
    }
}

/// GETs at `rate` a second, open loop, over the hosts in turn, on one
/// keep-alive pool.
async fn load(addr: SocketAddr, rate: usize, hosts: usize, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    let c = client(None);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    // Bounded in time whatever the options say.
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut inflight = tokio::task::JoinSet::new();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        tick.tick().await;
        n += 1;
        let h = host(n % hosts);
        let (c, seen) = (c.clone(), seen.clone());
        inflight.spawn(async move {
            let t = Instant::now();
            let r = request(&c, addr, "GET", "/", &[("host", &h)], empty()).await;
            match r {
                Ok((200, _, _)) => {
                    if let Some(p) = seen.phase() {
                        p.latencies.lock().unwrap().push(t.elapsed());
                    }
                }
                Ok((status, _, body)) => seen.fail(format!("{status} {}", body.trim())),
                Err(e) => seen.fail(e),
            }
        });
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
}

/// One WebSocket to `/ws` on `host`, echoing a message a second until
/// stopped; a missed echo or a closed connection counts as dropped.
async fn websocket(addr: SocketAddr, host: String, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut().insert("host", host.parse().unwrap());
    let Ok((mut ws, _)) = tokio_tungstenite::client_async(req, tcp).await else {
        return;
    };
    seen.ws_open.fetch_add(1, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        n += 1;
        let text = n.to_string();
        let echoed = async {
            ws.send(Message::text(text.clone())).await.ok()?;
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.as_str() == text => Some(()),
                _ => None,
            }
        };
        if echoed.await.is_none() {
            seen.ws_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    let _ = ws.close(None).await;
}

fn report(rows: &[Row], o: &Options) {
    println!(
        "## Config churn: {} hosts, {} GET/s over them, {} WebSockets, one change a second for {} s, {} s quiet before; in {} rounds of quiet then churn",
        o.hosts, o.rate, o.websockets, o.changes, o.before.as_secs(), o.rounds.max(1)
    );
    println!();
    println!(
        "| peer | requests (before / during) | failed | WebSockets dropped | p99 before | p99 during | during ÷ before | CPU per change, no traffic | CPU per change, under load | CPU before (cores) | memory before → peak | processes at the end |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} / {} | {} / {} | {} of {} | {} | {} | ×{:.2} | {:.1} ms | {:.1} ms | {:.2} | {:.1} → {:.1} MiB | {} |",
            r.peer,
            r.requests[0],
            r.requests[1],
            r.failed[0],
            r.failed[1],
            r.ws_dropped,
            r.ws_open,
            ms(r.p99[0]),
            ms(r.p99[1]),
            r.p99[1].as_secs_f64() / r.p99[0].as_secs_f64().max(1e-9),
            r.quiet_cpu_per_change * 1e3,
            r.cpu_per_change * 1e3,
            r.cpu_before,
            r.pss[0],
            r.pss[1],
            r.processes
        );
    }
    for r in rows.iter().filter(|r| !r.errors.is_empty()) {
        println!();
        println!("{} failures, the first few: {:?}", r.peer, r.errors);
    }
}
