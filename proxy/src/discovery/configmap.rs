//! ingress-nginx's controller ConfigMap (`--configmap NAMESPACE/NAME`):
//! the keys that change how traffic is served, read into the command
//! line's overrides, so that a cluster taken over from ingress-nginx keeps
//! its global settings. It is read when sluice starts; a change needs a
//! restart (ingress-nginx reloads nginx for it too).
//!
//! With `--adopt-ingress-nginx`, ingress-nginx's own defaults apply first
//! where they differ from sluice's: a 1 MiB body limit (413 beyond) and
//! HSTS on HTTPS answers (a year, with subdomains).

use std::collections::BTreeMap;
use std::time::Duration;

use ipnet::IpNet;

use crate::config::{ControllerDefaults, Overrides};
use crate::spec::Hsts;

/// ingress-nginx's defaults where they differ from sluice's.
pub fn ingress_nginx_defaults() -> ControllerDefaults {
    ControllerDefaults {
        max_request_body: Some(Some(1 << 20)),
        connect_timeout: Some(Duration::from_secs(5)),
        read_timeout: Some(Duration::from_secs(60)),
        ssl_redirect: Some(true),
        hsts: Some(Some(Hsts {
            max_age: Duration::from_secs(31_536_000),
            include_subdomains: true,
            preload: false,
        })),
        ..ControllerDefaults::default()
    }
}

/// What a ConfigMap's keys did: the problems (a value refused, a key that
/// changes behaviour and is not supported), and the keys taken without
/// effect.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Read {
    pub problems: Vec<String>,
    pub ignored: Vec<String>,
}

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
            "forwarded-for-header" => {
                if !v.trim().eq_ignore_ascii_case("x-forwarded-for") {
                    out.problems.push(format!(
                        "{k}: {v:?}: only X-Forwarded-For names the client; ignored"
                    ));
                }
            }
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
            // sluice always appends the peer to X-Forwarded-For, as
            // compute-full-forwarded-for: "true" does.
            "compute-full-forwarded-for" => out.ignored.push(k.clone()),
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
            // Snippets' header directives are mapped whatever this says;
            // every other directive is refused either way.
            "allow-snippet-annotations" | "annotations-risk-level" => out.ignored.push(k.clone()),
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
            "proxy-send-timeout" | "load-balance" | "force-ssl-redirect" => {
                out.problems.push(format!(
                    "{k}: not read from the ConfigMap yet; set it per Ingress (the annotation of the same name)"
                ))
            }
            _ => out.ignored.push(k.clone()),
        }
    }
    if forwarded {
        // ingress-nginx's proxy-real-ip-cidr defaults to everyone.
        o.trust_forwarded_for = Some(
            real_ip_cidr
                .unwrap_or_else(|| vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]),
        );
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
        assert_eq!(r.ignored, vec!["worker-processes".to_string()]);
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        let mut o = Overrides::default();
        read(
            &data(&[("hsts", "false"), ("use-forwarded-headers", "true")]),
            &mut o,
        );
        assert_eq!(o.controller.hsts, Some(None));
        assert_eq!(o.trust_forwarded_for.as_ref().map(Vec::len), Some(2));
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
