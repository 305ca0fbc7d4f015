//! ingress-nginx's `backend-protocol: GRPC` and `GRPCS` (issue 13,
//! point 1) with a real gRPC client and server (grpcio): unary calls,
//! server streaming and the server's own error statuses go through the
//! proxy unchanged, to pods that speak h2c and to pods that terminate TLS
//! themselves.

use serde_json::{json, Value};
use sluice_integration::cluster::*;
use sluice_integration::grpc::{grpc_call, GrpcServer};
use sluice_integration::kube_api::KubeApi;
use sluice_integration::tls::Ca;
use sluice_integration::*;

/// Ingress shop/shop (grpc.example.com → web:80) with `backend-protocol`.
fn grpc_ingress(protocol: &str) -> Value {
    let mut ing = ingress("shop", "shop", "sluice", "grpc.example.com", "web");
    ing["metadata"]["annotations"] =
        json!({"nginx.ingress.kubernetes.io/backend-protocol": protocol});
    ing
}

/// Waits until a call through the proxy answers as the pod does.
async fn until_served(s: &Sluice, want: &str) {
    let mut last = String::new();
    let served = tokio::time::timeout(WAIT, async {
        loop {
            last = grpc_call(s.listen, "grpc.example.com", "Say", "hello").await;
            if last == want {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        served.is_ok(),
        "still {last:?} after {WAIT:?}, not {want:?}"
    );
}

/// Unary calls, a stream of five replies and a NOT_FOUND with its details,
/// each exactly as the pod sent it.
async fn calls_pass_through(s: &Sluice, pod: &str) {
    assert_eq!(
        grpc_call(s.listen, "grpc.example.com", "Say", "again").await,
        format!("{pod}: again\n")
    );
    let streamed = grpc_call(s.listen, "grpc.example.com", "Count", "5").await;
    let want: String = (1..=5).map(|i| format!("{pod} {i}\n")).collect();
    assert_eq!(streamed, want);
    assert_eq!(
        grpc_call(s.listen, "grpc.example.com", "Say", "missing").await,
        "status NOT_FOUND no such thing\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_backends_over_h2c() {
    let api = KubeApi::start().await;
    let pod = GrpcServer::start("grpc-pod", None).await;
    shop_backend(
        &api,
        pod.addr.port(),
        vec![endpoint(pod.addr, "web-0", true, false)],
    );
    api.apply(grpc_ingress("GRPC"));
    let s = proxy(&api, &[]).await;
    until_served(&s, "grpc-pod: hello\n").await;
    calls_pass_through(&s, "grpc-pod").await;
    // Without the annotation the pod is spoken to in HTTP/1.1, which a
    // gRPC server cannot answer: the annotation is what makes it work.
    api.apply(ingress("shop", "shop", "sluice", "grpc.example.com", "web"));
    let mut last = String::new();
    let changed = tokio::time::timeout(WAIT, async {
        loop {
            last = grpc_call(s.listen, "grpc.example.com", "Say", "hello").await;
            if last.starts_with("status ") {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(changed.is_ok(), "still {last:?} without backend-protocol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcs_backends_over_tls() {
    let api = KubeApi::start().await;
    let ca = Ca::new();
    let dir = TempDir::new();
    let (cert, key) = ca.issue(&["grpc.shop.internal"]).write(&dir.0, "pod");
    let pod = GrpcServer::start("grpcs-pod", Some((&cert, &key))).await;
    shop_backend(
        &api,
        pod.addr.port(),
        vec![endpoint(pod.addr, "web-0", true, false)],
    );
    api.apply(grpc_ingress("GRPCS"));
    let s = proxy(&api, &[]).await;
    until_served(&s, "grpcs-pod: hello\n").await;
    calls_pass_through(&s, "grpcs-pod").await;
}
