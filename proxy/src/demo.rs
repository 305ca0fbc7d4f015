//! `sluice demo`: three small backends that answer with their own name and
//! the proxy in front of them, one route per strategy, so a new user sees
//! balancing within a minute of cloning.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

use crate::balance::Strategy;
use crate::config::{self, Config};
use crate::spec::{EndpointSpec, HostMatch, PathType, RouteSpec, UpstreamSpec};
use crate::Error;

/// The demo's backends: name, address, weight for the weighted route.
pub fn backends(base_port: u16) -> [(&'static str, SocketAddr, u32); 3] {
    let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    [
        ("backend-a", a(base_port), 5),
        ("backend-b", a(base_port + 1), 1),
        ("backend-c", a(base_port + 2), 1),
    ]
}

/// Starts one backend that answers every request with its name.
pub async fn start_backend(name: &'static str, addr: SocketAddr) -> Result<(), Error> {
    let listener = crate::server::bind_all(&[addr]).await?.remove(0);
    tokio::spawn(async move {
        let body = Bytes::from(format!("{name}\n"));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(())
}

/// The demo's routes: `/round-robin`, `/weighted` (5:1:1), `/ip-hash`,
/// `/least-request`, and round-robin for everything else.
pub fn config(listen: SocketAddr, admin: SocketAddr, base_port: u16) -> Config {
    let route = |name: &str, path: &str, strategy: Strategy| {
        let endpoints = backends(base_port)
            .iter()
            .map(|&(_, addr, w)| {
                EndpointSpec::new(addr, if strategy == Strategy::Weighted { w } else { 1 })
            })
            .collect();
        RouteSpec::new(
            name,
            HostMatch::Any,
            path,
            PathType::Prefix,
            UpstreamSpec::new(name, strategy, endpoints),
        )
    };
    Config {
        listen_tls: Vec::new(),
        tls: Default::default(),
        listen: vec![listen],
        admin: Some(admin),
        listener: config::DEFAULT_LISTENER,
        drain_timeout: std::time::Duration::from_secs(5),
        shutdown_delay: std::time::Duration::ZERO,
        reload_interval: config::DEFAULT_RELOAD_INTERVAL,
        routes: vec![
            route("round-robin", "/round-robin", Strategy::RoundRobin),
            route("weighted", "/weighted", Strategy::Weighted),
            route("ip-hash", "/ip-hash", Strategy::IpHash),
            route("least-request", "/least-request", Strategy::LeastRequest),
            route("default", "/", Strategy::RoundRobin),
        ],
        default_backend: None,
        defaults: config::DEFAULTS,
        access_log: crate::access_log::Format::Off,
        server_header: Default::default(),
        endpoint_metrics: false,
        dns_refresh: crate::config::DEFAULT_DNS_REFRESH,
        warnings: Vec::new(),
    }
}

/// What the demo prints once it is up.
pub fn instructions(listen: SocketAddr, admin: SocketAddr, base_port: u16) -> String {
    let b = backends(base_port);
    format!(
        "sluice demo: proxy on http://{listen}, admin on http://{admin}
backends: {} on {}, {} on {}, {} on {}

Try each strategy (every line prints which backend answered):
  round-robin, each in turn:
    for i in $(seq 6); do curl -s http://{listen}/round-robin; done
  weighted 5:1:1, spread out (a a b a c a a):
    for i in $(seq 7); do curl -s http://{listen}/weighted; done
  ip-hash, the same backend for the same client address:
    for i in $(seq 3); do curl -s http://{listen}/ip-hash; done
    for i in $(seq 3); do curl -s --interface 127.0.0.2 http://{listen}/ip-hash; done
  least-request, the least busy of two random picks:
    for i in $(seq 6); do curl -s http://{listen}/least-request; done
  over HTTP/2 (h2c):
    curl -s --http2-prior-knowledge http://{listen}/round-robin
The live table and metrics:
    curl -s http://{admin}/routes
    curl -s http://{admin}/metrics | grep sluice_requests_total
Ctrl-C stops the demo.
",
        b[0].0, b[0].1, b[1].0, b[1].1, b[2].0, b[2].1
    )
}
