//! TLS passthrough (ingress-nginx's `ssl-passthrough`): on an HTTPS
//! listener, the ClientHello's first record is read ahead of the handshake,
//! and a connection whose SNI names a passthrough host is spliced, those
//! bytes first, to an endpoint of that host's backend, which terminates TLS
//! itself. Every other connection is handed to rustls with the record put
//! back in front, as if nothing had been read.
//!
//! What ingress-nginx does (`pkg/tcpproxy/tcp.go`, `internal/ingress/
//! controller/nginx.go`) and what is kept: the host comes from the SNI
//! alone; no SNI, an unknown one or a ClientHello the parser cannot read
//! goes to normal termination; nothing of HTTP applies (paths, other
//! annotations). Where this differs, on purpose: ingress-nginx reads once
//! (16 KiB) and dials the Service's ClusterIP; here the whole first record
//! is read, however it is split into segments, under the handshake's
//! deadline, and the endpoints are the route's, picked by its balancer and
//! tried in turn when a connect fails, with their health recorded, as the
//! HTTP path does. No PROXY header is sent to the backend (ingress-nginx
//! never sends one to passthrough backends either); the client address a
//! LoadBalancer's PROXY header gave is the one logged and hashed.
//!
//! A spliced connection stays the task of the client connection it is:
//! it counts against `limits.max_connections`, and a drain waits for it,
//! then closes it at its deadline, as it does any connection. Writes to the
//! client keep `timeouts.send` (the listener's `SendDeadline` is beneath),
//! so a client that stops reading does not hold its backend for ever.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

use crate::balance::{hash_ip, Strategy};
use crate::metrics::Metrics;
use crate::routing::Route;
use crate::tls::client_hello::{record_len, RECORD_HEADER};
use crate::upstream::transport::ConnectError;
use crate::upstream::InFlight;

/// Reads the connection's first TLS record: the 5-byte header, then, when
/// it can be a ClientHello's ([`record_len`]), the rest of it (at most
/// 16 KiB, allocated once at its announced size). What it returns is what
/// was read, to be put back in front of the connection; anything that is
/// not a ClientHello is returned as it is, for rustls to refuse. The
/// caller bounds it in time.
pub(super) async fn read_first_record<I>(io: &mut I) -> std::io::Result<Vec<u8>>
where
    I: AsyncRead + Unpin,
{
    let mut header = [0u8; RECORD_HEADER];
    io.read_exact(&mut header).await?;
    let Some(len) = record_len(&header) else {
        return Ok(header.to_vec());
    };
    let mut record = Vec::with_capacity(len);
    record.extend_from_slice(&header);
    record.resize(len, 0);
    io.read_exact(&mut record[RECORD_HEADER..]).await?;
    Ok(record)
}

/// Splices `client` (whose first bytes are the ClientHello, put back) to
/// the first endpoint of `route`'s upstream that takes a connection, and
/// copies both ways until either side closes. With no endpoint to take it,
/// the client is closed: there is nothing to answer with before a
/// handshake.
pub(super) async fn splice<C>(mut client: C, route: Arc<Route>, peer: SocketAddr, metrics: &Metrics)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let Some((mut upstream, endpoint, _in_flight)) = connect(&route, peer).await else {
        metrics
            .passthrough_connections
            .with_label_values(&["no_endpoint"])
            .inc();
        tracing::warn!(route = %route.name, client = %peer, "TLS passthrough: no endpoint took the connection; closed");
        return;
    };
    metrics
        .passthrough_connections
        .with_label_values(&["spliced"])
        .inc();
    let _open = Open::new(&metrics.passthrough_open);
    let done = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    match done {
        Ok((up, down)) => {
            tracing::debug!(route = %route.name, client = %peer, endpoint = %endpoint, up, down, "TLS passthrough closed")
        }
        Err(e) => {
            tracing::debug!(route = %route.name, client = %peer, endpoint = %endpoint, error = %e, "TLS passthrough ended")
        }
    }
}

/// Connects to the endpoints of `route`'s upstream in its balancer's order
/// (ip-hash keyed on the real client), skipping the ejected, up to the
/// route's attempts, each within its connect timeout. A refusal or a
/// timeout counts against the endpoint's health, as on the HTTP path; the
/// connection is in flight on its endpoint (least-request sees it) until
/// the guard returned is dropped.
async fn connect(route: &Route, peer: SocketAddr) -> Option<(TcpStream, SocketAddr, InFlight)> {
    let upstream = &*route.upstream;
    let hash = if upstream.strategy() == Strategy::IpHash {
        hash_ip(peer.ip())
    } else {
        0
    };
    let limit = route.timeouts.connect;
    let tries = route.retry.attempts.max(1) as usize;
    for i in upstream.candidates(hash).take(tries) {
        let endpoint = &upstream.endpoints[i];
        let in_flight = InFlight::new(endpoint.clone());
        match connect_one(endpoint.addr, limit).await {
            Ok(tcp) => {
                endpoint.record_success();
                return Some((tcp, endpoint.addr, in_flight));
            }
            Err(e) => {
                route.metrics.connect_error();
                let ejected = endpoint.record_failure(&upstream.health);
                tracing::warn!(route = %route.name, endpoint = %endpoint.addr, error = %e, ejected = ejected.is_some(), "TLS passthrough: upstream connect failed");
            }
        }
    }
    None
}

async fn connect_one(addr: SocketAddr, limit: Duration) -> Result<TcpStream, ConnectError> {
    let tcp = tokio::time::timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| ConnectError::Timeout(limit))??;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Counts a spliced connection in the open gauge while it lives.
struct Open(prometheus::IntGauge);

impl Open {
    fn new(g: &prometheus::IntGauge) -> Open {
        g.inc();
        Open(g.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first record is read whole however it arrives, and nothing
    /// after it; what is not a ClientHello is read no further than its
    /// header.
    #[tokio::test]
    async fn reads_exactly_the_first_record() {
        let mut wire = vec![0x16, 3, 1, 0, 4, 1, 0, 0, 0];
        wire.extend(b"next");
        let (mut a, mut b) = tokio::io::duplex(64);
        let w = wire.clone();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for byte in w {
                a.write_all(&[byte]).await.unwrap();
            }
            a
        });
        let got = read_first_record(&mut b).await.unwrap();
        assert_eq!(got, &wire[..9]);
        let _a = writer.await.unwrap();
        let mut rest = [0u8; 4];
        b.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"next");

        let mut http: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(read_first_record(&mut http).await.unwrap(), b"GET /");
        assert_eq!(http, b" HTTP/1.1\r\n\r\n");

        let mut short: &[u8] = &[0x16, 3, 1, 0, 9, 1];
        assert!(read_first_record(&mut short).await.is_err());
    }
}
