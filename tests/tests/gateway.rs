//! Gateway API through discovery: GatewayClass, Gateway, HTTPRoute and
//! ReferenceGrant given to the tests' API server, the proxy watching it
//! with `--gateway-class`, traffic and the status it writes. The tests
//! follow the Gateway API conformance suite's cases by name
//! (`conformance/tests/*.yaml` of kubernetes-sigs/gateway-api v1.6), with
//! the suite's namespaces shortened: `infra` for
//! gateway-conformance-infra, `web` for gateway-conformance-web-backend.
//!
//! Each test names the conformance tests it follows; what is not served
//! is refused in the route's status (`a_route_using_what_is_not_served_is_refused`).

use serde_json::{json, Value};
use sluice_integration::cluster::*;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;

const GROUP: &str = "gateway.networking.k8s.io";

/// The suite's backends: a pod each, behind a Service of the same name.
const BACKENDS: [(&str, &str); 4] = [
    ("infra", "infra-backend-v1"),
    ("infra", "infra-backend-v2"),
    ("infra", "infra-backend-v3"),
    ("web", "web-backend"),
];

struct Conformance {
    api: KubeApi,
    s: Sluice,
    /// The pods, in the order of [`BACKENDS`].
    pods: Vec<Backend>,
}

impl Conformance {
    /// The API server with the suite's namespaces, our GatewayClass, the
    /// backends, and the published Service with an address; the proxy
    /// serving Gateway API and writing status.
    async fn start() -> Conformance {
        Conformance::start_with(&[]).await
    }

    /// The same, the proxy given `more` flags.
    async fn start_with(more: &[&str]) -> Conformance {
        let api = KubeApi::start().await;
        let (pods, port) = pods(BACKENDS.len() as u8, "pod").await;
        api.apply(json!({"kind": "Namespace", "metadata": {"name": "infra",
            "labels": {"gateway-conformance": "infra"}}}));
        api.apply(json!({"kind": "Namespace", "metadata": {"name": "web",
            "labels": {"gateway-conformance": "backend"}}}));
        api.apply(
            json!({"kind": "GatewayClass", "metadata": {"name": "sluice"},
            "spec": {"controllerName": "sluice.dev/gateway-controller"}}),
        );
        for (i, (ns, name)) in BACKENDS.iter().enumerate() {
            api.apply(
                json!({"kind": "Service", "metadata": {"name": name, "namespace": ns},
                "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": port}]}}),
            );
            api.apply(slice(
                ns,
                &format!("{name}-abc"),
                name,
                port,
                vec![endpoint(pods[i].addr, &format!("{name}-0"), true, false)],
            ));
        }
        let mut published = service("ingress", "sluice");
        published["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}});
        api.apply(published);
        let mut flags = vec![
            "--gateway-class",
            "sluice",
            "--publish-service",
            "ingress/sluice",
        ];
        flags.extend_from_slice(more);
        let s = proxy(&api, &flags).await;
        Conformance { api, s, pods }
    }

    /// Which backend answers a GET of `path` on `host`: its name, or the
    /// status when it is not a 200.
    async fn who(&self, host: &str, path: &str) -> String {
        self.ask(&Ask::get(host, path)).await
    }

    /// Which backend answers a request: its name, or the status when it is
    /// not a 200.
    async fn ask(&self, a: &Ask<'_>) -> String {
        let mut headers = vec![("host", a.host)];
        headers.extend_from_slice(a.headers);
        let (status, _, body) = request(
            &client(None),
            self.s.listen,
            a.method,
            a.path,
            &headers,
            empty(),
        )
        .await
        .unwrap_or_else(|e| panic!("{a:?}: {e}"));
        if status != 200 {
            return status.to_string();
        }
        let pod: usize = body
            .trim()
            .strip_prefix("pod")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{a:?}: body {body:?}"));
        BACKENDS[pod].1.to_owned()
    }

    /// Waits until every GET `(host, path, answer)` holds.
    async fn answers(&self, cases: &[(&str, &str, &str)]) {
        let asks: Vec<(Ask<'_>, &str)> = cases
            .iter()
            .map(|(host, path, want)| (Ask::get(host, path), *want))
            .collect();
        self.answer(&asks).await;
    }

    /// Waits until every request gets its answer.
    async fn answer(&self, cases: &[(Ask<'_>, &str)]) {
        wait_until("the routes to answer as the test says", WAIT, || async {
            for (a, want) in cases {
                if self.ask(a).await != *want {
                    return false;
                }
            }
            true
        })
        .await;
        // And each one, once more, with what it got if it fails.
        for (a, want) in cases {
            assert_eq!(self.ask(a).await, *want, "{a:?}");
        }
    }

    /// Waits until `kind` `ns/name`'s status satisfies `check`.
    async fn status_until(
        &self,
        kind: &str,
        ns: &str,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_until(what, WAIT, || {
            let got = self
                .api
                .get(kind, ns, name)
                .map(|o| check(&o))
                .unwrap_or(false);
            async move { got }
        })
        .await;
        self.api.get(kind, ns, name).unwrap()
    }
}

/// `(status, reason)` of a route's Accepted and ResolvedRefs for `gw`.
type Verdict = [(String, String); 2];

fn verdict(status: &str, reason: &str, resolved: &str, why: &str) -> Verdict {
    [
        (status.into(), reason.into()),
        (resolved.into(), why.into()),
    ]
}

impl Conformance {
    /// Waits for our entry for Gateway `gw` in HTTPRoute `infra/name` to
    /// judge the route's current generation; its two conditions.
    async fn route_verdict(&self, name: &str, gw: &str) -> Verdict {
        let judged = |r: &Value| {
            Some([
                parent_condition(r, gw, "Accepted")?,
                parent_condition(r, gw, "ResolvedRefs")?,
            ])
        };
        let route = self
            .status_until("HTTPRoute", "infra", name, "the route to be judged", |r| {
                judged(r).is_some()
            })
            .await;
        judged(&route).unwrap()
    }
}

impl Conformance {
    /// Waits for HTTPRoute `infra/name`'s verdict for `gw` to be `want`:
    /// for a route whose backends were made in the test, which the proxy
    /// may judge once before it has seen them.
    async fn route_verdict_becomes(&self, name: &str, gw: &str, want: Verdict) {
        let judged = |r: &Value| {
            Some([
                parent_condition(r, gw, "Accepted")?,
                parent_condition(r, gw, "ResolvedRefs")?,
            ])
        };
        wait_until(
            &format!("route {name}'s verdict to be {want:?}"),
            WAIT,
            || {
                let got = self.api.get("HTTPRoute", "infra", name);
                let ok = got.as_ref().and_then(judged).as_ref() == Some(&want);
                async move { ok }
            },
        )
        .await;
    }
}

impl Conformance {
    /// Gateway same-namespace, once its listener counts `n` routes.
    async fn same_namespace_counting(&self, n: u64) -> Value {
        self.status_until(
            "Gateway",
            "infra",
            "same-namespace",
            "the Gateway's status",
            |g| listener(g, "http").is_some_and(|l| l["attachedRoutes"] == n),
        )
        .await
    }

    /// Waits for Gateway same-namespace's listener to count no route
    /// (a deadline, and the test fails, if it keeps counting one).
    async fn same_namespace_counts_no_route(&self) {
        self.same_namespace_counting(0).await;
    }
}

/// One request of a test.
#[derive(Debug, Clone, Copy)]
struct Ask<'a> {
    method: &'a str,
    host: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
}

impl<'a> Ask<'a> {
    fn get(host: &'a str, path: &'a str) -> Ask<'a> {
        Ask {
            method: "GET",
            host,
            path,
            headers: &[],
        }
    }

    fn with(self, headers: &'a [(&'a str, &'a str)]) -> Ask<'a> {
        Ask { headers, ..self }
    }

    fn method(self, method: &'a str) -> Ask<'a> {
        Ask { method, ..self }
    }
}

fn gateway(ns: &str, name: &str, listeners: Value) -> Value {
    json!({"kind": "Gateway", "metadata": {"name": name, "namespace": ns},
           "spec": {"gatewayClassName": "sluice", "listeners": listeners}})
}

fn http_route(ns: &str, name: &str, spec: Value) -> Value {
    json!({"kind": "HTTPRoute", "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

/// A condition of `type_` in a list: (status, reason, observedGeneration).
fn condition(list: &Value, type_: &str) -> Option<(String, String, i64)> {
    list.as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_owned(),
                c["reason"].as_str().unwrap_or("").to_owned(),
                c["observedGeneration"].as_i64().unwrap_or(-1),
            )
        })
}

/// Our entry for parent Gateway `gw` in a route's status.
fn parent<'a>(route: &'a Value, gw: &str) -> Option<&'a Value> {
    route["status"]["parents"].as_array()?.iter().find(|p| {
        p["controllerName"] == "sluice.dev/gateway-controller" && p["parentRef"]["name"] == gw
    })
}

fn generation(o: &Value) -> i64 {
    o["metadata"]["generation"].as_i64().unwrap_or(0)
}

/// A route's parent condition as (status, reason), when it judged the
/// route's current generation.
fn parent_condition(route: &Value, gw: &str, type_: &str) -> Option<(String, String)> {
    let (status, reason, observed) = condition(&parent(route, gw)?["conditions"], type_)?;
    (observed == generation(route)).then_some((status, reason))
}

fn listener<'a>(gw: &'a Value, name: &str) -> Option<&'a Value> {
    gw["status"]["listeners"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == name)
}

/// A route in `infra` on Gateway same-namespace, with these rules.
fn on_same_namespace(name: &str, rules: Value) -> Value {
    http_route(
        "infra",
        name,
        json!({"parentRefs": [{"name": "same-namespace"}], "rules": rules}),
    )
}

fn same_namespace() -> Value {
    gateway(
        "infra",
        "same-namespace",
        json!([{"name": "http", "port": 80, "protocol": "HTTP",
                "allowedRoutes": {"namespaces": {"from": "Same"}}}]),
    )
}

/// HTTPRouteSimpleSameNamespace: one route, one backend; the class, the
/// Gateway (with the published address) and the route accepted, each
/// condition for the generation it judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_simple_same_namespace() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    c.api.apply(on_same_namespace(
        "gateway-conformance-infra-test",
        json!([{"backendRefs": [{"name": "infra-backend-v1", "port": 8080}]}]),
    ));
    c.answers(&[("any.example.com", "/", "infra-backend-v1")])
        .await;

    assert_eq!(
        c.route_verdict("gateway-conformance-infra-test", "same-namespace")
            .await,
        verdict("True", "Accepted", "True", "ResolvedRefs")
    );
    let route = c
        .api
        .get("HTTPRoute", "infra", "gateway-conformance-infra-test")
        .unwrap();
    let p = parent(&route, "same-namespace").unwrap();
    assert_eq!(
        (
            p["parentRef"]["group"].as_str(),
            p["parentRef"]["kind"].as_str()
        ),
        (Some(GROUP), Some("Gateway"))
    );

    let gw = c.same_namespace_counting(1).await;
    for type_ in ["Accepted", "Programmed"] {
        let (status, _, observed) = condition(&gw["status"]["conditions"], type_).unwrap();
        assert_eq!(
            (status.as_str(), observed),
            ("True", generation(&gw)),
            "{type_}: {gw}"
        );
    }
    assert_eq!(
        gw["status"]["addresses"],
        json!([{"type": "IPAddress", "value": "203.0.113.7"}])
    );
    let l = listener(&gw, "http").unwrap();
    for type_ in ["Accepted", "Programmed", "ResolvedRefs"] {
        assert_eq!(
            condition(&l["conditions"], type_).unwrap().0,
            "True",
            "{type_}: {l}"
        );
    }
    assert_eq!(
        condition(&l["conditions"], "Conflicted").unwrap().0,
        "False"
    );
    assert_eq!(
        l["supportedKinds"],
        json!([{"group": GROUP, "kind": "HTTPRoute"}, {"group": GROUP, "kind": "GRPCRoute"}])
    );

    let class = c
        .status_until(
            "GatewayClass",
            "",
            "sluice",
            "the class to be accepted",
            |g| condition(&g["status"]["conditions"], "Accepted").is_some(),
        )
        .await;
    let (status, reason, observed) = condition(&class["status"]["conditions"], "Accepted").unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str(), observed),
        ("True", "Accepted", generation(&class))
    );
    // The features the suite may infer from the class: objects with a
    // name, sorted, the core ones among them.
    let features: Vec<&str> = class["status"]["supportedFeatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let mut sorted = features.clone();
    sorted.sort_unstable();
    assert_eq!(features, sorted);
    for core in ["Gateway", "HTTPRoute", "HTTPRouteRequestMirror"] {
        assert!(features.contains(&core), "{features:?}");
    }
}

