//! ingress-nginx's cookie affinity, driven through discovery: the Ingresses
//! of `tests/corpus/ingress-nginx/affinity.yaml` are applied to the tests'
//! API server, and real requests, carrying back the cookie they were given
//! as a browser would, check what ingress-nginx's sticky balancers
//! (`balancer/sticky*.lua`) do: a session keeps to its pod, fresh clients
//! spread, the cookie is written with nginx's attributes only when a
//! session starts or moves, a pod that leaves the EndpointSlice or dies
//! moves its sessions (with a new cookie where ingress-nginx gives one),
//! and added pods take sessions in balanced mode but not in persistent
//! mode. Affinity routes are the hyper path's on both runs of the suite.

use sluice_integration::cluster::{endpoint, pods, proxy, slice, WAIT};
use sluice_integration::corpus::manifests;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;

/// An old Safari, which mishandles `SameSite=None`.
const OLD_SAFARI: &str =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 Version/12.1 Safari/605.1.15";

/// The corpus applied, and a proxy serving it.
struct Cluster {
    api: KubeApi,
    s: Sluice,
    /// web0, web1, web2 are in the slice; any more are started but not.
    pods: Vec<Backend>,
    port: u16,
}

/// One answer: status, the pod that gave it, and the affinity cookie set.
#[derive(Debug)]
struct Answer {
    status: u16,
    pod: Option<String>,
    cookie: Option<String>,
}

impl Answer {
    /// The `name=value` pair a browser sends back.
    fn pair(&self) -> String {
        let c = self.cookie.as_deref().expect("a Set-Cookie");
        c.split(';').next().unwrap().to_owned()
    }
}

impl Cluster {
    async fn start(pod_count: u8) -> Cluster {
        let api = KubeApi::start().await;
        let (pods, port) = pods(pod_count, "web").await;
        for m in manifests(
            "ingress-nginx/affinity.yaml",
            &[("PORT", &port.to_string())],
        ) {
            api.apply(m);
        }
        let s = proxy(&api, &[]).await;
        let c = Cluster { api, s, pods, port };
        wait_until("every affinity Ingress to route", WAIT, || async {
            for (host, path) in [
                ("balanced", "/"),
                ("persistent", "/"),
                ("change", "/"),
                ("attributes", "/app"),
                ("none", "/shop"),
            ] {
                let a = c.get(host, path, None, &[]).await;
                if a.status != 200 || a.cookie.is_none() {
                    return false;
                }
            }
            true
        })
        .await;
        c
    }

    /// A GET to `<host>.example.com`, with `cookie` sent back if any.
    async fn get(
        &self,
        host: &str,
        path: &str,
        cookie: Option<&str>,
        more: &[(&str, &str)],
    ) -> Answer {
        let host = format!("{host}.example.com");
        let mut headers = vec![("host", host.as_str())];
        if let Some(c) = cookie {
            headers.push(("cookie", c));
        }
        headers.extend_from_slice(more);
        let (status, h, _) = request(&client(None), self.s.listen, "GET", path, &headers, empty())
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        let cookies: Vec<String> = h
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert!(cookies.len() <= 1, "one Set-Cookie at most: {cookies:?}");
        Answer {
            status,
            pod: h.get("x-backend").map(|v| v.to_str().unwrap().to_owned()),
            cookie: cookies.into_iter().next(),
        }
    }

    /// A new session on `host`: its pod and the cookie pair to send back.
    async fn session(&self, host: &str) -> (String, String) {
        let a = self.get(host, "/", None, &[]).await;
        assert_eq!(a.status, 200, "{host}");
        (a.pod.clone().unwrap(), a.pair())
    }

    /// New sessions on `host` until one is on `pod`.
    async fn session_on(&self, host: &str, pod: &str) -> String {
        for _ in 0..200 {
            let (p, c) = self.session(host).await;
            if p == pod {
                return c;
            }
        }
        panic!("{host}: no new session on {pod} in 200");
    }

