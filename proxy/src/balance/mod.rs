//! Balancers: one build step per change, one pick step per request.
//!
//! Every strategy is built from the endpoint list of one upstream, sorted by
//! endpoint key, and is immutable afterwards except for atomic counters. The
//! pick step never locks and never allocates; it returns an index into the
//! upstream's endpoint slice, and the caller decides what to do with an
//! endpoint that is ejected or already tried (it asks again with the next
//! `attempt`).

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
        }
    }
}
