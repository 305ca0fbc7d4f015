//! `sluice migrate` (issue 13, point 8) as a user runs it: over the
//! ingress-nginx manifests of the test corpus, and over the Ingresses of a
//! cluster (the tests' API server), as text and as JSON, with its exit
//! code saying whether anything would serve differently.

use std::process::{Command, Output};

use serde_json::Value;
use sluice_integration::corpus::manifests;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;

fn migrate(args: &[&str]) -> Output {
    Command::new(sluice_bin())
        .arg("migrate")
        .args(args)
        .output()
        .expect("sluice runs")
}

fn corpus(file: &str) -> String {
    workspace_root()
        .join("tests/corpus/ingress-nginx")
        .join(file)
        .display()
        .to_string()
}

/// The verdict `migrate -o json` gave `annotation` on `ingress`.
fn verdict<'a>(report: &'a Value, ingress: &str, annotation: &str) -> &'a str {
    report["ingresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ingress"] == ingress)
        .unwrap_or_else(|| panic!("{ingress} not in {report:#}"))["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["annotation"] == annotation)
        .unwrap_or_else(|| panic!("{annotation} not on {ingress}"))["verdict"]
        .as_str()
        .unwrap()
}

#[test]
fn files_are_assessed_annotation_by_annotation() {
    // Every Ingress of the passthrough corpus is served as written.
    let out = migrate(&["-f", &corpus("passthrough.yaml")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("0 would serve differently"), "{text}");

    // The paths corpus holds a redirect code sluice refuses on purpose.
    let out = migrate(&[
        "-f",
        &corpus("paths.yaml"),
        "-f",
        &corpus("access.yaml"),
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["changes_behaviour"], true);
    assert_eq!(
        verdict(&report, "shop/rewrite", "rewrite-target"),
        "supported"
    );
    assert_eq!(verdict(&report, "shop/staff", "auth-type"), "supported");
    assert_eq!(
        verdict(&report, "shop/broken-list", "whitelist-source-range"),
        "invalid"
    );
    let ingresses = report["ingresses"].as_array().unwrap().len();
    let ports = ["ONE_PORT", "TWO_PORT", "THREE_PORT", "API_PORT", "WEB_PORT"].map(|p| (p, "1"));
    let written = manifests("ingress-nginx/paths.yaml", &ports)
        .iter()
        .chain(manifests("ingress-nginx/access.yaml", &[("PORT", "1")]).iter())
        .filter(|m| m["kind"] == "Ingress")
        .count();
    assert_eq!(ingresses, written, "every Ingress is reported, once");

    // A file that cannot be read says which, with the config exit code.
    let out = migrate(&["-f", "/nonexistent/ingresses.yaml"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ingresses.yaml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clusters_ingresses_are_read_when_no_file_is_given() {
    let api = KubeApi::start().await;
    for m in manifests("ingress-nginx/access.yaml", &[("PORT", "1")]) {
        api.apply(m);
    }
    api.apply(serde_json::json!({"kind": "ConfigMap",
        "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"},
        "data": {"proxy-body-size": "8m", "worker-processes": "4", "use-gzip": "true"}}));
    let kubeconfig = api.kubeconfig().display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        migrate(&[
            "--kubeconfig",
            &kubeconfig,
            "--namespace",
            "shop",
            "--configmap",
            "ingress-nginx/ingress-nginx-controller",
        ])
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("shop/staff"), "{text}");
    assert!(
        text.contains("supported   auth-realm: the realm of basic authentication's challenge"),
        "{text}"
    );
    assert!(
        text.contains("6 Ingress(es), 1 would serve differently"),
        "{text}"
    );
    // The controller ConfigMap, key by key.
    assert!(
        text.contains("configmap ingress-nginx/ingress-nginx-controller"),
        "{text}"
    );
    assert!(
        text.contains("supported   proxy-body-size: applied with `--configmap`"),
        "{text}"
    );
    assert!(text.contains("tuning      worker-processes"), "{text}");
    assert!(
        text.contains("unsupported use-gzip: not read by sluice"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(3));
}