    /// The slice listing the first `n` pods.
    fn list(&self, pods: &[usize]) {
        let eps = pods
            .iter()
            .map(|&i| endpoint(self.pods[i].addr, &format!("web-{i}"), true, false))
            .collect();
        self.api
            .apply(slice("shop", "web-abc", "web", self.port, eps));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_keeps_to_its_pod_and_fresh_clients_spread() {
    let c = Cluster::start(3).await;
    for host in ["balanced", "persistent"] {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..30 {
            let (pod, cookie) = c.session(host).await;
            seen.insert(pod.clone());
            for _ in 0..10 {
                let a = c.get(host, "/", Some(&cookie), &[]).await;
                assert_eq!((a.status, a.pod.as_deref()), (200, Some(&*pod)), "{host}");
                assert_eq!(a.cookie, None, "{host}: a kept session gets no new cookie");
            }
        }
        assert!(seen.len() >= 2, "{host}: 30 new sessions all on {seen:?}");
    }
    // A cookie among others, in any case of its name, as nginx reads it.
    let (pod, cookie) = c.session("balanced").await;
    let mixed = format!(
        "a=1; {}; b=2",
        cookie.replacen("INGRESSCOOKIE", "ingresscookie", 1)
    );
    for _ in 0..10 {
        let a = c.get("balanced", "/", Some(&mixed), &[]).await;
        assert_eq!(a.pod.as_deref(), Some(&*pod));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_attributes_are_ingress_nginx_s() {
    let c = Cluster::start(3).await;
    let value = |cookie: &str, name: &str| {
        let pair = cookie.split(';').next().unwrap();
        let v = pair
            .strip_prefix(&format!("{name}="))
            .expect(name)
            .to_owned();
        let (key, backend) = v.split_once('|').expect("KEY|BACKEND");
        assert!(
            key.len() == 16 && key.bytes().all(|b| b.is_ascii_hexdigit()),
            "{v}"
        );
        assert!(
            backend.len() == 16 && backend.bytes().all(|b| b.is_ascii_hexdigit()),
            "{v}"
        );
        assert!(!v.contains("127.0.0"), "no pod address in {v}");
    };
    // The defaults: INGRESSCOOKIE, the Ingress path, HttpOnly; no Secure on
    // plain HTTP.
    let a = c.get("balanced", "/", None, &[]).await;
    let cookie = a.cookie.unwrap();
    value(&cookie, "INGRESSCOOKIE");
    let attrs: Vec<&str> = cookie.split("; ").skip(1).collect();
    assert_eq!(attrs, ["Path=/", "HttpOnly"]);

    // Everything, in lua-resty-cookie's order; Expires as nginx writes it.
    let a = c.get("attributes", "/app/page", None, &[]).await;
    let cookie = a.cookie.unwrap();
    value(&cookie, "route");
    let attrs: Vec<&str> = cookie.split("; ").skip(1).collect();
    assert_eq!(attrs.len(), 7, "{cookie}");
    let expires = attrs[0].strip_prefix("Expires=").expect(&cookie);
    // `Sun, 12-Feb-17 14:11:12 GMT`
    let b = expires.as_bytes();
    assert!(
        expires.len() == 27
            && b[3] == b','
            && b[7] == b'-'
            && b[11] == b'-'
            && expires.ends_with(" GMT"),
        "{expires}"
    );
    assert_eq!(
        &attrs[1..],
        [
            "Max-Age=172800",
            "Domain=attributes.example.com",
            "Path=/app",
            "Secure",
            "HttpOnly",
            "SameSite=Strict"
        ]
    );

    // SameSite=None, left out for a browser that mishandles it.
    let a = c
        .get(
            "none",
            "/shop",
            None,
            &[("user-agent", "Mozilla/5.0 Chrome/120.0 Safari/537.36")],
        )
        .await;
    let attrs: Vec<String> = a
        .cookie
        .unwrap()
        .split("; ")
        .skip(1)
        .map(str::to_owned)
        .collect();
    assert_eq!(attrs, ["Path=/", "HttpOnly", "SameSite=None"]);
    let a = c
        .get("none", "/shop", None, &[("user-agent", OLD_SAFARI)])
        .await;
    let attrs: Vec<String> = a
        .cookie
        .unwrap()
        .split("; ")
        .skip(1)
        .map(str::to_owned)
        .collect();
    assert_eq!(attrs, ["Path=/", "HttpOnly"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_removed_from_the_slice_moves_only_its_sessions() {
    let c = Cluster::start(3).await;
    // Sessions on each pod, in both modes.
    let mut balanced = Vec::new();
    let mut persistent = Vec::new();
    for pod in ["web0", "web1", "web2"] {
        balanced.push((pod, c.session_on("balanced", pod).await));
        persistent.push((pod, c.session_on("persistent", pod).await));
    }
    c.list(&[1, 2]);
    let (_, gone) = &balanced[0];
    wait_until("web0 to leave the table", WAIT, || async {
        c.get("balanced", "/", Some(gone), &[]).await.pod.as_deref() != Some("web0")
    })
    .await;
    // Balanced: the key now hashes elsewhere, with no new cookie (its key
    // is still good); the other sessions stay.
    let a = c.get("balanced", "/", Some(gone), &[]).await;
    assert_eq!(a.status, 200);
    assert!(a.pod.as_deref() != Some("web0"));
    assert_eq!(a.cookie, None);
    for (pod, cookie) in &balanced[1..] {
        let a = c.get("balanced", "/", Some(cookie), &[]).await;
        assert_eq!((a.pod.as_deref(), a.cookie), (Some(*pod), None));
    }
    // Persistent: a new pod and a new cookie naming it, kept from then on.
    let (_, gone) = &persistent[0];
    let a = c.get("persistent", "/", Some(gone), &[]).await;
    assert_eq!(a.status, 200);
    let moved_to = a.pod.clone().unwrap();
    assert_ne!(moved_to, "web0");
    let moved = a.pair();
    assert_ne!(&moved, gone);
    for _ in 0..10 {
        let a = c.get("persistent", "/", Some(&moved), &[]).await;
        assert_eq!((a.pod.as_deref(), a.cookie), (Some(&*moved_to), None));
    }
    for (pod, cookie) in &persistent[1..] {
        let a = c.get("persistent", "/", Some(cookie), &[]).await;
        assert_eq!((a.pod.as_deref(), a.cookie), (Some(*pod), None));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_pod_moves_its_session_with_change_on_failure() {
    let mut c = Cluster::start(3).await;
    let on_change = c.session_on("change", "web0").await;
    let on_balanced = c.session_on("balanced", "web0").await;
    // web0 dies: its address refuses connections, the slice still lists it.
    let dead = c.pods.remove(0);
    dead.stop().await;
    // change-on-failure: the request goes to another pod, and the cookie
    // follows it.
    let a = c.get("change", "/", Some(&on_change), &[]).await;
    assert_eq!(a.status, 200);
    let now_on = a.pod.clone().unwrap();
    assert_ne!(now_on, "web0");
    let moved = a.pair();
    assert_ne!(moved, on_change);
    for _ in 0..5 {
        let a = c.get("change", "/", Some(&moved), &[]).await;
        assert_eq!(
            (a.status, a.pod.as_deref(), a.cookie),
            (200, Some(&*now_on), None)
        );
    }
    // Without it, the session keeps to its pod: no other pod answers it
    // until the pod is ejected (then the key goes on to its next pod, and
    // the cookie stays).
    let a = c.get("balanced", "/", Some(&on_balanced), &[]).await;
    assert!(a.status == 502 || a.status == 200, "{a:?}");
    if a.status == 502 {
        assert_eq!(a.cookie, None);
    }
    wait_until("the dead pod to be ejected", WAIT, || async {
        c.get("balanced", "/", Some(&on_balanced), &[]).await.status == 200
    })
    .await;
    let a = c.get("balanced", "/", Some(&on_balanced), &[]).await;
    assert!(a.pod.is_some() && a.pod.as_deref() != Some("web0"), "{a:?}");
    assert_eq!(a.cookie, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_pods_take_balanced_sessions_but_not_persistent_ones() {
    let c = Cluster::start(4).await;
    let mut balanced = Vec::new();
    let mut persistent = Vec::new();
    for _ in 0..60 {
        balanced.push(c.session("balanced").await);
        persistent.push(c.session("persistent").await);
    }
    c.list(&[0, 1, 2, 3]);
    wait_until("the new pod to take new sessions", WAIT, || async {
        for host in ["balanced", "persistent"] {
            let mut on_new = false;
            for _ in 0..40 {
                if c.session(host).await.0 == "web3" {
                    on_new = true;
                    break;
                }
            }
            if !on_new {
                return false;
            }
        }
        true
    })
    .await;
    for (pod, cookie) in &persistent {
        let a = c.get("persistent", "/", Some(cookie), &[]).await;
        assert_eq!((a.pod.as_deref(), a.cookie), (Some(&**pod), None));
    }
    // About a quarter of the balanced sessions move, every one of them to
    // the new pod, without a new cookie.
    let mut moved = 0;
    for (pod, cookie) in &balanced {
        let a = c.get("balanced", "/", Some(cookie), &[]).await;
        assert_eq!(a.cookie, None);
        let now = a.pod.unwrap();
        if &now != pod {
            assert_eq!(now, "web3");
            moved += 1;
        }
    }
    assert!(moved > 0 && moved < 40, "{moved} of 60 moved");
}
