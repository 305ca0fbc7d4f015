//! TLS to upstreams: the client configurations connections to HTTPS and
//! gRPCS endpoints shake hands with.
//!
//! ingress-nginx leaves upstream certificates unverified unless an Ingress
//! asks (`proxy-ssl-verify: "on"` with a CA in `proxy-ssl-secret`), and
//! sends no SNI unless asked (`proxy-ssl-server-name: "on"`): pods mostly
//! serve self-signed certificates for names no client would use. We do
//! the same by default, and verify properly when asked. Unverified still
//! checks the handshake's signature against the certificate's key; it only
//! skips the chain and the name.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::cert::provider;
use super::CertError;

/// How an upstream's certificate is checked.
#[derive(Debug, Clone)]
pub enum Verify {
    /// Not at all (ingress-nginx's default).
    Off,
    /// Against these CA certificates (PEM), for the server name.
    Ca(Vec<u8>),
}

/// Why an upstream TLS setting could not be built; it says which part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientTlsError {
    #[error("the CA bundle holds no usable certificate")]
    NoCa,
    #[error("the CA bundle is not PEM")]
    BadCaPem,
    #[error("the client certificate: {0}")]
    ClientCert(#[source] CertError),
}

/// A client configuration for one upstream TLS setting.
///
/// `alpn` is offered in the handshake: `h2` for gRPCS (gRPC servers refuse
/// TLS without it), nothing for HTTPS, as nginx offers none.
pub fn client_config(
    verify: &Verify,
    client_cert: Option<(&[u8], &[u8])>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, ClientTlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let builder = match verify {
        Verify::Off => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider))),
        Verify::Ca(pem) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ClientTlsError::BadCaPem)?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(ClientTlsError::NoCa);
            }
            builder.with_root_certificates(roots)
        }
    };
    let mut config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => {
            // Parsed and checked the way served certificates are.
            super::Certificate::from_pem(cert_pem, key_pem).map_err(ClientTlsError::ClientCert)?;
            let chain = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ClientTlsError::ClientCert(CertError::NoCertificate))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem)
                .map_err(|_| ClientTlsError::ClientCert(CertError::NoKey))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientTlsError::ClientCert(CertError::UnsupportedKey(e.to_string())))?
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Accepts any certificate chain, but still checks that the handshake was
/// signed by the certificate's key.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations() {
        let off = client_config(&Verify::Off, None, &[b"h2"]).unwrap();
        assert_eq!(off.alpn_protocols, vec![b"h2".to_vec()]);
        let (cert, key) = crate::tls::cert_test_pem(&["ca.example"]);
        let (cert, key) = (cert.into_bytes(), key.into_bytes());
        assert!(client_config(&Verify::Ca(cert.clone()), None, &[]).is_ok());
        assert_eq!(
            client_config(&Verify::Ca(b"nothing".to_vec()), None, &[]).unwrap_err(),
            ClientTlsError::NoCa
        );
        assert!(client_config(&Verify::Off, Some((&cert, &key)), &[]).is_ok());
        assert!(matches!(
            client_config(&Verify::Off, Some((&cert, b"x")), &[]),
            Err(ClientTlsError::ClientCert(_))
        ));
    }
}
