//! One request's cookie affinity: which upstream, which endpoint in which
//! order, and whether the response sets a new cookie, as ingress-nginx's
//! sticky balancers decide it (`balancer/sticky.lua`'s `balance`,
//! `sticky_balanced.lua`, `sticky_persistent.lua`).
//!
//! - A cookie that pins an endpoint sends the request there and sets no
//!   cookie. In balanced mode any key pins (it hashes to an endpoint of the
//!   endpoints there are now); in persistent mode the key must name an
//!   endpoint that is still there.
//! - Without such a cookie the request takes a new pick (balanced: a new
//!   random key, up to 20 tries for one whose endpoint is usable;
//!   persistent: a random usable endpoint), and the response sets the cookie.
//! - When an attempt fails and the route may retry, the next attempt goes
//!   to the pinned endpoint again unless `session-cookie-change-on-failure`
//!   is true; then it takes a new pick other than those tried, and the
//!   cookie follows it.
//! - An endpoint this proxy ejected (passive health) counts as gone, which
//!   nginx, without passive health in its Lua balancer, has no case for: in
//!   balanced mode the key goes to its next endpoint and the cookie stays
//!   (the session comes back when the endpoint does), in persistent mode
//!   the session gets a new endpoint and a new cookie.
//!
//! The state lives on the stack; the only allocation is the `Set-Cookie`
//! value, once per new session.

use std::cell::Cell;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue};

use crate::routing::{key_hash, key_text, Affinity, Pins, Route};
use crate::spec::AffinityMode;
use crate::upstream::{Upstream, MAX_TRIES};

/// ingress-nginx's `MAX_UPSTREAM_CHECKS_COUNT`: random keys tried for a
/// new balanced session before settling for any usable endpoint.
const NEW_KEY_TRIES: usize = 20;

/// What the request's cookie pins.
#[derive(Debug, Clone, Copy)]
enum Pin {
    None,
    /// A balanced key, hashed.
    Hash(u64),
    /// A persistent key's endpoint.
    Endpoint(usize),
}

/// One request's affinity, from [`choose`]; driven by
/// [`super::Attempts`].
#[derive(Debug)]
pub struct Sticky<'a> {
    affinity: &'a Affinity,
    pins: &'a Pins,
    upstream: &'a Upstream,
    pin: Pin,
    tried: [u32; MAX_TRIES],
    len: usize,
    /// Endpoints handed out so far.
    handed: u32,
    /// Whether too few endpoints are healthy for ejections to count;
    /// looked at only when an ejected endpoint comes up.
    panic: Cell<Option<bool>>,
    /// The key the response's cookie pins, after a new pick.
    set: Option<u64>,
    https: bool,
    /// `SameSite=None` may be written for this request's browser.
    none_ok: bool,
}

/// The upstream a request goes to and, on a route with cookie affinity,
/// its [`Sticky`] state; other routes go by [`Route::choose`]. `https`:
/// the request came over TLS to this proxy.
pub fn choose<'a>(
    route: &'a Route,
    headers: &HeaderMap,
    https: bool,
) -> (&'a Arc<Upstream>, Option<Sticky<'a>>) {
    let Some(affinity) = &route.affinity else {
        return (route.choose(Some(headers)), None);
    };
    let cookie = affinity.read(headers);
    let (upstream, pins) = affinity.choose(route, headers, cookie.as_ref());
    let Some(pins) = pins else {
        return (upstream, None);
    };
    let pin = match (cookie, affinity.spec.mode) {
        (None, _) => Pin::None,
        (Some(c), AffinityMode::Balanced) => Pin::Hash(key_hash(c.key)),
        (Some(c), AffinityMode::Persistent) => pins.find(c.key).map_or(Pin::None, Pin::Endpoint),
    };
    let sticky = Sticky {
        affinity,
        pins,
        upstream,
        pin,
        tried: [0; MAX_TRIES],
        len: 0,
        handed: 0,
        panic: Cell::new(None),
        set: None,
        https,
        none_ok: affinity.same_site_none_ok(headers),
    };
    (upstream, Some(sticky))
}