/// HTTPRouteHostnameIntersection: a route serves the names it has in
/// common with each listener; one with none is not accepted; each
/// listener counts the routes on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_hostname_intersection() {
    let c = Conformance::start().await;
    c.api.apply(gateway(
        "infra",
        "httproute-hostname-intersection",
        json!([
            {"name": "listener-1", "port": 80, "protocol": "HTTP", "hostname": "very.specific.com"},
            {"name": "listener-2", "port": 80, "protocol": "HTTP", "hostname": "*.wildcard.io"},
            {"name": "listener-3", "port": 80, "protocol": "HTTP", "hostname": "*.anotherwildcard.io"},
        ]),
    ));
    let route = |name: &str, hosts: Value, path: &str, backend: &str| {
        http_route(
            "infra",
            name,
            json!({"parentRefs": [{"name": "httproute-hostname-intersection", "namespace": "infra"}],
                   "hostnames": hosts,
                   "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                              "backendRefs": [{"name": backend, "port": 8080}]}]}),
        )
    };
    let routes: [(&str, &[&str], &str, &str); 5] = [
        (
            "specific-host-matches-listener-specific-host",
            &[
                "non.matching.com",
                "*.nonmatchingwildcard.io",
                "very.specific.com",
            ],
            "/s1",
            "infra-backend-v1",
        ),
        (
            "specific-host-matches-listener-wildcard-host",
            &[
                "non.matching.com",
                "wildcard.io",
                "foo.wildcard.io",
                "bar.wildcard.io",
                "foo.bar.wildcard.io",
            ],
            "/s2",
            "infra-backend-v2",
        ),
        (
            "wildcard-host-matches-listener-specific-host",
            &["non.matching.com", "*.specific.com"],
            "/s3",
            "infra-backend-v3",
        ),
        (
            "wildcard-host-matches-listener-wildcard-host",
            &["*.anotherwildcard.io"],
            "/s4",
            "infra-backend-v1",
        ),
        (
            "no-intersecting-hosts",
            &["specific.but.wrong.com", "wildcard.io"],
            "/s5",
            "infra-backend-v2",
        ),
    ];
    for (name, hosts, path, backend) in routes {
        c.api.apply(route(name, json!(hosts), path, backend));
    }
    c.answers(&[
        ("very.specific.com", "/s1", "infra-backend-v1"),
        ("very.specific.com:1234", "/s1", "infra-backend-v1"),
        ("non.matching.com", "/s1", "404"),
        ("foo.nonmatchingwildcard.io", "/s1", "404"),
        ("foo.wildcard.io", "/s1", "404"),
        ("very.specific.com", "/non-matching-prefix", "404"),
        ("foo.wildcard.io", "/s2", "infra-backend-v2"),
        ("bar.wildcard.io", "/s2", "infra-backend-v2"),
        ("foo.bar.wildcard.io", "/s2", "infra-backend-v2"),
        ("non.matching.com", "/s2", "404"),
        ("wildcard.io", "/s2", "404"),
        ("very.specific.com", "/s2", "404"),
        ("very.specific.com", "/s3", "infra-backend-v3"),
        ("foo.specific.com", "/s3", "404"),
        ("foo.anotherwildcard.io", "/s4", "infra-backend-v1"),
        ("bar.anotherwildcard.io", "/s4", "infra-backend-v1"),
        ("anotherwildcard.io", "/s4", "404"),
        ("specific.but.wrong.com", "/s5", "404"),
        ("wildcard.io", "/s5", "404"),
    ])
    .await;

    let refused = c
        .status_until(
            "HTTPRoute",
            "infra",
            "no-intersecting-hosts",
            "the route to be refused",
            |r| parent_condition(r, "httproute-hostname-intersection", "Accepted").is_some(),
        )
        .await;
    assert_eq!(
        parent_condition(&refused, "httproute-hostname-intersection", "Accepted"),
        Some(("False".into(), "NoMatchingListenerHostname".into()))
    );
    let gw = c
        .status_until(
            "Gateway",
            "infra",
            "httproute-hostname-intersection",
            "the routes counted",
            |g| listener(g, "listener-1").is_some_and(|l| l["attachedRoutes"] == 2),
        )
        .await;
    assert_eq!(listener(&gw, "listener-2").unwrap()["attachedRoutes"], 1);
    assert_eq!(listener(&gw, "listener-3").unwrap()["attachedRoutes"], 1);
}

/// HTTPRouteInvalidCrossNamespaceBackendRef and HTTPRouteReferenceGrant:
/// a backend in another namespace is used only while a ReferenceGrant
/// there allows it; the route stays accepted, its references unresolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_reference_grant_allows_and_revokes() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    c.api.apply(on_same_namespace(
        "reference-grant",
        json!([{"backendRefs": [{"name": "web-backend", "namespace": "web", "port": 8080}]}]),
    ));
    assert_eq!(
        c.route_verdict("reference-grant", "same-namespace").await,
        verdict("True", "Accepted", "False", "RefNotPermitted")
    );
    assert_eq!(c.who("example.com", "/").await, "500", "without a grant");

    c.api.apply(json!({"kind": "ReferenceGrant",
        "metadata": {"name": "reference-grant", "namespace": "web"},
        "spec": {"from": [{"group": GROUP, "kind": "HTTPRoute", "namespace": "infra"}],
                 "to": [{"group": "", "kind": "Service", "name": "web-backend"}]}}));
    c.answers(&[("example.com", "/", "web-backend")]).await;
    c.status_until(
        "HTTPRoute",
        "infra",
        "reference-grant",
        "the reference resolved",
        |r| {
            parent_condition(r, "same-namespace", "ResolvedRefs")
                == Some(("True".into(), "ResolvedRefs".into()))
        },
    )
    .await;

    assert!(c.api.delete("ReferenceGrant", "web", "reference-grant"));
    wait_until("the grant's removal to revoke", WAIT, || async {
        c.who("example.com", "/").await == "500"
    })
    .await;
}

/// HTTPRouteWeight: backends share a rule's traffic by weight, and a
/// backend of weight 0 gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_weight() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    c.api.apply(on_same_namespace(
        "weighted-backends",
        json!([{"backendRefs": [
                   {"name": "infra-backend-v1", "port": 8080, "weight": 70},
                   {"name": "infra-backend-v2", "port": 8080, "weight": 30},
                   {"name": "infra-backend-v3", "port": 8080, "weight": 0}]}]),
    ));
    wait_until("the route to answer", WAIT, || async {
        c.who("example.com", "/").await.starts_with("infra-backend")
    })
    .await;
    const N: usize = 1000;
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for _ in 0..N {
        *seen.entry(c.who("example.com", "/").await).or_default() += 1;
    }
    let share = |b: &str| seen.get(b).copied().unwrap_or(0) as f64 / N as f64;
    // The suite allows 5 points either way over 500 requests; 6 over 1,000
    // keeps a weighted draw from failing by chance.
    assert!((share("infra-backend-v1") - 0.7).abs() <= 0.06, "{seen:?}");
    assert!((share("infra-backend-v2") - 0.3).abs() <= 0.06, "{seen:?}");
    assert_eq!(seen.get("infra-backend-v3"), None, "{seen:?}");
    assert_eq!(
        seen.values().sum::<usize>(),
        N,
        "every request answered: {seen:?}"
    );
}

/// What this build does not serve is refused in the route's status,
/// never served wrong: an extension reference is `UnsupportedValue`, and
/// the route is not attached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_using_what_is_not_served_is_refused() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    c.api.apply(on_same_namespace(
        "not-yet",
        json!([{"filters": [{"type": "ExtensionRef",
                             "extensionRef": {"group": "example.com", "kind": "Magic", "name": "x"}}],
                "backendRefs": [{"name": "infra-backend-v1", "port": 8080}]}]),
    ));
    let route = c
        .status_until(
            "HTTPRoute",
            "infra",
            "not-yet",
            "the route to be refused",
            |r| parent_condition(r, "same-namespace", "Accepted").is_some(),
        )
        .await;
    let (status, reason) = parent_condition(&route, "same-namespace", "Accepted").unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "UnsupportedValue")
    );
    c.same_namespace_counts_no_route().await;
    assert_eq!(c.who("example.com", "/").await, "404");
    // A route without the proxy's class is left alone: no status from us.
    c.api.apply(json!({"kind": "Gateway", "metadata": {"name": "theirs", "namespace": "infra"},
        "spec": {"gatewayClassName": "other", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}));
    c.api.apply(http_route(
        "infra",
        "theirs",
        json!({"parentRefs": [{"name": "theirs"}],
               "rules": [{"backendRefs": [{"name": "infra-backend-v1", "port": 8080}]}]}),
    ));
    // A route of ours applied after theirs: once its status is written,
    // a rebuild that saw theirs has been written too.
    c.api.apply(on_same_namespace(
        "after",
        json!([{"backendRefs": [{"name": "infra-backend-v2", "port": 8080}]}]),
    ));
    c.status_until(
        "HTTPRoute",
        "infra",
        "after",
        "a later route's status",
        |r| parent_condition(r, "same-namespace", "Accepted").is_some(),
    )
    .await;
    let theirs = c.api.get("HTTPRoute", "infra", "theirs").unwrap();
    assert!(parent(&theirs, "theirs").is_none(), "{theirs}");
    assert!(c.api.get("Gateway", "infra", "theirs").unwrap()["status"].is_null());
}

/// A rule of `matches` sending to `backend` (of infra, port 8080).
fn rule(matches: Value, backend: &str) -> Value {
    json!({"matches": matches, "backendRefs": [{"name": backend, "port": 8080}]})
}

/// HTTPRouteMatching: matches are ORed, a match's fields ANDed; more
/// header matches beat an equal prefix; a prefix matches by path element.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_matching() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    c.api.apply(on_same_namespace(
        "matching",
        json!([
            rule(
                json!([{"path": {"type": "PathPrefix", "value": "/"}},
                        {"headers": [{"name": "version", "value": "one"}]}]),
                "infra-backend-v1"
            ),
            rule(
                json!([{"path": {"type": "PathPrefix", "value": "/v2"}},
                        {"headers": [{"name": "version", "value": "two"}]}]),
                "infra-backend-v2"
            ),
        ]),
    ));
    let h = "example.com";
    c.answer(&[
        (Ask::get(h, "/"), "infra-backend-v1"),
        (Ask::get(h, "/example"), "infra-backend-v1"),
        (
            Ask::get(h, "/").with(&[("version", "one")]),
            "infra-backend-v1",
        ),
        (Ask::get(h, "/v2"), "infra-backend-v2"),
        (Ask::get(h, "/v2/example"), "infra-backend-v2"),
        (
            Ask::get(h, "/").with(&[("Version", "two")]),
            "infra-backend-v2",
        ),
        (Ask::get(h, "/v2/"), "infra-backend-v2"),
        (Ask::get(h, "/v2example"), "infra-backend-v1"),
        (Ask::get(h, "/foo/v2/example"), "infra-backend-v1"),
    ])
    .await;
}

