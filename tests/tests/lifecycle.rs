//! Reload, shutdown, the admin listener and the commands around `serve`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_integration::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn one_route(backends: &[&Backend], strategy: &str, extra: &str) -> String {
    let list: Vec<String> = backends.iter().map(|b| b.addr.to_string()).collect();
    format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\n{extra}routes:\n  - name: main\n    strategy: {strategy}\n    backends: [{}]\n",
        list.join(", ")
    )
}

/// Replaces the file the way editors and ConfigMaps do: write aside, rename over.
/// Twenty reloads while four clients send requests non-stop: not one fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_load_lose_no_request() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let c = Backend::start("c").await;
    let extra = "reload_interval: 50ms\n";
    let (s, path) = Sluice::with_config(&one_route(&[&a], "round-robin", extra)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed: Shared<Vec<String>> = Default::default();
    let listen = s.listen;
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                let c = client(None);
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    // Half the workers use fresh connections, half keep-alive.
                    let r = if i % 2 == 0 {
                        request(&c, listen, "GET", "/", &[], empty()).await
                    } else {
                        request(&client(None), listen, "GET", "/", &[], empty()).await
                    };
                    match r {
                        Ok((200, _, _)) => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        other => failed.lock().unwrap().push(format!("{other:?}")),
                    }
                }
            })
        })
        .collect();
    let sets: [(&[&Backend], &str); 4] = [
        (&[&a, &b], "round-robin"),
        (&[&b, &c], "weighted"),
        (&[&c], "ip-hash"),
        (&[&a, &b, &c], "least-request"),
    ];
    for i in 0..20 {
        let (set, strategy) = sets[i % sets.len()];
        reload_to(&s, &path, &one_route(set, strategy, extra)).await;
        // Requests went through on this table before the next swap.
        let seen = ok.load(Ordering::SeqCst);
        wait_until("requests after the reload", Duration::from_secs(30), || {
            let moved = ok.load(Ordering::SeqCst) > seen;
            async move { moved }
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let failed = std::mem::take(&mut *failed.lock().unwrap());
    assert!(
        failed.is_empty(),
        "{} failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(
        s.metric("sluice_config_reloads_total{result=\"success\"}")
            .await,
        Some(20.0)
    );
    // The last set (a, b, c) is live: all three answer.
    let seen: std::collections::HashSet<String> = {
        let c = client(None);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..60 {
            let (_, _, body) = request(&c, listen, "GET", "/", &[], empty()).await.unwrap();
            seen.insert(body.trim().to_owned());
        }
        seen
    };
    assert_eq!(seen.len(), 3, "{seen:?}");
}

/// A bad edit is refused with the field named; the old routes keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_is_refused_and_old_routes_serve() {
    let a = Backend::start("a").await;
    let extra = "reload_interval: 50ms\n";
    let (s, path) = Sluice::with_config(&one_route(&[&a], "round-robin", extra)).await;
    let gen = generation(&s).await;
    let bad = one_route(&[&a], "fastest", extra).replace("backends: [", "backends: [nowhere, ");
    replace_file(&path, &s.fill(&bad));
    wait_until(
        "the refusal to be counted",
        Duration::from_secs(10),
        || async {
            s.metric("sluice_config_reloads_total{result=\"error\"}")
                .await
                == Some(1.0)
        },
    )
    .await;
    let log = s.log();
    assert!(log.contains("routes[0].strategy"), "{log}");
    assert!(log.contains("routes[0].backends[0]"), "{log}");
    assert_eq!(generation(&s).await, gen);
    let (status, body) = get(s.listen, "/").await.unwrap();
    assert_eq!((status, body.trim()), (200, "a"));
    // Unparseable YAML is refused too.
    replace_file(&path, "routes: [ {{{");
    wait_until("the second refusal", Duration::from_secs(10), || async {
        s.metric("sluice_config_reloads_total{result=\"error\"}")
            .await
            == Some(2.0)
    })
    .await;
    assert_eq!(get(s.listen, "/").await.unwrap().0, 200);
}

/// SIGHUP reloads at once, without waiting for the change check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let extra = "reload_interval: 1h\n";
    let (s, path) = Sluice::with_config(&one_route(&[&a], "round-robin", extra)).await;
    assert_eq!(get(s.listen, "/").await.unwrap().1.trim(), "a");
    replace_file(&path, &s.fill(&one_route(&[&b], "round-robin", extra)));
    s.signal("HUP");
    wait_until("traffic to move to b", Duration::from_secs(10), || async {
        get(s.listen, "/")
            .await
            .map(|r| r.1.trim() == "b")
            .unwrap_or(false)
    })
    .await;
}

