//! The `tls:` block: certificate files, redirects to HTTPS and HSTS.

use std::path::PathBuf;
use std::time::Duration;

use super::Validator;
use crate::config::model::TlsConfig;
use crate::config::raw;
use crate::spec::{CertFiles, Hsts, Policy};

impl Validator {
    /// The `tls:` block. Only paths here: the files are read (and a bad
    /// one refused) by whoever loads the config, at start and at reload.
    pub(super) fn tls(&mut self, raw: &raw::RawTls) -> TlsConfig {
        let files = |v: &mut Self, field: &str, f: &raw::RawCertFiles| {
            for (part, path) in [("cert", &f.cert), ("key", &f.key)] {
                if path.trim().is_empty() {
                    v.error(format!("{field}.{part}"), "must name a file");
                }
            }
            CertFiles {
                cert: PathBuf::from(&f.cert),
                key: PathBuf::from(&f.key),
            }
        };
        let certificates = raw
            .certificates
            .iter()
            .enumerate()
            .map(|(i, f)| files(self, &format!("tls.certificates[{i}]"), f))
            .collect();
        let default_certificate = raw
            .default_certificate
            .as_ref()
            .map(|f| files(self, "tls.default_certificate", f));
        let defaults = Policy::default();
        let redirect_port = match raw.redirect_port {
            Some(0) => {
                self.error("tls.redirect_port", "must be a port, 1..=65535");
                defaults.redirect_port
            }
            Some(p) => p,
            None => defaults.redirect_port,
        };
        let hsts = raw.hsts.as_ref().map(|h| Hsts {
            // ingress-nginx's default: 180 days.
            max_age: match h.max_age.as_deref().map(str::trim) {
                Some("0") | Some("0s") => Duration::ZERO,
                Some(_) => self.duration(
                    "tls.hsts.max_age",
                    h.max_age.as_ref(),
                    Duration::from_secs(15_724_800),
                ),
                None => Duration::from_secs(15_724_800),
            },
            include_subdomains: h.include_subdomains,
            preload: h.preload,
        });
        TlsConfig {
            certificates,
            default_certificate,
            policy: Policy {
                redirect: raw.redirect.unwrap_or(defaults.redirect),
                redirect_port,
                hsts,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use crate::config::parse_str;

    #[test]
    fn tls_settings_are_checked_by_field() {
        let text = "listen: [127.0.0.1:80]\nlisten_tls: [127.0.0.1:443, 127.0.0.1:80]\ntls:\n  certificates: [{cert: a.pem, key: ''}]\n  redirect_port: 0\n  hsts: {max_age: soon}\nroutes:\n  - {backends: [127.0.0.1:1], ssl_redirect: false}\n";
        let e = parse_str(text, "t.yaml").unwrap_err().lines().join("\n");
        for field in [
            "listen_tls[1]",
            "tls.certificates[0].key",
            "tls.redirect_port",
            "tls.hsts.max_age",
        ] {
            assert!(e.contains(field), "{field} in {e}");
        }
        let ok = "listen_tls: [127.0.0.1:443]\ntls:\n  certificates: [{cert: a.pem, key: a.key}]\n  redirect: false\n  hsts: {include_subdomains: true}\nroutes:\n  - {backends: [127.0.0.1:1], ssl_redirect: true}\n";
        let c = parse_str(ok, "t.yaml").unwrap();
        assert_eq!(c.listen_tls.len(), 1);
        assert_eq!(c.tls.certificates[0].key, PathBuf::from("a.key"));
        assert!(!c.tls.policy.redirect);
        let hsts = c.tls.policy.hsts.unwrap();
        assert_eq!(hsts.max_age, Duration::from_secs(15_724_800));
        assert!(hsts.include_subdomains);
        assert_eq!(c.routes[0].ssl_redirect, Some(true));
    }
}
