//! One endpoint: its address, its passive health, its in-flight count and
//! its idle connections. An endpoint outlives snapshots: a rebuild that keeps
//! the endpoint keeps the same `Arc`, so health and pooled connections
//! survive reloads and discovery updates.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::uri::Authority;

use super::idle::Pool;
use crate::spec::{EndpointSpec, HealthPolicy, Protocol, UpstreamTls};

/// A live endpoint.
#[derive(Debug)]
pub struct Endpoint {
    pub key: Arc<str>,
    pub addr: SocketAddr,
    pub protocol: Protocol,
    /// TLS to it; `None`: plain TCP.
    pub tls: Option<Arc<UpstreamTls>>,
    /// The largest response head read from it, beyond the default.
    pub response_head: Option<usize>,
    /// `ip:port`, ready for upstream URIs.
    pub(crate) authority: Authority,
    in_flight: AtomicU32,
    failures: AtomicU32,
    ejections: AtomicU32,
    /// Milliseconds on [`now_ms`]'s clock; 0 when not ejected.
    ejected_until: AtomicU64,
    pub(crate) pool: Pool,
    /// Its own series, with `endpoint_metrics` on; set at each snapshot
    /// build, read with one atomic load per answer.
    pub metrics: arc_swap::ArcSwapOption<crate::metrics::EndpointMetrics>,
}

/// Milliseconds since the process started; never 0.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Health as the admin page and metrics report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    Healthy,
    Ejected,
}

impl HealthState {
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Ejected => "ejected",
        }
    }
}

impl Endpoint {
    pub fn new(
        spec: &EndpointSpec,
        protocol: Protocol,
        tls: Option<Arc<UpstreamTls>>,
        response_head: Option<usize>,
    ) -> Self {
        let authority = Authority::try_from(spec.addr.to_string().as_str())
            .expect("a socket address is a valid authority");
        Endpoint {
            key: spec.key.clone(),
            addr: spec.addr,
            protocol,
            tls,
            response_head,
            authority,
            in_flight: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            pool: Pool::default(),
            metrics: Default::default(),
        }
    }

    /// Counts one answer of this endpoint, when it has its own series.
    #[inline]
    pub fn observe(&self, status: u16, elapsed: Duration) {
        if let Some(m) = &*self.metrics.load() {
            m.observe(status, elapsed);
        }
    }

    #[inline]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// True while a passive-health ejection lasts.
    #[inline]
    pub fn is_ejected(&self) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && now_ms() < until
    }

    pub fn health(&self) -> HealthState {
        if self.is_ejected() {
            HealthState::Ejected
        } else {
            HealthState::Healthy
        }
    }

    /// A request got a good answer: the failure streak ends, and an
    /// endpoint that came back from ejection starts its back-off afresh.
    #[inline]
    pub fn record_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.ejected_until.load(Ordering::Relaxed) != 0 && !self.is_ejected() {
            self.ejected_until.store(0, Ordering::Relaxed);
            self.ejections.store(0, Ordering::Relaxed);
        }
    }

    /// A connect failure or a 5xx. Returns how long the endpoint is now
    /// ejected for, when this failure ejected it.
    pub fn record_failure(&self, policy: &HealthPolicy) -> Option<Duration> {
        if policy.consecutive_failures == 0 {
            return None;
        }
        let streak = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if streak < policy.consecutive_failures || self.is_ejected() {
            return None;
        }
        self.failures.store(0, Ordering::Relaxed);
        let n = self.ejections.fetch_add(1, Ordering::Relaxed).min(16);
        let ejection = policy
            .base_ejection
            .saturating_mul(1 << n)
            .min(policy.max_ejection);
        self.ejected_until
            .store(now_ms() + ejection.as_millis() as u64, Ordering::Relaxed);
        Some(ejection)
    }
}

/// Counts a request in flight to an endpoint for as long as it lives.
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl InFlight {
    pub fn new(endpoint: Arc<Endpoint>) -> Self {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(endpoint)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
            panic_threshold_percent: 50,
        }
    }

    fn endpoint() -> Endpoint {
        Endpoint::new(
            &EndpointSpec::new("127.0.0.1:1".parse().unwrap(), 1),
            Protocol::Http1,
            None,
            None,
        )
    }

    #[test]
    fn ejects_after_k_consecutive_failures() {
        let e = endpoint();
        let p = policy();
        assert_eq!(e.record_failure(&p), None);
        assert_eq!(e.record_failure(&p), None);
        assert_eq!(e.record_failure(&p), Some(Duration::from_secs(10)));
        assert!(e.is_ejected());
        assert_eq!(e.health(), HealthState::Ejected);
    }

    #[test]
    fn a_success_breaks_the_streak() {
        let e = endpoint();
        let p = policy();
        e.record_failure(&p);
        e.record_failure(&p);
        e.record_success();
        assert_eq!(e.record_failure(&p), None);
        assert!(!e.is_ejected());
    }

    #[test]
    fn back_off_grows_and_is_capped() {
        let e = endpoint();
        let p = policy();
        let mut ejections = Vec::new();
        for _ in 0..3 {
            // End the current ejection by hand, as if its time had passed.
            e.ejected_until.store(1, Ordering::Relaxed);
            for _ in 0..3 {
                if let Some(d) = e.record_failure(&p) {
                    ejections.push(d);
                }
            }
        }
        assert_eq!(
            ejections,
            [
                Duration::from_secs(10),
                Duration::from_secs(20),
                Duration::from_secs(25)
            ]
        );
    }

    #[test]
    fn in_flight_counts_guards() {
        let e = Arc::new(endpoint());
        let a = InFlight::new(e.clone());
        let b = InFlight::new(e.clone());
        assert_eq!(e.in_flight(), 2);
        drop(a);
        drop(b);
        assert_eq!(e.in_flight(), 0);
    }
}