/// HTTPRouteMatchingAcrossRoutes: two routes on one host share the
/// precedence; one host of the first route only is left to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_matching_across_routes() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    c.api.apply(http_route(
        "infra",
        "matching-part1",
        json!({"parentRefs": [{"name": "same-namespace"}],
               "hostnames": ["example.com", "example.net"],
               "rules": [rule(json!([{"path": {"type": "PathPrefix", "value": "/"}},
                                     {"headers": [{"name": "version", "value": "one"}]}]), "infra-backend-v1")]}),
    ));
    c.api.apply(http_route(
        "infra",
        "matching-part2",
        json!({"parentRefs": [{"name": "same-namespace"}],
               "hostnames": ["example.com"],
               "rules": [rule(json!([{"path": {"type": "PathPrefix", "value": "/v2"}},
                                     {"headers": [{"name": "version", "value": "two"}]}]), "infra-backend-v2")]}),
    ));
    c.answer(&[
        (Ask::get("example.com", "/"), "infra-backend-v1"),
        (Ask::get("example.com", "/example"), "infra-backend-v1"),
        (Ask::get("example.net", "/example"), "infra-backend-v1"),
        (
            Ask::get("example.com", "/example").with(&[("version", "one")]),
            "infra-backend-v1",
        ),
        (Ask::get("example.com", "/v2"), "infra-backend-v2"),
        (Ask::get("example.net", "/v2"), "infra-backend-v1"),
        (Ask::get("example.com", "/v2/example"), "infra-backend-v2"),
        (
            Ask::get("example.com", "/").with(&[("version", "two")]),
            "infra-backend-v2",
        ),
    ])
    .await;
}

/// HTTPRouteHeaderMatching: two headers beat one; names in any case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_header_matching() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    let hdr = |pairs: &[(&str, &str)]| json!({"headers": pairs.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>()});
    c.api.apply(on_same_namespace(
        "header-matching",
        json!([
            rule(json!([hdr(&[("version", "one")])]), "infra-backend-v1"),
            rule(json!([hdr(&[("version", "two")])]), "infra-backend-v2"),
            rule(
                json!([hdr(&[("version", "two"), ("color", "orange")])]),
                "infra-backend-v1"
            ),
            rule(
                json!([hdr(&[("color", "blue")]), hdr(&[("color", "green")])]),
                "infra-backend-v1"
            ),
            rule(
                json!([hdr(&[("color", "red")]), hdr(&[("color", "yellow")])]),
                "infra-backend-v2"
            ),
        ]),
    ));
    let h = "example.com";
    let ask = |headers: &'static [(&'static str, &'static str)]| Ask::get(h, "/").with(headers);
    c.answer(&[
        (ask(&[("Version", "one")]), "infra-backend-v1"),
        (ask(&[("Version", "two")]), "infra-backend-v2"),
        (
            ask(&[("Version", "two"), ("Color", "orange")]),
            "infra-backend-v1",
        ),
        (
            ask(&[("Version", "two"), ("Color", "blue")]),
            "infra-backend-v2",
        ),
        (ask(&[("Color", "orange")]), "404"),
        (ask(&[("Some-Other-Header", "one")]), "404"),
        (ask(&[("Color", "blue")]), "infra-backend-v1"),
        (ask(&[("Color", "green")]), "infra-backend-v1"),
        (ask(&[("Color", "red")]), "infra-backend-v2"),
        (ask(&[("Color", "yellow")]), "infra-backend-v2"),
        (ask(&[("Color", "purple")]), "404"),
    ])
    .await;
}

/// HTTPRouteMethodMatching: the path before the method, the method
/// before headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_method_matching() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    let m = |method: &str, path: Option<&str>, headers: &[(&str, &str)]| {
        let mut v = json!({"headers": headers.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>()});
        if !method.is_empty() {
            v["method"] = json!(method);
        }
        if let Some(p) = path {
            v["path"] = json!({"type": "PathPrefix", "value": p});
        }
        v
    };
    c.api.apply(on_same_namespace(
        "method-matching",
        json!([
            rule(json!([m("POST", None, &[])]), "infra-backend-v1"),
            rule(json!([m("GET", None, &[])]), "infra-backend-v2"),
            rule(json!([m("GET", Some("/path1"), &[])]), "infra-backend-v1"),
            rule(
                json!([m("PUT", None, &[("version", "one")])]),
                "infra-backend-v2"
            ),
            rule(
                json!([m("POST", Some("/path2"), &[("version", "two")])]),
                "infra-backend-v3"
            ),
            rule(
                json!([
                    m("PATCH", Some("/path3"), &[]),
                    m("DELETE", Some("/path4"), &[("version", "three")])
                ]),
                "infra-backend-v1"
            ),
            rule(json!([m("", Some("/path5"), &[])]), "infra-backend-v1"),
            rule(json!([m("PATCH", None, &[])]), "infra-backend-v2"),
            rule(
                json!([m("", None, &[("version", "four")])]),
                "infra-backend-v3"
            ),
        ]),
    ));
    let h = "example.com";
    let ask = |method, path| Ask::get(h, path).method(method);
    c.answer(&[
        (ask("POST", "/"), "infra-backend-v1"),
        (ask("GET", "/"), "infra-backend-v2"),
        (ask("HEAD", "/"), "404"),
        (ask("GET", "/path1"), "infra-backend-v1"),
        (
            ask("PUT", "/").with(&[("version", "one")]),
            "infra-backend-v2",
        ),
        (
            ask("POST", "/path2").with(&[("version", "two")]),
            "infra-backend-v3",
        ),
        (ask("PATCH", "/path3"), "infra-backend-v1"),
        (
            ask("DELETE", "/path4").with(&[("version", "three")]),
            "infra-backend-v1",
        ),
        (ask("PUT", "/"), "404"),
        (ask("DELETE", "/path4"), "404"),
        (ask("PATCH", "/path5"), "infra-backend-v1"),
        (
            ask("PATCH", "/").with(&[("version", "four")]),
            "infra-backend-v2",
        ),
    ])
    .await;
}

/// HTTPRouteQueryParamMatching: names and values as sent, the path
/// before the query, headers before the query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_query_param_matching() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    let q = |path: Option<&str>, headers: &[(&str, &str)], params: &[(&str, &str)]| {
        let mut v = json!({
            "headers": headers.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
            "queryParams": params.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
        });
        if let Some(p) = path {
            v["path"] = json!({"type": "PathPrefix", "value": p});
        }
        v
    };
    c.api.apply(on_same_namespace(
        "query-param-matching",
        json!([
            rule(
                json!([q(None, &[], &[("animal", "whale")])]),
                "infra-backend-v1"
            ),
            rule(
                json!([q(None, &[], &[("animal", "dolphin")])]),
                "infra-backend-v2"
            ),
            rule(
                json!([
                    q(None, &[], &[("animal", "dolphin"), ("color", "blue")]),
                    q(None, &[], &[("ANIMAL", "Whale")])
                ]),
                "infra-backend-v3"
            ),
            rule(
                json!([q(Some("/path1"), &[], &[("animal", "whale")])]),
                "infra-backend-v1"
            ),
            rule(
                json!([q(None, &[("version", "one")], &[("animal", "whale")])]),
                "infra-backend-v2"
            ),
            rule(
                json!([q(
                    Some("/path2"),
                    &[("version", "two")],
                    &[("animal", "whale")]
                )]),
                "infra-backend-v3"
            ),
            rule(
                json!([
                    q(Some("/path3"), &[], &[("animal", "shark")]),
                    q(
                        Some("/path4"),
                        &[("version", "three")],
                        &[("animal", "kraken")]
                    )
                ]),
                "infra-backend-v1"
            ),
            rule(json!([q(Some("/path5"), &[], &[])]), "infra-backend-v1"),
            rule(
                json!([q(None, &[], &[("animal", "hydra")])]),
                "infra-backend-v2"
            ),
            rule(
                json!([q(None, &[("version", "four")], &[])]),
                "infra-backend-v3"
            ),
        ]),
    ));
    let h = "example.com";
    let v = |n| [("version", n)];
    let (one, two, three, four) = (v("one"), v("two"), v("three"), v("four"));
    c.answer(&[
        (Ask::get(h, "/?animal=whale"), "infra-backend-v1"),
        (Ask::get(h, "/?animal=dolphin"), "infra-backend-v2"),
        (
            Ask::get(h, "/?animal=dolphin&color=blue"),
            "infra-backend-v3",
        ),
        (Ask::get(h, "/?ANIMAL=Whale"), "infra-backend-v3"),
        (
            Ask::get(h, "/?animal=whale&otherparam=irrelevant"),
            "infra-backend-v1",
        ),
        (
            Ask::get(h, "/?animal=dolphin&color=yellow"),
            "infra-backend-v2",
        ),
        (Ask::get(h, "/?color=blue"), "404"),
        (Ask::get(h, "/?animal=dog"), "404"),
        (Ask::get(h, "/?animal=whaledolphin"), "404"),
        (Ask::get(h, "/"), "404"),
        (Ask::get(h, "/path1?animal=whale"), "infra-backend-v1"),
        (Ask::get(h, "/?animal=whale").with(&one), "infra-backend-v2"),
        (
            Ask::get(h, "/path2?animal=whale").with(&two),
            "infra-backend-v3",
        ),
        (Ask::get(h, "/path3?animal=shark"), "infra-backend-v1"),
        (
            Ask::get(h, "/path4?animal=kraken").with(&three),
            "infra-backend-v1",
        ),
        (Ask::get(h, "/?animal=shark"), "404"),
        (Ask::get(h, "/path4?animal=kraken"), "404"),
        (Ask::get(h, "/path5?animal=hydra"), "infra-backend-v1"),
        (
            Ask::get(h, "/?animal=hydra").with(&four),
            "infra-backend-v3",
        ),
    ])
    .await;
}

/// HTTPRouteExactPathMatching and HTTPRoutePathMatchOrder: Exact before
/// PathPrefix, the longer first, Exact exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_path_match_order_and_exact() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    let p = |t: &str, v: &str| json!([{"path": {"type": t, "value": v}}]);
    c.api.apply(http_route(
        "infra",
        "path-matching-order",
        json!({"parentRefs": [{"name": "same-namespace"}],
        "hostnames": ["order.example.com"],
        "rules": [
            rule(p("Exact", "/match"), "infra-backend-v1"),
            rule(p("Exact", "/match/exact"), "infra-backend-v2"),
            rule(p("Exact", "/match/exact/one"), "infra-backend-v3"),
            rule(p("PathPrefix", "/match/"), "infra-backend-v3"),
            rule(p("PathPrefix", "/match/prefix/"), "infra-backend-v1"),
            rule(p("PathPrefix", "/match/prefix/one"), "infra-backend-v2"),
        ]}),
    ));
    c.api.apply(http_route(
        "infra",
        "exact-matching",
        json!({"parentRefs": [{"name": "same-namespace"}],
               "hostnames": ["exact.example.com"],
               "rules": [rule(p("Exact", "/one"), "infra-backend-v1"),
                         rule(p("Exact", "/two"), "infra-backend-v2")]}),
    ));
    let (o, e) = ("order.example.com", "exact.example.com");
    c.answers(&[
        (o, "/match/exact/one", "infra-backend-v3"),
        (o, "/match/exact", "infra-backend-v2"),
        (o, "/match", "infra-backend-v1"),
        (o, "/match/prefix/one/any", "infra-backend-v2"),
        (o, "/match/prefix/any", "infra-backend-v1"),
        (o, "/match/any", "infra-backend-v3"),
        (e, "/one", "infra-backend-v1"),
        (e, "/two", "infra-backend-v2"),
        (e, "/", "404"),
        (e, "/one/example", "404"),
        (e, "/two/", "404"),
        (e, "/Two", "404"),
    ])
    .await;
}

