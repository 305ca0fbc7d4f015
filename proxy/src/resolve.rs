//! Backends given by DNS name (`app.internal:8080`), as nginx and HAProxy
//! users write them in static configs. Names are resolved off the request
//! path: at start (a name that does not resolve stops the start, naming
//! its field, as nginx's "host not found in upstream" does), on every
//! reload (a name that does not resolve refuses the reload, and the
//! running config keeps serving), and every `dns_refresh` (a name that
//! fails then keeps its last addresses). Each address becomes an endpoint
//! keyed `host:port#ip`, so an address that stays keeps its health and
//! pooled connections across re-resolution.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::spec::{EndpointSpec, RouteSpec};

/// A name to resolve: host and port.
pub type Name = (Arc<str>, u16);

/// What the names resolved to, each address list sorted.
pub type Resolved = BTreeMap<Name, Vec<IpAddr>>;

/// Why a name did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The resolver answered, with no address.
    #[error("no addresses")]
    NoAddresses,
    /// The resolver failed (getaddrinfo's error).
    #[error("{0}")]
    Lookup(#[source] std::io::Error),
}

/// Every name the routes give backends by.
pub fn names<'a>(routes: impl IntoIterator<Item = &'a RouteSpec>) -> BTreeSet<Name> {
    routes
        .into_iter()
        .flat_map(|r| {
            std::iter::once(&r.upstream)
                .chain(r.canary.as_ref().map(|c| &c.upstream))
                .flat_map(|u| u.names.iter())
        })
        .map(|n| (n.host.clone(), n.port))
        .collect()
}

/// Resolves every name with the system resolver (getaddrinfo, on Tokio's
/// blocking pool). The names that fail come back with their errors.
pub async fn resolve(names: &BTreeSet<Name>) -> (Resolved, Vec<(Name, ResolveError)>) {
    let mut out = Resolved::new();
    let mut failed = Vec::new();
    for (host, port) in names {
        match tokio::net::lookup_host((&**host, *port)).await {
            Ok(addrs) => {
                let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                ips.sort();
                ips.dedup();
                if ips.is_empty() {
                    failed.push(((host.clone(), *port), ResolveError::NoAddresses));
                } else {
                    out.insert((host.clone(), *port), ips);
                }
            }
            Err(e) => failed.push(((host.clone(), *port), ResolveError::Lookup(e))),
        }
    }
    (out, failed)
}

/// The routes with the addresses of their named backends joined to their
/// endpoints. A name not (yet) resolved adds nothing; an address already
/// listed by IP is not listed twice.
pub fn apply(routes: &mut [RouteSpec], resolved: &Resolved) {
    for r in routes {
        let canary = r.canary.as_mut().map(|c| &mut c.upstream);
        for u in std::iter::once(&mut r.upstream).chain(canary) {
            for n in &u.names {
                let Some(ips) = resolved.get(&(n.host.clone(), n.port)) else {
                    continue;
                };
                for ip in ips {
                    let addr = SocketAddr::new(*ip, n.port);
                    if u.endpoints.iter().any(|e| e.addr == addr) {
                        continue;
                    }
                    u.endpoints.push(EndpointSpec {
                        addr,
                        weight: n.weight,
                        key: format!("{}:{}#{ip}", n.host, n.port).into(),
                    });
                }
            }
        }
    }
}

/// A refresh's result merged with what was known: a name that failed this
/// time keeps its last addresses (a resolver hiccup must not empty a
/// route).
pub fn merge(previous: &Resolved, fresh: Resolved, failed: &[(Name, ResolveError)]) -> Resolved {
    let mut out = fresh;
    for (name, _) in failed {
        if let Some(ips) = previous.get(name) {
            out.insert(name.clone(), ips.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn routes(text: &str) -> Vec<RouteSpec> {
        config::parse_str(text, "t").unwrap().routes
    }

    #[test]
    fn named_backends_join_the_endpoints_when_resolved() {
        let mut r = routes(
            "routes:\n  - name: web\n    backends: [app.internal:8080=3, 10.0.0.1:8080, {address: db.local:5432, weight: 2}]\n",
        );
        let n = names(&r);
        assert_eq!(n.len(), 2);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut resolved = Resolved::new();
        resolved.insert(
            ("app.internal".into(), 8080),
            vec![ip("10.0.0.1"), ip("10.0.0.2")],
        );
        apply(&mut r, &resolved);
        let eps: Vec<(String, u32, String)> = r[0]
            .upstream
            .endpoints
            .iter()
            .map(|e| (e.addr.to_string(), e.weight, e.key.to_string()))
            .collect();
        // 10.0.0.1 was listed by IP already; db.local is not resolved yet.
        assert_eq!(
            eps,
            [
                ("10.0.0.1:8080".into(), 1, "10.0.0.1:8080".into()),
                (
                    "10.0.0.2:8080".into(),
                    3,
                    "app.internal:8080#10.0.0.2".into()
                ),
            ]
        );
    }

    #[test]
    fn a_failed_refresh_keeps_the_last_addresses() {
        let name: Name = ("app.internal".into(), 80);
        let mut previous = Resolved::new();
        previous.insert(name.clone(), vec!["10.0.0.9".parse().unwrap()]);
        let merged = merge(
            &previous,
            Resolved::new(),
            &[(name.clone(), ResolveError::NoAddresses)],
        );
        assert_eq!(merged, previous);
    }

    #[test]
    fn names_are_checked_as_written() {
        for bad in [
            "bad host!:80",
            "app.internal:0",
            "app.internal:99999",
            "10.0.0.300:80",
            "-x.io:80",
        ] {
            let text = format!("routes:\n  - backends: [\"{bad}\"]\n");
            assert!(config::parse_str(&text, "t").is_err(), "{bad} accepted");
        }
        let text = "routes:\n  - backends: [App.Internal:80, app.internal:80]\n";
        assert!(config::parse_str(text, "t").is_err(), "a name listed twice");
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback() {
        let mut n = BTreeSet::new();
        n.insert(("localhost".into(), 80));
        let (resolved, failed) = resolve(&n).await;
        assert!(failed.is_empty(), "{failed:?}");
        assert!(resolved[&("localhost".into(), 80)]
            .iter()
            .all(IpAddr::is_loopback));
    }
}
