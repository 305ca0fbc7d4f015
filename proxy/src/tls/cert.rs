//! One certificate: its chain, its key, and the names it serves.
//!
//! Parsed and checked once, when a file or Secret changes, never during a
//! handshake. A certificate whose key does not match, or that cannot be
//! read, is refused here with the reason, and its source keeps whatever it
//! served before.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Why a certificate was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    #[error("no PEM certificate found")]
    NoCertificate,
    #[error("malformed PEM certificate: {0}")]
    BadCertificatePem(&'static str),
    #[error("no PEM private key found (PKCS#8, PKCS#1 or SEC1)")]
    NoKey,
    #[error("malformed PEM private key: {0}")]
    BadKeyPem(&'static str),
    #[error("unsupported private key: {0}")]
    UnsupportedKey(String),
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    #[error("malformed X.509 certificate: {0}")]
    BadX509(String),
    #[error("the certificate names no DNS host (no subjectAltName or common name)")]
    NoNames,
}

/// A certificate ready to serve.
#[derive(Debug, Clone)]
pub struct Certificate {
    pub key: Arc<CertifiedKey>,
    /// The DNS names it is valid for, lowercase; `*.example.com` for a
    /// wildcard.
    pub names: Vec<String>,
    /// Expiry, in seconds since the Unix epoch.
    pub not_after: i64,
}

/// The crypto provider every certificate and handshake uses: *ring*, the
/// one already in the tree through the Kubernetes client.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Certificate {
    /// Parses a PEM chain (leaf first) and its PEM key, and checks that
    /// they belong together.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Certificate, CertError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| match e {
                rustls::pki_types::pem::Error::NoItemsFound => CertError::NoCertificate,
                e => CertError::BadCertificatePem(pem_problem(&e)),
            })?;
        if chain.is_empty() {
            return Err(CertError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => CertError::NoKey,
            e => CertError::BadKeyPem(pem_problem(&e)),
        })?;
        Self::from_der(chain, key)
    }

    /// The same, from DER.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Certificate, CertError> {
        let (names, not_after) = names_and_expiry(&chain[0])?;
        let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => CertError::KeyMismatch,
            e => CertError::UnsupportedKey(e.to_string()),
        })?;
        Ok(Certificate {
            key: Arc::new(key),
            names,
            not_after,
        })
    }

    /// A fresh self-signed certificate, for names nobody configured. Like
    /// ingress-nginx's "fake certificate": clients will not trust it,
    /// which is the point; it only lets the handshake finish with an error
    /// the user can see.
    pub fn self_signed() -> Certificate {
        let name = "sluice-default.invalid".to_owned();
        let generated =
            rcgen::generate_simple_self_signed(vec![name]).expect("rcgen makes an ECDSA P-256 key");
        let der = CertificateDer::from(generated.cert.der().to_vec());
        let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
            .expect("rcgen's key is PKCS#8");
        Self::from_der(vec![der], key).expect("a certificate made here is consistent")
    }

    /// Whether it is valid for `host` (lowercase). A `*.example.com` host
    /// (an Ingress may name one) needs the same wildcard.
    pub fn covers(&self, host: &str) -> bool {
        self.names.iter().any(|n| {
            n == host
                || (n.starts_with("*.")
                    && !host.starts_with("*.")
                    && host
                        .split_once('.')
                        .is_some_and(|(_, rest)| rest == &n[2..]))
        })
    }
}

/// What is wrong with a PEM file, in words of our own: the parser's own
/// messages quote the offending line, which for a key pasted on one line is
/// the key itself, and these messages reach logs and Kubernetes Events.
fn pem_problem(e: &rustls::pki_types::pem::Error) -> &'static str {
    use rustls::pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { .. } => {
            "a section has no END line (a file cut short, or its line breaks lost)"
        }
        Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        Error::Base64Decode(_) => "the content between BEGIN and END is not valid base64",
        Error::SectionTooLarge => "a section is too large",
        _ => "unreadable PEM",
    }
}

