//! ingress-nginx's controller ConfigMap (`--configmap NAMESPACE/NAME`):
//! the keys that change how traffic is served, read into the command
//! line's overrides, so that a cluster taken over from ingress-nginx keeps
//! its global settings. It is read when sluice starts; a change needs a
//! restart (ingress-nginx reloads nginx for it too).
//!
//! With `--adopt-ingress-nginx`, ingress-nginx's own defaults apply first
//! where they differ from sluice's: a 1 MiB body limit (413 beyond), HSTS
//! on HTTPS answers (a year, with subdomains), and snippet annotations
//! refused unless `allow-snippet-annotations` is `"true"`.

use std::collections::BTreeMap;
use std::time::Duration;

use ipnet::IpNet;

use crate::config::{ControllerDefaults, Overrides};
use crate::policy::{ForwardedFor, Forwarding};
use crate::spec::Hsts;

/// ingress-nginx's defaults where they differ from sluice's.
pub fn ingress_nginx_defaults() -> ControllerDefaults {
    ControllerDefaults {
        max_request_body: Some(Some(1 << 20)),
        connect_timeout: Some(Duration::from_secs(5)),
        read_timeout: Some(Duration::from_secs(60)),
        ssl_redirect: Some(true),
        send_timeout: Some(Duration::from_secs(60)),
        strategy: None,
        force_ssl_redirect: Some(false),
        allow_snippets: Some(false),
        hsts: Some(Some(Hsts {
            max_age: Duration::from_secs(31_536_000),
            include_subdomains: true,
            preload: false,
        })),
        ..ControllerDefaults::default()
    }
}

/// How ingress-nginx tells the upstream who the client is: X-Forwarded-For
/// and X-Real-IP name the real client alone (`$remote_addr`), whatever
/// the client sent; `compute-full-forwarded-for` with
/// `use-forwarded-headers` appends instead.
pub fn ingress_nginx_forwarding() -> Forwarding {
    Forwarding {
        forwarded_for: ForwardedFor::Replace,
        real_ip: true,
    }
}

/// What a ConfigMap's keys did: the problems (a value refused, a key that
/// changes behaviour and is not supported), the keys applied, the nginx
/// tuning keys taken without effect, and the rest, not read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Read {
    /// `KEY: why`, one per key at most.
    pub problems: Vec<String>,
    pub applied: Vec<String>,
    pub tuning: Vec<String>,
    pub ignored: Vec<String>,
}

impl Read {
    /// The problem reported for `key`, without the key.
    pub fn problem(&self, key: &str) -> Option<&str> {
        self.problems
            .iter()
            .find_map(|p| p.strip_prefix(key).and_then(|r| r.strip_prefix(": ")))
    }
}

/// Controller ConfigMap keys that tune nginx itself (workers, buffers,
/// hashes, logs, session caches): sluice has nothing they would change.
pub const TUNING_KEYS: &[&str] = &[
    "access-log-params",
    "access-log-path",
    "allow-snippet-annotations",
    "annotations-risk-level",
    "client-body-buffer-size",
    "client-header-buffer-size",
    "disable-access-log",
    "enable-access-log-for-default-backend",
    "enable-opentelemetry",
    "error-log-level",
    "error-log-path",
    "http-access-log-path",
    "http2-max-concurrent-streams",
    "http2-max-field-size",
    "http2-max-header-size",
    "http2-max-requests",
    "keep-alive-requests",
    "large-client-header-buffers",
    "log-format-escape-json",
    "log-format-escape-none",
    "log-format-stream",
    "log-format-upstream",
    "map-hash-bucket-size",
    "max-worker-connections",
    "max-worker-open-files",
    "proxy-buffer-size",
    "proxy-buffering",
    "proxy-buffers-number",
    "proxy-http-version",
    "reuse-port",
    "server-name-hash-bucket-size",
    "server-name-hash-max-size",
    "ssl-buffer-size",
    "ssl-ciphers",
    "ssl-ecdh-curve",
    "ssl-prefer-server-ciphers",
    "ssl-protocols",
    "ssl-session-cache",
    "ssl-session-cache-size",
    "ssl-session-tickets",
    "ssl-session-timeout",
    "stream-access-log-path",
    "upstream-keepalive-connections",
    "upstream-keepalive-requests",
    "upstream-keepalive-time",
    "upstream-keepalive-timeout",
    "variables-hash-bucket-size",
    "variables-hash-max-size",
    "worker-cpu-affinity",
    "worker-processes",
    "worker-shutdown-timeout",
];

