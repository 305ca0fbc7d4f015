//! The `sluice` command as a new user meets it: what it says when given
//! nothing, a bad flag or a bad file, and the exit code of each kind of
//! failure; `check --output json`, `version`, completions and the man page;
//! logs written for people; the addresses port-0 listeners were given, on
//! stdout; and the proxy's own error answers dated like hyper's.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sluice_integration::*;

fn sluice(args: &[&str]) -> Output {
    Command::new(sluice_bin()).args(args).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs `sluice` until it exits by itself (a failure to start must not
/// leave it serving), and gives its exit code and what it wrote to stderr.
fn exit_of(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(sluice_bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sluice {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), err)
}

#[test]
fn bad_invocations_say_what_to_do() {
    let out = sluice(&["serve"]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("nothing to serve: give --backend"), "{err}");
    assert!(err.contains("--config") && err.contains("--kube"), "{err}");

    let out = sluice(&["serve", "--workers", "0", "--backend", "127.0.0.1:1"]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("must be 1 or more"), "{err}");

    // The admin port on a wildcard beside a traffic listener of the same
    // port would serve /metrics where traffic goes.
    let port = free_addr().port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let admin = format!("0.0.0.0:{port}");
    let out = sluice(&[
        "serve",
        "--backend",
        "127.0.0.1:1",
        "--listen",
        &listen,
        "--admin",
        &admin,
    ]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "--admin {admin} overlaps the traffic listener {listen}"
        )),
        "{err}"
    );
}

/// Each kind of failure has its exit code, as `--help` and the README
/// list them: usage 2, config refused 3, cannot bind 4, Kubernetes setup 5.
#[test]
fn each_kind_of_failure_exits_with_its_code() {
    let (out, _) = text(&sluice(&["--help"]));
    assert!(
        out.contains("Exit codes:") && out.contains("4  a listener's address cannot be bound"),
        "{out}"
    );
    let (out, _) = text(&sluice(&["serve", "--help"]));
    assert!(out.contains("3  config refused"), "{out}");

    // Usage: a flag clap refuses, in clap's own words.
    let (code, err) = exit_of(&["serve", "--backend", "127.0.0.1:1=zero"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("invalid value '127.0.0.1:1=zero' for '--backend")
            && err.contains("\"zero\" is not a whole number"),
        "{err}"
    );
    let (code, err) = exit_of(&["serve", "--no-such-flag"]);
    assert_eq!(code, Some(2), "{err}");

    // Config refused: a file that does not validate, one line per problem
    // naming the file; a file that cannot be read; backends listed twice.
    let dir = TempDir::new();
    let bad = dir.0.join("bad.yaml");
    std::fs::write(
        &bad,
        "listen: 127.0.0.1:80800
routes:
  - backends: [127.0.0.1:1=0]
",
    )
    .unwrap();
    let file = bad.display().to_string();
    let (code, err) = exit_of(&["serve", "--config", &file]);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains(&format!("sluice: {file}: listen[0]: ")),
        "{err}"
    );
    assert!(
        err.contains(&format!("sluice: {file}: routes[0].backends[0].weight: ")),
        "{err}"
    );
    let (code, err) = exit_of(&["serve", "--config", "/nonexistent/sluice.yaml"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("cannot read config file"), "{err}");
    let (code, err) = exit_of(&[
        "serve",
        "--backend",
        "127.0.0.1:1",
        "--backend",
        "127.0.0.1:1",
    ]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("backend 127.0.0.1:1 is listed twice"), "{err}");

    // Config refused: a certificate it names cannot be read (before any
    // port is bound).
    let [listen, listen_tls] = free_addrs::<2>().map(|a| a.to_string());
    let (code, err) = exit_of(&[
        "serve",
        "--backend",
        "127.0.0.1:1",
        "--listen",
        &listen,
        "--listen-tls",
        &listen_tls,
        "--tls-cert",
        "/nonexistent/cert.pem",
        "--tls-key",
        "/nonexistent/key.pem",
    ]);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("tls: cannot read /nonexistent/cert.pem"),
        "{err}"
    );

    // Cannot bind: the port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = exit_of(&["serve", "--backend", "127.0.0.1:1", "--listen", &addr]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    drop(taken);

    // Kubernetes: the kubeconfig cannot be read.
    let (code, err) = exit_of(&[
        "serve",
        "--kube",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
        "--listen",
        &listen,
    ]);
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("kubernetes: kubeconfig /nonexistent/kubeconfig"),
        "{err}"
    );
}

