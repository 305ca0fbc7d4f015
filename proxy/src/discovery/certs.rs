//! Certificates from the TLS Secrets that Ingresses name.
//!
//! Each Secret is parsed once per version (its `resourceVersion`), not at
//! every rebuild. A version that does not parse (a broken key, a
//! certificate for another key), or a Secret emptied or gone, is refused:
//! the Secret's last good certificate keeps serving as long as an Ingress
//! names it, and the Ingress gets a Warning Event saying why.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;

use super::translate::{Event, TlsBinding};
use crate::tls::{Binding, CertError, Certificate};

/// Why a Secret gives no certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("not found (or not of type kubernetes.io/tls)")]
    NotFound,
    /// `tls.crt` or `tls.key` is missing or empty.
    #[error("lacks {0}")]
    Lacks(&'static str),
    #[error("refused: {0}")]
    Refused(#[source] CertError),
}

/// What is known of one Secret.
struct Entry {
    /// The version last parsed.
    version: String,
    /// That version's certificate, or why it was refused.
    parsed: Result<Arc<Certificate>, SecretError>,
    /// The newest version that parsed.
    last_good: Option<Arc<Certificate>>,
}

/// Parsed certificates by Secret, kept across rebuilds.
#[derive(Default)]
pub struct SecretCerts {
    by_secret: HashMap<String, Entry>,
}

/// The certificates to serve, and what to tell about them.
#[derive(Debug, Default)]
pub struct Resolved {
    pub bindings: Vec<Binding>,
    /// From `--default-tls-secret`: for names no certificate holds.
    pub default_cert: Option<Arc<Certificate>>,
    pub problems: Vec<String>,
    pub events: Vec<Event>,
}

impl SecretCerts {
    /// Turns the Ingresses' TLS sections into certificate bindings, in
    /// their order (the older Ingress wins a host), and `default` (a
    /// Secret's `namespace/name`) into the default certificate.
    pub fn resolve(
        &mut self,
        wanted: &[TlsBinding],
        default: Option<&str>,
        secrets: &[Arc<Secret>],
    ) -> Resolved {
        let mut out = Resolved::default();
        let mut seen = std::collections::HashSet::new();
        if let Some(id) = default {
            seen.insert(id.to_owned());
            out.default_cert = match self.current(id, secrets) {
                (Ok(c), _) => Some(c),
                (Err(e), previous) => {
                    let keeps = if previous.is_some() {
                        "its previous certificate keeps serving"
                    } else {
                        "a self-signed certificate serves instead"
                    };
                    out.problems
                        .push(format!("default TLS Secret {id}: {e}; {keeps}"));
                    previous
                }
            };
        }
        for w in wanted {
            seen.insert(w.secret.clone());
            let secret = secrets.iter().find(|s| {
                s.metadata
                    .namespace
                    .as_deref()
                    .zip(s.metadata.name.as_deref())
                    .is_some_and(|(ns, n)| w.secret.split_once('/') == Some((ns, n)))
            });
            let (current, previous) = match secret {
                Some(secret) => self.parse(&w.secret, secret),
                None => (
                    Err(SecretError::NotFound),
                    self.by_secret
                        .get(&w.secret)
                        .and_then(|e| e.last_good.clone()),
                ),
            };
            let cert = match (current, previous) {
                (Ok(c), _) => c,
                (Err(e), Some(previous)) => {
                    let note = format!(
                        "tls[{}]: Secret {}: {e}; its previous certificate keeps serving",
                        w.entry, w.secret
                    );
                    out.refused(w, note);
                    previous
                }
                (Err(e), None) => {
                    let note = format!(
                        "tls[{}]: Secret {}: {e}; the default certificate serves its hosts",
                        w.entry, w.secret
                    );
                    out.refused(w, note);
                    continue;
                }
            };
            let mut hosts = Vec::new();
            for h in &w.hosts {
                if cert.covers(h) {
                    hosts.push(h.clone());
                } else {
                    let note = format!(
                        "tls[{}]: host {h} is not covered by the certificate in Secret {} (it names {}); the default certificate serves it",
                        w.entry,
                        w.secret,
                        cert.names.join(", ")
                    );
                    out.refused(w, note);
                }
            }
            if hosts.is_empty() {
                continue;
            }
            out.bindings.push(Binding {
                source: format!("secret:{}", w.secret).into(),
                hosts,
                cert,
            });
        }
        // Secrets no Ingress names any more are forgotten.
        self.by_secret.retain(|k, _| seen.contains(k));
        out
    }

    /// The certificate of Secret `id` (`namespace/name`) as it is now, or
    /// why there is none, and its last good one.
    fn current(
        &mut self,
        id: &str,
        secrets: &[Arc<Secret>],
    ) -> (
        Result<Arc<Certificate>, SecretError>,
        Option<Arc<Certificate>>,
    ) {
        let secret = secrets.iter().find(|s| {
            s.metadata
                .namespace
                .as_deref()
                .zip(s.metadata.name.as_deref())
                .is_some_and(|(ns, n)| id.split_once('/') == Some((ns, n)))
        });
        match secret {
            Some(secret) => self.parse(id, secret),
            None => (
                Err(SecretError::NotFound),
                self.by_secret.get(id).and_then(|e| e.last_good.clone()),
            ),
        }
    }

    /// The Secret's certificate at its current version, and its last good
    /// one.
    fn parse(
        &mut self,
        id: &str,
        secret: &Secret,
    ) -> (
        Result<Arc<Certificate>, SecretError>,
        Option<Arc<Certificate>>,
    ) {
        let data = secret.data.as_ref();
        let part = |k: &str| data.and_then(|d| d.get(k)).map_or(&[][..], |v| &v.0[..]);
        let lacks = ["tls.crt", "tls.key"]
            .into_iter()
            .find(|k| part(k).is_empty());
        let version = secret.metadata.resource_version.clone().unwrap_or_else(|| {
            // No version (a test server, say): the content is one.
            format!(
                "{:x}",
                xxhash_rust::xxh3::xxh3_64(&[part("tls.crt"), part("tls.key")].concat())
            )
        });
        let entry = self
            .by_secret
            .entry(id.to_owned())
            .or_insert_with(|| Entry {
                version: String::new(),
                // Never read: an empty version is parsed at once below.
                parsed: Err(SecretError::NotFound),
                last_good: None,
            });
        if entry.version != version || entry.version.is_empty() {
            entry.version = version;
            entry.parsed = match lacks {
                Some(k) => Err(SecretError::Lacks(k)),
                None => Certificate::from_pem(part("tls.crt"), part("tls.key"))
                    .map(Arc::new)
                    .map_err(SecretError::Refused),
            };
            if let Ok(c) = &entry.parsed {
                entry.last_good = Some(c.clone());
            }
        }
        let previous = entry.last_good.clone();
        (entry.parsed.clone(), previous)
    }
}

impl Resolved {
    fn refused(&mut self, w: &TlsBinding, note: String) {
        self.problems.push(format!("ingress {}: {note}", w.ingress));
        self.events
            .push(Event::new(w.ingress_ref.clone(), "BadTLSSecret", note));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;

    use crate::tls::cert_test_pem as pem;

    /// TLS Secret `shop/tls` at `version`, holding `cert` and `key`.
    fn secret(version: &str, cert: &str, key: &str) -> Arc<Secret> {
        Arc::new(Secret {
            metadata: ObjectMeta {
                name: Some("tls".into()),
                namespace: Some("shop".into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(
                [
                    ("tls.crt".to_owned(), ByteString(cert.as_bytes().to_vec())),
                    ("tls.key".to_owned(), ByteString(key.as_bytes().to_vec())),
                ]
                .into(),
            ),
            ..Default::default()
        })
    }

    fn wanted(hosts: &[&str]) -> TlsBinding {
        TlsBinding {
            ingress: "shop/web".into(),
            ingress_ref: Default::default(),
            entry: 0,
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            secret: "shop/tls".into(),
        }
    }

    #[test]
    fn a_broken_version_keeps_the_last_good_one() {
        let mut cache = SecretCerts::default();
        let (c1, k1) = pem(&["shop.example.com"]);
        let r = cache.resolve(
            &[wanted(&["shop.example.com"])],
            None,
            &[secret("1", &c1, &k1)],
        );
        assert_eq!(r.bindings.len(), 1);
        assert!(r.problems.is_empty());
        let first = r.bindings[0].cert.clone();

        // Version 2: a key from elsewhere.
        let (_, k2) = pem(&["shop.example.com"]);
        let r = cache.resolve(
            &[wanted(&["shop.example.com"])],
            None,
            &[secret("2", &c1, &k2)],
        );
        assert_eq!(r.bindings.len(), 1);
        assert!(Arc::ptr_eq(&r.bindings[0].cert, &first));
        assert_eq!(r.events.len(), 1);
        assert!(
            r.events[0].note.contains("does not belong"),
            "{:?}",
            r.events
        );

        // Version 3 is good again, and replaces it.
        let (c3, k3) = pem(&["shop.example.com"]);
        let r = cache.resolve(
            &[wanted(&["shop.example.com"])],
            None,
            &[secret("3", &c3, &k3)],
        );
        assert!(!Arc::ptr_eq(&r.bindings[0].cert, &first));
        assert!(r.events.is_empty());
    }

    #[test]
    fn an_emptied_or_deleted_secret_keeps_its_last_good_certificate() {
        let mut cache = SecretCerts::default();
        let (c1, k1) = pem(&["shop.example.com"]);
        let want = [wanted(&["shop.example.com"])];
        let first = cache
            .resolve(&want, None, &[secret("1", &c1, &k1)])
            .bindings[0]
            .cert
            .clone();
        let r = cache.resolve(&want, None, &[secret("2", &c1, "")]);
        assert!(Arc::ptr_eq(&r.bindings[0].cert, &first));
        assert!(r.events[0].note.contains("lacks tls.key"), "{:?}", r.events);
        let r = cache.resolve(&want, None, &[]);
        assert!(Arc::ptr_eq(&r.bindings[0].cert, &first));
        assert!(r.events[0].note.contains("not found"), "{:?}", r.events);
        // No Ingress names it any more: forgotten.
        cache.resolve(&[], None, &[]);
        let r = cache.resolve(&want, None, &[]);
        assert!(r.bindings.is_empty());
    }

    #[test]
    fn the_default_secret_is_kept_like_the_others() {
        let mut cache = SecretCerts::default();
        let (c, k) = pem(&["default.example.com"]);
        let r = cache.resolve(&[], Some("shop/tls"), &[secret("1", &c, &k)]);
        let first = r.default_cert.unwrap();
        assert!(r.problems.is_empty());
        let r = cache.resolve(&[], Some("shop/tls"), &[secret("2", &c, "junk")]);
        assert!(Arc::ptr_eq(&r.default_cert.unwrap(), &first));
        assert!(
            r.problems[0].contains("previous certificate"),
            "{:?}",
            r.problems
        );
        let r = cache.resolve(&[], Some("shop/other"), &[]);
        assert!(r.default_cert.is_none());
        assert!(r.problems[0].contains("self-signed"), "{:?}", r.problems);
    }

    #[test]
    fn broken_from_the_start_and_uncovered_hosts() {
        let mut cache = SecretCerts::default();
        let r = cache.resolve(
            &[wanted(&["a.example.com"])],
            None,
            &[secret("1", "junk", "junk")],
        );
        assert!(r.bindings.is_empty());
        let note = &r.events[0].note;
        assert!(note.contains("default certificate"), "{note}");
        assert!(note.contains("refused: no PEM certificate"), "{note}");

        let (c, k) = pem(&["a.example.com"]);
        let r = cache.resolve(
            &[wanted(&["a.example.com", "b.example.com"])],
            None,
            &[secret("2", &c, &k)],
        );
        assert_eq!(r.bindings[0].hosts, ["a.example.com"]);
        assert_eq!(r.events.len(), 1);
        assert!(r.events[0].note.contains("b.example.com"));
    }
}
