//! The certificate table: host name → certificate, built whole from every
//! source and swapped in with the routing snapshot it belongs to.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use rustls::sign::CertifiedKey;
use serde::Serialize;

use super::cert::Certificate;

/// A certificate offered by one source, for some hosts.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Where it came from, for logs and metrics: `file:/etc/a.pem` or
    /// `secret:shop/shop-tls`.
    pub source: Arc<str>,
    /// The hosts it is meant for; empty: the certificate's own names.
    pub hosts: Vec<String>,
    pub cert: Arc<Certificate>,
}

/// Host name → certificate.
#[derive(Debug, Default)]
pub struct CertTable {
    exact: FxHashMap<Box<str>, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.`.
    wildcard: FxHashMap<Box<str>, Arc<CertifiedKey>>,
    /// For names not in the table, and clients that send no SNI.
    default: Option<Arc<CertifiedKey>>,
    /// What each source serves, for the admin view and metrics.
    pub entries: Vec<CertView>,
}

/// One certificate as the admin listener shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CertView {
    pub source: String,
    pub hosts: Vec<String>,
    pub not_after: i64,
}

impl CertTable {
    /// Builds the table; earlier bindings win a host. Returns, besides, a
    /// line per host a binding names but its certificate does not cover
    /// (the default certificate then serves that host, as ingress-nginx
    /// does).
    pub fn build(bindings: &[Binding], default: Option<&Certificate>) -> (CertTable, Vec<String>) {
        let mut t = CertTable {
            default: default.map(|c| c.key.clone()),
            ..CertTable::default()
        };
        let mut problems = Vec::new();
        for b in bindings {
            let hosts: Vec<String> = if b.hosts.is_empty() {
                b.cert.names.clone()
            } else {
                let mut ok = Vec::new();
                for h in &b.hosts {
                    let h = h.to_ascii_lowercase();
                    if b.cert.covers(&h) {
                        ok.push(h);
                    } else {
                        problems.push(format!(
                            "host {h} is not covered by the certificate from {} (it names {}); the default certificate serves it",
                            b.source,
                            b.cert.names.join(", ")
                        ));
                    }
                }
                ok
            };
            let mut taken = Vec::new();
            for h in hosts {
                let map = match h.strip_prefix("*.") {
                    Some(suffix) => t.wildcard.entry(suffix.into()),
                    None => t.exact.entry(h.as_str().into()),
                };
                if let std::collections::hash_map::Entry::Vacant(v) = map {
                    v.insert(b.cert.key.clone());
                    taken.push(h);
                }
            }
            t.entries.push(CertView {
                source: b.source.to_string(),
                hosts: taken,
                not_after: b.cert.not_after,
            });
        }
        (t, problems)
    }

    /// The certificate for a ClientHello's server name.
    pub fn resolve(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let found = sni.and_then(|name| {
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                self.find(&name.to_ascii_lowercase())
            } else {
                self.find(name)
            }
        });
        found.or_else(|| self.default.clone())
    }

    fn find(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        if let Some(k) = self.exact.get(name) {
            return Some(k.clone());
        }
        // One label only, as certificates' wildcards match.
        let (_, suffix) = name.split_once('.')?;
        self.wildcard.get(suffix).cloned()
    }

    /// Whether a host (lowercase, no port) has a certificate of its own:
    /// such hosts get plain HTTP redirected to HTTPS.
    pub fn has_host(&self, host: &str) -> bool {
        self.find(host).is_some()
    }

    /// Whether the hosts of a `*.suffix` route have a wildcard certificate.
    pub fn has_wildcard(&self, suffix: &str) -> bool {
        self.wildcard.contains_key(suffix)
    }

    /// Whether the table has any certificate of its own.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str]) -> Arc<Certificate> {
        let c = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        Arc::new(
            Certificate::from_pem(
                c.cert.pem().as_bytes(),
                c.signing_key.serialize_pem().as_bytes(),
            )
            .unwrap(),
        )
    }

    fn bind(source: &str, hosts: &[&str], c: &Arc<Certificate>) -> Binding {
        Binding {
            source: source.into(),
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            cert: c.clone(),
        }
    }

    #[test]
    fn exact_then_wildcard_then_default() {
        let a = cert(&["a.example.com"]);
        let w = cert(&["*.example.com"]);
        let d = Certificate::self_signed();
        let (t, problems) = CertTable::build(&[bind("a", &[], &a), bind("w", &[], &w)], Some(&d));
        assert!(problems.is_empty());
        let is = |k: Option<Arc<CertifiedKey>>, c: &Certificate| Arc::ptr_eq(&k.unwrap(), &c.key);
        assert!(is(t.resolve(Some("a.example.com")), &a));
        assert!(is(t.resolve(Some("A.Example.COM")), &a));
        assert!(is(t.resolve(Some("b.example.com")), &w));
        assert!(is(t.resolve(Some("x.b.example.com")), &d));
        assert!(is(t.resolve(Some("example.com")), &d));
        assert!(is(t.resolve(None), &d));
        assert!(t.has_host("b.example.com") && !t.has_host("example.com"));
        assert!(t.has_wildcard("example.com"));
    }

    #[test]
    fn first_binding_wins_and_uncovered_hosts_are_reported() {
        let one = cert(&["shop.example.com"]);
        let two = cert(&["shop.example.com", "api.example.com"]);
        let (t, problems) = CertTable::build(
            &[
                bind("one", &["shop.example.com", "other.example.com"], &one),
                bind("two", &["shop.example.com", "api.example.com"], &two),
            ],
            None,
        );
        assert!(Arc::ptr_eq(
            &t.resolve(Some("shop.example.com")).unwrap(),
            &one.key
        ));
        assert!(Arc::ptr_eq(
            &t.resolve(Some("api.example.com")).unwrap(),
            &two.key
        ));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("other.example.com"), "{problems:?}");
        assert!(t.resolve(Some("other.example.com")).is_none());
        assert_eq!(t.entries[1].hosts, ["api.example.com"]);
    }
}
