//! ingress-nginx's access annotations (issue 13, point 3) through
//! discovery with real traffic: allow- and deny-lists by the real client
//! address (a bound source address, or the one a PROXY header names), and
//! basic authentication from htpasswd Secrets (bcrypt, `$apr1$`, `{SHA}`;
//! `auth-file` and `auth-map`), read by a watch on each Secret named.
//! The manifests are `tests/corpus/ingress-nginx/access.yaml`.

use std::net::Ipv4Addr;

use base64::Engine;
use serde_json::{json, Value};
use sluice_integration::cluster::*;
use sluice_integration::corpus::manifests;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;
use tokio::io::AsyncWriteExt;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// GET / on `host` from source address `from`: status, headers.
async fn get_from(
    s: &Sluice,
    from: Ipv4Addr,
    host: &str,
    auth: Option<&str>,
) -> (u16, http::HeaderMap) {
    let mut headers = vec![("host", host)];
    let value;
    if let Some(a) = auth {
        value = format!("Basic {}", b64(a));
        headers.push(("authorization", &value));
    }
    match request(&client(Some(from)), s.listen, "GET", "/", &headers, empty()).await {
        Ok((status, h, _)) => (status, h),
        Err(e) => panic!("GET {host} from {from}: {e}"),
    }
}

/// Waits until GET `host` from 127.0.0.2 answers `status`.
async fn until(s: &Sluice, host: &str, auth: Option<&str>, status: u16) {
    let mut last = 0;
    let ok = tokio::time::timeout(WAIT, async {
        loop {
            last = get_from(s, Ipv4Addr::new(127, 0, 0, 2), host, auth).await.0;
            if last == status {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        ok.is_ok(),
        "{host}: still {last}, not {status}, after {WAIT:?}"
    );
}

fn apply_corpus(api: &KubeApi, port: u16) {
    for m in manifests("ingress-nginx/access.yaml", &[("PORT", &port.to_string())]) {
        api.apply(m);
    }
}

/// An Opaque Secret `shop/NAME` with `data`.
fn opaque(name: &str, data: Value) -> Value {
    json!({"kind": "Secret", "type": "Opaque",
           "metadata": {"name": name, "namespace": "shop"}, "data": data})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_and_deny_lists_by_client_address() {
    let api = KubeApi::start().await;
    let web = Backend::start("web").await;
    apply_corpus(&api, web.addr.port());
    let s = proxy(&api, &[]).await;
    until(&s, "allow.example.com", None, 200).await;
    let ip = |d| Ipv4Addr::new(127, 0, 0, d);
    // The allow-list: 127.0.0.2 only (of the loopback addresses).
    assert_eq!(get_from(&s, ip(2), "allow.example.com", None).await.0, 200);
    let hits = web.hits();
    assert_eq!(get_from(&s, ip(3), "allow.example.com", None).await.0, 403);
    assert_eq!(get_from(&s, ip(1), "allow.example.com", None).await.0, 403);
    assert_eq!(web.hits(), hits, "a refused request reached the backend");
    // The deny-list, checked before the allow-list.
    assert_eq!(get_from(&s, ip(2), "deny.example.com", None).await.0, 200);
    assert_eq!(get_from(&s, ip(3), "deny.example.com", None).await.0, 403);
    // A list that cannot be read: 503 for everyone, and the reason logged.
    assert_eq!(get_from(&s, ip(2), "broken.example.com", None).await.0, 503);
    assert!(s
        .log()
        .contains("\"office\" is not an address or CIDR range"));
}

/// Behind a LoadBalancer that sends PROXY headers, the lists apply to the
/// client the header names, not to the LoadBalancer's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_apply_to_the_client_a_proxy_header_names() {
    let api = KubeApi::start().await;
    let web = Backend::start("web").await;
    apply_corpus(&api, web.addr.port());
    let s = proxy(&api, &["--proxy-protocol"]).await;
    let status_for = |client: &'static str, host: &'static str| {
        let addr = s.listen;
        async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "PROXY TCP4 {client} 127.0.0.1 40000 80\r\nGET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            );
            c.write_all(head.as_bytes()).await.unwrap();
            let got = read_until(&mut c, WAIT, until_closed).await;
            let text = got.text();
            text.split(' ')
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok())
                .unwrap_or(0)
        }
    };
    let mut last = 0;
    let ok = tokio::time::timeout(WAIT, async {
        loop {
            last = status_for("10.1.2.3", "allow.example.com").await;
            if last == 200 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(ok.is_ok(), "a client in 10.0.0.0/8: still {last}");
    // Outside the allow-list, though the connection comes from 127.0.0.1.
    assert_eq!(status_for("192.168.7.7", "allow.example.com").await, 403);
    // Inside the deny-list's 10.9.0.0/16.
    assert_eq!(status_for("10.9.1.1", "deny.example.com").await, 403);
    assert_eq!(status_for("10.8.1.1", "deny.example.com").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_authentication_from_htpasswd_secrets() {
    let api = KubeApi::start().await;
    let web = Backend::start("web").await;
    apply_corpus(&api, web.addr.port());
    // `htpasswd -B` (cost 4 keeps the test quick), `-m` and `-s` lines.
    let bcrypt = bcrypt::hash("b-secret", 4).unwrap();
    let file = format!(
        "# staff\nbob:{bcrypt}\napr:$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00\nsha:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
    );
    api.apply(opaque("basic-auth", json!({"auth": b64(&file)})));
    api.apply(opaque(
        "basic-map",
        json!({"carol": b64("$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00")}),
    ));
    let s = proxy(&api, &[]).await;
    until(&s, "staff.example.com", Some("bob:b-secret"), 200).await;
    let ip = Ipv4Addr::new(127, 0, 0, 2);
    let (status, headers) = get_from(&s, ip, "staff.example.com", None).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Basic realm=\"Shop staff\"");
    for good in ["bob:b-secret", "apr:password", "sha:password"] {
        assert_eq!(
            get_from(&s, ip, "staff.example.com", Some(good)).await.0,
            200,
            "{good}"
        );
    }
    let hits = web.hits();
    for bad in ["bob:wrong", "apr:wrong", "nobody:password", "bob"] {
        assert_eq!(
            get_from(&s, ip, "staff.example.com", Some(bad)).await.0,
            401,
            "{bad}"
        );
    }
    assert_eq!(
        web.hits(),
        hits,
        "an unauthorized request reached the backend"
    );
    // auth-map: each key a user; the default realm.
    until(&s, "map.example.com", Some("carol:password"), 200).await;
    let (status, headers) = get_from(&s, ip, "map.example.com", None).await;
    assert_eq!(status, 401);
    assert_eq!(
        headers["www-authenticate"],
        "Basic realm=\"Authentication Required\""
    );
    // No such Secret: 503, never an open route.
    assert_eq!(get_from(&s, ip, "missing.example.com", None).await.0, 503);
    assert!(s.log().contains("auth-secret shop/nothing-here: not found"));

    // A password changed in the Secret: the old one stops working.
    let file = "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n";
    api.apply(opaque("basic-auth", json!({"auth": b64(file)})));
    until(&s, "staff.example.com", Some("bob:b-secret"), 401).await;
    assert_eq!(
        get_from(&s, ip, "staff.example.com", Some("bob:password"))
            .await
            .0,
        200
    );
    // Each named Secret was read by name, and no other was listed.
    let selectors = api.secret_selectors();
    assert!(
        selectors.iter().any(|s| s == "metadata.name=basic-auth"),
        "{selectors:?}"
    );
    assert!(
        selectors
            .iter()
            .all(|s| s == "type=kubernetes.io/tls" || s.starts_with("metadata.name=")),
        "{selectors:?}"
    );
    assert!(!s.log().contains("W6ph5Mm5Pz8"), "a hash in the log");
}