/// Reads the ConfigMap's `data` into `o`, over what is there.
pub fn read(data: &BTreeMap<String, String>, o: &mut Overrides) -> Read {
    let mut out = Read::default();
    let flag = |k: &str, v: &str, out: &mut Read| match v.trim() {
        "true" => Some(true),
        "false" => Some(false),
        other => {
            out.problems
                .push(format!("{k}: {other:?} is not true or false"));
            None
        }
    };
    let secs =
        |k: &str, v: &str, out: &mut Read| match v.trim().trim_end_matches('s').parse::<u64>() {
            Ok(n) if (1..=86_400).contains(&n) => Some(Duration::from_secs(n)),
            _ => {
                out.problems
                    .push(format!("{k}: {v:?} is not a number of seconds"));
                None
            }
        };
    let mut forwarded = false;
    let mut compute_full: Option<bool> = None;
    let mut real_ip_cidr: Option<Vec<IpNet>> = None;
    let mut hsts = Hsts {
        max_age: Duration::from_secs(31_536_000),
        include_subdomains: true,
        preload: false,
    };
    let mut hsts_on: Option<bool> = None;
    for (k, v) in data {
        match k.as_str() {
            "use-proxy-protocol" => {
                if flag(k, v, &mut out) == Some(true) {
                    o.proxy_protocol = Some(Vec::new());
                }
            }
            "use-forwarded-headers" | "enable-real-ip" => {
                if flag(k, v, &mut out) == Some(true) {
                    forwarded = true;
                }
            }
            "forwarded-for-header" => match http::HeaderName::from_bytes(v.trim().as_bytes()) {
                Ok(h) => o.forwarded_for_header = Some(h),
                Err(_) => out
                    .problems
                    .push(format!("{k}: {v:?} is not a header name")),
            },
            "proxy-real-ip-cidr" => {
                let nets: Result<Vec<IpNet>, _> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<IpNet>())
                    .collect();
                match nets {
                    Ok(n) => real_ip_cidr = Some(n),
                    Err(_) => out
                        .problems
                        .push(format!("{k}: {v:?} is not a list of CIDR ranges")),
                }
            }
            "compute-full-forwarded-for" => compute_full = flag(k, v, &mut out),
            "proxy-body-size" => match crate::config::parse_size(v) {
                Ok(limit) => o.controller.max_request_body = Some(limit),
                Err(e) => out.problems.push(format!("{k}: {e}")),
            },
            "proxy-connect-timeout" => {
                if let Some(d) = secs(k, v, &mut out) {
                    o.controller.connect_timeout = Some(d);
                }
            }
            "proxy-read-timeout" => {
                if let Some(d) = secs(k, v, &mut out) {
                    o.controller.read_timeout = Some(d);
                }
            }
            "ssl-redirect" => {
                if let Some(b) = flag(k, v, &mut out) {
                    o.controller.ssl_redirect = Some(b);
                }
            }
            "hsts" => hsts_on = flag(k, v, &mut out),
            "hsts-max-age" => match v.trim().parse::<u64>() {
                Ok(n) => hsts.max_age = Duration::from_secs(n),
                Err(_) => out
                    .problems
                    .push(format!("{k}: {v:?} is not a number of seconds")),
            },
            "hsts-include-subdomains" => {
                if let Some(b) = flag(k, v, &mut out) {
                    hsts.include_subdomains = b;
                }
            }
            "hsts-preload" => {
                if let Some(b) = flag(k, v, &mut out) {
                    hsts.preload = b;
                }
            }
            "allow-snippet-annotations" => {
                if let Some(b) = flag(k, v, &mut out) {
                    o.controller.allow_snippets = Some(b);
                }
            }
            "annotations-risk-level" => out.tuning.push(k.clone()),
            "proxy-send-timeout" => {
                if let Some(d) = secs(k, v, &mut out) {
                    o.controller.send_timeout = Some(d);
                }
            }
            "load-balance" => match v.trim() {
                "round_robin" => o.controller.strategy = Some(crate::balance::Strategy::RoundRobin),
                "ewma" => o.controller.strategy = Some(crate::balance::Strategy::LeastRequest),
                other => out
                    .problems
                    .push(format!("{k}: {other:?} is not round_robin or ewma")),
            },
            "force-ssl-redirect" => {
                if let Some(b) = flag(k, v, &mut out) {
                    o.controller.force_ssl_redirect = Some(b);
                }
            }
            // Item by item, as ingress-nginx: a code it cannot take is
            // reported and the others kept.
            "custom-http-errors" => {
                let mut codes = crate::spec::StatusSet::default();
                for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    match crate::spec::StatusSet::parse_list(item).map(|one| one.iter().next()) {
                        Ok(Some(code)) => codes.insert(code).unwrap_or_default(),
                        Ok(None) => {}
                        Err(e) => out.problems.push(format!("{k}: {e}; left out")),
                    }
                }
                o.controller.custom_http_errors = codes;
            }
            "limit-req-status-code" | "limit-conn-status-code" => {
                out.problems.push(format!(
                    "{k}: not read from the ConfigMap yet; set it per Ingress where an annotation exists"
                ))
            }
            k if TUNING_KEYS.contains(&k) => out.tuning.push(k.to_owned()),
            _ => out.ignored.push(k.clone()),
        }
    }
    // Every other key this function knows, and did not refuse, applied.
    for k in data.keys() {
        let known = !out.tuning.contains(k) && !out.ignored.contains(k);
        let refused = out.problem(k).is_some();
        if known && !refused {
            out.applied.push(k.clone());
        }
    }
    if forwarded {
        // ingress-nginx's proxy-real-ip-cidr defaults to everyone.
        o.trust_forwarded_for = Some(
            real_ip_cidr
                .unwrap_or_else(|| vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]),
        );
    }
    // ingress-nginx appends to X-Forwarded-For only when it also believes
    // the one that came (use-forwarded-headers); otherwise the client's
    // address replaces it.
    if let Some(full) = compute_full {
        o.forwarding
            .get_or_insert_with(ingress_nginx_forwarding)
            .forwarded_for = if full && forwarded {
            ForwardedFor::Append
        } else {
            ForwardedFor::Replace
        };
    }
    match hsts_on {
        Some(false) => o.controller.hsts = Some(None),
        Some(true) => o.controller.hsts = Some(Some(hsts)),
        None => {
            if let Some(Some(h)) = &mut o.controller.hsts {
                *h = hsts;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_become_overrides() {
        let mut o = Overrides {
            controller: ingress_nginx_defaults(),
            ..Overrides::default()
        };
        let r = read(
            &data(&[
                ("use-proxy-protocol", "true"),
                ("use-forwarded-headers", "true"),
                ("proxy-real-ip-cidr", "10.0.0.0/8, 192.168.0.0/16"),
                ("proxy-body-size", "20m"),
                ("proxy-read-timeout", "120"),
                ("ssl-redirect", "false"),
                ("hsts-max-age", "600"),
                ("worker-processes", "4"),
                ("load-balance", "ewma"),
                ("limit-req-status-code", "429"),
                ("proxy-connect-timeout", "soon"),
            ]),
            &mut o,
        );
        assert_eq!(o.proxy_protocol, Some(vec![]));
        assert_eq!(o.trust_forwarded_for.as_ref().map(Vec::len), Some(2));
        assert_eq!(o.controller.max_request_body, Some(Some(20 << 20)));
        assert_eq!(o.controller.read_timeout, Some(Duration::from_secs(120)));
        assert_eq!(o.controller.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.controller.ssl_redirect, Some(false));
        assert_eq!(
            o.controller.hsts.clone().unwrap().unwrap().max_age,
            Duration::from_secs(600)
        );
        assert_eq!(r.tuning, vec!["worker-processes".to_string()]);
        assert!(r.ignored.is_empty());
        assert!(r.applied.contains(&"proxy-body-size".to_string()));
        assert_eq!(
            o.controller.strategy,
            Some(crate::balance::Strategy::LeastRequest)
        );
        assert!(r.applied.contains(&"load-balance".to_string()));
        assert!(r.problem("limit-req-status-code").is_some());
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        let mut o = Overrides::default();
        read(
            &data(&[("hsts", "false"), ("use-forwarded-headers", "true")]),
            &mut o,
        );
        assert_eq!(o.controller.hsts, Some(None));
        assert_eq!(o.trust_forwarded_for.as_ref().map(Vec::len), Some(2));
        let mut o = Overrides::default();
        let r = read(
            &data(&[("forwarded-for-header", "CF-Connecting-IP")]),
            &mut o,
        );
        assert_eq!(
            o.forwarded_for_header.as_ref().map(|h| h.as_str()),
            Some("cf-connecting-ip")
        );
        assert!(r.applied.contains(&"forwarded-for-header".to_string()));
        let r = read(&data(&[("forwarded-for-header", "not a header")]), &mut o);
        assert!(r.problem("forwarded-for-header").is_some());
    }

    #[test]
    fn compute_full_forwarded_for_appends_only_with_forwarded_headers() {
        let run = |pairs: &[(&str, &str)]| {
            let mut o = Overrides::default();
            read(&data(pairs), &mut o);
            o.forwarding
        };
        let with = |f| {
            Some(Forwarding {
                forwarded_for: f,
                real_ip: true,
            })
        };
        assert_eq!(run(&[]), None);
        assert_eq!(
            run(&[
                ("compute-full-forwarded-for", "true"),
                ("use-forwarded-headers", "true")
            ]),
            with(ForwardedFor::Append)
        );
        // Without use-forwarded-headers ingress-nginx ignores it.
        assert_eq!(
            run(&[("compute-full-forwarded-for", "true")]),
            with(ForwardedFor::Replace)
        );
        assert_eq!(
            run(&[
                ("compute-full-forwarded-for", "false"),
                ("use-forwarded-headers", "true")
            ]),
            with(ForwardedFor::Replace)
        );
    }

    #[test]
    fn custom_http_errors_keeps_the_codes_it_can_take() {
        let mut o = Overrides::default();
        let r = read(&data(&[("custom-http-errors", "404, 503,abc,200")]), &mut o);
        let codes: Vec<u16> = o.controller.custom_http_errors.iter().collect();
        assert_eq!(codes, [404, 503]);
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
    }
}
