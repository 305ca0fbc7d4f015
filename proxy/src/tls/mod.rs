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
pub mod client;
pub mod client_hello;
mod table;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

pub use crate::spec::{CertFiles, Hsts, Policy};
pub use cert::{provider, CertError, Certificate};
#[cfg(test)]
pub(crate) use cert::{test_cert, test_pem as cert_test_pem};
pub use table::{Binding, CertTable, CertView};

/// The bytes of a certificate's files, read once so that the reloader can
/// compare them with the last ones it loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertBytes {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

/// Why a certificate's files could not be loaded; it names the file.
///
/// `Clone` and `PartialEq` because the reloader keeps the last refusal and
/// compares the next one with it, so that a refusal is logged once, not at
/// every tick.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CertFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("certificate {} with key {}: {source}", cert.display(), key.display())]
    Parse {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: CertError,
    },
}

/// The same refusal: the same file, and the same reason.
impl PartialEq for CertFileError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (CertFileError::Read { path, source }, CertFileError::Read { path: p, source: s }) => {
                path == p && source.kind() == s.kind() && source.to_string() == s.to_string()
            }
            (
                CertFileError::Parse { cert, key, source },
                CertFileError::Parse {
                    cert: c,
                    key: k,
                    source: s,
                },
            ) => cert == c && key == k && source == s,
            _ => false,
        }
    }
}

/// Loading lives here, beside rustls; [`crate::spec`] knows only the paths.
impl CertFiles {
    /// Reads both files; the error names the file.
    pub fn read(&self) -> Result<CertBytes, CertFileError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| CertFileError::Read {
                path: p.to_owned(),
                source: Arc::new(e),
            })
        };
        Ok(CertBytes {
            cert: read(&self.cert)?,
            key: read(&self.key)?,
        })
    }

    /// Parses bytes read from these files; the error names them.
    pub fn parse(&self, bytes: &CertBytes) -> Result<Certificate, CertFileError> {
        Certificate::from_pem(&bytes.cert, &bytes.key).map_err(|source| CertFileError::Parse {
            cert: self.cert.clone(),
            key: self.key.clone(),
            source,
        })
    }
}

/// Picks the certificate for each handshake with `lookup`, which reads the
/// live certificate table by SNI. The table lives in the routing snapshot;
/// the caller says how to reach it, so that TLS need not know routing.
struct Resolver<F>(F);

impl<F> std::fmt::Debug for Resolver<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl<F> ResolvesServerCert for Resolver<F>
where
    F: Fn(Option<&str>) -> Option<Arc<CertifiedKey>> + Send + Sync,
{
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        (self.0)(hello.server_name())
    }
}

/// The rustls server settings for every HTTPS listener; `lookup` finds
/// each handshake's certificate by SNI (see [`CertTable::resolve`]).
pub fn server_config<F>(lookup: F) -> Result<Arc<ServerConfig>, rustls::Error>
where
    F: Fn(Option<&str>) -> Option<Arc<CertifiedKey>> + Send + Sync + 'static,
{
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver(lookup)));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Resumption by ticket: a returning client skips the key exchange,
    // and no server state is kept per session.
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(cfg))
}
