//! The endpoint attempt loop, without the I/O: which endpoint to try next,
//! what each outcome means for the endpoint's health, the metrics and the
//! log, and when to stop and answer.
//!
//! Both HTTP paths drive it the same way:
//!
//! ```text
//! let mut attempts = Attempts::new(&route, upstream, client, idempotent);
//! while let Some(pick) = attempts.next() {
//!     match /* send on pick.endpoint, the path's own way */ {
//!         Ok(head) => { attempts.answered(pick.endpoint, head.status); /* relay */ }
//!         Err(failure) => match attempts.failed(pick.endpoint, failure) {
//!             Verdict::Retry => continue,
//!             Verdict::Answer(a) => return /* render a */,
//!         },
//!     }
//! }
//! return /* render */ attempts.exhausted();
//! ```
//!
//! The state machine owns the decisions; the paths own their sockets. It
//! never awaits, so either path can hold its buffers across it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::balance::{hash_ip, Strategy};
use crate::logfmt::{Dur, OptDur};
use crate::routing::Route;
use crate::upstream::pool::ConnectError;
use crate::upstream::{Endpoint, InFlight, Picks, Upstream};

use super::sticky::Sticky;
use super::Answer;
use crate::policy::{self, AfterClose};

/// How one attempt on one endpoint failed, as the path that made it saw it.
#[derive(Debug)]
pub enum Failure {
    /// No connection could be made (nothing was sent).
    Connect(ConnectError),
    /// The connection closed (or was reset) before any byte of an answer.
    /// `reused`: it came from the pool. `replayable`: the whole request is
    /// still at hand to send again.
    Closed { reused: bool, replayable: bool },
    /// The response head did not come within this long.
    Timeout(Duration),
    /// The upstream broke the exchange after the request went out: a reset
    /// mid-answer, a malformed head or body.
    Broken(Box<dyn std::error::Error + Send + Sync>),
    /// The client's body went past the route's `max_request_body` while it
    /// was streamed: the client's doing, not the endpoint's.
    BodyTooLarge,
    /// The client stalled its body past `timeouts.request_body`: the
    /// client's doing, not the endpoint's.
    BodyStalled,
}

/// What the path does after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Try the next endpoint (if [`Attempts::next`] gives one).
    Retry,
    /// Stop and answer this.
    Answer(Answer),
}

/// An endpoint to try, with the request counted in flight on it (for
/// least-request and the drain) until the guard is dropped.
#[derive(Debug)]
pub struct Pick<'a> {
    pub endpoint: &'a Arc<Endpoint>,
    pub in_flight: InFlight,
}

/// Why the last endpoint tried gave no answer, for the answer given when
/// no endpoint is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    /// Nothing tried yet (or nothing to try).
    Nothing,
    ConnectTimeout,
    ConnectFailed,
    Closed,
}

/// Where the endpoints to try come from.
#[derive(Debug)]
enum Order<'a> {
    /// The upstream's balancer.
    Balancer(Picks<'a>),
    /// Cookie affinity (`sticky.rs`).
    Sticky(Sticky<'a>),
}

/// One request's attempts on its upstream's endpoints.
#[derive(Debug)]
pub struct Attempts<'a> {
    route: &'a Route,
    upstream: &'a Upstream,
    order: Order<'a>,
    /// Endpoints that may still be tried (`retry.attempts`).
    left: u32,
    idempotent: bool,
    /// The real client, for the log.
    client: IpAddr,
    started: Instant,
    last: Last,
    /// The endpoint that answered, for the access log.
    answered_by: Option<SocketAddr>,
}

impl<'a> Attempts<'a> {
    /// Starts a request's attempts on `upstream` (the route's, or its
    /// canary's). `client` is the real client (behind PROXY protocol or a
    /// trusted X-Forwarded-For): ip-hash keys on it. `idempotent`: the
    /// method may be sent twice ([`policy::idempotent`]).
    #[inline]
    pub fn new(route: &'a Route, upstream: &'a Upstream, client: IpAddr, idempotent: bool) -> Self {
        Self::start(route, upstream, client, idempotent, None)
    }

