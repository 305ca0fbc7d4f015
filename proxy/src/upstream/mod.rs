//! Upstreams: a named set of endpoints with its balancer and health policy.
//!
//! An [`Upstream`] is built once per change from an [`UpstreamSpec`] and is
//! part of the routing snapshot. Choosing an endpoint takes no lock: the
//! balancer picks, and ejected or already-tried endpoints are skipped.
//!
//! The files import one way, each from those below it:
//!
//! - `body.rs`: the response body sent to clients, which holds the
//!   upstream connection it was lent until it ends;
//! - `pool/`: sending a request to an endpoint and waiting for the answer
//!   (`mod.rs` the entry point and connecting; `raw.rs`, `h1.rs` and
//!   `h2.rs` the sends; `loan.rs` the connection lent to a response);
//! - `endpoint.rs`: one endpoint, its health, load and idle connections;
//! - `idle.rs`: the idle connections an endpoint keeps;
//! - `conn.rs`: an HTTP/1.1 connection, driven by whoever uses it;
//! - `upload.rs`: the client's request body as sent upstream, with its
//!   stall and size limits;
//! - `drivers.rs`: the tasks that drive connections on their own (HTTP/2,
//!   upgrades), owned by the process and closed at shutdown;
//! - `framing.rs` and `chunked.rs`: where an HTTP/1.1 response body ends,
//!   read the same way by the fast path and by `pool/raw.rs`.

mod body;
pub mod chunked;
mod conn;
pub mod drivers;
mod endpoint;
pub mod framing;
mod idle;
pub mod pool;
pub mod transport;
mod upload;

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::balance::{Balancer, Load, Strategy};
pub use crate::spec::{
    EndpointSpec, HealthPolicy, NamedBackend, Protocol, UpstreamSpec, UpstreamTls, DEFAULT_HEALTH,
    DEFAULT_MAX_IDLE,
};
pub use body::{BodyError, ResponseBody, UpstreamBody};
pub use endpoint::{now_ms, Endpoint, HealthState, InFlight};

/// The most endpoints one request may try.
pub const MAX_TRIES: usize = 10;

/// A live upstream, part of one snapshot.
#[derive(Debug)]
pub struct Upstream {
    pub name: Arc<str>,
    /// Sorted by key, so that balancers built from them are the same on
    /// every replica whatever order the endpoints were listed in.
    pub endpoints: Box<[Arc<Endpoint>]>,
    pub weights: Box<[u32]>,
    pub protocol: Protocol,
    /// Shared with the previous snapshot's upstream of the same name when
    /// its endpoint set and weights did not change: rebuilding a Maglev
    /// table costs milliseconds, and keeping the balancer keeps the
    /// round-robin rotation going across reloads.
    pub balancer: Arc<Balancer>,
    pub health: HealthPolicy,
    pub max_idle_per_endpoint: usize,
    /// TLS to the endpoints; `None`: plain TCP.
    pub tls: Option<Arc<UpstreamTls>>,
    /// The largest response head, beyond the default (`None`).
    pub response_head: Option<usize>,
    /// Stands for a backend reference that does not resolve (Gateway API:
    /// a missing Service, a reference no ReferenceGrant allows): no
    /// endpoints, and its share of the traffic is answered 500, not 503.
    pub unresolved: bool,
}

/// What a rebuild may take over from the previous snapshot: endpoints (by
/// upstream name, endpoint key and protocol) with their health and
/// connections, and balancers of upstreams whose endpoint set is unchanged.
#[derive(Default)]
pub struct EndpointReuse {
    endpoints: FxHashMap<(Arc<str>, Arc<str>, Protocol), Arc<Endpoint>>,
    upstreams: FxHashMap<Arc<str>, Arc<Upstream>>,
}

