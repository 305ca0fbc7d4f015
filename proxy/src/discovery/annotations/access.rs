//! ingress-nginx's access annotations, parsed into typed values:
//! `allowlist-source-range` (and its old name `whitelist-source-range`),
//! `denylist-source-range`, and basic authentication (`auth-type`,
//! `auth-secret`, `auth-secret-type`, `auth-realm`). The Secret itself is
//! read when routes are made (`translate/access.rs`).

use ipnet::IpNet;

use crate::spec::SourceRanges;

/// What an Ingress's access annotations say.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AccessNotes {
    pub source: SourceRanges,
    /// `auth-type: basic` (`digest` is refused: ingress-nginx's nginx
    /// never had the module either).
    pub basic: bool,
    /// `auth-secret`: `name` (the Ingress's namespace) or `namespace/name`.
    pub secret: Option<SecretRef>,
    /// `auth-secret-type: auth-map`: each key a user; by default
    /// (`auth-file`) the key `auth` holds an htpasswd file.
    pub secret_is_map: bool,
    /// `auth-realm`; ingress-nginx's default is "Authentication Required".
    pub realm: Option<String>,
    /// An access annotation that could not be read: the route answers 503
    /// rather than serve without the check it asked for (ingress-nginx's
    /// "location denied").
    pub denied: Option<String>,
    /// `auth-url` and its family.
    pub external: super::external_auth::ExternalAuthNotes,
    /// `enable-cors` and `cors-*`.
    pub cors: super::cors::CorsNotes,
}

/// A Secret an annotation names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    /// `None`: the Ingress's own namespace.
    pub namespace: Option<String>,
    pub name: String,
}

impl SecretRef {
    /// `name` or `namespace/name`.
    pub fn parse(v: &str) -> Option<SecretRef> {
        let v = v.trim();
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        match v.split_once('/') {
            Some((ns, name)) if ok(ns) && ok(name) => Some(SecretRef {
                namespace: Some(ns.to_owned()),
                name: name.to_owned(),
            }),
            None if ok(v) => Some(SecretRef {
                namespace: None,
                name: v.to_owned(),
            }),
            _ => None,
        }
    }

    /// `(namespace, name)`, the Ingress's namespace when it names none.
    pub fn resolve(&self, ingress_ns: &str) -> (String, String) {
        (
            self.namespace
                .clone()
                .unwrap_or_else(|| ingress_ns.to_owned()),
            self.name.clone(),
        )
    }
}

/// Reads one `nginx.ingress.kubernetes.io/NAME` annotation if it is an
/// access annotation; `false` when it is not one.
pub(super) fn parse(
    notes: &mut AccessNotes,
    key: &str,
    name: &str,
    value: &str,
    problems: &mut Vec<String>,
) -> bool {
    let v = value.trim();
    match name {
        "whitelist-source-range" | "allowlist-source-range" => match ranges(v) {
            Ok(nets) => notes.source.allow = nets,
            Err(item) => deny(
                notes,
                problems,
                format!("{key}: {item:?} is not an address or CIDR range"),
            ),
        },
        "denylist-source-range" => match ranges(v) {
            Ok(nets) => notes.source.deny = nets,
            Err(item) => deny(
                notes,
                problems,
                format!("{key}: {item:?} is not an address or CIDR range"),
            ),
        },
        "auth-type" => match v {
            "basic" => notes.basic = true,
            "digest" => deny(
                notes,
                problems,
                format!("{key}: digest authentication is not supported (basic is)"),
            ),
            other => deny(notes, problems, format!("{key}: {other:?} is not basic")),
        },
        "auth-secret" => match SecretRef::parse(v) {
            Some(r) => notes.secret = Some(r),
            None => deny(
                notes,
                problems,
                format!("{key}: {v:?} is not a Secret name or namespace/name"),
            ),
        },
        "auth-secret-type" => match v {
            "auth-file" => notes.secret_is_map = false,
            "auth-map" => notes.secret_is_map = true,
            other => problems.push(format!("{key}: {other:?} is not auth-file or auth-map")),
        },
        "auth-realm" => {
            if v.chars().all(|c| c.is_ascii_graphic() || c == ' ') && !v.contains('"') {
                notes.realm = Some(v.to_owned());
            } else {
                problems.push(format!("{key}: {v:?} has characters a realm cannot carry"));
            }
        }
        _ => return false,
    }
    true
}

/// An access annotation that cannot be honoured: noted, and the route
/// will answer 503.
fn deny(notes: &mut AccessNotes, problems: &mut Vec<String>, why: String) {
    problems.push(format!("{why}; the route answers 503"));
    notes.denied.get_or_insert(why);
}

/// A comma-separated list of CIDRs (a bare address is a /32 or /128); the
/// first entry that is neither is the error. One bad entry refuses the
/// whole list, as ingress-nginx does: an allow-list read in part, or not
/// at all, would serve clients it was written to keep out.
fn ranges(v: &str) -> Result<Vec<IpNet>, String> {
    let mut nets = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let net = item
            .parse::<IpNet>()
            .ok()
            .or_else(|| item.parse::<std::net::IpAddr>().ok().map(IpNet::from));
        match net {
            Some(n) => nets.push(n.trunc()),
            None => return Err(item.to_owned()),
        }
    }
    Ok(nets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_auth() {
        let mut n = AccessNotes::default();
        let mut problems = Vec::new();
        for (k, v) in [
            ("whitelist-source-range", "10.0.0.0/8, 192.168.1.7"),
            ("denylist-source-range", "10.1.0.0/16"),
            ("auth-type", "basic"),
            ("auth-secret", "other/basic-auth"),
            ("auth-secret-type", "auth-map"),
            ("auth-realm", "Shop staff"),
        ] {
            assert!(parse(&mut n, k, k, v, &mut problems), "{k}");
        }
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(n.source.allow.len(), 2);
        assert_eq!(n.source.allow[1].to_string(), "192.168.1.7/32");
        assert!(n.basic && n.secret_is_map);
        assert_eq!(
            n.secret.as_ref().unwrap().resolve("shop"),
            ("other".into(), "basic-auth".into())
        );
        assert_eq!(
            SecretRef::parse("basic-auth").unwrap().resolve("shop"),
            ("shop".into(), "basic-auth".into())
        );
        assert!(!parse(&mut n, "x", "rewrite-target", "/", &mut problems));
        for (k, v) in [
            ("allowlist-source-range", "10.0.0.0/8,nope"),
            ("auth-type", "digest"),
            ("auth-secret", "A/B/C"),
            ("auth-realm", "say \"hi\""),
        ] {
            parse(&mut n, k, k, v, &mut problems);
        }
        assert_eq!(problems.len(), 4, "{problems:?}");
        // A list that cannot be read denies the route rather than open it.
        assert!(
            n.denied.as_deref().unwrap().contains("nope"),
            "{:?}",
            n.denied
        );
    }
}