impl Sticky<'_> {
    /// The next endpoint to try (the caller bounds how many).
    pub fn pick(&mut self) -> Option<usize> {
        let retry = self.handed > 0;
        self.handed += 1;
        if !retry || !self.affinity.spec.change_on_failure {
            match self.pin {
                Pin::Hash(h) => {
                    if let Some(i) = self.pins.rank(h, |i| self.ejected(i)) {
                        return Some(self.hand(i));
                    }
                }
                Pin::Endpoint(i) if !self.ejected(i) => return Some(self.hand(i)),
                Pin::Endpoint(_) | Pin::None => {}
            }
        }
        self.new_pick()
    }

    /// The `Set-Cookie` for the response, when the request took a new pick.
    pub fn set_cookie(&self) -> Option<HeaderValue> {
        let key = self.set?;
        self.affinity
            .set_cookie(key, self.pins, self.https, self.none_ok, SystemTime::now())
    }

    /// A new session's endpoint, other than those tried, and its key.
    fn new_pick(&mut self) -> Option<usize> {
        self.set = None;
        let n = self.upstream.endpoints.len();
        if n == 0 {
            return None;
        }
        match self.affinity.spec.mode {
            AffinityMode::Balanced => {
                for _ in 0..NEW_KEY_TRIES {
                    let key = fastrand::u64(..);
                    let i = self.pins.rank(key_hash(&key_text(key)), |_| false)?;
                    if !self.was_tried(i) && !self.ejected(i) {
                        self.set = Some(key);
                        return Some(self.hand(i));
                    }
                }
            }
            AffinityMode::Persistent => {
                // `random_except`: uniformly among the usable ones.
                let usable = |i: usize| !self.was_tried(i) && !self.ejected(i);
                let count = (0..n).filter(|&i| usable(i)).count();
                if count > 0 {
                    let nth = fastrand::usize(0..count);
                    let i = (0..n).filter(|&i| usable(i)).nth(nth)?;
                    self.set = Some(self.pins.pin(i));
                    return Some(self.hand(i));
                }
            }
        }
        // Any endpoint left, without a cookie naming it.
        let start = fastrand::usize(0..n);
        let i = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| !self.was_tried(i) && !self.ejected(i))?;
        Some(self.hand(i))
    }

    fn hand(&mut self, i: usize) -> usize {
        if self.len < MAX_TRIES && !self.was_tried(i) {
            self.tried[self.len] = i as u32;
            self.len += 1;
        }
        i
    }

    fn was_tried(&self, i: usize) -> bool {
        self.tried[..self.len].contains(&(i as u32))
    }

    /// Ejected, and enough others are healthy for that to count.
    fn ejected(&self, i: usize) -> bool {
        if !self.upstream.endpoints[i].is_ejected() {
            return false;
        }
        let panic = match self.panic.get() {
            Some(p) => p,
            None => {
                let p = self.upstream.in_panic();
                self.panic.set(Some(p));
                p
            }
        };
        !panic
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::Strategy;
    use crate::config::{RetryPolicy, RouteSpec};
    use crate::metrics::Metrics;
    use crate::routing::{HostMatch, PathType, Snapshot};
    use crate::spec::{AffinitySpec, CanarySpec};
    use crate::upstream::{EndpointSpec, HealthPolicy, UpstreamSpec};

    fn upstream(name: &str, n: u8) -> UpstreamSpec {
        UpstreamSpec {
            health: HealthPolicy {
                consecutive_failures: 1,
                panic_threshold_percent: 0,
                ..HealthPolicy::default()
            },
            ..UpstreamSpec::new(
                name,
                Strategy::RoundRobin,
                (0..n)
                    .map(|i| EndpointSpec {
                        addr: format!("127.0.0.{}:80", i + 1).parse().unwrap(),
                        weight: 1,
                        key: format!("{name}-{i}").into(),
                    })
                    .collect(),
            )
        }
    }

    fn route(spec: AffinitySpec, n: u8, canary: Option<(u32, bool)>) -> Arc<Route> {
        let spec = RouteSpec {
            retry: RetryPolicy { attempts: 3 },
            canary: canary.map(|(weight, legacy)| CanarySpec {
                upstream: upstream("canary", n),
                weight,
                total: 100,
                header: None,
                rules: crate::spec::CanaryRules {
                    legacy_affinity: legacy,
                    ..Default::default()
                },
            }),
            affinity: Some(Arc::new(spec)),
            ..RouteSpec::new(
                "r",
                HostMatch::Any,
                "/",
                PathType::Prefix,
                upstream("main", n),
            )
        };
        let snap = Snapshot::build(&[spec], None, None, &Metrics::new());
        let r = snap.lookup(None, "/").unwrap().clone();
        assert!(!r.fast_path);
        r
    }

    fn with_cookie(v: &HeaderValue) -> HeaderMap {
        let mut h = HeaderMap::new();
        // The Set-Cookie's first pair is what a browser sends back.
        let pair = v.to_str().unwrap().split(';').next().unwrap().to_owned();
        h.insert(http::header::COOKIE, pair.parse().unwrap());
        h
    }

    /// A fresh request: its endpoint and its cookie.
    fn fresh(r: &Route) -> (std::net::SocketAddr, HeaderValue) {
        let h = HeaderMap::new();
        let (u, s) = choose(r, &h, false);
        let mut s = s.unwrap();
        let i = s.pick().unwrap();
        (
            u.endpoints[i].addr,
            s.set_cookie().expect("a new session sets its cookie"),
        )
    }

    fn goes_to(r: &Route, h: &HeaderMap) -> (std::net::SocketAddr, Option<HeaderValue>) {
        let (u, s) = choose(r, h, false);
        let mut s = s.unwrap();
        let i = s.pick().unwrap();
        (u.endpoints[i].addr, s.set_cookie())
    }

    #[test]
    fn a_cookie_keeps_the_session_and_sets_nothing() {
        for mode in [AffinityMode::Balanced, AffinityMode::Persistent] {
            let mut spec = AffinitySpec::new("/");
            spec.mode = mode;
            let r = route(spec, 5, None);
            let mut seen = std::collections::HashSet::new();
            for _ in 0..40 {
                let (addr, cookie) = fresh(&r);
                seen.insert(addr);
                let h = with_cookie(&cookie);
                for _ in 0..5 {
                    assert_eq!(goes_to(&r, &h), (addr, None), "{mode}");
                }
            }
            assert!(seen.len() >= 3, "{mode}: fresh sessions spread: {seen:?}");
        }
    }

    #[test]
    fn a_foreign_or_stale_cookie() {
        // Balanced: any key pins, without a new cookie (as nginx).
        let r = route(AffinitySpec::new("/"), 3, None);
        let h = with_cookie(&"INGRESSCOOKIE=anything".parse().unwrap());
        let (a, set) = goes_to(&r, &h);
        assert!(set.is_none());
        assert_eq!(goes_to(&r, &h).0, a);
        // Persistent: a key naming no endpoint gets a new one.
        let mut spec = AffinitySpec::new("/");
        spec.mode = AffinityMode::Persistent;
        let r = route(spec, 3, None);
        let (_, set) = goes_to(&r, &h);
        assert!(set.is_some());
    }

    #[test]
    fn failures_move_only_with_change_on_failure() {
        for change in [false, true] {
            let mut spec = AffinitySpec::new("/");
            spec.change_on_failure = change;
            let r = route(spec, 4, None);
            let (addr, cookie) = fresh(&r);
            let h = with_cookie(&cookie);
            let (u, s) = choose(&r, &h, false);
            let mut s = s.unwrap();
            let first = s.pick().unwrap();
            assert_eq!(u.endpoints[first].addr, addr);
            assert!(s.set_cookie().is_none());
            let second = s.pick().unwrap();
            if change {
                assert_ne!(second, first, "moved");
                let moved = s.set_cookie().expect("the cookie follows");
                assert_eq!(
                    goes_to(&r, &with_cookie(&moved)).0,
                    u.endpoints[second].addr
                );
            } else {
                // ingress-nginx's retry goes to the pinned endpoint again.
                assert_eq!(second, first);
                assert!(s.set_cookie().is_none());
            }
        }
    }

    #[test]
    fn an_ejected_endpoint_counts_as_gone() {
        let eject = |r: &Route, addr| {
            let e = r
                .upstream
                .endpoints
                .iter()
                .find(|e| e.addr == addr)
                .unwrap();
            assert!(e.record_failure(&r.upstream.health).is_some());
        };
        // Balanced: the key goes elsewhere; the cookie stays.
        let r = route(AffinitySpec::new("/"), 4, None);
        let (addr, cookie) = fresh(&r);
        eject(&r, addr);
        let (moved, set) = goes_to(&r, &with_cookie(&cookie));
        assert_ne!(moved, addr);
        assert!(set.is_none());
        // Persistent: a new endpoint and a new cookie.
        let mut spec = AffinitySpec::new("/");
        spec.mode = AffinityMode::Persistent;
        let r = route(spec, 4, None);
        let (addr, cookie) = fresh(&r);
        eject(&r, addr);
        let (moved, set) = goes_to(&r, &with_cookie(&cookie));
        assert_ne!(moved, addr);
        assert!(set.is_some());
    }

    #[test]
    fn a_session_stays_on_its_side_of_the_canary() {
        // Every request without a session is drawn for the canary.
        let r = route(AffinitySpec::new("/"), 2, Some((100, false)));
        let h = HeaderMap::new();
        let (u, s) = choose(&r, &h, false);
        assert!(Arc::ptr_eq(u, &r.canary.as_ref().unwrap().upstream));
        let mut s = s.unwrap();
        s.pick().unwrap();
        let canary_cookie = s.set_cookie().unwrap();
        let (u, _) = choose(&r, &with_cookie(&canary_cookie), false);
        assert!(Arc::ptr_eq(u, &r.canary.as_ref().unwrap().upstream));
        // A session of the main upstream stays off the canary, at 100 %.
        let a = r.affinity.as_ref().unwrap();
        let v = a
            .set_cookie(7, a.main_pins(), false, true, SystemTime::now())
            .unwrap();
        for _ in 0..20 {
            let (u, _) = choose(&r, &with_cookie(&v), false);
            assert!(Arc::ptr_eq(u, &r.upstream));
        }
        // A legacy canary keeps no session: no Sticky state there.
        let r = route(AffinitySpec::new("/"), 2, Some((100, true)));
        let (u, s) = choose(&r, &h, false);
        assert!(Arc::ptr_eq(u, &r.canary.as_ref().unwrap().upstream));
        assert!(s.is_none());
    }
}
