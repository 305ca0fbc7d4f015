//! Certificates made by the tests (rcgen), and a TLS client that reports
//! which certificate the proxy presented.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A certificate authority of the test's own.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate, for `curl --cacert`.
    pub pem: String,
}

/// A certificate issued by a [`Ca`].
#[derive(Clone)]
pub struct Issued {
    pub cert: String,
    pub key: String,
    /// The leaf as DER: what a client sees.
    pub der: Vec<u8>,
}

impl Ca {
    pub fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sluice test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate for `names` (`*.example.test` for a wildcard).
    pub fn issue(&self, names: &[&str]) -> Issued {
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// Writes the CA certificate to `dir/ca.pem`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let p = dir.join("ca.pem");
        std::fs::write(&p, &self.pem).unwrap();
        p
    }
}

impl Default for Ca {
    fn default() -> Self {
        Self::new()
    }
}

impl Issued {
    /// Writes `dir/STEM.pem` and `dir/STEM.key`, each replaced whole (a
    /// rename), as a Secret volume or a careful operator does.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        replace(&key, &self.key);
        replace(&cert, &self.cert);
        (cert, key)
    }
}

/// Replaces a file's content in one rename.
pub fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Accepts any certificate: the tests check which one was presented
/// themselves, by comparing it with those they issued.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client config that accepts any certificate, offering `alpn`, with
/// only `versions`.
pub fn client_config(
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

/// Connects and shakes hands, sending `sni` (none for an IP address).
pub async fn connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    connect_after(addr, &[], sni, config).await
}

/// The same, after sending `prefix` in the clear (a PROXY header, as a
/// LoadBalancer in TCP mode sends before the client's TLS).
pub async fn connect_after(
    addr: SocketAddr,
    prefix: &[u8],
    sni: &str,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    use tokio::io::AsyncWriteExt;
    let name = ServerName::try_from(sni.to_owned())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut tcp = TcpStream::connect(addr).await?;
    if !prefix.is_empty() {
        tcp.write_all(prefix).await?;
    }
    handshake(tcp, name, config).await
}

/// The client's handshake on a connected socket.
pub async fn handshake(
    tcp: TcpStream,
    name: ServerName<'static>,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    tokio::time::timeout(
        Duration::from_secs(5),
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"))?
}

/// The leaf certificate the server presented.
pub fn presented(s: &TlsStream<TcpStream>) -> Vec<u8> {
    s.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default()
}

/// One answer over TLS.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
    /// The leaf certificate presented.
    pub cert: Vec<u8>,
    /// `h2` or `http/1.1`, as ALPN chose.
    pub alpn: Option<Vec<u8>>,
}

/// GET `path` with Host `host` over a new TLS connection with SNI `host`:
/// HTTP/2 when the server's ALPN chooses it (offered with `h2`), else
/// HTTP/1.1.
pub async fn get(addr: SocketAddr, host: &str, path: &str, h2: bool) -> Result<Answer, String> {
    get_after(addr, &[], host, path, h2).await
}

/// [`get`] after sending `prefix` in the clear.
pub async fn get_after(
    addr: SocketAddr,
    prefix: &[u8],
    host: &str,
    path: &str,
    h2: bool,
) -> Result<Answer, String> {
    let alpn: &[&[u8]] = if h2 {
        &[b"h2", b"http/1.1"]
    } else {
        &[b"http/1.1"]
    };
    let cfg = client_config(alpn, rustls::DEFAULT_VERSIONS);
    let stream = connect_after(addr, prefix, host, cfg)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let cert = presented(&stream);
    let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let io = TokioIo::new(stream);
    let req = http::Request::get(format!("https://{host}{path}"))
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let work = async {
        let resp = if alpn.as_deref() == Some(b"h2") {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            let mut req = req;
            req.headers_mut().remove("host");
            send.send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("h1 handshake: {e}"))?;
            tokio::spawn(conn);
            let mut req = req;
            *req.uri_mut() = path.parse().unwrap();
            send.send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, headers, String::from_utf8_lossy(&body).into_owned()))
    };
    let (status, headers, body) = tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| "request timed out".to_string())??;
    Ok(Answer {
        status,
        headers,
        body,
        cert,
        alpn,
    })
}

/// The first flight of a real ClientHello for `sni`, as bytes on the wire.
pub fn client_hello(sni: &str) -> Vec<u8> {
    let cfg = client_config(&[b"h2"], rustls::DEFAULT_VERSIONS);
    let mut conn =
        rustls::ClientConnection::new(cfg, ServerName::try_from(sni.to_owned()).unwrap()).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}
