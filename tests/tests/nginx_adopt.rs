//! Taking over a cluster from ingress-nginx unchanged (issue 13, point 7):
//! with `--adopt-ingress-nginx`, sluice serves IngressClass `nginx`
//! (controller `k8s.io/ingress-nginx`) and the old class annotation,
//! leaves other controllers' classes alone, and answers what no rule
//! matches from `--default-backend-service`. The manifests are
//! `tests/corpus/ingress-nginx/adopt.yaml`.

use sluice_integration::cluster::*;
use sluice_integration::corpus::manifests;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_nginx_classes_are_served_as_they_are() {
    let api = KubeApi::start().await;
    let web = Backend::start("web").await;
    let fallback = Backend::start("fallback").await;
    let vars = [
        ("PORT", web.addr.port().to_string()),
        ("FALLBACK_PORT", fallback.addr.port().to_string()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for m in manifests("ingress-nginx/adopt.yaml", &vars) {
        api.apply(m);
    }
    let s = proxy(
        &api,
        &[
            "--adopt-ingress-nginx",
            "--default-backend-service",
            "ingress-nginx/ingress-nginx-defaultbackend",
        ],
    )
    .await;
    wait_until("the nginx-class Ingress to route", WAIT, || async {
        get_host(&s, "shop.example.com").await == (200, "web\n".into())
    })
    .await;
    assert_eq!(
        get_host(&s, "legacy.example.com").await,
        (200, "web\n".into())
    );
    // Another controller's class, and a host no rule names: the default
    // backend answers both, as ingress-nginx's does.
    assert_eq!(
        get_host(&s, "theirs.example.com").await,
        (200, "fallback\n".into())
    );
    assert_eq!(
        get_host(&s, "nobody.example.com").await,
        (200, "fallback\n".into())
    );
    assert_eq!(web.hits(), 2);
}

/// Without the flag, ingress-nginx's class is another controller's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_ingress_nginx_classes_are_left_alone() {
    let api = KubeApi::start().await;
    let web = Backend::start("web").await;
    let vars = [
        ("PORT", web.addr.port().to_string()),
        ("FALLBACK_PORT", "1".into()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for m in manifests("ingress-nginx/adopt.yaml", &vars) {
        api.apply(m);
    }
    api.apply(ingress_class());
    api.apply(ingress("shop", "ours", "sluice", "ours.example.com", "web"));
    let s = proxy(&api, &[]).await;
    wait_until("our own Ingress to route", WAIT, || async {
        get_host(&s, "ours.example.com").await.0 == 200
    })
    .await;
    assert_eq!(get_host(&s, "shop.example.com").await.0, 404);
    assert_eq!(get_host(&s, "legacy.example.com").await.0, 404);
}