/// GatewaySecretReferenceGrant (Specific), GatewaySecretMissingReferenceGrant
/// and HTTPRouteHTTPSListener: an HTTPS listener's certificate in another
/// namespace resolves only with a ReferenceGrant there, and then serves
/// the listener's name by SNI, for the routes attached to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_listener_s_certificate_needs_its_grant_and_serves() {
    use sluice_integration::tls;
    let c = Conformance::start_with(&["--listen-tls", "{LISTEN_TLS}"]).await;
    let ca = tls::Ca::new();
    let cert = ca.issue(&["secure.example.com"]);
    c.api
        .apply(tls_secret("web", "certificate", &cert.cert, &cert.key));
    c.api.apply(gateway(
        "infra",
        "gateway-secret",
        json!([{"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "secure.example.com",
                "allowedRoutes": {"namespaces": {"from": "All"}},
                "tls": {"certificateRefs": [{"group": "", "kind": "Secret",
                                             "name": "certificate", "namespace": "web"}]}}]),
    ));
    c.api.apply(http_route(
        "infra",
        "secure",
        json!({"parentRefs": [{"name": "gateway-secret"}],
               "rules": [{"backendRefs": [{"name": "infra-backend-v1", "port": 8080}]}]}),
    ));
    let resolved =
        |g: &Value| listener(g, "https").and_then(|l| condition(&l["conditions"], "ResolvedRefs"));
    let gw = c
        .status_until(
            "Gateway",
            "infra",
            "gateway-secret",
            "the listener judged",
            |g| resolved(g).is_some(),
        )
        .await;
    let (status, reason, _) = resolved(&gw).unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "RefNotPermitted")
    );
    let l = listener(&gw, "https").unwrap();
    assert_eq!(
        condition(&l["conditions"], "Programmed").unwrap().0,
        "False"
    );

    c.api.apply(json!({"kind": "ReferenceGrant",
        "metadata": {"name": "reference-grant-specific", "namespace": "web"},
        "spec": {"from": [{"group": GROUP, "kind": "Gateway", "namespace": "infra"}],
                 "to": [{"group": "", "kind": "Secret", "name": "certificate"}]}}));
    c.status_until(
        "Gateway",
        "infra",
        "gateway-secret",
        "the certificate resolved",
        |g| {
            resolved(g).is_some_and(|(s, r, _)| s == "True" && r == "ResolvedRefs")
                && listener(g, "https").is_some_and(|l| l["attachedRoutes"] == 1)
        },
    )
    .await;
    let addr = c.s.tls();
    wait_until("the listener's certificate to serve", WAIT, || async {
        tls::get(addr, "secure.example.com", "/", false)
            .await
            .is_ok_and(|r| r.status == 200 && r.cert == cert.der)
    })
    .await;

    // HTTPRouteRedirectPortAndScheme, its listener on 443: no scheme and
    // no port keeps https on its port; a scheme alone takes the scheme's.
    let redirect = |prefix: &str, r: Value| {
        json!({"matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
               "filters": [{"type": "RequestRedirect", "requestRedirect": r}]})
    };
    c.api.apply(http_route(
        "infra",
        "http-route-for-listener-on-port-443",
        json!({"parentRefs": [{"name": "gateway-secret"}],
               "rules": [
                   redirect("/scheme-nil-and-port-nil", json!({"hostname": "example.org"})),
                   redirect("/scheme-nil-and-port-8443", json!({"hostname": "example.org", "port": 8443})),
                   redirect("/scheme-http-and-port-nil", json!({"hostname": "example.org", "scheme": "http"})),
                   redirect("/scheme-http-and-port-8080", json!({"hostname": "example.org", "scheme": "http", "port": 8080})),
               ]}),
    ));
    let location = |path: &'static str| async move {
        let r = tls::get(addr, "secure.example.com", path, false)
            .await
            .ok()?;
        let l = r.headers.get("location")?.to_str().ok()?.to_owned();
        Some((r.status, l))
    };
    wait_until("the redirects on 443 to be served", WAIT, || async {
        location("/scheme-nil-and-port-nil").await.is_some()
    })
    .await;
    for (path, want) in [
        (
            "/scheme-nil-and-port-nil",
            "https://example.org/scheme-nil-and-port-nil",
        ),
        (
            "/scheme-nil-and-port-8443",
            "https://example.org:8443/scheme-nil-and-port-8443",
        ),
        (
            "/scheme-http-and-port-nil",
            "http://example.org/scheme-http-and-port-nil",
        ),
        (
            "/scheme-http-and-port-8080",
            "http://example.org:8080/scheme-http-and-port-8080",
        ),
    ] {
        assert_eq!(location(path).await, Some((302, want.to_owned())), "{path}");
    }
}

/// HTTPRouteNoBackendRefs and HTTPRouteInvalidNonExistentBackendRef: a
/// rule with no backend, or with one that does not exist, answers 500;
/// the route stays accepted, its references unresolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_without_a_backend_to_send_to_answer_500() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    let exact = |v: &str| json!([{"path": {"type": "Exact", "value": v}}]);
    c.api.apply(on_same_namespace(
        "no-backend-refs",
        json!([
            {"matches": exact("/omitted-no-forward")},
            {"matches": exact("/empty-no-forward"), "backendRefs": []},
            {"matches": exact("/nonexistent"), "backendRefs": [{"name": "nonexistent", "port": 8080}]},
            rule(exact("/forward"), "infra-backend-v1"),
        ]),
    ));
    c.answers(&[
        ("example.com", "/forward", "infra-backend-v1"),
        ("example.com", "/omitted-no-forward", "500"),
        ("example.com", "/empty-no-forward", "500"),
        ("example.com", "/nonexistent", "500"),
    ])
    .await;
    assert_eq!(
        c.route_verdict("no-backend-refs", "same-namespace").await,
        verdict("True", "Accepted", "False", "BackendNotFound")
    );
}

/// HTTPRoutePartiallyInvalidViaInvalidReferenceGrant's traffic: a
/// backend that does not resolve keeps its share of a split, answered
/// 500, and the others serve theirs; three backends share by weight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_keeps_the_share_of_a_backend_that_does_not_resolve() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    c.api.apply(on_same_namespace(
        "split",
        json!([
            {"matches": [{"path": {"type": "PathPrefix", "value": "/half"}}],
             "backendRefs": [{"name": "infra-backend-v1", "port": 8080, "weight": 1},
                             {"name": "web-backend", "namespace": "web", "port": 8080, "weight": 1}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/three"}}],
             "backendRefs": [{"name": "infra-backend-v1", "port": 8080, "weight": 5},
                             {"name": "infra-backend-v2", "port": 8080, "weight": 3},
                             {"name": "infra-backend-v3", "port": 8080, "weight": 2}]},
        ]),
    ));
    wait_until("the route to answer", WAIT, || async {
        c.who("example.com", "/three")
            .await
            .starts_with("infra-backend")
    })
    .await;
    const N: usize = 600;
    let mut half = std::collections::HashMap::<String, usize>::new();
    let mut three = std::collections::HashMap::<String, usize>::new();
    for _ in 0..N {
        *half.entry(c.who("example.com", "/half").await).or_default() += 1;
        *three
            .entry(c.who("example.com", "/three").await)
            .or_default() += 1;
    }
    let share = |m: &std::collections::HashMap<String, usize>, k: &str| {
        m.get(k).copied().unwrap_or(0) as f64 / N as f64
    };
    // The unpermitted backend (no ReferenceGrant) is never reached.
    assert_eq!(half.len(), 2, "{half:?}");
    assert!(
        (share(&half, "infra-backend-v1") - 0.5).abs() <= 0.08,
        "{half:?}"
    );
    assert!((share(&half, "500") - 0.5).abs() <= 0.08, "{half:?}");
    assert_eq!(three.len(), 3, "{three:?}");
    for (backend, want) in [
        ("infra-backend-v1", 0.5),
        ("infra-backend-v2", 0.3),
        ("infra-backend-v3", 0.2),
    ] {
        assert!((share(&three, backend) - want).abs() <= 0.08, "{three:?}");
    }
}

/// HTTPRouteListenerHostnameMatching: routes attach by section name; the
/// exact listener name wins over a wildcard one, and a wildcard covers
/// names of any depth, never its own suffix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_listener_hostname_matching() {
    let c = Conformance::start().await;
    c.api.apply(gateway(
        "infra",
        "httproute-listener-hostname-matching",
        json!([
            {"name": "listener-1", "port": 80, "protocol": "HTTP", "hostname": "bar.com"},
            {"name": "listener-2", "port": 80, "protocol": "HTTP", "hostname": "foo.bar.com"},
            {"name": "listener-3", "port": 80, "protocol": "HTTP", "hostname": "*.bar.com"},
            {"name": "listener-4", "port": 80, "protocol": "HTTP", "hostname": "*.foo.com"},
        ]),
    ));
    let gw = "httproute-listener-hostname-matching";
    let route = |name: &str, sections: &[&str], backend: &str| {
        let parents: Vec<Value> = sections
            .iter()
            .map(|s| json!({"name": gw, "namespace": "infra", "sectionName": s}))
            .collect();
        http_route(
            "infra",
            name,
            json!({"parentRefs": parents,
                   "rules": [{"backendRefs": [{"name": backend, "port": 8080}]}]}),
        )
    };
    c.api
        .apply(route("backend-v1", &["listener-1"], "infra-backend-v1"));
    c.api
        .apply(route("backend-v2", &["listener-2"], "infra-backend-v2"));
    c.api.apply(route(
        "backend-v3",
        &["listener-3", "listener-4"],
        "infra-backend-v3",
    ));
    c.answers(&[
        ("bar.com", "/", "infra-backend-v1"),
        ("foo.bar.com", "/", "infra-backend-v2"),
        ("baz.bar.com", "/", "infra-backend-v3"),
        ("boo.bar.com", "/", "infra-backend-v3"),
        ("multiple.prefixes.bar.com", "/", "infra-backend-v3"),
        ("multiple.prefixes.foo.com", "/", "infra-backend-v3"),
        ("foo.com", "/", "404"),
        ("no.matching.host", "/", "404"),
    ])
    .await;
    for name in ["backend-v1", "backend-v2", "backend-v3"] {
        assert_eq!(
            c.route_verdict(name, gw).await,
            verdict("True", "Accepted", "True", "ResolvedRefs"),
            "{name}"
        );
    }
}

/// HTTPRouteRequestHeaderModifier and HTTPRouteResponseHeaderModifier:
/// `set` replaces, `add` appends after what was there, `remove` drops, on
/// the request the backend sees and on the answer the client gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_header_modifiers() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    let modifier = json!({"set": [{"name": "X-Header-Set", "value": "set-overwrites-values"}],
                          "add": [{"name": "X-Header-Add", "value": "add-appends-values"}],
                          "remove": ["X-Header-Remove"]});
    let on = |name: &str, host: &str, filter: Value| {
        http_route(
            "infra",
            name,
            json!({"parentRefs": [{"name": "same-namespace"}], "hostnames": [host],
                   "rules": [{"filters": [filter],
                              "backendRefs": [{"name": "infra-backend-v1", "port": 8080}]}]}),
        )
    };
    c.api.apply(on(
        "request-header-modifier",
        "request.example.com",
        json!({"type": "RequestHeaderModifier", "requestHeaderModifier": modifier}),
    ));
    let mut response = modifier.clone();
    response["remove"] = json!(["X-Backend"]);
    c.api.apply(on(
        "response-header-modifier",
        "response.example.com",
        json!({"type": "ResponseHeaderModifier", "responseHeaderModifier": response}),
    ));
    c.answers(&[
        ("request.example.com", "/", "infra-backend-v1"),
        ("response.example.com", "/", "infra-backend-v1"),
    ])
    .await;

    let sent = [
        ("host", "request.example.com"),
        ("x-header-set", "some-other-value"),
        ("x-header-add", "some-other-value"),
        ("X-Header-Remove", "val"),
        ("some-other-header", "val"),
    ];
    let (status, _, seen) = request(&client(None), c.s.listen, "GET", "/headers", &sent, empty())
        .await
        .unwrap();
    assert_eq!(status, 200, "{seen}");
    let lines: Vec<&str> = seen.lines().collect();
    let values = |name: &str| -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .collect()
    };
    assert_eq!(values("x-header-set"), ["set-overwrites-values"], "{seen}");
    assert_eq!(
        values("x-header-add"),
        ["some-other-value", "add-appends-values"],
        "{seen}"
    );
    assert!(values("x-header-remove").is_empty(), "{seen}");
    assert_eq!(values("some-other-header"), ["val"], "{seen}");

    let (status, headers, _) = request(
        &client(None),
        c.s.listen,
        "GET",
        "/",
        &[("host", "response.example.com")],
        empty(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let all = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        all("x-header-set"),
        ["set-overwrites-values"],
        "{headers:?}"
    );
    assert_eq!(all("x-header-add"), ["add-appends-values"], "{headers:?}");
    assert!(
        all("x-backend").is_empty(),
        "the backend's header removed: {headers:?}"
    );
}