impl Upstream {
    /// Builds an upstream, taking over live endpoints from `reuse`.
    pub fn build(spec: &UpstreamSpec, reuse: &EndpointReuse) -> Self {
        let mut specs: Vec<&EndpointSpec> = spec.endpoints.iter().collect();
        specs.sort_by(|a, b| a.key.cmp(&b.key));
        specs.dedup_by(|a, b| a.key == b.key);
        let endpoints: Box<[Arc<Endpoint>]> = specs
            .iter()
            .map(|e| {
                reuse
                    .endpoints
                    .get(&(spec.name.clone(), e.key.clone(), spec.protocol))
                    .filter(|old| {
                        old.addr == e.addr
                            && old.tls == spec.tls
                            && old.response_head == spec.response_head
                    })
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(Endpoint::new(
                            e,
                            spec.protocol,
                            spec.tls.clone(),
                            spec.response_head,
                        ))
                    })
            })
            .collect();
        let weights: Box<[u32]> = specs.iter().map(|e| e.weight.max(1)).collect();
        let previous = reuse.upstreams.get(&spec.name).filter(|p| {
            p.strategy() == spec.strategy
                && p.weights == weights
                && p.endpoints.len() == endpoints.len()
                && p.endpoints
                    .iter()
                    .zip(endpoints.iter())
                    .all(|(a, b)| Arc::ptr_eq(a, b))
        });
        let balancer = match previous {
            Some(p) => p.balancer.clone(),
            None => {
                let keys: Vec<&str> = specs.iter().map(|e| &*e.key).collect();
                Arc::new(Balancer::build(spec.strategy, &keys, &weights))
            }
        };
        Upstream {
            name: spec.name.clone(),
            balancer,
            endpoints,
            weights,
            protocol: spec.protocol,
            health: spec.health,
            max_idle_per_endpoint: spec.max_idle_per_endpoint,
            tls: spec.tls.clone(),
            response_head: spec.response_head,
            unresolved: false,
        }
    }

    pub fn strategy(&self) -> Strategy {
        self.balancer.strategy()
    }

    /// Offers this upstream's endpoints and balancer to the next rebuild.
    pub fn offer(self: &Arc<Self>, reuse: &mut EndpointReuse) {
        for e in self.endpoints.iter() {
            reuse
                .endpoints
                .insert((self.name.clone(), e.key.clone(), e.protocol), e.clone());
        }
        reuse.upstreams.insert(self.name.clone(), self.clone());
    }

    /// The endpoints one request tries, in order: the balancer's
    /// candidates ([`Balancer::candidates`]), without those already tried
    /// and, unless too few are healthy, those ejected. `hash` is the
    /// client's (ip-hash reads it). At most [`MAX_TRIES`].
    #[inline]
    pub fn candidates(&self, hash: u64) -> Picks<'_> {
        let n = self.endpoints.len();
        // Only least-request reads the load, and only for its first pick.
        let candidates = self
            .balancer
            .candidates(hash, n, &EndpointLoad(&self.endpoints));
        Picks {
            upstream: self,
            candidates,
            tried: Tried::default(),
            panic: None,
        }
    }

    /// True when too few endpoints are healthy for ejection to count.
    pub fn in_panic(&self) -> bool {
        let n = self.endpoints.len();
        let healthy = self.endpoints.iter().filter(|e| !e.is_ejected()).count();
        healthy * 100 < n * usize::from(self.health.panic_threshold_percent) || healthy == 0
    }
}

struct EndpointLoad<'a>(&'a [Arc<Endpoint>]);

impl Load for EndpointLoad<'_> {
    #[inline]
    fn in_flight(&self, i: usize) -> u32 {
        self.0[i].in_flight()
    }
}

/// The endpoints one request tries, from [`Upstream::candidates`].
#[derive(Debug)]
pub struct Picks<'a> {
    upstream: &'a Upstream,
    candidates: crate::balance::Candidates<'a>,
    tried: Tried,
    /// Whether too few endpoints are healthy for ejections to count;
    /// looked at only when an ejected endpoint comes up.
    panic: Option<bool>,
}

impl Picks<'_> {
    /// How many endpoints have been handed out.
    pub fn tried(&self) -> usize {
        self.tried.len()
    }
}

impl Iterator for Picks<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.tried.len() >= MAX_TRIES.min(self.upstream.endpoints.len()) {
            return None;
        }
        loop {
            let i = self.candidates.next()?;
            if self.tried.contains(i) {
                continue;
            }
            if self.upstream.endpoints[i].is_ejected()
                && !*self.panic.get_or_insert_with(|| self.upstream.in_panic())
            {
                continue;
            }
            self.tried.push(i);
            return Some(i);
        }
    }
}

/// The endpoints one request has tried, without allocating.
#[derive(Debug, Default)]
struct Tried {
    indices: [u32; MAX_TRIES],
    len: usize,
}

