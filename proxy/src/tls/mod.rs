//! TLS termination (rustls): certificates picked by SNI, HTTP/2 and
//! HTTP/1.1 by ALPN, TLS 1.2 and 1.3 only.
//!
//! The certificate table is part of the routing snapshot, so a handshake
//! reads the same table the requests after it route with, and a new
//! certificate (a file rewritten, a Secret updated) arrives the way a new
//! route does: built off the request path and swapped in whole. A
//! connection keeps the certificate it shook hands with; only new
//! handshakes see the new one, so a rotation drops nothing.

mod cert;
mod table;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::routing::Table;
pub use cert::{provider, CertError, Certificate};
#[cfg(test)]
pub(crate) use cert::{test_cert, test_pem as cert_test_pem};
pub use table::{Binding, CertTable, CertView};

/// A certificate and key on disk, as the config file or `--tls-cert` /
/// `--tls-key` name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The bytes of a certificate's files, read once so that the reloader can
/// compare them with the last ones it loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertBytes {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl CertFiles {
    /// Reads both files; the error names the file.
    pub fn read(&self) -> Result<CertBytes, String> {
        let read =
            |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
        Ok(CertBytes {
            cert: read(&self.cert)?,
            key: read(&self.key)?,
        })
    }

    /// Parses bytes read from these files; the error names them.
    pub fn parse(&self, bytes: &CertBytes) -> Result<Certificate, String> {
        Certificate::from_pem(&bytes.cert, &bytes.key).map_err(|e| {
            format!(
                "certificate {} with key {}: {e}",
                self.cert.display(),
                self.key.display()
            )
        })
    }

    /// What the certificate table and the logs call it.
    pub fn source(&self) -> Arc<str> {
        format!("file:{}", self.cert.display()).into()
    }
}

/// Settings of the HTTPS side that are not certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Plain HTTP to a host with a certificate gets a 308 to HTTPS
    /// (routes may turn it off, or force it).
    pub redirect: bool,
    /// The port the redirect names: the LoadBalancer's, usually 443 (then
    /// the URL carries none).
    pub redirect_port: u16,
    /// `Strict-Transport-Security`, added to HTTPS responses that lack one.
    pub hsts: Option<Hsts>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            redirect: true,
            redirect_port: 443,
            hsts: None,
        }
    }
}

/// HTTP Strict Transport Security (RFC 6797).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hsts {
    pub max_age: std::time::Duration,
    pub include_subdomains: bool,
    pub preload: bool,
}

impl Hsts {
    /// The header's value.
    pub fn value(&self) -> http::HeaderValue {
        let mut v = format!("max-age={}", self.max_age.as_secs());
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        http::HeaderValue::try_from(v).expect("digits and ASCII words")
    }
}

/// Picks the certificate for each handshake from the live snapshot.
#[derive(Debug)]
struct Resolver(Table);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.load().tls.resolve(hello.server_name())
    }
}

/// The rustls server settings for every HTTPS listener.
pub fn server_config(table: Table) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver(table)));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Resumption by ticket: a returning client skips the key exchange,
    // and no server state is kept per session.
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_value() {
        let h = Hsts {
            max_age: std::time::Duration::from_secs(31_536_000),
            include_subdomains: true,
            preload: false,
        };
        assert_eq!(h.value(), "max-age=31536000; includeSubDomains");
    }
}