/// A GET's status and Location, on `host`.
async fn redirected(c: &Conformance, host: &str, path: &str, method: &str) -> (u16, String) {
    let (status, headers, _) = request(
        &client(None),
        c.s.listen,
        method,
        path,
        &[("host", host)],
        empty(),
    )
    .await
    .unwrap();
    let location = headers
        .get("location")
        .map_or("", |l| l.to_str().unwrap())
        .to_owned();
    (status, location)
}

/// The redirect conformance tests, on one route each as the suite has
/// them: HTTPRouteRedirectHostAndStatus, -Path, -Port, -Scheme, the
/// listener-on-80 and -8080 halves of -PortAndScheme (every listener is
/// served on one socket; the port a client reached is the one its Host
/// names), and HTTPRoute303/307/308Redirect (a POST keeps its method).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_redirects() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    let redirect = |prefix: &str, r: Value| {
        json!({"matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
               "filters": [{"type": "RequestRedirect", "requestRedirect": r}]})
    };
    let full = |p: &str| json!({"type": "ReplaceFullPath", "replaceFullPath": p});
    let prefix = |p: &str| json!({"type": "ReplacePrefixMatch", "replacePrefixMatch": p});
    let host = "example.org";
    c.api.apply(on_same_namespace(
        "redirect-host-and-status",
        json!([
            redirect("/hostname-redirect", json!({"hostname": host})),
            redirect(
                "/host-and-status",
                json!({"hostname": host, "statusCode": 301})
            ),
            redirect(
                "/original-prefix",
                json!({"path": prefix("/replacement-prefix")})
            ),
            redirect("/full", json!({"path": full("/full-path-replacement")})),
            redirect(
                "/path-and-host",
                json!({"hostname": host, "path": prefix("/replacement-prefix")})
            ),
            redirect(
                "/path-and-status",
                json!({"path": prefix("/replacement-prefix"), "statusCode": 301})
            ),
            redirect(
                "/full-path-and-host",
                json!({"hostname": host, "path": full("/replacement-full")})
            ),
            redirect("/port", json!({"port": 8083})),
            redirect(
                "/port-and-host-and-status",
                json!({"port": 8083, "hostname": host, "statusCode": 302})
            ),
            redirect("/scheme", json!({"scheme": "https"})),
            redirect(
                "/scheme-and-host-and-status",
                json!({"scheme": "https", "statusCode": 302, "hostname": host})
            ),
            redirect("/scheme-nil-and-port-nil", json!({"hostname": host})),
            redirect(
                "/scheme-nil-and-port-80",
                json!({"hostname": host, "port": 80})
            ),
            redirect(
                "/scheme-nil-and-port-8080",
                json!({"hostname": host, "port": 8080})
            ),
            redirect(
                "/scheme-https-and-port-nil",
                json!({"hostname": host, "scheme": "https"})
            ),
            redirect(
                "/scheme-https-and-port-443",
                json!({"hostname": host, "scheme": "https", "port": 443})
            ),
            redirect(
                "/scheme-https-and-port-8443",
                json!({"hostname": host, "scheme": "https", "port": 8443})
            ),
            redirect("/see-other", json!({"statusCode": 303})),
            redirect("/temporary", json!({"statusCode": 307})),
            redirect("/permanent", json!({"statusCode": 308})),
        ]),
    ));
    let v = c
        .route_verdict("redirect-host-and-status", "same-namespace")
        .await;
    assert_eq!(v, verdict("True", "Accepted", "True", "ResolvedRefs"));
    let ip = "203.0.113.7";
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        (
            ip,
            "GET",
            "/hostname-redirect",
            302,
            "http://example.org/hostname-redirect",
        ),
        (
            ip,
            "GET",
            "/host-and-status",
            301,
            "http://example.org/host-and-status",
        ),
        (
            ip,
            "GET",
            "/original-prefix/lemon",
            302,
            "http://203.0.113.7/replacement-prefix/lemon",
        ),
        (
            ip,
            "GET",
            "/full/path/original",
            302,
            "http://203.0.113.7/full-path-replacement",
        ),
        (
            ip,
            "GET",
            "/path-and-host",
            302,
            "http://example.org/replacement-prefix",
        ),
        (
            ip,
            "GET",
            "/path-and-status",
            301,
            "http://203.0.113.7/replacement-prefix",
        ),
        (
            ip,
            "GET",
            "/full-path-and-host",
            302,
            "http://example.org/replacement-full",
        ),
        (ip, "GET", "/port", 302, "http://203.0.113.7:8083/port"),
        (
            ip,
            "GET",
            "/port-and-host-and-status",
            302,
            "http://example.org:8083/port-and-host-and-status",
        ),
        (ip, "GET", "/scheme", 302, "https://203.0.113.7/scheme"),
        (
            ip,
            "GET",
            "/scheme-and-host-and-status",
            302,
            "https://example.org/scheme-and-host-and-status",
        ),
        // The listener on 80.
        (
            ip,
            "GET",
            "/scheme-nil-and-port-nil",
            302,
            "http://example.org/scheme-nil-and-port-nil",
        ),
        (
            ip,
            "GET",
            "/scheme-nil-and-port-80",
            302,
            "http://example.org/scheme-nil-and-port-80",
        ),
        (
            ip,
            "GET",
            "/scheme-nil-and-port-8080",
            302,
            "http://example.org:8080/scheme-nil-and-port-8080",
        ),
        (
            ip,
            "GET",
            "/scheme-https-and-port-nil",
            302,
            "https://example.org/scheme-https-and-port-nil",
        ),
        (
            ip,
            "GET",
            "/scheme-https-and-port-443",
            302,
            "https://example.org/scheme-https-and-port-443",
        ),
        (
            ip,
            "GET",
            "/scheme-https-and-port-8443",
            302,
            "https://example.org:8443/scheme-https-and-port-8443",
        ),
        // The listener on 8080: kept with no scheme, dropped with one.
        (
            "203.0.113.7:8080",
            "GET",
            "/scheme-nil-and-port-nil",
            302,
            "http://example.org:8080/scheme-nil-and-port-nil",
        ),
        (
            "203.0.113.7:8080",
            "GET",
            "/scheme-nil-and-port-80",
            302,
            "http://example.org/scheme-nil-and-port-80",
        ),
        (
            "203.0.113.7:8080",
            "GET",
            "/scheme-https-and-port-nil",
            302,
            "https://example.org/scheme-https-and-port-nil",
        ),
        // The query is kept; the method is the client's to choose.
        (
            ip,
            "POST",
            "/see-other?a=1",
            303,
            "http://203.0.113.7/see-other?a=1",
        ),
        (ip, "GET", "/temporary", 307, "http://203.0.113.7/temporary"),
        (ip, "GET", "/permanent", 308, "http://203.0.113.7/permanent"),
    ];
    wait_until("the redirects to be served", WAIT, || async {
        redirected(&c, ip, "/permanent", "GET").await.0 == 308
    })
    .await;
    for (host, method, path, status, location) in cases {
        assert_eq!(
            redirected(&c, host, path, method).await,
            (*status, location.to_string()),
            "{method} {host}{path}"
        );
    }
    // Prefixes match whole path elements: `/full` is not `/full-path-…`,
    // and a path outside every rule is a 404.
    assert_eq!(redirected(&c, ip, "/fullness", "GET").await.0, 404);
}

/// What a backend saw of a request: its pod, path and query, and Host
/// (the test backend's report, asked for by `report=1`).
async fn seen(c: &Conformance, host: &str, target: &str) -> String {
    let (status, _, body) = request(
        &client(None),
        c.s.listen,
        "GET",
        target,
        &[("host", host)],
        empty(),
    )
    .await
    .unwrap();
    format!("{status} {}", body.trim())
}

/// HTTPRouteRewriteHost and HTTPRouteRewritePath: the Host and path the
/// backend gets (the query kept), with a header modifier beside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_rewrites() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    let rewrite = |prefix: Option<&str>, w: Value, backend: &str| {
        let matches = match prefix {
            Some(p) => json!([{"path": {"type": "PathPrefix", "value": p}}]),
            None => json!([]),
        };
        json!({"matches": matches,
               "filters": [{"type": "URLRewrite", "urlRewrite": w},
                           {"type": "RequestHeaderModifier", "requestHeaderModifier":
                               {"set": [{"name": "X-Header-Set", "value": "set-overwrites-values"}]}}],
               "backendRefs": [{"name": backend, "port": 8080}]})
    };
    let full = |p: &str| json!({"type": "ReplaceFullPath", "replaceFullPath": p});
    let prefix = |p: &str| json!({"type": "ReplacePrefixMatch", "replacePrefixMatch": p});
    c.api.apply(http_route(
        "infra",
        "rewrite-host",
        json!({"parentRefs": [{"name": "same-namespace"}], "hostnames": ["rewrite.example"],
        "rules": [
            rewrite(Some("/one"), json!({"hostname": "one.example.org"}), "infra-backend-v1"),
            rewrite(None, json!({"hostname": "example.org"}), "infra-backend-v2"),
        ]}),
    ));
    c.api.apply(on_same_namespace(
        "rewrite-path",
        json!([
            rewrite(
                Some("/prefix/one"),
                json!({"path": prefix("/one")}),
                "infra-backend-v1"
            ),
            rewrite(
                Some("/strip-prefix"),
                json!({"path": prefix("/")}),
                "infra-backend-v1"
            ),
            rewrite(
                Some("/full/one"),
                json!({"path": full("/one")}),
                "infra-backend-v1"
            ),
            rewrite(
                Some("/full/headers"),
                json!({"path": full("/headers")}),
                "infra-backend-v1"
            ),
            rewrite(
                Some("/prefix/rewrite-path-and-modify-headers"),
                json!({"path": prefix("/prefix"), "hostname": "test.example.org"}),
                "infra-backend-v1",
            ),
        ]),
    ));
    for name in ["rewrite-host", "rewrite-path"] {
        let v = c.route_verdict(name, "same-namespace").await;
        assert_eq!(v, verdict("True", "Accepted", "True", "ResolvedRefs"));
    }
    wait_until("the rewrites to be served", WAIT, || async {
        seen(&c, "x", "/full/one/two?report=1")
            .await
            .starts_with("200 pod0 /one")
    })
    .await;
    let cases = [
        (
            "rewrite.example",
            "/one?report=1",
            "200 pod0 /one?report=1 host=one.example.org",
        ),
        (
            "rewrite.example",
            "/two?report=1",
            "200 pod1 /two?report=1 host=example.org",
        ),
        (
            "x",
            "/prefix/one/two?report=1",
            "200 pod0 /one/two?report=1 host=x",
        ),
        (
            "x",
            "/strip-prefix/three?report=1",
            "200 pod0 /three?report=1 host=x",
        ),
        ("x", "/strip-prefix?report=1", "200 pod0 /?report=1 host=x"),
        (
            "x",
            "/full/one/two?report=1",
            "200 pod0 /one?report=1 host=x",
        ),
        (
            "x",
            "/prefix/rewrite-path-and-modify-headers/one?report=1",
            "200 pod0 /prefix/one?report=1 host=test.example.org",
        ),
    ];
    for (host, target, want) in cases {
        assert_eq!(seen(&c, host, target).await, want, "{host}{target}");
    }
    // The header filter applies beside the rewrite.
    let headers = seen(&c, "x", "/full/headers/x").await;
    assert!(
        headers.contains("x-header-set: set-overwrites-values"),
        "{headers}"
    );
}