impl Tried {
    fn len(&self) -> usize {
        self.len
    }
    fn contains(&self, i: usize) -> bool {
        self.indices[..self.len].contains(&(i as u32))
    }
    fn push(&mut self, i: usize) {
        if self.len < MAX_TRIES {
            self.indices[self.len] = i as u32;
            self.len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(strategy: Strategy, n: usize, health: HealthPolicy) -> Upstream {
        let endpoints = (0..n)
            .map(|i| EndpointSpec::new(format!("127.0.0.1:{}", 9000 + i).parse().unwrap(), 1))
            .collect();
        Upstream::build(
            &UpstreamSpec {
                name: "u".into(),
                strategy,
                protocol: Protocol::Http1,
                endpoints,
                health,
                max_idle_per_endpoint: 1,
                tls: None,
                response_head: None,
                names: Vec::new(),
            },
            &EndpointReuse::default(),
        )
    }

    fn eject(e: &Endpoint) {
        let p = HealthPolicy {
            consecutive_failures: 1,
            ..HealthPolicy::default()
        };
        assert!(e.record_failure(&p).is_some());
    }

    #[test]
    fn skips_tried_endpoints() {
        for s in [
            Strategy::RoundRobin,
            Strategy::Weighted,
            Strategy::IpHash,
            Strategy::LeastRequest,
        ] {
            let u = upstream(s, 3, HealthPolicy::default());
            let mut picks: Vec<usize> = u.candidates(42).collect();
            picks.sort_unstable();
            assert_eq!(picks, [0, 1, 2], "{s}");
        }
    }

    #[test]
    fn skips_ejected_endpoints() {
        let u = upstream(Strategy::RoundRobin, 4, HealthPolicy::default());
        eject(&u.endpoints[1]);
        for _ in 0..20 {
            assert!(!u.candidates(0).any(|i| i == 1));
        }
    }

    #[test]
    fn retries_do_not_advance_the_rotation() {
        let u = upstream(Strategy::RoundRobin, 3, HealthPolicy::default());
        // First request: picks 0, its retries step to 1 and 2.
        assert_eq!(u.candidates(0).collect::<Vec<_>>(), [0, 1, 2]);
        // The next request starts at 1, not at 3 % 3 = 0 again.
        assert_eq!(u.candidates(0).next(), Some(1));
    }

    #[test]
    fn panic_threshold_keeps_endpoints_to_try() {
        let u = upstream(Strategy::RoundRobin, 4, HealthPolicy::default());
        for e in u.endpoints.iter().take(3) {
            eject(e);
        }
        // 25% healthy is below the 50% threshold: every endpoint is used.
        assert!(u.in_panic());
        let mut seen = [false; 4];
        for _ in 0..8 {
            seen[u.candidates(0).next().unwrap()] = true;
        }
        assert_eq!(seen, [true; 4]);
    }

    #[test]
    fn one_endpoint_ejected_is_still_tried() {
        let u = upstream(Strategy::IpHash, 1, HealthPolicy::default());
        eject(&u.endpoints[0]);
        assert_eq!(u.candidates(7).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn reuse_keeps_endpoint_state() {
        let u = Arc::new(upstream(Strategy::RoundRobin, 2, HealthPolicy::default()));
        eject(&u.endpoints[0]);
        let mut reuse = EndpointReuse::default();
        u.offer(&mut reuse);
        let spec = UpstreamSpec {
            name: "u".into(),
            strategy: Strategy::Weighted,
            protocol: Protocol::Http1,
            endpoints: vec![EndpointSpec::new("127.0.0.1:9000".parse().unwrap(), 2)],
            health: HealthPolicy::default(),
            max_idle_per_endpoint: 1,
            tls: None,
            response_head: None,
            names: Vec::new(),
        };
        let v = Upstream::build(&spec, &reuse);
        assert!(Arc::ptr_eq(&u.endpoints[0], &v.endpoints[0]));
        assert!(v.endpoints[0].is_ejected());
    }

    #[test]
    fn order_of_listing_does_not_matter() {
        let a = EndpointSpec::new("10.0.0.2:80".parse().unwrap(), 1);
        let b = EndpointSpec::new("10.0.0.1:80".parse().unwrap(), 1);
        let mk = |eps: Vec<EndpointSpec>| {
            Upstream::build(
                &UpstreamSpec {
                    name: "u".into(),
                    strategy: Strategy::IpHash,
                    protocol: Protocol::Http1,
                    endpoints: eps,
                    health: HealthPolicy::default(),
                    max_idle_per_endpoint: 1,
                    tls: None,
                    response_head: None,
                    names: Vec::new(),
                },
                &EndpointReuse::default(),
            )
        };
        let x = mk(vec![a.clone(), b.clone()]);
        let y = mk(vec![b, a]);
        for h in 0..1000u64 {
            let h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let ix = x.candidates(h).next().unwrap();
            let iy = y.candidates(h).next().unwrap();
            assert_eq!(x.endpoints[ix].key, y.endpoints[iy].key);
        }
    }
}