    /// The same, in the order `sticky` gives when the route has cookie
    /// affinity ([`super::sticky::choose`]).
    #[inline]
    pub fn start(
        route: &'a Route,
        upstream: &'a Upstream,
        client: IpAddr,
        idempotent: bool,
        sticky: Option<Sticky<'a>>,
    ) -> Self {
        let order = match sticky {
            Some(s) => Order::Sticky(s),
            None => {
                let hash = if upstream.strategy() == Strategy::IpHash {
                    hash_ip(client)
                } else {
                    0
                };
                Order::Balancer(upstream.candidates(hash))
            }
        };
        Attempts {
            route,
            upstream,
            order,
            left: route.retry.attempts,
            idempotent,
            client,
            started: Instant::now(),
            last: Last::Nothing,
            answered_by: None,
        }
    }

    /// The next endpoint to try, or `None` when the route's attempts are
    /// used up or no endpoint is left.
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Pick<'a>> {
        if self.left == 0 {
            return None;
        }
        let i = match &mut self.order {
            Order::Balancer(picks) => picks.next()?,
            Order::Sticky(sticky) => sticky.pick()?,
        };
        self.left -= 1;
        let upstream: &'a Upstream = self.upstream;
        let endpoint = &upstream.endpoints[i];
        Some(Pick {
            endpoint,
            in_flight: InFlight::new(endpoint.clone()),
        })
    }

    /// The endpoint answered with `status` (its head has been read): a 5xx
    /// counts toward its ejection, anything else clears its failures.
    pub fn answered(&mut self, endpoint: &Endpoint, status: u16) {
        endpoint.observe(status, self.started.elapsed());
        if status >= 500 {
            if let Some(d) = endpoint.record_failure(&self.upstream.health) {
                tracing::warn!(route = %self.route.name, endpoint = %endpoint.addr, status, ejected_for = %Dur(d), "endpoint ejected after consecutive failures");
            }
        } else {
            endpoint.record_success();
        }
        self.answered_by = Some(endpoint.addr);
    }

    /// The endpoint failed: its health, the metrics and the log are told,
    /// and the verdict says whether another endpoint may be tried.
    pub fn failed(&mut self, endpoint: &Endpoint, failure: Failure) -> Verdict {
        let route = &*self.route.name;
        let health = &self.upstream.health;
        match failure {
            Failure::Connect(e) => {
                self.route.metrics.connect_error();
                let ejected = endpoint.record_failure(health);
                tracing::warn!(route, endpoint = %endpoint.addr, error = %e, ejected_for = %OptDur(ejected), "upstream connect failed");
                self.last = match e {
                    ConnectError::Timeout(_) => Last::ConnectTimeout,
                    _ => Last::ConnectFailed,
                };
                // Nothing was sent, but a request that may not be sent
                // twice is not sent elsewhere either.
                if self.idempotent {
                    Verdict::Retry
                } else {
                    Verdict::Answer(self.exhausted())
                }
            }
            Failure::Closed { reused, replayable } => {
                match policy::after_close(reused, self.idempotent, replayable) {
                    AfterClose::NextEndpoint => {
                        let ejected = endpoint.record_failure(health);
                        tracing::warn!(route, endpoint = %endpoint.addr, ejected_for = %OptDur(ejected), "upstream closed the connection without an answer; trying the next endpoint");
                        self.last = Last::Closed;
                        Verdict::Retry
                    }
                    // The keep-alive race, on a request that cannot go
                    // again: not the endpoint's fault.
                    AfterClose::Fail | AfterClose::SendFresh if reused => {
                        tracing::warn!(route, endpoint = %endpoint.addr, "a pooled upstream connection closed under a request that cannot be retried");
                        Verdict::Answer(Answer::UpstreamFailed)
                    }
                    AfterClose::Fail | AfterClose::SendFresh => {
                        endpoint.record_failure(health);
                        tracing::warn!(route, endpoint = %endpoint.addr, "upstream closed the connection before answering");
                        Verdict::Answer(Answer::UpstreamFailed)
                    }
                }
            }
            Failure::Timeout(d) => {
                endpoint.record_failure(health);
                tracing::warn!(route, endpoint = %endpoint.addr, timeout = %Dur(d), "upstream response headers timed out");
                Verdict::Answer(Answer::UpstreamTimeout)
            }
            Failure::Broken(e) => {
                endpoint.record_failure(health);
                tracing::warn!(route, endpoint = %endpoint.addr, error = %e, "upstream request failed");
                Verdict::Answer(Answer::UpstreamFailed)
            }
            Failure::BodyTooLarge => {
                tracing::info!(route, client = %self.client, "request body over the route's limit");
                Verdict::Answer(Answer::BodyTooLarge)
            }
            Failure::BodyStalled => {
                tracing::info!(route, endpoint = %endpoint.addr, client = %self.client, "client stalled its request body");
                Verdict::Answer(Answer::BodyTimeout)
            }
        }
    }

    /// The answer when no endpoint is left to try: what the last one tried
    /// came to, or 503 when there was none to try.
    pub fn exhausted(&self) -> Answer {
        match self.last {
            Last::Nothing if self.upstream.unresolved => Answer::BackendUnresolved,
            Last::Nothing => {
                tracing::warn!(route = %self.route.name, upstream = %self.upstream.name, "no usable endpoint");
                Answer::NoEndpoint
            }
            Last::Closed => Answer::UpstreamFailed,
            Last::ConnectTimeout => Answer::ConnectTimeout,
            Last::ConnectFailed => Answer::Unreachable,
        }
    }

    /// The affinity cookie the response sets: on a route with cookie
    /// affinity, when the endpoint that answered was a new pick.
    pub fn set_cookie(&self) -> Option<http::HeaderValue> {
        match &self.order {
            Order::Sticky(s) => s.set_cookie(),
            Order::Balancer(_) => None,
        }
    }

    /// The endpoint that answered, once one has.
    pub fn answered_by(&self) -> Option<SocketAddr> {
        self.answered_by
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::Strategy;
    use crate::config::{RetryPolicy, RouteSpec};
    use crate::metrics::Metrics;
    use crate::routing::{HostMatch, PathType, Snapshot};
    use crate::upstream::{EndpointSpec, HealthPolicy, UpstreamSpec};

    /// A route over `n` endpoints that eject after one failure.
    fn route(n: u16, attempts: u32) -> Arc<Route> {
        let upstream = UpstreamSpec {
            health: HealthPolicy {
                consecutive_failures: 1,
                // No panic mode: ejected endpoints are never picked.
                panic_threshold_percent: 0,
                ..HealthPolicy::default()
            },
            ..UpstreamSpec::new(
                "u",
                Strategy::RoundRobin,
                (0..n)
                    .map(|i| {
                        EndpointSpec::new(format!("127.0.0.1:{}", 9000 + i).parse().unwrap(), 1)
                    })
                    .collect(),
            )
        };
        let spec = RouteSpec {
            retry: RetryPolicy { attempts },
            ..RouteSpec::new("r", HostMatch::Any, "/", PathType::Prefix, upstream)
        };
        let snap = Snapshot::build(&[spec], None, None, &Metrics::new());
        snap.lookup(None, "/").unwrap().clone()
    }

    fn client() -> IpAddr {
        IpAddr::from([192, 0, 2, 1])
    }

    fn refused() -> Failure {
        Failure::Connect(ConnectError::Io(
            std::io::ErrorKind::ConnectionRefused.into(),
        ))
    }

    #[test]
    fn connect_failures_move_on_only_for_idempotent_requests() {
        let r = route(3, 3);
        let mut a = Attempts::new(&r, &r.upstream, client(), true);
        let mut tried = Vec::new();
        while let Some(p) = a.next() {
            tried.push(p.endpoint.addr);
            assert_eq!(a.failed(p.endpoint, refused()), Verdict::Retry);
        }
        tried.sort();
        tried.dedup();
        assert_eq!(tried.len(), 3, "each endpoint once");
        assert_eq!(a.exhausted(), Answer::Unreachable);

        let r = route(3, 3);
        let mut a = Attempts::new(&r, &r.upstream, client(), false);
        let p = a.next().unwrap();
        let timeout = Failure::Connect(ConnectError::Timeout(Duration::from_secs(1)));
        assert_eq!(
            a.failed(p.endpoint, timeout),
            Verdict::Answer(Answer::ConnectTimeout)
        );
    }

    #[test]
    fn attempts_are_capped_by_the_route() {
        let r = route(5, 2);
        let mut a = Attempts::new(&r, &r.upstream, client(), true);
        let mut n = 0;
        while let Some(p) = a.next() {
            n += 1;
            assert_eq!(a.failed(p.endpoint, refused()), Verdict::Retry);
        }
        assert_eq!(n, 2);
    }

    #[test]
    fn keep_alive_race_is_not_the_endpoints_fault() {
        let r = route(2, 3);
        // A pooled connection closed under a POST: 502, no ejection.
        let mut a = Attempts::new(&r, &r.upstream, client(), false);
        let p = a.next().unwrap();
        let closed = Failure::Closed {
            reused: true,
            replayable: true,
        };
        assert_eq!(
            a.failed(p.endpoint, closed),
            Verdict::Answer(Answer::UpstreamFailed)
        );
        assert!(!p.endpoint.is_ejected());
        // A fresh connection closed under a GET: the endpoint died, the
        // next one is tried, and if none is left the answer is a 502.
        let mut a = Attempts::new(&r, &r.upstream, client(), true);
        let p = a.next().unwrap();
        let closed = Failure::Closed {
            reused: false,
            replayable: true,
        };
        assert_eq!(a.failed(p.endpoint, closed), Verdict::Retry);
        assert!(p.endpoint.is_ejected());
        let q = a.next().unwrap();
        assert_ne!(p.endpoint.addr, q.endpoint.addr);
        let closed = Failure::Closed {
            reused: false,
            replayable: true,
        };
        assert_eq!(a.failed(q.endpoint, closed), Verdict::Retry);
        assert!(a.next().is_none());
        assert_eq!(a.exhausted(), Answer::UpstreamFailed);
    }

    #[test]
    fn the_clients_faults_cost_the_endpoint_nothing() {
        let r = route(1, 3);
        for (f, want) in [
            (Failure::BodyTooLarge, Answer::BodyTooLarge),
            (Failure::BodyStalled, Answer::BodyTimeout),
        ] {
            let mut a = Attempts::new(&r, &r.upstream, client(), true);
            let p = a.next().unwrap();
            assert_eq!(a.failed(p.endpoint, f), Verdict::Answer(want));
            assert!(!p.endpoint.is_ejected());
        }
        let mut a = Attempts::new(&r, &r.upstream, client(), true);
        let p = a.next().unwrap();
        let t = Failure::Timeout(Duration::from_secs(1));
        assert_eq!(
            a.failed(p.endpoint, t),
            Verdict::Answer(Answer::UpstreamTimeout)
        );
        assert!(p.endpoint.is_ejected());
    }

    #[test]
    fn answers_record_health_and_who_answered() {
        let r = route(2, 3);
        let mut a = Attempts::new(&r, &r.upstream, client(), true);
        let p = a.next().unwrap();
        a.answered(p.endpoint, 503);
        assert!(p.endpoint.is_ejected(), "a 5xx counts toward ejection");
        assert_eq!(a.answered_by(), Some(p.endpoint.addr));
        // Ejected, and one of two healthy is no panic: it is skipped.
        for _ in 0..4 {
            let mut a = Attempts::new(&r, &r.upstream, client(), true);
            assert_ne!(a.next().unwrap().endpoint.addr, p.endpoint.addr);
            assert!(a.next().is_none());
        }
        // Nothing to try at all: 503.
        let r = route(0, 3);
        let mut a = Attempts::new(&r, &r.upstream, client(), true);
        assert!(a.next().is_none());
        assert_eq!(a.exhausted(), Answer::NoEndpoint);
    }

    #[test]
    fn in_flight_is_counted_while_the_pick_is_held() {
        let r = route(1, 1);
        let mut a = Attempts::new(&r, &r.upstream, client(), true);
        let p = a.next().unwrap();
        assert_eq!(p.endpoint.in_flight(), 1);
        drop(p);
        assert_eq!(r.upstream.endpoints[0].in_flight(), 0);
    }
}