/// HTTPRouteTimeoutRequest and HTTPRouteTimeoutBackendRequest: a backend
/// slower than the rule's bound is answered 504, and `0s` lifts it (the
/// test backend waits `delay` ms, as the suite's echo server does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_timeouts() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    let bounded = |prefix: &str, timeouts: Value| {
        json!({"matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
               "timeouts": timeouts,
               "backendRefs": [{"name": "infra-backend-v1", "port": 8080}]})
    };
    c.api.apply(on_same_namespace(
        "request-timeout",
        json!([
            bounded("/request-timeout", json!({"request": "500ms"})),
            bounded("/disable-request-timeout", json!({"request": "0s"})),
            bounded("/backend-timeout", json!({"backendRequest": "500ms"})),
            bounded("/disable-backend-timeout", json!({"backendRequest": "0s"})),
        ]),
    ));
    let v = c.route_verdict("request-timeout", "same-namespace").await;
    assert_eq!(v, verdict("True", "Accepted", "True", "ResolvedRefs"));
    c.answers(&[
        ("x", "/request-timeout", "infra-backend-v1"),
        ("x", "/backend-timeout", "infra-backend-v1"),
    ])
    .await;
    let cases = [
        ("/request-timeout?delay=1500", "504"),
        ("/backend-timeout?delay=1500", "504"),
        ("/disable-request-timeout?delay=1500", "infra-backend-v1"),
        ("/disable-backend-timeout?delay=1500", "infra-backend-v1"),
    ];
    let c = &c;
    let asks = cases.map(|(path, want)| async move { (path, want, c.who("x", path).await) });
    for (path, want, got) in futures_util::future::join_all(asks).await {
        assert_eq!(got, want, "{path}");
    }
}

impl Conformance {
    /// Whether pod `i` has been sent `target`.
    fn saw(&self, i: usize, target: &str) -> bool {
        self.pods[i]
            .targets
            .lock()
            .unwrap()
            .iter()
            .any(|t| t == target)
    }
}

/// HTTPRouteRequestMirror, HTTPRouteRequestMultipleMirrors and
/// HTTPRouteRequestPercentageMirror: the request answered by its backend,
/// a copy (path and query as sent) reaching each mirror, a share of them
/// by `fraction`; and a mirror that never answers does not hold the
/// answer back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_request_mirror() {
    let c = Conformance::start().await;
    // A mirror that takes connections and never answers.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = held.clone();
    let holding = tokio::spawn(async move {
        while let Ok((t, _)) = hole.accept().await {
            h.lock().unwrap().push(t);
        }
    });
    c.api.apply(
        json!({"kind": "Service", "metadata": {"name": "black-hole", "namespace": "infra"},
        "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": hole_addr.port()}]}}),
    );
    c.api.apply(slice(
        "infra",
        "black-hole-abc",
        "black-hole",
        hole_addr.port(),
        vec![endpoint(hole_addr, "black-hole-0", true, false)],
    ));
    // A mirror whose pod refuses connections.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    c.api.apply(
        json!({"kind": "Service", "metadata": {"name": "refused", "namespace": "infra"},
        "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": refused.port()}]}}),
    );
    c.api.apply(slice(
        "infra",
        "refused-abc",
        "refused",
        refused.port(),
        vec![endpoint(refused, "refused-0", true, false)],
    ));
    c.api.apply(same_namespace());
    let mirror = |to: &str| {
        json!({"type": "RequestMirror",
               "requestMirror": {"backendRef": {"name": to, "namespace": "infra", "port": 8080}}})
    };
    let mirrored = |prefix: &str, filters: Value| {
        json!({"matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
               "filters": filters,
               "backendRefs": [{"name": "infra-backend-v1", "namespace": "infra", "port": 8080}]})
    };
    let mut half = mirror("infra-backend-v2");
    half["requestMirror"]["fraction"] = json!({"numerator": 25, "denominator": 50});
    c.api.apply(on_same_namespace(
        "request-mirror",
        json!([
            mirrored("/mirror", json!([mirror("infra-backend-v2")])),
            mirrored(
                "/mirror-and-modify-headers",
                json!([{"type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"set": [{"name": "X-Header-Set", "value": "v"}]}},
                       mirror("infra-backend-v2")]),
            ),
            mirrored(
                "/multi-mirror",
                json!([mirror("infra-backend-v2"), mirror("infra-backend-v3")]),
            ),
            mirrored("/percent-mirror-fraction", json!([half])),
            mirrored("/mirror-black-hole", json!([mirror("black-hole")])),
            mirrored("/mirror-refused", json!([mirror("refused")])),
        ]),
    ));
    let want = verdict("True", "Accepted", "True", "ResolvedRefs");
    c.route_verdict_becomes("request-mirror", "same-namespace", want)
        .await;
    c.answers(&[("x", "/mirror", "infra-backend-v1")]).await;

    for (target, mirrors) in [
        ("/mirror?gateway-api-conformance-request-id=1", &[1][..]),
        (
            "/mirror-and-modify-headers?gateway-api-conformance-request-id=2",
            &[1],
        ),
        (
            "/multi-mirror?gateway-api-conformance-request-id=3",
            &[1, 2],
        ),
    ] {
        assert_eq!(c.who("x", target).await, "infra-backend-v1", "{target}");
        assert!(c.saw(0, target), "{target}: the backend got it as sent");
        wait_until(
            &format!("{target} mirrored to {mirrors:?}"),
            WAIT,
            || async { mirrors.iter().all(|&i| c.saw(i, target)) },
        )
        .await;
    }
    // A body, from an HTTP/2 client that names no length, reaches the
    // mirror whole (and the backend too).
    {
        use http_body_util::BodyExt;
        let tcp = tokio::net::TcpStream::connect(c.s.listen).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let chunks = (0..4).map(|_| {
            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes::Bytes::from(
                vec![b'x'; 25_000],
            )))
        });
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
        let req = http::Request::post("http://x/mirror/count-body?id=h2")
            .body(body)
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let got = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], b"got 100000\n");
        wait_until("the mirror to get the whole body", WAIT, || async {
            c.saw(1, "/mirror/count-body?id=h2 body=100000")
        })
        .await;
    }
    // A mirror's answer, or none, is never waited for.
    assert_eq!(c.who("x", "/mirror-black-hole").await, "infra-backend-v1");
    wait_until("the black hole to hold the copy", WAIT, || async {
        !held.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        c.who("x", "/mirror-black-hole/again").await,
        "infra-backend-v1"
    );
    holding.abort();
    // A mirror that fails leaves the answer as it is; copies are counted
    // by outcome.
    assert_eq!(c.who("x", "/mirror-refused").await, "infra-backend-v1");
    let count = |outcome: &'static str| {
        let admin = c.s.admin;
        async move {
            let (_, text) = get(admin, "/metrics").await.unwrap();
            text.lines()
                .filter(|l| {
                    l.starts_with("sluice_mirrored_requests_total{")
                        && l.contains(&format!("outcome=\"{outcome}\""))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        }
    };
    wait_until("the mirrors' outcomes to be counted", WAIT, || async {
        count("answered").await >= 3.0 && count("failed").await >= 1.0
    })
    .await;

    // Half, by fraction, of 400: 200 ± 60 (6 sigma).
    let n = 400;
    for i in 0..n {
        let target = format!("/percent-mirror-fraction?n={i}");
        assert_eq!(c.who("x", &target).await, "infra-backend-v1");
    }
    let count = || {
        c.pods[1]
            .targets
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.starts_with("/percent-mirror-fraction?"))
            .count()
    };
    // Copies still on their way arrive; then the count stays.
    wait_until("the mirrored half to arrive", WAIT, || async {
        count() >= 140
    })
    .await;
    let settled = count();
    assert!((140..=260).contains(&settled), "{settled} of {n} mirrored");
}

/// HTTPRouteBackendRequestHeaderModifier: a RequestHeaderModifier on a
/// backendRef edits what that backend gets, after the rule's own; in a
/// split, each backend gets its own edits only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_backend_request_header_modifier() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    let set = |name: &str, value: &str| {
        json!({"type": "RequestHeaderModifier",
               "requestHeaderModifier": {"set": [{"name": name, "value": value}]}})
    };
    let which = |v: &str| {
        json!([{"path": {"type": "Exact", "value": "/headers"},
                                  "headers": [{"name": "which", "value": v}]}])
    };
    c.api.apply(http_route(
        "infra",
        "request-header-modifier",
        json!({"parentRefs": [{"name": "same-namespace"}], "hostnames": ["backend.example.com"],
               "rules": [
                   {"matches": which("one"),
                    "filters": [set("X-Rule", "rule"), set("X-Header-Set", "from-the-rule")],
                    "backendRefs": [{"name": "infra-backend-v1", "port": 8080, "filters": [
                        {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                            "set": [{"name": "X-Header-Set", "value": "set-overwrites-values"}],
                            "add": [{"name": "X-Header-Add", "value": "add-appends-values"}],
                            "remove": ["X-Header-Remove"]}}]}]},
                   {"matches": which("split"),
                    "backendRefs": [
                        {"name": "infra-backend-v1", "port": 8080, "filters": [set("X-Which", "infra-backend-v1")]},
                        {"name": "infra-backend-v2", "port": 8080, "filters": [set("X-Which", "infra-backend-v2")]}]}]}),
    ));
    let v = c
        .route_verdict("request-header-modifier", "same-namespace")
        .await;
    assert_eq!(v, verdict("True", "Accepted", "True", "ResolvedRefs"));
    let ask = |which: &'static str| {
        let c = &c;
        async move {
            let sent = [
                ("host", "backend.example.com"),
                ("which", which),
                ("x-header-add", "some-other-value"),
                ("x-header-remove", "val"),
            ];
            request(&client(None), c.s.listen, "GET", "/headers", &sent, empty())
                .await
                .unwrap()
        }
    };
    wait_until("the route to be served", WAIT, || async {
        ask("one").await.0 == 200
    })
    .await;
    let (_, _, seen) = ask("one").await;
    let values = |seen: &str, name: &str| -> Vec<String> {
        seen.lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(values(&seen, "x-rule"), ["rule"], "{seen}");
    assert_eq!(
        values(&seen, "x-header-set"),
        ["set-overwrites-values"],
        "{seen}"
    );
    assert_eq!(
        values(&seen, "x-header-add"),
        ["some-other-value", "add-appends-values"],
        "{seen}"
    );
    assert!(values(&seen, "x-header-remove").is_empty(), "{seen}");
    // Each backend of the split gets its own edit, and both are used.
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (status, headers, seen) = ask("split").await;
        assert_eq!(status, 200, "{seen}");
        let backend = headers["x-backend"].to_str().unwrap();
        let name = BACKENDS[backend
            .strip_prefix("pod")
            .unwrap()
            .parse::<usize>()
            .unwrap()]
        .1;
        assert_eq!(values(&seen, "x-which"), [name], "{seen}");
        answered.insert(name);
    }
    assert_eq!(answered.len(), 2, "{answered:?}");
}

