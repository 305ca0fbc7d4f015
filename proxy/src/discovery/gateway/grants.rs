//! ReferenceGrants: which references across namespaces are allowed.
//!
//! A grant lives in the namespace referred to. A reference from an object
//! of one namespace to an object of another is allowed when some grant
//! there lists the referrer (group, kind, namespace) among `from` and the
//! target (group, kind, and name unless the entry names none) among `to`.
//! A reference within one namespace needs none. Read at every rebuild, so
//! a grant deleted revokes at the next one.

use std::sync::Arc;

use super::api::ReferenceGrant;

/// The object that refers: its group, kind and namespace.
#[derive(Debug, Clone, Copy)]
pub struct From<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
}

/// The object referred to.
#[derive(Debug, Clone, Copy)]
pub struct To<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Whether `from` may refer to `to`.
pub fn permitted(grants: &[Arc<ReferenceGrant>], from: From<'_>, to: To<'_>) -> bool {
    if from.namespace == to.namespace {
        return true;
    }
    grants
        .iter()
        .filter(|g| g.metadata.namespace.as_deref() == Some(to.namespace))
        .any(|g| {
            g.spec.from.iter().any(|f| {
                f.group == from.group && f.kind == from.kind && f.namespace == from.namespace
            }) && g.spec.to.iter().any(|t| {
                t.group == to.group
                    && t.kind == to.kind
                    && t.name.as_deref().is_none_or(|n| n == to.name)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::super::api::{ReferenceGrantFrom, ReferenceGrantSpec, ReferenceGrantTo, GROUP};
    use super::*;

    fn grant(
        ns: &str,
        from: (&str, &str, &str),
        to: (&str, &str, Option<&str>),
    ) -> Arc<ReferenceGrant> {
        let mut g = ReferenceGrant::default();
        g.metadata.namespace = Some(ns.into());
        g.metadata.name = Some("g".into());
        g.spec = ReferenceGrantSpec {
            from: vec![ReferenceGrantFrom {
                group: from.0.into(),
                kind: from.1.into(),
                namespace: from.2.into(),
            }],
            to: vec![ReferenceGrantTo {
                group: to.0.into(),
                kind: to.1.into(),
                name: to.2.map(Into::into),
            }],
        };
        Arc::new(g)
    }

    const ROUTE: From<'static> = From {
        group: GROUP,
        kind: "HTTPRoute",
        namespace: "infra",
    };
    const WEB: To<'static> = To {
        group: "",
        kind: "Service",
        namespace: "web",
        name: "web-backend",
    };

    #[test]
    fn the_same_namespace_needs_no_grant() {
        let to = To {
            namespace: "infra",
            ..WEB
        };
        assert!(permitted(&[], ROUTE, to));
    }

    #[test]
    fn a_grant_in_the_target_namespace_allows_by_name_or_for_all() {
        let named = grant(
            "web",
            (GROUP, "HTTPRoute", "infra"),
            ("", "Service", Some("web-backend")),
        );
        assert!(permitted(std::slice::from_ref(&named), ROUTE, WEB));
        let other = To {
            name: "other",
            ..WEB
        };
        assert!(!permitted(&[named], ROUTE, other));
        let all = grant("web", (GROUP, "HTTPRoute", "infra"), ("", "Service", None));
        assert!(permitted(&[all], ROUTE, other));
        assert!(!permitted(&[], ROUTE, WEB), "no grant");
    }

    /// The near misses of the conformance test
    /// GatewaySecretInvalidReferenceGrant, for a route to a Service.
    #[test]
    fn every_near_miss_is_refused() {
        let misses = [
            grant("app", (GROUP, "HTTPRoute", "infra"), ("", "Service", None)),
            grant(
                "web",
                ("wrong.group", "HTTPRoute", "infra"),
                ("", "Service", None),
            ),
            grant("web", (GROUP, "Gateway", "infra"), ("", "Service", None)),
            grant("web", (GROUP, "HTTPRoute", "other"), ("", "Service", None)),
            grant(
                "web",
                (GROUP, "HTTPRoute", "infra"),
                ("wrong", "Service", None),
            ),
            grant("web", (GROUP, "HTTPRoute", "infra"), ("", "Secret", None)),
            grant(
                "web",
                (GROUP, "HTTPRoute", "infra"),
                ("", "Service", Some("not-it")),
            ),
        ];
        for g in &misses {
            assert!(
                !permitted(std::slice::from_ref(g), ROUTE, WEB),
                "{:?}",
                g.spec
            );
        }
        assert!(!permitted(&misses, ROUTE, WEB));
    }
}
