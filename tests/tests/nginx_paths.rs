//! ingress-nginx's path annotations, driven through discovery: the
//! Ingresses of `tests/corpus/ingress-nginx/paths.yaml` are applied to the
//! tests' API server, and real requests check what ingress-nginx would do
//! with them — the exact path and query a backend receives after
//! `rewrite-target`, the order regex paths are tried in, case-insensitive
//! matching over a whole host once one Ingress asks for regexes, and the
//! codes and `Location`s of `app-root`, `permanent-redirect`,
//! `temporal-redirect` and `from-to-www-redirect`.

use sluice_integration::cluster::{proxy, WAIT};
use sluice_integration::corpus::manifests;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;

/// The corpus's Services, each one reporting backend.
const SERVICES: [&str; 5] = ["one", "two", "three", "api", "web"];

/// The corpus applied, and a proxy serving it.
struct Cluster {
    _api: KubeApi,
    s: Sluice,
    backends: Vec<Backend>,
}

impl Cluster {
    async fn start() -> Cluster {
        let api = KubeApi::start().await;
        let mut backends = Vec::new();
        let mut vars = Vec::new();
        for name in SERVICES {
            let b = Backend::start_reporting(name).await;
            vars.push((
                format!("{}_PORT", name.to_uppercase()),
                b.addr.port().to_string(),
            ));
            backends.push(b);
        }
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (&**k, &**v)).collect();
        for m in manifests("ingress-nginx/paths.yaml", &vars) {
            api.apply(m);
        }
        let s = proxy(&api, &[]).await;
        let c = Cluster {
            _api: api,
            s,
            backends,
        };
        // One probe per Ingress of the corpus: every one is served.
        let probes = [
            ("rewrite.example.com", "/static", 200),
            ("rewrite.example.com", "/something", 200),
            ("order.example.com", "/foo/bar/1", 200),
            ("warning.example.com", "/foo/bar/bar", 200),
            ("broken.example.com", "/ok/x", 200),
            ("plain.example.com", "/static", 200),
            ("approot.example.com", "/", 302),
            ("moved.example.com", "/", 301),
            ("moved308.example.com", "/", 308),
            ("temporal.example.com", "/", 302),
            ("temporal307.example.com", "/", 307),
            ("badcode.example.com", "/", 301),
            ("www.example.org", "/", 308),
            ("example.org", "/", 200),
        ];
        wait_until("every Ingress of the corpus to be served", WAIT, || async {
            for (host, path, status) in probes {
                if c.get(host, path).await.0 != status {
                    return false;
                }
            }
            true
        })
        .await;
        c
    }

    /// GET `path` with Host `host`: status, `Location` (or ""), body.
    async fn get(&self, host: &str, path: &str) -> (u16, String, String) {
        match request(
            &client(None),
            self.s.listen,
            "GET",
            path,
            &[("host", host)],
            empty(),
        )
        .await
        {
            Ok((status, headers, body)) => {
                let location = headers
                    .get("location")
                    .map_or("", |l| l.to_str().unwrap())
                    .to_owned();
                (status, location, body)
            }
            Err(e) => (0, String::new(), e),
        }
    }

    /// What the backend that answered says it received: `NAME TARGET`
    /// (the Host it got must be `host`, unchanged). Fails unless 200.
    async fn reached(&self, host: &str, path: &str) -> String {
        let (status, _, body) = self.get(host, path).await;
        assert_eq!(status, 200, "GET {host}{path}: {body}");
        let line = body.trim_end();
        let line = line
            .strip_suffix(&format!(" host={host}"))
            .unwrap_or_else(|| panic!("GET {host}{path}: the backend got another Host: {line}"));
        line.to_owned()
    }

    /// The status and `Location` of a redirect.
    async fn redirect(&self, host: &str, path: &str) -> (u16, String) {
        let (status, location, _) = self.get(host, path).await;
        (status, location)
    }

    fn backend(&self, name: &str) -> &Backend {
        self.backends.iter().find(|b| b.name == name).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_target_sends_the_captured_path_and_keeps_the_query() {
    let c = Cluster::start().await;
    let h = "rewrite.example.com";
    // `/something(/|$)(.*)` with `rewrite-target: /$2`: the whole path is
    // replaced, the query kept.
    assert_eq!(
        c.reached(h, "/something/new?x=1&y=2").await,
        "api /new?x=1&y=2"
    );
    assert_eq!(c.reached(h, "/something").await, "api /");
    assert_eq!(c.reached(h, "/something/").await, "api /");
    assert_eq!(c.reached(h, "/something?q").await, "api /?q");
    // Case-insensitive, and the captured text keeps its case.
    assert_eq!(c.reached(h, "/SomeThing/Deep/Path").await, "api /Deep/Path");
    // `(/|$)` does not match: no route on this host.
    assert_eq!(c.get(h, "/somethingelse").await.0, 404);
    // `/foo/bar/(.+)` with `rewrite-target: /$1`.
    assert_eq!(
        c.reached("order.example.com", "/foo/bar/1/2?q=x").await,
        "three /1/2?q=x"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_paths_are_tried_in_ingress_nginx_order() {
    let c = Cluster::start().await;
    // docs/user-guide/ingress-path-matching.md, "Path Priority": longest
    // path first, across Ingresses.
    let h = "order.example.com";
    assert_eq!(c.reached(h, "/foo/bar/1").await, "three /1");
    assert_eq!(c.reached(h, "/foo/bar/").await, "two /foo/bar/");
    assert_eq!(c.reached(h, "/foo/bar").await, "one /foo/bar");
    assert_eq!(c.reached(h, "/FOO/Bar").await, "one /FOO/Bar");
    assert_eq!(c.get(h, "/foo").await.0, 404);
    // "Warning": `/foo/bar/[A-Z0-9]{3}` is longer than `/foo/bar/bar`, so
    // it is tried first and takes `/foo/bar/bar` too.
    let before = c.backend("one").hits();
    let h = "warning.example.com";
    assert_eq!(c.reached(h, "/foo/bar/bar").await, "two /foo/bar/bar");
    assert_eq!(c.reached(h, "/foo/bar/BAR/x").await, "two /foo/bar/BAR/x");
    assert_eq!(c.reached(h, "/foo/bar/a1z").await, "two /foo/bar/a1z");
    assert_eq!(c.get(h, "/foo/bar/b-r").await.0, 404);
    assert_eq!(c.backend("one").hits(), before, "the shorter path won");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_regex_ingress_switches_its_whole_host() {
    let c = Cluster::start().await;
    // An Ingress without annotations on a host where another rewrites:
    // its paths are case-insensitive regex prefixes, and not rewritten.
    let h = "rewrite.example.com";
    assert_eq!(
        c.reached(h, "/static/a.css?v=2").await,
        "web /static/a.css?v=2"
    );
    assert_eq!(c.reached(h, "/STATIC/a.css").await, "web /STATIC/a.css");
    // A prefix of the string, not by path element…
    assert_eq!(c.reached(h, "/staticky").await, "web /staticky");
    // …and Exact is a prefix too (ingress-nginx's `~* "^/exact"`).
    assert_eq!(c.reached(h, "/exact/more").await, "web /exact/more");
    // Another host without regexes keeps Ingress semantics.
    let h = "plain.example.com";
    assert_eq!(c.reached(h, "/static/x").await, "web /static/x");
    assert_eq!(c.get(h, "/STATIC/x").await.0, 404);
    assert_eq!(c.get(h, "/staticky").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_answer_with_ingress_nginx_codes_and_locations() {
    let c = Cluster::start().await;
    let web = c.backend("web").hits();
    let redirect = |host, path| c.redirect(host, path);
    // app-root: `/` only, whatever the query; Host as the client sent it.
    let root = (302, "http://approot.example.com/app1".to_owned());
    assert_eq!(redirect("approot.example.com", "/").await, root);
    assert_eq!(redirect("approot.example.com", "/?a=1").await, root);
    assert_eq!(
        redirect("approot.example.com:8080", "/").await,
        (302, "http://approot.example.com:8080/app1".to_owned())
    );
    // permanent-redirect and temporal-redirect: the URL as written, the
    // request's path and query not appended.
    assert_eq!(
        redirect("moved.example.com", "/any/path?q=1").await,
        (301, "https://new.example.com/landing".to_owned())
    );
    assert_eq!(
        redirect("moved308.example.com", "/x").await,
        (308, "https://new.example.com/".to_owned())
    );
    assert_eq!(
        redirect("temporal.example.com", "/x").await,
        (302, "http://maintenance.example.com/?from=shop".to_owned())
    );
    assert_eq!(
        redirect("temporal307.example.com", "/x").await,
        (307, "http://maintenance.example.com/".to_owned())
    );
    // A code out of range: the default.
    assert_eq!(redirect("badcode.example.com", "/x").await.0, 301);
    // from-to-www-redirect: 308 to the Ingress's host, with the port and
    // the request target, a trailing slash cut (ngx_srv_redirect.lua).
    assert_eq!(
        redirect("www.example.org", "/a/b/").await,
        (308, "http://example.org:80/a/b".to_owned())
    );
    assert_eq!(
        redirect("www.example.org", "/a?x=1").await,
        (308, "http://example.org:80/a?x=1".to_owned())
    );
    assert_eq!(
        redirect("WWW.example.org", "/").await,
        (308, "http://example.org:80".to_owned())
    );
    // None of them reached a backend; the hosts themselves still serve.
    assert_eq!(c.backend("web").hits(), web);
    assert_eq!(c.reached("example.org", "/a").await, "web /a");
    assert_eq!(
        c.reached("approot.example.com", "/app1/x").await,
        "web /app1/x"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_does_not_compile_is_skipped_and_the_rest_serves() {
    let c = Cluster::start().await;
    let h = "broken.example.com";
    let two = c.backend("two").hits();
    assert_eq!(c.reached(h, "/ok/anything").await, "one /ok/anything");
    assert_eq!(c.reached(h, "/OK/").await, "one /OK/");
    assert_eq!(c.get(h, "/broken(").await.0, 404);
    assert_eq!(c.backend("two").hits(), two, "the bad path was served");
    // Reported, naming the Ingress and the path.
    wait_until("the bad path to be reported", WAIT, || async {
        let log = c.s.log();
        log.contains("shop/broken") && log.contains("/broken(") && log.contains("skipped")
    })
    .await;
}