/// HTTPRouteCORS: preflights answered by the proxy (204 with the headers
/// for an allowed origin, 403 for another: never the backend's), and
/// allowed requests' answers carrying the origin; the suite's four routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_cors() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    let rule = |prefix: &str, cors: Value| {
        json!({"matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
               "filters": [{"type": "CORS", "cors": cors}],
               "backendRefs": [{"name": "infra-backend-v1", "port": 8080}]})
    };
    c.api.apply(on_same_namespace(
        "cors",
        json!([
            rule(
                "/cors-1",
                json!({
                "allowOrigins": ["https://www.foo.com", "https://*.bar.com"],
                "allowMethods": ["GET", "OPTIONS"],
                "allowHeaders": ["x-header-1", "x-header-2"],
                "exposeHeaders": ["x-header-3", "x-header-4"],
                "allowCredentials": true, "maxAge": 3600})
            ),
            rule(
                "/cors-2",
                json!({"allowOrigins": ["https://www.foo.com"], "allowMethods": ["*"]})
            ),
            rule(
                "/cors-wildcard-origin",
                json!({
                "allowOrigins": ["*"], "allowMethods": ["PUT"], "allowCredentials": false})
            ),
            rule(
                "/cors-wildcard-methods-headers",
                json!({
                "allowOrigins": ["*"], "allowMethods": ["*"], "allowHeaders": ["*"],
                "allowCredentials": true})
            ),
        ]),
    ));
    let v = c.route_verdict("cors", "same-namespace").await;
    assert_eq!(v, verdict("True", "Accepted", "True", "ResolvedRefs"));
    c.answers(&[("x", "/cors-1", "infra-backend-v1")]).await;
    let ask = |method: &'static str, path: &'static str, origin: &'static str, m: &'static str| {
        let c = &c;
        async move {
            let mut sent = vec![("host", "x"), ("origin", origin)];
            if !m.is_empty() {
                sent.push(("access-control-request-method", m));
                sent.push(("access-control-request-headers", "x-header-1, x-header-2"));
            }
            let (status, h, body) =
                request(&client(None), c.s.listen, method, path, &sent, empty())
                    .await
                    .unwrap();
            let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_owned());
            (
                status,
                get("access-control-allow-origin"),
                get("access-control-allow-methods"),
                get("access-control-allow-headers"),
                get("access-control-allow-credentials"),
                get("access-control-expose-headers"),
                get("access-control-max-age"),
                body,
            )
        }
    };
    let some = |s: &str| Some(s.to_owned());
    // Preflights: the proxy's own 204, never the backend's.
    for origin in [
        "https://www.foo.com",
        "https://www.bar.com",
        "https://xpto.www.bar.com",
    ] {
        let (status, o, m, h, cr, e, age, body) = ask("OPTIONS", "/cors-1", origin, "GET").await;
        assert_eq!(status, 204, "{origin}: {body}");
        assert_eq!(
            (o, m, h),
            (
                some(origin),
                some("GET, OPTIONS"),
                some("x-header-1, x-header-2")
            )
        );
        assert_eq!(
            (cr, e, age),
            (some("true"), some("x-header-3, x-header-4"), some("3600"))
        );
    }
    let (status, o, ..) = ask("OPTIONS", "/cors-1", "https://foobar.com", "GET").await;
    assert_eq!((status, o), (403, None), "an origin not allowed");
    // Every answer of the route varies by Origin, allowed or not.
    for (method, origin, m) in [
        ("OPTIONS", "https://foobar.com", "GET"),
        ("GET", "https://foobar.com", ""),
        ("GET", "https://www.foo.com", ""),
    ] {
        let mut sent = vec![("host", "x"), ("origin", origin)];
        if !m.is_empty() {
            sent.push(("access-control-request-method", m));
        }
        let (_, h, _) = request(&client(None), c.s.listen, method, "/cors-1", &sent, empty())
            .await
            .unwrap();
        assert!(
            h.get_all("vary").iter().any(|v| v == "Origin"),
            "{method} {origin}: {h:?}"
        );
    }
    let (status, o, m, _, cr, _, age, _) =
        ask("OPTIONS", "/cors-2", "https://www.foo.com", "POST").await;
    assert_eq!(
        (status, o, m, cr, age),
        (
            204,
            some("https://www.foo.com"),
            some("POST"),
            None,
            some("5")
        )
    );
    let (status, o, m, _, cr, ..) = ask(
        "OPTIONS",
        "/cors-wildcard-origin",
        "https://foobar.com:12345",
        "PUT",
    )
    .await;
    assert_eq!(
        (status, o, m, cr),
        (204, some("https://foobar.com:12345"), some("PUT"), None)
    );
    // With credentials, `*` is never sent back: what was asked is.
    let (status, o, m, h, cr, ..) = ask(
        "OPTIONS",
        "/cors-wildcard-methods-headers",
        "https://other.foo.com",
        "PUT",
    )
    .await;
    assert_eq!(
        (status, o, m, h, cr),
        (
            204,
            some("https://other.foo.com"),
            some("PUT"),
            some("x-header-1, x-header-2"),
            some("true")
        )
    );
    // Requests are forwarded; an allowed origin's answer says so.
    let (status, o, _, _, cr, e, _, body) = ask("GET", "/cors-1", "https://www.bar.com", "").await;
    assert_eq!((status, body.trim()), (200, "pod0"));
    assert_eq!(
        (o, cr, e),
        (
            some("https://www.bar.com"),
            some("true"),
            some("x-header-3, x-header-4")
        )
    );
    let (status, o, _, _, _, _, _, body) = ask("GET", "/cors-1", "https://foobar.com", "").await;
    assert_eq!((status, o, body.trim()), (200, None, "pod0"));
    let (status, o, _, _, cr, ..) =
        ask("PUT", "/cors-wildcard-origin", "https://foobar.com", "").await;
    assert_eq!((status, o, cr), (200, some("https://foobar.com"), None));
    // An OPTIONS that is not a preflight is the backend's.
    let (status, _, _, _, _, _, _, body) =
        ask("OPTIONS", "/cors-1", "https://www.foo.com", "").await;
    assert_eq!((status, body.trim()), (200, "pod0"));
}

/// HTTPRouteBackendProtocolH2C and HTTPRouteBackendProtocolWebSocket: a
/// Service port with `appProtocol: kubernetes.io/h2c` is spoken to in
/// HTTP/2 with prior knowledge; one with `kubernetes.io/ws` carries a
/// WebSocket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_backend_protocols() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let c = Conformance::start().await;
    let port = c.pods[0].addr.port();
    c.api.apply(json!({"kind": "Service",
        "metadata": {"name": "infra-backend-v1-protocols", "namespace": "infra"},
        "spec": {"ports": [
            {"name": "second-port", "port": 8081, "targetPort": port, "appProtocol": "kubernetes.io/h2c"},
            {"name": "third-port", "port": 8082, "targetPort": port, "appProtocol": "kubernetes.io/ws"}]}}));
    let mut s = slice(
        "infra",
        "infra-backend-v1-protocols-abc",
        "infra-backend-v1-protocols",
        port,
        vec![endpoint(c.pods[0].addr, "infra-backend-v1-0", true, false)],
    );
    s["ports"] = json!([{"name": "second-port", "port": port, "protocol": "TCP"},
                        {"name": "third-port", "port": port, "protocol": "TCP"}]);
    c.api.apply(s);
    c.api.apply(same_namespace());
    let to = |host: &str, port: u16| {
        http_route(
            "infra",
            host.split('.').next().unwrap(),
            json!({"parentRefs": [{"name": "same-namespace"}], "hostnames": [host],
                   "rules": [{"backendRefs": [{"name": "infra-backend-v1-protocols", "port": port}]}]}),
        )
    };
    c.api.apply(to("h2c.example.com", 8081));
    c.api.apply(to("ws.example.com", 8082));
    c.api.apply(to("plain.example.com", 8080));
    for name in ["h2c", "ws"] {
        let want = verdict("True", "Accepted", "True", "ResolvedRefs");
        c.route_verdict_becomes(name, "same-namespace", want).await;
    }
    let version = |host: &'static str| {
        let c = &c;
        async move {
            let (status, _, body) = request(
                &client(None),
                c.s.listen,
                "GET",
                "/version",
                &[("host", host)],
                empty(),
            )
            .await
            .unwrap();
            format!("{status} {}", body.trim())
        }
    };
    wait_until("the h2c backend to be served", WAIT, || async {
        version("h2c.example.com").await == "200 HTTP/2.0"
    })
    .await;
    assert_eq!(version("ws.example.com").await, "200 HTTP/1.1");

    let tcp = tokio::net::TcpStream::connect(c.s.listen).await.unwrap();
    let (mut ws, resp) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio_tungstenite::client_async("ws://ws.example.com/ws", tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake succeeds");
    assert_eq!(resp.status(), 101);
    for m in [Message::text("Test"), Message::binary(vec![1u8, 2, 3])] {
        ws.send(m.clone()).await.unwrap();
        let back = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("echo in time")
            .expect("stream open")
            .unwrap();
        assert_eq!(back, m);
    }
}

/// Balancing by policy (issue 15, point 4): `sluice.dev/load-balance.RULE`
/// picks a named rule's strategy; ip-hash keys on the client a PROXY
/// header names (every connection comes from the one LoadBalancer
/// address), and keeps each client on one pod, while the route's other
/// rule goes round-robin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_s_strategy_by_annotation_and_ip_hash_behind_proxy_protocol() {
    use tokio::io::AsyncWriteExt;
    let c = Conformance::start_with(&["--proxy-protocol"]).await;
    let port = c.pods[0].addr.port();
    c.api.apply(
        json!({"kind": "Service", "metadata": {"name": "three-pods", "namespace": "infra"},
        "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": port}]}}),
    );
    c.api.apply(slice(
        "infra",
        "three-pods-abc",
        "three-pods",
        port,
        (0..3)
            .map(|i| endpoint(c.pods[i].addr, &format!("three-pods-{i}"), true, false))
            .collect(),
    ));
    c.api.apply(same_namespace());
    let mut route = on_same_namespace(
        "by-policy",
        json!([
            {"name": "sticky", "matches": [{"path": {"type": "PathPrefix", "value": "/sticky"}}],
             "backendRefs": [{"name": "three-pods", "port": 8080}]},
            {"name": "spread", "matches": [{"path": {"type": "PathPrefix", "value": "/spread"}}],
             "backendRefs": [{"name": "three-pods", "port": 8080}]},
        ]),
    );
    route["metadata"]["annotations"] = json!({"sluice.dev/load-balance.sticky": "ip-hash"});
    c.api.apply(route);
    let want = verdict("True", "Accepted", "True", "ResolvedRefs");
    c.route_verdict_becomes("by-policy", "same-namespace", want)
        .await;
    // One request on a fresh connection whose PROXY v1 header names
    // 203.0.113.N: the pod that answered.
    let from = |n: u8, path: &'static str| {
        let listen = c.s.listen;
        async move {
            let mut tcp = tokio::net::TcpStream::connect(listen).await.unwrap();
            let head = format!(
                "PROXY TCP4 203.0.113.{n} 127.0.0.1 5555 80\r\nGET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            tcp.write_all(head.as_bytes()).await.unwrap();
            let got = read_until(&mut tcp, std::time::Duration::from_secs(10), until_closed).await;
            got.text()
                .lines()
                .find_map(|l| l.strip_prefix("x-backend: ").map(str::to_owned))
                .unwrap_or_else(|| panic!("no answer: {}", got.text()))
        }
    };
    wait_until("the rules to be served", WAIT, || async {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..6 {
            seen.insert(from(1, "/spread").await);
        }
        seen.len() == 3
    })
    .await;
    let mut by_client: std::collections::BTreeMap<u8, std::collections::BTreeSet<String>> =
        Default::default();
    for _round in 0..2 {
        for n in 1..=24u8 {
            by_client
                .entry(n)
                .or_default()
                .insert(from(n, "/sticky").await);
        }
    }
    assert!(
        by_client.values().all(|pods| pods.len() == 1),
        "a client moved: {by_client:?}"
    );
    let used: std::collections::BTreeSet<&String> = by_client.values().flatten().collect();
    assert!(used.len() > 1, "every client on one pod: {by_client:?}");
    // The other rule is round-robin: one client meets every pod.
    let mut one_client = std::collections::BTreeSet::new();
    for _ in 0..6 {
        one_client.insert(from(7, "/spread").await);
    }
    assert_eq!(one_client.len(), 3, "{one_client:?}");
}

