//! HTTP clients for tests: a pooled hyper client, one-shot requests with
//! a time limit, an HTTP/2 (h2c) connection, and request bodies.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::Sluice;

/// The body type of every request and test-backend answer.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A body of the given bytes (what the test backends answer with).
pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// An HTTP/1.1 client with keep-alive, optionally bound to a source address.
pub fn client(source: Option<Ipv4Addr>) -> Client<HttpConnector, Body> {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    if let Some(ip) = source {
        c.set_local_address(Some(IpAddr::V4(ip)));
    }
    Client::builder(TokioExecutor::new()).build(c)
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body of the given bytes.
pub fn body(b: impl Into<Bytes>) -> Body {
    full(b)
}

/// One GET on a fresh connection: status and body.
pub async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let (status, _, body) = request(&client(None), addr, "GET", path, &[], empty()).await?;
    Ok((status, body))
}

/// GET `/` with Host `host` through the proxy's plain listener: status
/// and body, or status 0 and the error.
pub async fn get_host(s: &Sluice, host: &str) -> (u16, String) {
    match request(
        &client(None),
        s.listen,
        "GET",
        "/",
        &[("host", host)],
        empty(),
    )
    .await
    {
        Ok((status, _, body)) => (status, body),
        Err(e) => (0, e),
    }
}

/// GET `path` with Host `host` on `client`'s connections to `addr`:
/// status, headers, body. A failed request fails the test.
pub async fn get_as(
    client: &Client<HttpConnector, Body>,
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> (u16, http::HeaderMap, String) {
    request(client, addr, "GET", path, &[("host", host)], empty())
        .await
        .unwrap_or_else(|e| panic!("GET {host}{path}: {e}"))
}

/// An HTTP/2 client connection with prior knowledge (h2c) to `addr`: the
/// sender, and the connection's future, which resolves when it closes.
pub async fn h2c(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    impl Future<Output = hyper::Result<()>> + Send,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("an HTTP/2 handshake")
}

/// One HTTP/1.1 keep-alive connection to `addr`, every request on it and
/// never another: unlike the pooled [`client`], which opens a second
/// connection whenever the first is not back in its pool yet, it shows
/// exactly what one open connection gets.
pub struct Connection {
    send: hyper::client::conn::http1::SendRequest<Body>,
}

impl Connection {
    /// Connects and spawns the connection's task.
    pub async fn open(addr: SocketAddr) -> Connection {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .expect("an HTTP/1.1 connection");
        tokio::spawn(conn);
        Connection { send }
    }

    /// A GET of `path` with a 30 s limit: status and body.
    pub async fn get(&mut self, path: &str) -> Result<(u16, String), String> {
        let req = Request::get(path)
            .header("host", "a")
            .body(empty())
            .map_err(|e| e.to_string())?;
        let fut = async {
            self.send.ready().await.map_err(|e| format!("{e:?}"))?;
            let resp = self
                .send
                .send_request(req)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let (parts, body) = resp.into_parts();
            let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok((
                parts.status.as_u16(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        };
        tokio::time::timeout(Duration::from_secs(30), fut)
            .await
            .map_err(|_| "request timed out".to_string())?
    }
}

/// One request with a 30 s limit: status, headers, body.
pub async fn request(
    client: &Client<HttpConnector, Body>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> Result<(u16, http::HeaderMap, String), String> {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(body).map_err(|e| e.to_string())?;
    let fut = async {
        let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((
            parts.status.as_u16(),
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        ))
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .map_err(|_| "request timed out".to_string())?
}