/// The leaf's DNS names (subjectAltName, else the common name, as old
/// certificates have it) and its expiry.
fn names_and_expiry(leaf: &CertificateDer<'_>) -> Result<(Vec<String>, i64), CertError> {
    let (_, x509) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| CertError::BadX509(e.to_string()))?;
    let mut names = Vec::new();
    match x509.subject_alternative_name() {
        Ok(Some(san)) => {
            for n in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                    names.push(d.to_ascii_lowercase());
                }
            }
        }
        Ok(None) => {}
        Err(e) => return Err(CertError::BadX509(e.to_string())),
    }
    if names.is_empty() {
        names.extend(
            x509.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .filter(|cn| cn.contains('.') && !cn.contains(' '))
                .map(str::to_ascii_lowercase),
        );
    }
    if names.is_empty() {
        return Err(CertError::NoNames);
    }
    names.dedup();
    Ok((names, x509.validity().not_after.timestamp()))
}

/// A self-signed certificate for `names` and its key, as PEM: for tests
/// of the modules that load certificates.
#[cfg(test)]
pub(crate) fn test_pem(names: &[&str]) -> (String, String) {
    let c =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

/// [`test_pem`], loaded.
#[cfg(test)]
pub(crate) fn test_cert(names: &[&str]) -> Arc<Certificate> {
    let (cert, key) = test_pem(names);
    Arc::new(Certificate::from_pem(cert.as_bytes(), key.as_bytes()).unwrap())
}

#[cfg(test)]
mod tests {
    use super::test_pem as make;
    use super::*;

    #[test]
    fn reads_names_and_checks_the_key() {
        let (cert, key) = make(&["a.example.com", "*.b.example.com"]);
        let c = Certificate::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(c.names, ["a.example.com", "*.b.example.com"]);
        assert!(c.not_after > 0);
        assert!(c.covers("a.example.com"));
        assert!(c.covers("x.b.example.com"));
        assert!(c.covers("*.b.example.com"));
        assert!(!c.covers("b.example.com"));
        assert!(!c.covers("y.x.b.example.com"));
        assert!(!c.covers("*.example.com"));

        let (_, other_key) = make(&["a.example.com"]);
        assert_eq!(
            Certificate::from_pem(cert.as_bytes(), other_key.as_bytes()).unwrap_err(),
            CertError::KeyMismatch
        );
    }

    #[test]
    fn broken_input_is_named() {
        let (cert, key) = make(&["a.example.com"]);
        assert_eq!(
            Certificate::from_pem(b"", key.as_bytes()).unwrap_err(),
            CertError::NoCertificate
        );
        assert_eq!(
            Certificate::from_pem(cert.as_bytes(), b"junk").unwrap_err(),
            CertError::NoKey
        );
        // Truncated base64 inside the armour.
        let cut = format!("{}\n-----END CERTIFICATE-----\n", &cert[..cert.len() / 2]);
        assert!(matches!(
            Certificate::from_pem(cut.as_bytes(), key.as_bytes()).unwrap_err(),
            CertError::BadCertificatePem(_) | CertError::BadX509(_)
        ));
        // A key in valid armour whose bytes are not a key.
        let bogus = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            Certificate::from_pem(cert.as_bytes(), bogus.as_bytes()).unwrap_err(),
            CertError::UnsupportedKey(_)
        ));
    }

    #[test]
    fn key_material_never_appears_in_errors() {
        let (cert, key) = make(&["a.example.com"]);
        // The key on one line, its line breaks lost; then its BEGIN line broken.
        let one_line: String = key.lines().collect();
        let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
        let broken_begin = key.replacen("-----BEGIN PRIVATE KEY-----", "-----BEGIN PRIVATE KEY", 1);
        for bad in [one_line, broken_begin] {
            let e = Certificate::from_pem(cert.as_bytes(), bad.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(!e.contains(&body[..16]), "key material in {e:?}");
            let bytes = format!("{:?}", &body.as_bytes()[..8]);
            assert!(
                !e.contains(&bytes[1..bytes.len() - 1]),
                "key bytes in {e:?}"
            );
        }
    }

    #[test]
    fn self_signed_default_is_consistent() {
        let c = Certificate::self_signed();
        assert_eq!(c.names, ["sluice-default.invalid"]);
        assert!(c.key.keys_match().is_ok());
    }
}