/// HTTPRouteCrossNamespace: a route in another namespace attaches to a
/// listener that selects its namespace by label (its status naming the
/// Gateway's namespace); and HTTPRouteInvalidCrossNamespaceParentRef: a
/// listener that allows only its own namespace refuses it, with its
/// references still resolved, and counts no route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_cross_namespace() {
    let c = Conformance::start().await;
    c.api.apply(same_namespace());
    c.api.apply(gateway(
        "infra",
        "backend-namespaces",
        json!([{"name": "http", "port": 80, "protocol": "HTTP",
                "allowedRoutes": {"namespaces": {"from": "Selector",
                    "selector": {"matchLabels": {"gateway-conformance": "backend"}}}}}]),
    ));
    let route = |name: &str, gw: &str, host: &str| {
        http_route(
            "web",
            name,
            json!({"parentRefs": [{"name": gw, "namespace": "infra"}], "hostnames": [host],
                   "rules": [{"backendRefs": [{"name": "web-backend", "port": 8080}]}]}),
        )
    };
    c.api.apply(route(
        "cross-namespace",
        "backend-namespaces",
        "cross.example.com",
    ));
    c.api.apply(route(
        "invalid-cross-namespace-parent-ref",
        "same-namespace",
        "invalid.example.com",
    ));
    c.answers(&[
        ("cross.example.com", "/", "web-backend"),
        ("invalid.example.com", "/", "404"),
    ])
    .await;
    let judged = |gw: &'static str| {
        move |r: &Value| {
            parent_condition(r, gw, "Accepted").is_some()
                && parent_condition(r, gw, "ResolvedRefs").is_some()
        }
    };
    let ok = c
        .status_until(
            "HTTPRoute",
            "web",
            "cross-namespace",
            "the route's status",
            judged("backend-namespaces"),
        )
        .await;
    assert_eq!(
        parent_condition(&ok, "backend-namespaces", "Accepted"),
        Some(("True".into(), "Accepted".into()))
    );
    assert_eq!(
        parent(&ok, "backend-namespaces").unwrap()["parentRef"]["namespace"],
        "infra"
    );
    let refused = c
        .status_until(
            "HTTPRoute",
            "web",
            "invalid-cross-namespace-parent-ref",
            "the route's status",
            judged("same-namespace"),
        )
        .await;
    assert_eq!(refused["status"]["parents"].as_array().unwrap().len(), 1);
    assert_eq!(
        parent_condition(&refused, "same-namespace", "Accepted"),
        Some(("False".into(), "NotAllowedByListeners".into()))
    );
    assert_eq!(
        parent_condition(&refused, "same-namespace", "ResolvedRefs"),
        Some(("True".into(), "ResolvedRefs".into()))
    );
    c.same_namespace_counts_no_route().await;
}

/// GatewayWithAttachedRoutes and GatewayInvalidRouteKind, through
/// discovery: each listener counts the routes attached to it (not one
/// refused for its hostname; one on a listener whose certificate is
/// missing still counts), and a listener's route kinds it cannot serve
/// are `InvalidRouteKinds`, the valid ones listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_with_attached_routes_and_invalid_route_kinds() {
    let c = Conformance::start().await;
    let infra_only = json!({"namespaces": {"from": "Selector", "selector": {"matchLabels":
        {"kubernetes.io/metadata.name": "infra"}}}, "kinds": [{"kind": "HTTPRoute"}]});
    c.api.apply(gateway(
        "infra",
        "gateway-with-one-attached-route",
        json!([{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": infra_only}]),
    ));
    c.api.apply(gateway(
        "infra",
        "gateway-with-two-attached-routes",
        json!([{"name": "http", "port": 80, "protocol": "HTTP", "hostname": "foo.example.com",
                "allowedRoutes": infra_only}]),
    ));
    c.api.apply(gateway("infra", "unresolved-gateway-with-one-attached-unresolved-route",
        json!([{"name": "tls", "port": 443, "protocol": "HTTPS", "allowedRoutes": {"namespaces": {"from": "All"}},
                "tls": {"mode": "Terminate", "certificateRefs": [{"name": "does-not-exist"}]}}])));
    c.api.apply(gateway(
        "infra",
        "gateway-only-invalid-route-kind",
        json!([{"name": "http", "port": 80, "protocol": "HTTP",
                "allowedRoutes": {"kinds": [{"kind": "InvalidRoute"}]}}]),
    ));
    c.api.apply(gateway(
        "infra",
        "gateway-supported-and-invalid-route-kind",
        json!([{"name": "http", "port": 80, "protocol": "HTTP",
                "allowedRoutes": {"kinds": [{"kind": "InvalidRoute"}, {"kind": "HTTPRoute"}]}}]),
    ));
    let on = |name: &str, parent: Value, hostnames: Value, backend: &str| {
        http_route(
            "infra",
            name,
            json!({"parentRefs": [parent], "hostnames": hostnames,
            "rules": [{"backendRefs": [{"name": backend, "port": 8080}]}]}),
        )
    };
    c.api.apply(on(
        "http-route-1",
        json!({"name": "gateway-with-one-attached-route"}),
        json!([]),
        "infra-backend-v1",
    ));
    c.api.apply(on(
        "http-route-2",
        json!({"name": "gateway-with-two-attached-routes"}),
        json!([]),
        "infra-backend-v1",
    ));
    c.api.apply(on(
        "http-route-3",
        json!({"name": "gateway-with-two-attached-routes"}),
        json!([]),
        "infra-backend-v1",
    ));
    c.api.apply(on(
        "http-route-not-accepted",
        json!({"name": "gateway-with-two-attached-routes"}),
        json!(["not-accepted.test.com"]),
        "infra-backend-v1",
    ));
    c.api.apply(on("http-route-4",
        json!({"name": "unresolved-gateway-with-one-attached-unresolved-route", "sectionName": "tls"}),
        json!([]), "does-not-exist"));
    let counted = |gw: &'static str, l: &'static str, n: u64| {
        let c = &c;
        async move {
            let g = c
                .status_until(
                    "Gateway",
                    "infra",
                    gw,
                    &format!("{gw}'s {l} to count {n}"),
                    |g| listener(g, l).is_some_and(|x| x["attachedRoutes"] == n),
                )
                .await;
            listener(&g, l).unwrap().clone()
        }
    };
    let l = counted("gateway-with-one-attached-route", "http", 1).await;
    for t in ["Accepted", "ResolvedRefs"] {
        assert_eq!(
            condition(&l["conditions"], t).unwrap().0,
            "True",
            "{t}: {l}"
        );
    }
    assert_eq!(
        l["supportedKinds"],
        json!([{"group": GROUP, "kind": "HTTPRoute"}])
    );
    counted("gateway-with-two-attached-routes", "http", 2).await;
    let l = counted(
        "unresolved-gateway-with-one-attached-unresolved-route",
        "tls",
        1,
    )
    .await;
    for t in ["Programmed", "ResolvedRefs"] {
        assert_eq!(
            condition(&l["conditions"], t).unwrap().0,
            "False",
            "{t}: {l}"
        );
    }
    let v = c
        .route_verdict(
            "http-route-not-accepted",
            "gateway-with-two-attached-routes",
        )
        .await;
    assert_eq!(v[0], ("False".into(), "NoMatchingListenerHostname".into()));
    let v = c
        .route_verdict(
            "http-route-4",
            "unresolved-gateway-with-one-attached-unresolved-route",
        )
        .await;
    assert_eq!(v, verdict("True", "Accepted", "False", "BackendNotFound"));
    for (gw, kinds) in [
        ("gateway-only-invalid-route-kind", json!([])),
        (
            "gateway-supported-and-invalid-route-kind",
            json!([{"group": GROUP, "kind": "HTTPRoute"}]),
        ),
    ] {
        let l = counted(gw, "http", 0).await;
        let (status, reason, _) = condition(&l["conditions"], "ResolvedRefs").unwrap();
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "InvalidRouteKinds"),
            "{gw}"
        );
        assert_eq!(l["supportedKinds"], kinds, "{gw}");
    }
}

/// GRPCRoute (the conformance suite's GRPCExactMethodMatching and its
/// regular-expression counterpart) with a real gRPC client and servers:
/// a call goes by its service and method to the rule's backend, spoken
/// to in HTTP/2; the route's status is written like an HTTPRoute's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_route_method_matching() {
    use sluice_integration::grpc::{grpc_call, GrpcServer};
    let c = Conformance::start().await;
    let servers = [
        GrpcServer::start("grpc-a", None).await,
        GrpcServer::start("grpc-b", None).await,
    ];
    for (i, server) in servers.iter().enumerate() {
        let name = ["grpc-a", "grpc-b"][i];
        let port = server.addr.port();
        c.api.apply(
            json!({"kind": "Service", "metadata": {"name": name, "namespace": "infra"},
            "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": port}]}}),
        );
        c.api.apply(slice(
            "infra",
            &format!("{name}-abc"),
            name,
            port,
            vec![endpoint(server.addr, &format!("{name}-0"), true, false)],
        ));
    }
    c.api.apply(same_namespace());
    let grpc_route = |name: &str, host: &str, rules: Value| {
        json!({"kind": "GRPCRoute", "metadata": {"name": name, "namespace": "infra"},
               "spec": {"parentRefs": [{"name": "same-namespace"}], "hostnames": [host],
                        "rules": rules}})
    };
    let to = |backend: &str| json!([{"name": backend, "port": 8080}]);
    c.api.apply(grpc_route(
        "exact-matching",
        "grpc.example.com",
        json!([
            {"matches": [{"method": {"service": "sluice.test.Echo", "method": "Say"}}],
             "backendRefs": to("grpc-a")},
            {"matches": [{"method": {"service": "sluice.test.Echo", "method": "Count"}}],
             "backendRefs": to("grpc-b")},
        ]),
    ));
    c.api.apply(grpc_route(
        "regex-matching",
        "regex.example.com",
        json!([{"matches": [{"method": {"type": "RegularExpression",
                                        "service": "sluice\\.test\\..*", "method": "S.y"}}],
                "backendRefs": to("grpc-b")}]),
    ));
    for name in ["exact-matching", "regex-matching"] {
        let route = c
            .status_until("GRPCRoute", "infra", name, "the GRPCRoute's status", |r| {
                parent_condition(r, "same-namespace", "ResolvedRefs")
                    .is_some_and(|(s, _)| s == "True")
            })
            .await;
        assert_eq!(
            parent_condition(&route, "same-namespace", "Accepted"),
            Some(("True".into(), "Accepted".into())),
            "{route}"
        );
    }
    let listen = c.s.listen;
    wait_until("the GRPCRoutes to be served", WAIT, || async {
        grpc_call(listen, "grpc.example.com", "Say", "hello").await == "grpc-a: hello\n"
    })
    .await;
    assert_eq!(
        grpc_call(listen, "grpc.example.com", "Count", "2").await,
        "grpc-b 1\ngrpc-b 2\n"
    );
    assert_eq!(
        grpc_call(listen, "regex.example.com", "Say", "hi").await,
        "grpc-b: hi\n"
    );
    // A method no rule matches is not routed.
    assert!(
        grpc_call(listen, "regex.example.com", "Count", "1")
            .await
            .starts_with("status "),
        "Count is not a match"
    );
    // The listener takes both kinds.
    let gw = c.same_namespace_counting(2).await;
    assert_eq!(
        listener(&gw, "http").unwrap()["supportedKinds"],
        json!([{"group": GROUP, "kind": "HTTPRoute"}, {"group": GROUP, "kind": "GRPCRoute"}])
    );
}
