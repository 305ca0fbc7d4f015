//! The request handler every client connection shares: the live routing
//! snapshot, the metrics, the access log, the WebSocket tunnels and the
//! overload guard. The hyper path's `handle` is in [`super::hyper`]; the
//! fast path reads the same handler.

use std::sync::Arc;

use crate::access_log::AccessLog;
use crate::forward::Overload;
use crate::metrics::{Metrics, RouteMetrics, UNMATCHED};
use crate::routing::Live;

use super::Tunnels;

/// The request handler shared by every client connection.
pub struct Handler {
    pub(super) table: Live,
    pub(super) metrics: Arc<Metrics>,
    pub(super) unmatched: RouteMetrics,
    pub(super) tunnels: Arc<Tunnels>,
    pub(super) access_log: Option<AccessLog>,
    /// The longest request target (path and query) taken: past it, 414.
    pub(super) max_uri: usize,
    /// Requests waiting on an upstream now, on both paths.
    in_flight: std::sync::atomic::AtomicUsize,
    /// Past this many in flight, new requests get a fast 503 with
    /// Retry-After instead of piling up (`limits.max_in_flight`; 0: off).
    max_in_flight: usize,
    /// Set while the process's memory is past `limits.max_memory` (by
    /// [`Handler::watch_memory`]): new requests get the same fast 503.
    memory_high: std::sync::atomic::AtomicBool,
}

/// One request counted in flight until it is dropped.
pub struct InFlightRequest<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InFlightRequest<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler").finish_non_exhaustive()
    }
}

impl Handler {
    pub fn new(table: Live, metrics: Arc<Metrics>) -> Self {
        let unmatched = metrics.route(UNMATCHED);
        Handler {
            table,
            metrics,
            unmatched,
            tunnels: Arc::default(),
            access_log: None,
            max_uri: crate::config::DEFAULT_MAX_URI,
            in_flight: Default::default(),
            max_in_flight: 0,
            memory_high: Default::default(),
        }
    }

    /// Refuses new requests with 503 while `max` are in flight
    /// (`limits.max_in_flight`; 0: never).
    pub fn with_max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max;
        self
    }

    /// Counts a request in flight, or says why the guard refuses it: the
    /// request is then answered 503 at once.
    #[inline]
    pub fn admit(&self) -> Result<InFlightRequest<'_>, Overload> {
        use std::sync::atomic::Ordering::Relaxed;
        let n = self.in_flight.fetch_add(1, Relaxed);
        let guard = InFlightRequest(&self.in_flight);
        if self.max_in_flight > 0 && n >= self.max_in_flight {
            return Err(Overload::InFlight);
        }
        if self.memory_high.load(Relaxed) {
            return Err(Overload::Memory);
        }
        Ok(guard)
    }

    /// Whether a new request would be refused now.
    #[inline]
    pub fn overloaded(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        (self.max_in_flight > 0 && self.in_flight.load(Relaxed) >= self.max_in_flight)
            || self.memory_high.load(Relaxed)
    }

    /// Watches the process's resident memory (every 250 ms, off the hot
    /// path) and turns the overload guard on past `limit` bytes, off again
    /// below 95 % of it: the way Envoy's overload manager sheds load before
    /// the kernel's OOM killer takes every connection at once. Linux only;
    /// elsewhere nothing is watched.
    pub fn watch_memory(
        self: &Arc<Self>,
        limit: u64,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let proxy = Arc::downgrade(self);
        async move {
            use std::sync::atomic::Ordering::Relaxed;
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(proxy) = proxy.upgrade() else { return };
                let Some(rss) = crate::memory::resident_bytes() else {
                    return;
                };
                let high = proxy.memory_high.load(Relaxed);
                if !high && rss > limit {
                    tracing::warn!(
                        rss,
                        limit,
                        "memory past limits.max_memory: new requests get 503 until it falls"
                    );
                    proxy.memory_high.store(true, Relaxed);
                } else if high && rss < limit / 20 * 19 {
                    tracing::info!(
                        rss,
                        limit,
                        "memory below limits.max_memory again: requests admitted"
                    );
                    proxy.memory_high.store(false, Relaxed);
                }
            }
        }
    }

    /// Answers 414 to request targets longer than `max` bytes
    /// (`limits.max_uri`).
    pub fn with_max_uri(mut self, max: usize) -> Self {
        self.max_uri = max;
        self
    }

    /// The longest request target taken.
    pub fn max_uri(&self) -> usize {
        self.max_uri
    }

    /// Logs every request to `log`.
    pub fn with_access_log(mut self, log: Option<AccessLog>) -> Self {
        self.access_log = log;
        self
    }

    /// The access log, when it is on.
    pub fn access_log(&self) -> Option<&AccessLog> {
        self.access_log.as_ref()
    }

    /// The live routing snapshot every request reads.
    pub fn snapshot(&self) -> &Live {
        &self.table
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The upgraded connections this proxy has open.
    pub fn tunnels(&self) -> &Arc<Tunnels> {
        &self.tunnels
    }
}
