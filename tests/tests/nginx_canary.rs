//! ingress-nginx's canary annotations, driven through discovery: the
//! Ingresses of `tests/corpus/ingress-nginx/canary.yaml` are applied to the
//! tests' API server, and real requests check that each one goes where
//! ingress-nginx's balancer (`route_to_alternative_balancer`) would send
//! it — `canary-by-header-value` and `-pattern`, `canary-by-cookie`, the
//! order header, cookie, weight, and the weight's share with
//! `canary-weight-total`. Routes whose canary reads headers are the hyper
//! path's; the weight-only ones are the fast path's, unless
//! `SLUICE_TEST_HYPER_ONLY` turns it off.

use sluice_integration::cluster::{proxy, WAIT};
use sluice_integration::corpus::manifests;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;

/// The corpus applied, and a proxy serving it.
struct Cluster {
    api: KubeApi,
    s: Sluice,
    _backends: [Backend; 2],
}

/// Where a request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Stable,
    Canary,
}
use To::{Canary, Stable};

impl Cluster {
    async fn start() -> Cluster {
        let api = KubeApi::start().await;
        let stable = Backend::start_reporting("stable").await;
        let canary = Backend::start_reporting("canary").await;
        let (sp, cp) = (
            stable.addr.port().to_string(),
            canary.addr.port().to_string(),
        );
        for m in manifests(
            "ingress-nginx/canary.yaml",
            &[("STABLE_PORT", &sp), ("CANARY_PORT", &cp)],
        ) {
            api.apply(m);
        }
        let s = proxy(&api, &[]).await;
        let c = Cluster {
            api,
            s,
            _backends: [stable, canary],
        };
        // Each host with its canary attached: a request that only the
        // canary's rules send to it gets there.
        let probes: [(&str, &[(&str, &str)]); 8] = [
            ("value", &[("x-canary", "blue")]),
            ("value-never", &[]),
            ("pattern", &[("x-region", "eu-west-1")]),
            ("both", &[("x-canary", "blue")]),
            ("bad-pattern", &[("x-canary", "always")]),
            ("cookie", &[("cookie", "canary_user=always")]),
            ("cookie-never", &[]),
            ("precedence", &[]),
        ];
        wait_until(
            "every canary of the corpus to be attached",
            WAIT,
            || async {
                for (host, headers) in probes {
                    if c.try_to(host, headers).await != Some(Canary) {
                        return false;
                    }
                }
                // The weight-only hosts: served, and their canary drawn once.
                for host in ["weight", "small-total"] {
                    let mut seen = false;
                    for _ in 0..100 {
                        match c.try_to(host, &[]).await {
                            Some(Canary) => seen = true,
                            Some(Stable) => {}
                            None => return false,
                        }
                        if seen {
                            break;
                        }
                    }
                    if !seen {
                        return false;
                    }
                }
                true
            },
        )
        .await;
        c
    }

    /// Where a GET to `<host>.example.com` with `headers` went, or `None`
    /// when it was not answered by a backend.
    async fn try_to(&self, host: &str, headers: &[(&str, &str)]) -> Option<To> {
        let host = format!("{host}.example.com");
        let mut all = vec![("host", host.as_str())];
        all.extend_from_slice(headers);
        let (status, h, _) = request(&client(None), self.s.listen, "GET", "/", &all, empty())
            .await
            .ok()?;
        match (status, h.get("x-backend").map(|v| v.as_bytes())) {
            (200, Some(b"stable")) => Some(Stable),
            (200, Some(b"canary")) => Some(Canary),
            _ => None,
        }
    }

    /// Where such a request went; fails unless a backend answered.
    async fn to(&self, host: &str, headers: &[(&str, &str)]) -> To {
        self.try_to(host, headers)
            .await
            .unwrap_or_else(|| panic!("{host}.example.com {headers:?}: no backend answered"))
    }

    /// Where `n` such requests went: every one to the same place.
    async fn always_to(&self, host: &str, headers: &[(&str, &str)], n: usize) -> To {
        let first = self.to(host, headers).await;
        for _ in 1..n {
            assert_eq!(self.to(host, headers).await, first, "{host} {headers:?}");
        }
        first
    }

