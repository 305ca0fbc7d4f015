//! Fixtures for the benchmarks: route specs shaped like a cluster's, an
//! in-process proxy with a backend (all on 127.0.0.1), and an allocator
//! that counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sluice::balance::Strategy;
use sluice::config::{self, RouteSpec};
use sluice::http::Handler;
use sluice::metrics::Metrics;
use sluice::routing::{HostMatch, PathType, Snapshot};
use sluice::server::Listeners;
use sluice::upstream::{EndpointSpec, UpstreamSpec};

/// A global allocator that counts allocations; a bench declares it with
/// `#[global_allocator]` and reads [`allocations`] around what it measures.
pub struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Allocations (and reallocations) so far in this process.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

// SAFETY: forwards every call to the system allocator unchanged; it only
// counts them.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// `n` endpoint specs on distinct addresses in 10.0.0.0/8 (never dialled).
pub fn endpoints(n: usize) -> Vec<EndpointSpec> {
    (0..n)
        .map(|i| {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000u32 + i as u32 + 1);
            EndpointSpec::new(SocketAddr::from((ip, 8080)), 1 + (i % 3) as u32)
        })
        .collect()
}

/// One route spec.
pub fn route(
    name: &str,
    host: HostMatch,
    path: &str,
    strategy: Strategy,
    endpoints: Vec<EndpointSpec>,
) -> RouteSpec {
    RouteSpec::new(
        name,
        host,
        path,
        PathType::Prefix,
        UpstreamSpec::new(name, strategy, endpoints),
    )
}

/// `services` routes, one host each with a path, sharing `endpoints`
/// endpoints between them — the shape the Kubernetes discovery produces.
pub fn cluster(services: usize, endpoints_total: usize) -> Vec<RouteSpec> {
    let per = endpoints_total / services.max(1);
    let all = endpoints(endpoints_total);
    (0..services)
        .map(|i| {
            let eps = all[i * per..(i + 1) * per].to_vec();
            let strategy = match i % 4 {
                0 => Strategy::RoundRobin,
                1 => Strategy::Weighted,
                2 => Strategy::LeastRequest,
                _ => Strategy::RoundRobin,
            };
            route(
                &format!("ns{}/svc{i}", i % 50),
                HostMatch::Exact(format!("svc{i}.ns{}.example.com", i % 50)),
                &format!("/api/v{}", i % 3),
                strategy,
                eps,
            )
        })
        .collect()
}

/// `rules` host/path rules over few hosts: many paths per host.
pub fn rules(rules: usize) -> Vec<RouteSpec> {
    let hosts = (rules / 10).max(1);
    (0..rules)
        .map(|i| {
            route(
                &format!("r{i}"),
                HostMatch::Exact(format!("host{}.example.com", i % hosts)),
                &format!("/svc{}/api", i / hosts),
                Strategy::RoundRobin,
                endpoints(1),
            )
        })
        .collect()
}

/// A fixed-answer HTTP backend on 127.0.0.1, like the load bench's.
pub async fn start_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Bytes::from_static(&[b'x'; 100]);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// The proxy in this process, round-robin over `backends`; returns its address.
pub async fn start_proxy(backends: &[SocketAddr]) -> SocketAddr {
    start_proxy_with(backends, true).await
}

/// The proxy with the HTTP/1.1 fast path on or off.
pub async fn start_proxy_with(backends: &[SocketAddr], fast_path: bool) -> SocketAddr {
    let specs = vec![route(
        "bench",
        HostMatch::Any,
        "/",
        Strategy::RoundRobin,
        backends.iter().map(|&a| EndpointSpec::new(a, 1)).collect(),
    )];
    let metrics = Arc::new(Metrics::new());
    let table = Arc::new(ArcSwap::from_pointee(Snapshot::build(
        &specs, None, None, &metrics,
    )));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let proxy = Arc::new(Handler::new(table, metrics));
    // Leaked on purpose: the bench process ends with it.
    std::mem::forget(Listeners::start(
        vec![sluice::server::Listener {
            tcp: listener,
            tls: None,
        }],
        proxy,
        config::ListenerSettings {
            http1_fast_path: fast_path,
            ..config::DEFAULT_LISTENER
        },
    ));
    addr
}
