//! TLS passthrough hosts (ingress-nginx's `ssl-passthrough`): which server
//! names an HTTPS listener does not terminate but splices, ClientHello and
//! all, to the endpoints of a route's upstream.
//!
//! Built with the snapshot, off the request path, from the hosts discovery
//! names; a connection reads it once, by the SNI it sent. As in
//! ingress-nginx, a host's backend is the one its rules send path `/` to
//! (`controller.go`: the location whose path is `/`), whichever Ingress of
//! the host wrote that rule; a host without one keeps being terminated.
//! The route's upstream is shared with its HTTP route, so health and
//! in-flight counts are the same endpoints' whichever way they are reached.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::{Route, Snapshot};
use crate::spec::HostMatch;

/// The longest DNS name: a longer SNI matches no host.
const MAX_NAME: usize = 253;

/// Server name (lower case) → the route whose upstream takes the spliced
/// connections.
#[derive(Debug, Default)]
pub struct Passthrough {
    hosts: FxHashMap<Box<str>, Arc<Route>>,
}

impl Passthrough {
    /// The table for `hosts` (exact host names, from Ingresses that ask for
    /// passthrough), each bound to the route `snap` sends its `/` to. A
    /// host left out is reported, one line each.
    pub fn build(hosts: &[String], snap: &Snapshot) -> (Passthrough, Vec<String>) {
        let mut table = Passthrough::default();
        let mut problems = Vec::new();
        for host in hosts {
            let host = host.to_ascii_lowercase();
            let route = snap
                .lookup(Some(&host), "/")
                .filter(|r| matches!(&r.host, HostMatch::Exact(h) if h.as_str() == host));
            match route {
                Some(r) => {
                    table.hosts.insert(host.into(), r.clone());
                }
                None => problems.push(format!(
                    "ssl-passthrough for host {host:?} ignored: no rule of that host sends path / to a backend, so its TLS is terminated"
                )),
            }
        }
        (table, problems)
    }

    /// True when no host asks for passthrough: a listener then reads
    /// nothing ahead of the handshake.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The route for a ClientHello's server name, in any case. Exact names
    /// only: ingress-nginx compares the SNI with each host as a string, so
    /// a wildcard host never matched there either.
    #[inline]
    pub fn lookup(&self, sni: &str) -> Option<&Arc<Route>> {
        if sni.len() > MAX_NAME {
            return None;
        }
        let mut buf = [0u8; MAX_NAME];
        let name = if sni.bytes().any(|b| b.is_ascii_uppercase()) {
            let b = &mut buf[..sni.len()];
            b.copy_from_slice(sni.as_bytes());
            b.make_ascii_lowercase();
            std::str::from_utf8(b).ok()?
        } else {
            sni
        };
        self.hosts.get(name)
    }

    /// The hosts spliced, and the route each goes to, for `/routes`.
    pub fn describe(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .hosts
            .iter()
            .map(|(h, r)| (h.to_string(), r.name.to_string()))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::spec::{EndpointSpec, PathType, RouteSpec, UpstreamSpec};

    fn spec(name: &str, host: &str, path: &str) -> RouteSpec {
        RouteSpec::new(
            name,
            HostMatch::parse(host).unwrap(),
            path,
            PathType::Prefix,
            UpstreamSpec::new(
                name,
                crate::balance::Strategy::RoundRobin,
                vec![EndpointSpec::new("127.0.0.1:1".parse().unwrap(), 1)],
            ),
        )
    }

    #[test]
    fn a_host_goes_to_the_route_of_its_root_path_whoever_wrote_it() {
        let specs = [
            spec("pass-api", "pass.example.com", "/api"),
            // Another Ingress's rule for the same host's `/`.
            spec("pass-root", "pass.example.com", "/"),
            spec("web", "web.example.com", "/"),
            spec("any", "", "/"),
            spec("nopath", "deep.example.com", "/only/here"),
            spec("w", "*.wild.example.com", "/"),
        ];
        let snap = Snapshot::build(&specs, None, None, &Metrics::new());
        let hosts = [
            "Pass.Example.com".to_owned(),
            "deep.example.com".to_owned(),
            "nobody.example.com".to_owned(),
            "*.wild.example.com".to_owned(),
        ];
        let (t, problems) = Passthrough::build(&hosts, &snap);
        assert_eq!(&*t.lookup("pass.example.com").unwrap().name, "pass-root");
        assert_eq!(&*t.lookup("PASS.example.COM").unwrap().name, "pass-root");
        // Terminated: a host with rules but no `/`, one that falls to the
        // rules without a host, and a wildcard.
        assert!(t.lookup("deep.example.com").is_none());
        assert!(t.lookup("nobody.example.com").is_none());
        assert!(t.lookup("a.wild.example.com").is_none());
        assert!(t.lookup("web.example.com").is_none());
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("deep.example.com"));
        assert!(t.lookup(&"a".repeat(300)).is_none());
        assert_eq!(
            t.describe(),
            vec![("pass.example.com".into(), "pass-root".into())]
        );
    }

    #[test]
    fn no_hosts_no_table() {
        let snap = Snapshot::build(&[spec("a", "a.com", "/")], None, None, &Metrics::new());
        let (t, problems) = Passthrough::build(&[], &snap);
        assert!(t.is_empty() && problems.is_empty());
    }
}
