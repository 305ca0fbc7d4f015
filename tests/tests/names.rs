//! Backends given by DNS name, as nginx and HAProxy users write them:
//! resolved at start and on reload, each address an endpoint keyed by its
//! name. Only `localhost` is resolved here (from /etc/hosts: no query
//! leaves the machine); the refresh logic is tested beside the code with
//! given answers.

use std::time::Duration;

use sluice_integration::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_by_name_resolve_at_start_and_on_reload() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let by_name = |backend: &Backend| format!("localhost:{}", backend.addr.port());

    // The quick form.
    let s = Sluice::serve(&["--backend", &by_name(&a)]).await;
    assert_eq!(get(s.listen, "/").await.unwrap(), (200, "a\n".to_owned()));
    let (_, routes) = get(s.admin, "/routes").await.unwrap();
    assert!(
        routes.contains(&format!("localhost:{}#127.0.0.1", a.addr.port())),
        "{routes}"
    );

    // A file, then an edit that adds a second name.
    let config = |names: &[String]| {
        format!(
            "listen: {{LISTEN}}\nadmin: {{ADMIN}}\nreload_interval: 100ms\nroutes:\n  - name: web\n    backends: [{}]\n",
            names.join(", ")
        )
    };
    let (s, path) = Sluice::with_config(&config(&[by_name(&a)])).await;
    assert_eq!(get(s.listen, "/").await.unwrap().0, 200);
    std::fs::write(
        &path,
        s.fill(&config(&[by_name(&a), format!("{}=2", by_name(&b))])),
    )
    .unwrap();
    wait_until(
        "b to serve by its name",
        Duration::from_secs(30),
        || async {
            get(s.listen, "/")
                .await
                .is_ok_and(|(_, body)| body.trim() == "b")
        },
    )
    .await;
}

#[test]
fn a_malformed_name_is_refused_at_its_field() {
    let out = std::process::Command::new(sluice_bin())
        .args(["serve", "--backend", "bad_host!:80"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Parsed by clap: its usage error, and its exit code.
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("invalid value 'bad_host!:80' for '--backend")
            && err.contains("is not an IP:PORT address or a HOST:PORT name"),
        "{err}"
    );
}