#[test]
fn check_names_the_file_once_and_each_problem_at_its_line() {
    let dir = TempDir::new();
    let path = dir.0.join("sluice.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:8080\nretry:\n  attempts: 50\nroutes:\n  - name: a\n    backends:\n      - {address: 127.0.0.1:9001, wieght: 5}\n",
    )
    .unwrap();
    let file = path.display().to_string();
    let out = sluice(&["check", "--config", &file]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    // The schema error comes first; it alone is reported, at its key.
    assert!(
        err.contains(&format!(
            "{file}:7:35: routes[0].backends[0].wieght: unknown field `wieght`: did you mean `weight`?"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("{file}: 1 error\n")), "{err}");
    for line in err.lines() {
        assert_eq!(
            line.matches(&file).count(),
            1,
            "the file named more than once: {line}"
        );
    }

    // Fixed, the semantic error is placed at its key, without a stray dot.
    std::fs::write(
        &path,
        "listen: 127.0.0.1:8080\nretry:\n  attempts: 50\nroutes:\n  - name: a\n    backends: [127.0.0.1:9001]\n",
    )
    .unwrap();
    let out = sluice(&["check", "--config", &file, "--output", "json"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["ok"], false);
    let e = &report["errors"][0];
    assert_eq!(e["field"], "retry.attempts");
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(3), Some(3))
    );

    let example = workspace_root().join("examples/sluice.yaml");
    let out = sluice(&["check", "--config", example.to_str().unwrap(), "-o", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["routes"], 4);
}

#[test]
fn version_completions_and_man_page() {
    let (out, _) = text(&sluice(&["version"]));
    let commit = out
        .lines()
        .find_map(|l| l.strip_prefix("commit:"))
        .expect("a commit line")
        .trim()
        .to_owned();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    assert!(
        out.contains("features:") && out.contains("kubernetes-discovery"),
        "{out}"
    );
    let (v, _) = text(&sluice(&["--version"]));
    assert!(v.contains(&format!("({commit})")), "{v}");

    for (shell, mark) in [
        ("bash", "_sluice()"),
        ("zsh", "#compdef sluice"),
        ("fish", "complete -c sluice"),
    ] {
        let (out, _) = text(&sluice(&["completions", shell]));
        assert!(out.contains(mark), "{shell}: {out}");
        assert!(out.contains("serve") && out.contains("check"), "{shell}");
    }
    let (man, _) = text(&sluice(&["man"]));
    assert!(man.contains(".TH sluice 1"), "{man}");
    assert!(man.contains("serve"), "{man}");
}

/// Listeners asked for port 0 get a port from the kernel, and the process
/// says which: one line per listener on stdout, `listening on ADDR (KIND)`,
/// traffic listeners then the admin one, before any access-log line; its
/// log names the same addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_zero_listeners_print_the_addresses_they_bound() {
    let b = Backend::start("a").await;
    let s = Sluice::serve(&[
        "--backend",
        &b.addr.to_string(),
        "--listen-tls",
        "{LISTEN_TLS}",
    ])
    .await;
    let (http, https, admin) = (s.listen, s.tls(), s.admin);
    let ports = [http.port(), https.port(), admin.port()];
    assert!(!ports.contains(&0), "{ports:?}");
    assert!(
        ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2],
        "{ports:?}"
    );
    // Each address is the listener it says it is.
    assert_eq!(get(http, "/").await.unwrap(), (200, "a\n".to_owned()));
    assert_eq!(get(admin, "/healthz").await.unwrap().0, 200);
    assert!(tokio::net::TcpStream::connect(https).await.is_ok());
    wait_until("the access-log line", Duration::from_secs(10), || {
        let n = s.stdout().lines().count();
        async move { n > 3 }
    })
    .await;
    let out = s.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..3],
        [
            format!("listening on {http} (http)"),
            format!("listening on {https} (https)"),
            format!("listening on {admin} (admin)"),
        ],
        "{out}"
    );
    assert!(lines[3].contains(" GET \"/\" 200 "), "{out}");
    wait_until("the startup line", Duration::from_secs(30), || async {
        s.log().contains("sluice is serving")
    })
    .await;
    let log = s.log();
    let serving = log
        .lines()
        .find(|l| l.contains("sluice is serving"))
        .unwrap_or_else(|| panic!("{log}"));
    for want in [
        format!("listen={http}"),
        format!("listen_tls={https}"),
        format!("admin={admin}"),
    ] {
        assert!(serving.contains(&want), "{want} not in {serving}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_read_as_written_for_people_and_error_answers_are_dated() {
    let d = dead();
    let s = Sluice::serve(&["--backend", &d.addr.to_string()]).await;
    let c = client(None);
    let (status, headers, _) = request(&c, s.listen, "GET", "/", &[], empty())
        .await
        .unwrap();
    assert_eq!(status, 502);
    let date = headers
        .get("date")
        .expect("a Date header on the proxy's own answer");
    assert!(
        httpdate_like(date.to_str().unwrap()),
        "{date:?} is not an HTTP date"
    );
    // The listeners take requests as soon as they are announced, so the
    // startup line may come after this request's.
    wait_until("the startup line", Duration::from_secs(30), || async {
        s.log().contains("sluice is serving")
    })
    .await;
    let log = s.log();
    assert!(log.contains("upstream connect failed"), "{log}");
    for banned in ["Some(", "None", "[127.0.0.1"] {
        assert!(!log.contains(banned), "{banned:?} in the log:\n{log}");
    }
}

/// `Tue, 01 Dec 2026 22:13:21 GMT`.
fn httpdate_like(s: &str) -> bool {
    s.len() == 29 && s.ends_with(" GMT") && s.as_bytes()[3] == b','
}

/// `Server: sluice` on answers whose upstream sent none, the upstream's
/// own kept, and `server_header: off` removing both — on both paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_header_is_added_kept_or_removed() {
    let plain = Backend::start("plain").await;
    let gunicorn = RawBackend::start(|_| {
        RawAnswer::whole(&b"HTTP/1.1 200 OK\r\nServer: gunicorn\r\nContent-Length: 2\r\n\r\nok"[..])
    })
    .await;
    let server = |headers: &http::HeaderMap| {
        headers
            .get("server")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let c = client(None);
    let s = Sluice::serve(&["--backend", &plain.addr.to_string()]).await;
    let (_, h, _) = request(&c, s.listen, "GET", "/", &[], empty())
        .await
        .unwrap();
    assert_eq!(server(&h).as_deref(), Some("sluice"));
    let s = Sluice::serve(&["--backend", &gunicorn.addr.to_string()]).await;
    let (_, h, _) = request(&c, s.listen, "GET", "/", &[], empty())
        .await
        .unwrap();
    assert_eq!(server(&h).as_deref(), Some("gunicorn"));
    let (s, _) = Sluice::with_config(&format!(
        "listen: {{LISTEN}}\nadmin: {{ADMIN}}\nserver_header: off\nroutes:\n  - backends: [{}]\n",
        gunicorn.addr
    ))
    .await;
    let (_, h, _) = request(&c, s.listen, "GET", "/", &[], empty())
        .await
        .unwrap();
    assert_eq!(server(&h), None);
}

/// Counters an alert names exist at 0 from the first scrape; the build
/// and the process are described.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_a_dashboard_can_rely_on_exist_from_the_start() {
    let b = Backend::start("a").await;
    let s = Sluice::serve(&["--backend", &b.addr.to_string()]).await;
    let (_, metrics) = get(s.admin, "/metrics").await.unwrap();
    for series in [
        "sluice_tls_handshake_errors_total{reason=\"error\"} 0",
        "sluice_tls_handshake_errors_total{reason=\"timeout\"} 0",
        "sluice_kube_watch_errors_total{kind=\"ingress\"} 0",
        "sluice_kube_watch_errors_total{kind=\"endpointslice\"} 0",
        "sluice_config_reloads_total{result=\"error\"} 0",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
        "process_cpu_seconds_total ",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
    let info = metrics
        .lines()
        .find(|l| l.starts_with("sluice_build_info{"))
        .expect("sluice_build_info");
    assert!(
        info.contains("version=\"0.1.0\"") && info.ends_with(" 1"),
        "{info}"
    );
}

/// With `endpoint_metrics`, each endpoint has its own requests and latency;
/// an endpoint that leaves the table takes its series with it; without
/// the setting there are none (a series per pod is a cost to choose).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_metrics_are_opt_in_and_follow_the_endpoints() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let c = client(None);
    let off = Sluice::serve(&["--backend", &a.addr.to_string()]).await;
    request(&c, off.listen, "GET", "/", &[], empty())
        .await
        .unwrap();
    let (_, m) = get(off.admin, "/metrics").await.unwrap();
    assert!(!m.contains("sluice_endpoint_requests_total{"), "{m}");

    let config = |backends: &[&Backend]| {
        let list: Vec<String> = backends.iter().map(|b| b.addr.to_string()).collect();
        format!(
            "listen: {{LISTEN}}\nadmin: {{ADMIN}}\nendpoint_metrics: true\nreload_interval: 100ms\n\
             routes:\n  - name: web\n    backends: [{}]\n",
            list.join(", ")
        )
    };
    let (s, path) = Sluice::with_config(&config(&[&a, &b])).await;
    for _ in 0..4 {
        let (status, _, _) = request(&c, s.listen, "GET", "/", &[], empty())
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    let series = |b: &Backend| {
        format!(
            "sluice_endpoint_requests_total{{code=\"200\",endpoint=\"{}\",upstream=\"web\"}}",
            b.addr
        )
    };
    for backend in [&a, &b] {
        let n = s.metric(&series(backend)).await;
        assert_eq!(n, Some(2.0), "{}", series(backend));
        let count = format!(
            "sluice_endpoint_response_seconds_count{{endpoint=\"{}\",upstream=\"web\"}}",
            backend.addr
        );
        assert_eq!(s.metric(&count).await, Some(2.0), "{count}");
    }

    // b leaves: its series go with it, a's stay.
    std::fs::write(&path, s.fill(&config(&[&a]))).unwrap();
    wait_until("b's series to go", Duration::from_secs(30), || async {
        s.metric(&series(&b)).await.is_none()
    })
    .await;
    assert_eq!(s.metric(&series(&a)).await, Some(2.0));
}
