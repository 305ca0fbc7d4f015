//! Balancers: one build step per change, one pick step per request.
//!
//! Every strategy is built from the endpoint list of one upstream, sorted by
//! endpoint key, and is immutable afterwards except for atomic counters. The
//! pick step never locks and never allocates; it returns an index into the
//! upstream's endpoint slice. [`Balancer::candidates`] hands out the order in
//! which one request tries endpoints: the pick first, then the ones after
//! it, as pingora's `BackendSelection::iter` does. The caller only skips
//! what it must (ejected or already tried endpoints).

mod least_request;
pub mod maglev;
mod round_robin;
mod weighted;

use std::fmt;
use std::str::FromStr;

pub use least_request::LeastRequest;
pub use maglev::Maglev;
pub use round_robin::RoundRobin;
pub use weighted::Weighted;

/// How a route spreads requests over its endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Strategy {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// Smooth weighted round-robin, as nginx does it.
    Weighted,
    /// Consistent hash (Maglev) of the client address.
    IpHash,
    /// Power of two random choices over in-flight requests.
    LeastRequest,
}

impl Strategy {
    /// The name used in config files, flags, annotations and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round-robin",
            Strategy::Weighted => "weighted",
            Strategy::IpHash => "ip-hash",
            Strategy::LeastRequest => "least-request",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value was not one of the strategy names.
#[derive(Debug, thiserror::Error)]
#[error("unknown strategy {0:?}: expected round-robin, weighted, ip-hash or least-request")]
pub struct UnknownStrategy(pub String);

impl FromStr for Strategy {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "round-robin" | "round_robin" | "roundrobin" => Ok(Strategy::RoundRobin),
            "weighted" => Ok(Strategy::Weighted),
            "ip-hash" | "ip_hash" | "iphash" => Ok(Strategy::IpHash),
            "least-request" | "least_request" | "leastrequest" => Ok(Strategy::LeastRequest),
            other => Err(UnknownStrategy(other.to_owned())),
        }
    }
}

/// What a pick may depend on besides the balancer's own state.
pub trait Load {
    /// Requests in flight to endpoint `i` right now.
    fn in_flight(&self, i: usize) -> u32;
}

/// One balancer, built for one endpoint set.
#[derive(Debug)]
pub enum Balancer {
    RoundRobin(RoundRobin),
    Weighted(Weighted),
    IpHash(Maglev),
    LeastRequest(LeastRequest),
}

impl Balancer {
    /// Builds the balancer for endpoints with these weights (in the
    /// upstream's sorted order) and, for ip-hash, these keys.
    pub fn build(strategy: Strategy, keys: &[&str], weights: &[u32]) -> Self {
        debug_assert_eq!(keys.len(), weights.len());
        match strategy {
            Strategy::RoundRobin => Balancer::RoundRobin(RoundRobin::new(weights.len())),
            Strategy::Weighted => Balancer::Weighted(Weighted::new(weights)),
            Strategy::IpHash => Balancer::IpHash(Maglev::new(keys, weights)),
            Strategy::LeastRequest => Balancer::LeastRequest(LeastRequest::new(weights)),
        }
    }

    /// The index of the endpoint to try, or `None` when there is none.
    ///
    /// `hash` is the client's hash (used by ip-hash only); `attempt` counts
    /// the picks already made for this request, so that a retry or a skipped
    /// ejected endpoint moves on to another one.
    #[inline]
    pub fn pick(&self, hash: u64, attempt: u32, load: &impl Load) -> Option<usize> {
        match self {
            Balancer::RoundRobin(b) => b.pick(),
            Balancer::Weighted(b) => b.pick(),
            Balancer::IpHash(b) => b.pick(hash, attempt),
            Balancer::LeastRequest(b) => b.pick(load),
        }
    }

    /// The endpoints (indices below `len`) one request tries, in order.
    ///
    /// The balancer makes the first pick; the rest step on from there
    /// without asking it again, so that retries do not advance the shared
    /// round-robin rotation (which would line every following request up
    /// on the same dead endpoint). ip-hash is the exception: it first
    /// probes its table further, which spreads the clients of a dead
    /// endpoint over the others instead of piling them onto its neighbour,
    /// then steps on from its first pick. Every index below `len` comes at
    /// least once; ip-hash may repeat some.
    #[inline]
    pub fn candidates(&self, hash: u64, len: usize, load: &impl Load) -> Candidates<'_> {
        let first = if len == 0 {
            None
        } else {
            self.pick(hash, 0, load).filter(|&i| i < len)
        };
        Candidates {
            balancer: self,
            hash,
            len,
            first,
            started: false,
            probes: 0,
            step: 0,
        }
    }

    /// The strategy this balancer implements.
    pub fn strategy(&self) -> Strategy {
        match self {
            Balancer::RoundRobin(_) => Strategy::RoundRobin,
            Balancer::Weighted(_) => Strategy::Weighted,
            Balancer::IpHash(_) => Strategy::IpHash,
            Balancer::LeastRequest(_) => Strategy::LeastRequest,
        }
    }
}