/// Flags given with `--config` (here `--listen`, `--admin` and
/// `--shutdown-delay`) hold across reloads: the reloaded config is the file's
/// with the flags over it, so nothing is dropped and no restart is asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_line_flags_hold_across_reloads() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let dir = TempDir::new();
    let path = dir.0.join("sluice.yaml");
    let file = |backend: &Backend| {
        format!(
            "listen: [127.0.0.1:1]\nreload_interval: 100ms\nroutes:\n  - backends: [{}]\n",
            backend.addr
        )
    };
    std::fs::write(&path, file(&a)).unwrap();
    let p = path.display().to_string();
    let s = Sluice::serve(&["--config", &p, "--shutdown-delay", "1s"]).await;
    assert_eq!(get(s.listen, "/").await.unwrap().1.trim(), "a");
    replace_file(&path, &file(&b));
    wait_until("traffic to move to b", Duration::from_secs(10), || async {
        get(s.listen, "/").await.is_ok_and(|r| r.1.trim() == "b")
    })
    .await;
    let log = s.log();
    assert!(log.contains("config reloaded"), "{log}");
    assert!(!log.contains("only after a restart"), "{log}");
}

/// SIGTERM: new connections are refused, a slow in-flight request still
/// completes, the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let a = Backend::start("a").await;
    let mut s = Sluice::serve(&["--backend", &a.addr.to_string()]).await;
    let listen = s.listen;
    let slow = tokio::spawn(async move {
        request(&client(None), listen, "GET", "/sleep/1500", &[], empty()).await
    });
    wait_until(
        "the slow request to reach the backend",
        Duration::from_secs(5),
        || async { a.active.load(Ordering::SeqCst) == 1 },
    )
    .await;
    // An idle keep-alive connection: one request answered, then quiet.
    let mut idle = tokio::net::TcpStream::connect(listen).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    s.signal("TERM");
    // Idle keep-alives are closed at once, while the slow request still runs.
    let closed = tokio::time::timeout(Duration::from_secs(1), idle.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "idle connection not closed: {closed:?}"
    );
    assert_eq!(
        a.active.load(Ordering::SeqCst),
        1,
        "the slow request should still be in flight"
    );
    wait_until("the listener to close", Duration::from_secs(5), || async {
        tokio::net::TcpStream::connect(listen).await.is_err()
    })
    .await;
    let (status, _, body) = slow.await.unwrap().unwrap();
    assert_eq!((status, body.trim()), (200, "a"));
    assert_eq!(s.wait_exit(Duration::from_secs(10)).await, Some(0));
    assert!(s.log().contains("SIGTERM"));
}

/// Past `drain_timeout`, a request still in flight is cut: its connection
/// is closed, the log says how many were left, and the process exits,
/// long before the request would have ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_drain_timeout_open_connections_are_closed() {
    let a = Backend::start("a").await;
    let (mut s, _) = Sluice::with_config(&format!(
        "listen: {{LISTEN}}\nadmin: {{ADMIN}}\ndrain_timeout: 1s\nroutes:\n  - backends: [{}]\n",
        a.addr
    ))
    .await;
    let listen = s.listen;
    let began = Instant::now();
    let slow = tokio::spawn(async move {
        request(&client(None), listen, "GET", "/sleep/60000", &[], empty()).await
    });
    wait_until(
        "the slow request to reach the backend",
        Duration::from_secs(5),
        || async { a.active.load(Ordering::SeqCst) == 1 },
    )
    .await;
    s.signal("TERM");
    assert_eq!(s.wait_exit(Duration::from_secs(20)).await, Some(0));
    let answer = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .expect("the client's connection was closed")
        .unwrap();
    assert!(answer.is_err(), "the cut request was answered: {answer:?}");
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "the process outlived its drain: {:?}",
        began.elapsed()
    );
    assert!(
        s.log()
            .contains("drain timeout passed with connections still open"),
        "{}",
        s.log()
    );
}

