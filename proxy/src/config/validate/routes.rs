//! `routes:` and `default_backend:`: what each route matches (host, path,
//! path type), its name, and its backends with the settings that go with
//! them, which override the top level's.

use std::collections::HashMap;
use std::sync::Arc;

use super::Validator;
use crate::balance::Strategy;
use crate::config::model::Defaults;
use crate::config::raw::{RawBackend, RawBackendSet, RawRoute};
use crate::spec::{
    HostMatch, PathType, Protocol, RetryPolicy, RouteSpec, RouteTimeouts, UpstreamSpec,
};

impl Validator {
    /// The file's routes; two that match the same host, path and path
    /// type are refused, as are two of one name.
    pub(super) fn routes(&mut self, raw: &[RawRoute], defaults: &Defaults) -> Vec<RouteSpec> {
        let mut routes: Vec<RouteSpec> = Vec::with_capacity(raw.len());
        // What each route matches and its name, with the index of the first
        // route to take it: looked up, not scanned (a file of 10,000 routes
        // would otherwise compare 50 million pairs on every reload).
        let mut seen: HashMap<(HostMatch, String, PathType), usize> = HashMap::new();
        let mut names: HashMap<Arc<str>, usize> = HashMap::new();
        for (i, r) in raw.iter().enumerate() {
            let field = format!("routes[{i}]");
            let host = match r.host.as_deref() {
                None => HostMatch::Any,
                Some(h) => match HostMatch::parse(h) {
                    Ok(h) => h,
                    Err(e) => {
                        self.error(format!("{field}.host"), e);
                        HostMatch::Any
                    }
                },
            };
            let path = r.path.clone().unwrap_or_else(|| "/".into());
            if !path.starts_with('/') {
                self.error(
                    format!("{field}.path"),
                    format!("{path:?} must start with /"),
                );
            }
            let path_type = match r.path_type.as_deref() {
                None => PathType::Prefix,
                Some(p) => match p.parse() {
                    Ok(p) => p,
                    Err(e) => {
                        self.error(format!("{field}.path_type"), e);
                        PathType::Prefix
                    }
                },
            };
            let name: Arc<str> = match &r.name {
                Some(n) if n.trim().is_empty() => {
                    self.error(format!("{field}.name"), "must not be empty");
                    format!("route-{i}").into()
                }
                Some(n) => n.as_str().into(),
                None if path_type == PathType::Exact => format!("{host}{path} (Exact)").into(),
                None => format!("{host}{path}").into(),
            };
            if let Some(j) = names.get(&name) {
                self.error(
                    format!("{field}.name"),
                    format!("{name:?} is already the name of routes[{j}]"),
                );
            } else {
                names.insert(name.clone(), i);
            }
            let key_path = path_type.normalize(&path);
            match seen.entry((host.clone(), key_path, path_type)) {
                std::collections::hash_map::Entry::Occupied(j) => self.error(
                    field.clone(),
                    format!(
                        "matches the same host, path and path type as routes[{}]",
                        j.get()
                    ),
                ),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
            let (upstream, timeouts, retry, max_request_body) =
                self.backend_set(&field, &r.set, defaults, name.clone());
            routes.push(RouteSpec {
                name,
                host,
                path,
                path_type,
                upstream,
                timeouts,
                retry,
                canary: None,
                max_request_body,
                headers: crate::spec::HeaderEdits::default(),
                access: Default::default(),
                ssl_redirect: r.ssl_redirect,
                path_rules: Default::default(),
                limits: None,
                affinity: None,
                error_pages: None,
                conditions: None,
                split: Vec::new(),
                mirrors: Vec::new(),
            });
        }
        routes
    }

    /// The route for requests no other route matches.
    pub(super) fn default_backend(
        &mut self,
        set: Option<&RawBackendSet>,
        defaults: &Defaults,
    ) -> Option<RouteSpec> {
        set.map(|set| {
            let (upstream, timeouts, retry, max_request_body) =
                self.backend_set("default_backend", set, defaults, "default-backend".into());
            RouteSpec {
                timeouts,
                retry,
                max_request_body,
                ..RouteSpec::new(
                    "default-backend",
                    HostMatch::Any,
                    "/",
                    PathType::Prefix,
                    upstream,
                )
            }
        })
    }

    /// A route's backends and the settings that go with them, over the
    /// top level's `defaults`.
    fn backend_set(
        &mut self,
        field: &str,
        set: &RawBackendSet,
        defaults: &Defaults,
        name: Arc<str>,
    ) -> (UpstreamSpec, RouteTimeouts, RetryPolicy, Option<u64>) {
        let strategy = match set.strategy.as_deref() {
            None => Strategy::RoundRobin,
            Some(s) => s.parse::<Strategy>().unwrap_or_else(|e| {
                self.error(format!("{field}.strategy"), e.to_string());
                Strategy::RoundRobin
            }),
        };
        let protocol = match set.upstream_protocol.as_deref() {
            None | Some("http1") | Some("http/1.1") => Protocol::Http1,
            Some("http2") | Some("h2c") | Some("h2") => Protocol::Http2,
            Some(p) => {
                self.error(
                    format!("{field}.upstream_protocol"),
                    format!("{p:?} is not http1 or http2"),
                );
                Protocol::Http1
            }
        };
        let mut endpoints = Vec::new();
        let mut names = Vec::new();
        for (j, b) in set.backends.iter().enumerate() {
            let bf = format!("{field}.backends[{j}]");
            match b {
                RawBackend::Short(s) => self.backend_into(&bf, s, &mut endpoints, &mut names),
                RawBackend::Long { address, weight } => {
                    let w = self.weight(&format!("{bf}.weight"), weight.unwrap_or(1));
                    self.push_target(
                        &format!("{bf}.address"),
                        address,
                        w,
                        &mut endpoints,
                        &mut names,
                    );
                }
            }
        }
        // An empty list is allowed: the route answers 503 until backends are
        // added, as a Kubernetes Service without ready endpoints does.
        self.check_duplicate_endpoints(&format!("{field}.backends"), &endpoints);
        let upstream = UpstreamSpec {
            name,
            strategy,
            protocol,
            endpoints,
            health: self.health(field, set.health.as_ref(), defaults.health),
            max_idle_per_endpoint: defaults.max_idle,
            tls: None,
            response_head: None,
            names,
        };
        let timeouts = self.timeouts(field, set.timeouts.as_ref(), defaults.timeouts);
        let retry = self.retry(field, set.retry.as_ref(), defaults.retry);
        let max_request_body = self.size(
            &format!("{field}.max_request_body"),
            set.max_request_body.as_ref(),
            defaults.max_request_body,
        );
        (upstream, timeouts, retry, max_request_body)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse_str;

    #[test]
    fn duplicate_routes_are_refused() {
        let text = "routes:\n  - {host: a.com, path: /x/, backends: [127.0.0.1:1]}\n  - {host: a.com, path: /x, backends: [127.0.0.1:2]}\n";
        let err = parse_str(text, "t").unwrap_err();
        assert!(err.to_string().contains("routes[1]"), "{err}");
    }

    /// Each clash names the first route to take the name or the match,
    /// however far apart the two are.
    #[test]
    fn a_clash_names_the_first_route_it_clashes_with() {
        let mut text = String::from("routes:\n");
        for i in 0..50 {
            text += &format!("  - {{host: h{i}.com, name: r{i}, backends: [127.0.0.1:1]}}\n");
        }
        text += "  - {host: h3.com, name: other, backends: [127.0.0.1:1]}\n";
        text += "  - {host: x.com, name: r7, backends: [127.0.0.1:1]}\n";
        let err = parse_str(&text, "t").unwrap_err().to_string();
        assert!(
            err.contains("routes[50]")
                && err.contains("same host, path and path type as routes[3]"),
            "{err}"
        );
        assert!(
            err.contains("routes[51].name")
                && err.contains("\"r7\" is already the name of routes[7]"),
            "{err}"
        );
    }
}
