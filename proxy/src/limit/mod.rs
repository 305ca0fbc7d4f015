//! ingress-nginx's per-client limits, live: request rates (`limit-rps`,
//! `limit-rpm`, as `limit_req ... burst nodelay`) and requests in progress
//! (`limit-connections`, as `limit_conn`), per real client address, in one
//! [`Limiter`] per zone (an Ingress) that every route of the zone shares.
//!
//! A limiter is made when a snapshot is built and handed over to the next
//! snapshot while its zone's settings stay the same ([`Reuse`]), so a
//! rebuild every second does not reset anyone's bucket. Checking a
//! request hashes its address once and updates a few atomics: no lock, no
//! allocation but a reference count for a guard.

mod conns;
mod rate;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::spec::RateLimits;
use conns::ConnTable;
use rate::{RateTable, Taken};

/// One zone's limits and counters.
#[derive(Debug)]
pub struct Limiter {
    spec: Arc<RateLimits>,
    rates: Vec<RateTable>,
    conns: Option<ConnTable>,
    /// Hashes addresses: a table per process that outsiders cannot aim
    /// collisions at.
    seed: u64,
    epoch: Instant,
}

/// Why a request was refused: the status to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub http::StatusCode);

/// A request counted against its client's `limit-connections` until it is
/// dropped (when the response has been sent).
#[derive(Debug)]
pub struct ConnGuard {
    limiter: Arc<Limiter>,
    slot: usize,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(c) = &self.limiter.conns {
            c.release(self.slot);
        }
    }
}

impl Limiter {
    pub fn new(spec: Arc<RateLimits>) -> Limiter {
        Limiter {
            rates: spec.rates.iter().map(|r| RateTable::new(*r)).collect(),
            conns: spec.connections.map(ConnTable::new),
            spec,
            seed: fastrand::u64(..),
            epoch: Instant::now(),
        }
    }

    /// What it was made from.
    pub fn spec(&self) -> &Arc<RateLimits> {
        &self.spec
    }

    /// Admits a request from `client` (the real client address), or says
    /// which status refuses it. The rates are checked first and then the
    /// requests in progress, as nginx's `limit_req` runs before its
    /// `limit_conn`; a request refused by one limit is charged to none.
    /// The guard, when there is one, must live until the response is sent.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Option<ConnGuard>, Refused> {
        self.admit_at(client, self.epoch.elapsed())
    }

    fn admit_at(
        self: &Arc<Self>,
        client: IpAddr,
        now: Duration,
    ) -> Result<Option<ConnGuard>, Refused> {
        if self.spec.exempt(client) {
            return Ok(None);
        }
        let hash = self.hash(client);
        let mut taken: [Option<Taken>; 2] = [None, None];
        for (i, r) in self.rates.iter().enumerate() {
            match r.take(hash, now) {
                Some(t) => {
                    if let Some(slot) = taken.get_mut(i) {
                        *slot = Some(t);
                    }
                }
                None => {
                    self.give_back(&taken);
                    return Err(Refused(self.spec.req_status));
                }
            }
        }
        let Some(c) = &self.conns else {
            return Ok(None);
        };
        match c.acquire(hash) {
            Some(slot) => Ok(Some(ConnGuard {
                limiter: self.clone(),
                slot,
            })),
            None => {
                self.give_back(&taken);
                Err(Refused(self.spec.conn_status))
            }
        }
    }

    fn give_back(&self, taken: &[Option<Taken>]) {
        for (r, t) in self.rates.iter().zip(taken) {
            if let Some(t) = t {
                r.give_back(*t);
            }
        }
    }

    fn hash(&self, client: IpAddr) -> u64 {
        use xxhash_rust::xxh3::xxh3_64_with_seed;
        match client.to_canonical() {
            IpAddr::V4(a) => xxh3_64_with_seed(&a.octets(), self.seed),
            IpAddr::V6(a) => xxh3_64_with_seed(&a.octets(), self.seed),
        }
    }
}