/// ip-hash probes its table this many times before stepping on.
const IP_HASH_PROBES: u32 = 8;

/// The endpoints one request tries, from [`Balancer::candidates`].
#[derive(Debug)]
pub struct Candidates<'a> {
    balancer: &'a Balancer,
    hash: u64,
    len: usize,
    /// The balancer's first pick; `None` when there is nothing to pick.
    first: Option<usize>,
    /// The first pick has been handed out.
    started: bool,
    /// ip-hash's further probes handed out so far.
    probes: u32,
    /// Steps taken from the first pick.
    step: usize,
}

impl Iterator for Candidates<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        let first = self.first?;
        if !self.started {
            self.started = true;
            return Some(first);
        }
        if let Balancer::IpHash(m) = self.balancer {
            while self.probes + 1 < IP_HASH_PROBES {
                self.probes += 1;
                if let Some(i) = m.pick(self.hash, self.probes).filter(|&i| i < self.len) {
                    return Some(i);
                }
            }
        }
        if self.step + 1 >= self.len {
            return None;
        }
        self.step += 1;
        Some((first + self.step) % self.len)
    }
}

/// Hashes a client address for ip-hash. Stable across processes and
/// versions, so every replica sends a client to the same endpoint.
#[inline]
pub fn hash_ip(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(v4) => xxhash_rust::xxh3::xxh3_64(&v4.octets()),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => xxhash_rust::xxh3::xxh3_64(&v4.octets()),
            None => xxhash_rust::xxh3::xxh3_64(&v6.octets()),
        },
    }
}

#[cfg(test)]
pub(crate) struct NoLoad;
#[cfg(test)]
impl Load for NoLoad {
    fn in_flight(&self, _: usize) -> u32 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_round_trip() {
        for s in [
            Strategy::RoundRobin,
            Strategy::Weighted,
            Strategy::IpHash,
            Strategy::LeastRequest,
        ] {
            assert_eq!(s.as_str().parse::<Strategy>().unwrap(), s);
        }
        assert!("random".parse::<Strategy>().is_err());
    }

    /// Every endpoint is a candidate, the pick first; round-robin steps on
    /// from its pick without turning the shared rotation.
    #[test]
    fn candidates_cover_every_endpoint() {
        for s in [
            Strategy::RoundRobin,
            Strategy::Weighted,
            Strategy::IpHash,
            Strategy::LeastRequest,
        ] {
            let keys = ["a", "b", "c", "d", "e"];
            let b = Balancer::build(s, &keys, &[1, 2, 1, 3, 1]);
            for hash in [0u64, 7, u64::MAX] {
                let order: Vec<usize> = b.candidates(hash, 5, &NoLoad).collect();
                let mut seen = order.clone();
                seen.sort_unstable();
                seen.dedup();
                assert_eq!(seen, [0, 1, 2, 3, 4], "{s}: {order:?}");
                assert!(order.len() <= 5 + 7, "{s}: bounded");
            }
        }
        let rr = Balancer::build(Strategy::RoundRobin, &["a", "b", "c"], &[1, 1, 1]);
        assert_eq!(rr.candidates(0, 3, &NoLoad).collect::<Vec<_>>(), [0, 1, 2]);
        // The next request starts at 1, not where the last one's walk ended.
        assert_eq!(rr.candidates(0, 3, &NoLoad).collect::<Vec<_>>(), [1, 2, 0]);
        // ip-hash starts with its pick for that client.
        let ip = Balancer::build(Strategy::IpHash, &["a", "b", "c"], &[1, 1, 1]);
        let first = ip.pick(42, 0, &NoLoad);
        assert_eq!(ip.candidates(42, 3, &NoLoad).next(), first);
    }

    #[test]
    fn empty_sets_pick_nothing() {
        for s in [
            Strategy::RoundRobin,
            Strategy::Weighted,
            Strategy::IpHash,
            Strategy::LeastRequest,
        ] {
            let b = Balancer::build(s, &[], &[]);
            assert_eq!(b.pick(7, 0, &NoLoad), None, "{s}");
            assert_eq!(b.candidates(7, 0, &NoLoad).next(), None, "{s}");
        }
    }
}