/// The admin port answers health, readiness, metrics and the table; the
/// traffic port never serves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let s = Sluice::serve(&[
        "--backend",
        &a.addr.to_string(),
        "--backend",
        &format!("{}=3", b.addr),
        "--strategy",
        "weighted",
    ])
    .await;
    assert_eq!(
        get(s.admin, "/healthz").await.unwrap(),
        (200, "ok\n".into())
    );
    assert_eq!(
        get(s.admin, "/readyz").await.unwrap(),
        (200, "ready\n".into())
    );
    for _ in 0..4 {
        assert_eq!(get(s.listen, "/").await.unwrap().0, 200);
    }
    let (status, metrics) = get(s.admin, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    for needle in [
        "sluice_requests_total{code=\"200\",route=\"default\"} 4",
        "sluice_request_duration_seconds_count{route=\"default\"} 4",
        "sluice_upstream_endpoints{route=\"default\",state=\"healthy\"} 2",
        "sluice_upstream_endpoints{route=\"default\",state=\"ejected\"} 0",
        "# TYPE sluice_upstream_connect_errors_total counter",
        "# TYPE sluice_config_reloads_total counter",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in:\n{metrics}");
    }
    let (status, routes) = get(s.admin, "/routes").await.unwrap();
    assert_eq!(status, 200);
    assert!(routes.contains("\"strategy\": \"weighted\""), "{routes}");
    assert!(
        routes.contains(&format!("\"address\": \"{}\"", b.addr)),
        "{routes}"
    );
    assert!(routes.contains("\"weight\": 3"), "{routes}");
    // On the traffic port, /metrics is just a path routed to a backend.
    let (status, headers, _) = request(&client(None), s.listen, "GET", "/metrics", &[], empty())
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(headers.contains_key("x-backend"));
    assert_eq!(get(s.admin, "/nothing").await.unwrap().0, 404);
}

/// `sluice check` passes the example file and names every bad field.
#[test]
fn check_names_every_bad_field() {
    let bin = sluice_bin();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let ok = std::process::Command::new(&bin)
        .args(["check", "--config"])
        .arg(root.join("examples/sluice.yaml"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dir = TempDir::new();
    let bad = dir.0.join("bad.yaml");
    std::fs::write(
        &bad,
        "listen: [127.0.0.1:80800]\nroutes:\n  - path: nope\n    strategy: random\n    backends: [127.0.0.1:1=0]\n",
    )
    .unwrap();
    let out = std::process::Command::new(&bin)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    for field in [
        "listen[0]",
        "routes[0].path",
        "routes[0].strategy",
        "routes[0].backends[0].weight",
    ] {
        assert!(
            err.lines().any(|l| l.contains(&format!(": {field}: "))),
            "{field} not in:\n{err}"
        );
    }
    let missing = std::process::Command::new(&bin)
        .args(["check", "--config", "/nonexistent/sluice.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(3));
}

/// Three consecutive free ports for the demo's backends.
fn free_run_of_three() -> u16 {
    for _ in 0..200 {
        let p = 20_000 + fastrand_u16() % 40_000;
        if (0..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok()) {
            return p;
        }
    }
    panic!("no three consecutive free ports");
}

fn fastrand_u16() -> u16 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 65_521) as u16
}

/// `sluice demo` prints its commands and the weighted route answers a, a, b, a, c, a, a.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_balances_out_of_the_box() {
    let [listen, admin] = free_addrs();
    let base = free_run_of_three();
    let dir = TempDir::new();
    let out_path = dir.0.join("demo.out");
    let mut child = std::process::Command::new(sluice_bin())
        .args([
            "demo",
            "--listen",
            &listen.to_string(),
            "--admin",
            &admin.to_string(),
            "--backend-port",
            &base.to_string(),
        ])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the demo banner", Duration::from_secs(20), || async {
        std::fs::read_to_string(&out_path)
            .map(|s| s.contains("Ctrl-C"))
            .unwrap_or(false)
    })
    .await;
    let banner = std::fs::read_to_string(&out_path).unwrap();
    assert!(
        banner.contains(&format!("curl -s http://{listen}/weighted")),
        "{banner}"
    );
    let c = client(None);
    let mut seq = Vec::new();
    for _ in 0..7 {
        let (status, _, body) = request(&c, listen, "GET", "/weighted", &[], empty())
            .await
            .unwrap();
        assert_eq!(status, 200);
        seq.push(body.trim().to_owned());
    }
    assert_eq!(
        seq,
        [
            "backend-a",
            "backend-a",
            "backend-b",
            "backend-a",
            "backend-c",
            "backend-a",
            "backend-a"
        ]
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// With a shutdown delay, SIGTERM turns /readyz to 503 at once while the
/// listener keeps serving; then it closes and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delay_keeps_serving_while_not_ready() {
    let a = Backend::start("a").await;
    let mut s = Sluice::serve(&["--backend", &a.addr.to_string(), "--shutdown-delay", "5s"]).await;
    let listen = s.listen;
    let admin = s.admin;
    let start = Instant::now();
    s.signal("TERM");
    wait_until("/readyz to say 503", Duration::from_secs(4), || async {
        matches!(get(admin, "/readyz").await, Ok((503, _)))
    })
    .await;
    // Not ready, yet still serving new connections. The delay is long
    // enough that even a slow machine gets here within it.
    let (status, body) = get(listen, "/").await.unwrap();
    assert_eq!((status, body.trim()), (200, "a"));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the check came too late to mean anything"
    );
    wait_until("the listener to close", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(listen).await.is_err()
    })
    .await;
    assert!(
        start.elapsed() >= Duration::from_millis(4900),
        "closed after {:?}",
        start.elapsed()
    );
    assert_eq!(s.wait_exit(Duration::from_secs(10)).await, Some(0));
}