    /// The share of `n` plain requests to `<host>.example.com` that went to
    /// the canary.
    async fn canary_share(&self, host: &str, n: usize) -> f64 {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let addr = self.s.listen;
                let host = format!("{host}.example.com");
                tokio::spawn(async move {
                    let c = client(None);
                    let mut canary = 0;
                    for _ in 0..n / 4 {
                        let (status, h, _) = get_as(&c, addr, &host, "/").await;
                        assert_eq!(status, 200);
                        if h.get("x-backend").is_some_and(|v| v == "canary") {
                            canary += 1;
                        }
                    }
                    canary
                })
            })
            .collect();
        let mut canary = 0;
        for w in workers {
            canary += w.await.unwrap();
        }
        canary as f64 / (n / 4 * 4) as f64
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_by_header_value_sends_only_that_value() {
    let c = Cluster::start().await;
    let h = "value";
    assert_eq!(c.always_to(h, &[("x-canary", "blue")], 20).await, Canary);
    // Case-sensitive, exact; `always` is just another value here.
    for v in ["Blue", "blue2", "always", "never", ""] {
        assert_eq!(c.always_to(h, &[("x-canary", v)], 5).await, Stable, "{v:?}");
    }
    assert_eq!(c.always_to(h, &[], 5).await, Stable);
    // The header's name in any case.
    assert_eq!(c.to(h, &[("X-CANARY", "blue")]).await, Canary);
    // With every request drawn for the canary, `never` does not keep a
    // request off it: with a value set, only the value decides.
    let h = "value-never";
    assert_eq!(c.always_to(h, &[("x-canary", "never")], 20).await, Canary);
    assert_eq!(c.always_to(h, &[("x-canary", "red")], 5).await, Canary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_by_header_pattern_searches_the_value() {
    let c = Cluster::start().await;
    let h = "pattern";
    for v in ["eu-west", "eu-west-1", "us-west-2", "region=us-west"] {
        assert_eq!(c.always_to(h, &[("x-region", v)], 5).await, Canary, "{v:?}");
    }
    for v in ["EU-WEST", "ap-south-1", "eu-east", "always"] {
        assert_eq!(c.always_to(h, &[("x-region", v)], 5).await, Stable, "{v:?}");
    }
    assert_eq!(c.always_to(h, &[], 5).await, Stable);
    // Beside a value, a pattern is ignored (`.*` would match anything).
    let h = "both";
    assert_eq!(c.always_to(h, &[("x-canary", "blue")], 5).await, Canary);
    assert_eq!(c.always_to(h, &[("x-canary", "red")], 10).await, Stable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_pattern_is_reported_and_the_header_keeps_always_and_never() {
    let c = Cluster::start().await;
    let h = "bad-pattern";
    assert_eq!(c.always_to(h, &[("x-canary", "always")], 10).await, Canary);
    assert_eq!(
        c.always_to(h, &[("x-canary", "(unclosed")], 10).await,
        Stable
    );
    assert_eq!(c.always_to(h, &[("x-canary", "never")], 10).await, Stable);
    // An Event on the canary Ingress names the annotation.
    wait_until("an Event for the bad pattern", WAIT, || {
        let found = c.api.all("Event").iter().any(|e| {
            e["regarding"]["name"] == "bad-pattern-canary"
                && e["note"].as_str().is_some_and(|n| {
                    n.contains("canary-by-header-pattern") && n.contains("(unclosed")
                })
        });
        async move { found }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_by_cookie_always_and_never() {
    let c = Cluster::start().await;
    let h = "cookie";
    assert_eq!(
        c.always_to(h, &[("cookie", "canary_user=always")], 20)
            .await,
        Canary
    );
    // Among several cookies, with spaces, in any case of the name, in a
    // second Cookie header.
    let among = [
        "session=abc; canary_user=always; theme=dark",
        "a=1;canary_user=always",
        "  a=1;   canary_user = always;b=2",
        "CANARY_USER=always",
    ];
    for v in among {
        assert_eq!(c.always_to(h, &[("cookie", v)], 3).await, Canary, "{v:?}");
    }
    let two = [("cookie", "session=abc"), ("cookie", "canary_user=always")];
    assert_eq!(c.always_to(h, &two, 3).await, Canary);
    // Another value, another cookie, or none: on to the weight (0 here).
    let other = [
        "canary_user=Always",
        "canary_user=always2",
        "canary_users=always",
        "x_canary_user=always",
        "session=abc",
    ];
    for v in other {
        assert_eq!(c.always_to(h, &[("cookie", v)], 3).await, Stable, "{v:?}");
    }
    assert_eq!(c.always_to(h, &[], 3).await, Stable);
    // `never` keeps a request off a canary every request is drawn for.
    let h = "cookie-never";
    assert_eq!(
        c.always_to(h, &[("cookie", "canary_user=never")], 20).await,
        Stable
    );
    assert_eq!(
        c.always_to(h, &[("cookie", "a=1; canary_user=never")], 5)
            .await,
        Stable
    );
    assert_eq!(
        c.always_to(h, &[("cookie", "canary_user=maybe")], 5).await,
        Canary
    );
    assert_eq!(c.always_to(h, &[], 5).await, Canary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_then_cookie_then_weight() {
    let c = Cluster::start().await;
    let h = "precedence";
    let cases: [(&[(&str, &str)], To); 7] = [
        // The header decides over the cookie…
        (
            &[("x-canary", "never"), ("cookie", "canary_user=always")],
            Stable,
        ),
        (
            &[("x-canary", "always"), ("cookie", "canary_user=never")],
            Canary,
        ),
        // …the cookie over the weight (100 here) when the header does not…
        (
            &[("x-canary", "maybe"), ("cookie", "canary_user=never")],
            Stable,
        ),
        (&[("cookie", "canary_user=never")], Stable),
        // …and the weight when neither does.
        (
            &[("x-canary", "maybe"), ("cookie", "canary_user=maybe")],
            Canary,
        ),
        (&[("x-canary", "never")], Stable),
        (&[], Canary),
    ];
    for (headers, want) in cases {
        assert_eq!(c.always_to(h, headers, 10).await, want, "{headers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_count_out_of_the_total_or_100() {
    let c = Cluster::start().await;
    // 30 of 200: 15 %. Over 2,000 draws the share's standard deviation
    // is under one point; the bound, five points, is over five of them.
    let share = c.canary_share("weight", 2_000).await;
    assert!((0.10..=0.20).contains(&share), "weight: share {share:.3}");
    // 25 of 50 is 25 %, not 50: ingress-nginx draws out of 100 unless the
    // total is larger.
    let share = c.canary_share("small-total", 2_000).await;
    assert!(
        (0.20..=0.30).contains(&share),
        "small-total: share {share:.3}"
    );
}
