//! `routes:` and `default_backend:`: what each route matches (host, path,
//! path type), its name, and its backends with the settings that go with
//! them, which override the top level's.

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
        let mut routes: Vec<RouteSpec> = Vec::new();
        let mut seen: Vec<(HostMatch, String, PathType, usize)> = Vec::new();
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
            if let Some(j) = routes.iter().position(|r| r.name == name) {
                self.error(
                    format!("{field}.name"),
                    format!("{name:?} is already the name of routes[{j}]"),
                );
            }
            let key_path = path_type.normalize(&path);
            if let Some((_, _, _, j)) = seen
                .iter()
                .find(|(h, p, t, _)| *h == host && *p == key_path && *t == path_type)
            {
                self.error(
                    field.clone(),
                    format!("matches the same host, path and path type as routes[{j}]"),
                );
            }
            seen.push((host.clone(), key_path, path_type, i));
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
}