async fn ws_echo(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    text: &'static str,
) -> Option<tokio_tungstenite::tungstenite::Message> {
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::text(text))
        .await
        .unwrap();
    let back = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    back.ok().flatten().and_then(Result::ok)
}

/// A WebSocket open at SIGTERM keeps working through the drain, and the
/// process exits as soon as it closes (not at the drain timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_are_drained_too() {
    use tokio_tungstenite::tungstenite::Message;
    let a = Backend::start("a").await;
    let mut s = Sluice::serve(&["--backend", &a.addr.to_string()]).await;
    let tcp = tokio::net::TcpStream::connect(s.listen).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", s.listen), tcp)
        .await
        .unwrap();
    assert_eq!(
        ws_echo(&mut ws, "before").await,
        Some(Message::text("before"))
    );
    s.signal("TERM");
    wait_until("the listener to close", Duration::from_secs(5), || async {
        tokio::net::TcpStream::connect(s.listen).await.is_err()
    })
    .await;
    // The tunnel still works while draining, and holds the process up.
    assert_eq!(
        ws_echo(&mut ws, "during").await,
        Some(Message::text("during"))
    );
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "exited with a WebSocket open"
    );
    let closed_at = Instant::now();
    ws.close(None).await.unwrap();
    drop(ws);
    assert_eq!(s.wait_exit(Duration::from_secs(10)).await, Some(0));
    assert!(
        closed_at.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        closed_at.elapsed()
    );
}

/// A route removed by a reload takes its metric series with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_routes_leave_no_metrics() {
    let a = Backend::start("a").await;
    let two = format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\nreload_interval: 50ms\nroutes:\n  - {{name: keep, path: /, backends: [{0}]}}\n  - {{name: gone, path: /gone, backends: [{0}]}}\n",
        a.addr
    );
    let (s, path) = Sluice::with_config(&two).await;
    assert_eq!(get(s.listen, "/gone").await.unwrap().0, 200);
    assert_eq!(
        s.metric("sluice_requests_total{code=\"200\",route=\"gone\"}")
            .await,
        Some(1.0)
    );
    let one = format!(
        "listen: [{{LISTEN}}]\nadmin: {{ADMIN}}\nreload_interval: 50ms\nroutes:\n  - {{name: keep, path: /, backends: [{}]}}\n",
        a.addr
    );
    reload_to(&s, &path, &one).await;
    let (_, text) = get(s.admin, "/metrics").await.unwrap();
    assert!(!text.contains("route=\"gone\""), "{text}");
    assert!(text.contains("route=\"keep\""), "{text}");
}
