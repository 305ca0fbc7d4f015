//! The HTTPS settings as config gives them: certificate files by path,
//! redirects and HSTS. Reading and checking the files is [`crate::tls`]'s.

use std::path::PathBuf;
use std::sync::Arc;

/// A certificate and key on disk, as the config file or `--tls-cert` /
/// `--tls-key` name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
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