/// The limiters of the snapshot being replaced, by zone, for the next one
/// to take over.
#[derive(Debug, Default)]
pub struct Reuse(HashMap<Arc<str>, Arc<Limiter>>);

impl Reuse {
    /// Offers a live limiter to the next snapshot.
    pub fn offer(&mut self, limiter: &Arc<Limiter>) {
        self.0
            .entry(limiter.spec.zone.clone())
            .or_insert_with(|| limiter.clone());
    }

    /// The limiter for `spec`: the one offered for its zone when its
    /// settings are the same (and then every later route of the zone
    /// shares it), else a new one.
    pub fn limiter(&mut self, spec: &Arc<RateLimits>) -> Arc<Limiter> {
        match self.0.get(&spec.zone) {
            Some(l) if *l.spec == **spec => l.clone(),
            _ => {
                let l = Arc::new(Limiter::new(spec.clone()));
                self.0.insert(spec.zone.clone(), l.clone());
                l
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Rate;
    use http::StatusCode;

    fn spec(rates: Vec<Rate>, connections: Option<u32>) -> Arc<RateLimits> {
        Arc::new(RateLimits {
            zone: "shop/web/uid".into(),
            rates,
            connections,
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            req_status: StatusCode::SERVICE_UNAVAILABLE,
            conn_status: StatusCode::TOO_MANY_REQUESTS,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rates_then_connections_and_the_allowlist_is_exempt() {
        let l = Arc::new(Limiter::new(spec(vec![Rate::per_second(1, 1)], Some(1))));
        let t = Duration::ZERO;
        let g = l.admit_at(ip("192.0.2.1"), t).unwrap();
        assert!(g.is_some());
        // In progress: the second is refused for connections, and not
        // charged to the rate.
        assert_eq!(
            l.admit_at(ip("192.0.2.1"), t).unwrap_err(),
            Refused(StatusCode::TOO_MANY_REQUESTS)
        );
        drop(g);
        assert!(l.admit_at(ip("192.0.2.1"), t).is_ok());
        assert_eq!(
            l.admit_at(ip("192.0.2.1"), t).unwrap_err(),
            Refused(StatusCode::SERVICE_UNAVAILABLE)
        );
        for _ in 0..100 {
            assert!(matches!(l.admit_at(ip("10.1.2.3"), t), Ok(None)));
        }
        // IPv4 seen through a dual-stack listener is the same client.
        assert!(l.admit_at(ip("::ffff:192.0.2.1"), t).is_err());
    }

    #[test]
    fn per_second_and_per_minute_both_apply() {
        let l = Arc::new(Limiter::new(spec(
            vec![Rate::per_second(10, 0), Rate::per_minute(2, 0)],
            None,
        )));
        let c = ip("192.0.2.9");
        assert!(l.admit_at(c, Duration::ZERO).is_ok());
        // The per-second rate allows it, the per-minute one does not.
        assert!(l.admit_at(c, Duration::from_secs(1)).is_err());
        assert!(l.admit_at(c, Duration::from_secs(30)).is_ok());
        assert!(l.admit_at(c, Duration::from_secs(31)).is_err());
    }

    #[test]
    fn a_rebuild_keeps_a_zone_with_the_same_settings() {
        let a = spec(vec![Rate::per_second(1, 0)], None);
        let mut reuse = Reuse::default();
        let first = reuse.limiter(&a);
        let mut next = Reuse::default();
        next.offer(&first);
        let same = next.limiter(&Arc::new((*a).clone()));
        assert!(Arc::ptr_eq(&first, &same));
        let mut changed = (*a).clone();
        changed.rates = vec![Rate::per_second(2, 0)];
        let mut next = Reuse::default();
        next.offer(&first);
        assert!(!Arc::ptr_eq(&first, &next.limiter(&Arc::new(changed))));
    }
}
