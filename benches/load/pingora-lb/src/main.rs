//! The load bench's Pingora peer: a round-robin HTTP/1.1 balancer with the
//! fewest moving parts Pingora allows.
//!
//! Usage: pingora-lb LISTEN BACKEND... (threads: $PINGORA_THREADS, default 1)

use std::sync::Arc;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};

struct RoundRobinLb(Arc<LoadBalancer<RoundRobin>>);

#[async_trait]
impl ProxyHttp for RoundRobinLb {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let backend = self
            .0
            .select(b"", 256)
            .ok_or_else(|| Error::new(ErrorType::ConnectNoRoute))?;
        Ok(Box::new(HttpPeer::new(backend, false, String::new())))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().expect("usage: pingora-lb LISTEN BACKEND...");
    let backends: Vec<String> = args.collect();
    assert!(!backends.is_empty(), "usage: pingora-lb LISTEN BACKEND...");
    let threads = std::env::var("PINGORA_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);

    let conf = ServerConf {
        threads,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let lb = LoadBalancer::try_from_iter(backends.iter().map(String::as_str))
        .expect("backends are IP:PORT addresses");
    let mut service = http_proxy_service(&server.configuration, RoundRobinLb(Arc::new(lb)));
    service.add_tcp(&listen);
    server.add_service(service);
    server.run_forever();
}
