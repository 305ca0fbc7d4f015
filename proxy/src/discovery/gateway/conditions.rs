//! The verdicts of `attach` as the status Kubernetes keeps: conditions
//! with the spec's types and reasons, each carrying the generation it
//! judged (`observedGeneration`), and a transition time that moves only
//! when the status flips.
//!
//! Pure: the writer (elected by the status Lease) compares what this
//! gives with what the object holds and patches only a difference, so a
//! rebuild that changes nothing writes nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::api::{
    GatewayClassStatus, GatewayStatus, GatewayStatusAddress, ListenerStatus, ParentReference,
    RouteParentStatus, RouteStatus, GROUP,
};
use super::attach::{ClassVerdict, Cond, GatewayVerdict, RouteVerdict, CONTROLLER};

/// One condition of `type_` from a verdict, for an object of
/// `generation`; the transition time of the condition of the same type in
/// `have` is kept when its status is the same.
pub fn condition(
    type_: &str,
    verdict: &Cond,
    generation: Option<i64>,
    have: &[Condition],
    now: Timestamp,
) -> Condition {
    let status = if verdict.status { "True" } else { "False" };
    let since = have
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: verdict.reason.into(),
        message: verdict.message.clone(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// Whether two condition lists say the same, transition times aside.
pub fn same(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            (
                &x.type_,
                &x.status,
                &x.reason,
                &x.message,
                x.observed_generation,
            ) == (
                &y.type_,
                &y.status,
                &y.reason,
                &y.message,
                y.observed_generation,
            )
        })
}

/// Our GatewayClass's status: `Accepted`, and the features supported
/// (sorted by name, as the spec asks).
pub fn class_status(v: &ClassVerdict, features: &[&str], now: Timestamp) -> GatewayClassStatus {
    let have = v
        .class
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = v.class.metadata.generation;
    let mut names: Vec<&str> = features.to_vec();
    names.sort_unstable();
    GatewayClassStatus {
        conditions: vec![condition("Accepted", &v.accepted, generation, have, now)],
        supported_features: names
            .into_iter()
            .map(|name| super::api::SupportedFeature { name: name.into() })
            .collect(),
    }
}

/// A Gateway's status: the addresses it is reached at (the published
/// Service's), `Accepted` and `Programmed` (not without an address), and
/// each listener's.
pub fn gateway_status(
    v: &GatewayVerdict,
    addresses: &[GatewayStatusAddress],
    now: Timestamp,
) -> GatewayStatus {
    let old = v.gateway.status.as_ref();
    let have = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let generation = v.gateway.metadata.generation;
    let programmed = if v.programmed.status && addresses.is_empty() {
        &Cond {
            status: false,
            reason: "AddressNotAssigned",
            message: "the published Service has no LoadBalancer address yet".into(),
        }
    } else {
        &v.programmed
    };
    let listeners = v
        .listeners
        .iter()
        .map(|l| {
            let have = old
                .and_then(|s| s.listeners.iter().find(|h| h.name == l.name))
                .map(|h| h.conditions.as_slice())
                .unwrap_or_default();
            let c = |t: &str, verdict: &Cond| condition(t, verdict, generation, have, now);
            ListenerStatus {
                name: l.name.clone(),
                supported_kinds: l.supported_kinds.clone(),
                attached_routes: l.attached_routes,
                conditions: vec![
                    c("Accepted", &l.accepted),
                    c("Programmed", &l.programmed),
                    c("ResolvedRefs", &l.resolved_refs),
                    c("Conflicted", &l.conflicted),
                ],
            }
        })
        .collect();
    GatewayStatus {
        addresses: addresses.to_vec(),
        conditions: vec![
            condition("Accepted", &v.accepted, generation, have, now),
            condition("Programmed", programmed, generation, have, now),
        ],
        listeners,
    }
}

/// A route's status: our entry per parent (its reference as given, with
/// the group and kind spelled out), after the entries of other
/// controllers, which are kept as they are.
pub fn route_status(v: &RouteVerdict, now: Timestamp) -> RouteStatus {
    let old = v.route.status.as_ref();
    let generation = v.route.metadata.generation;
    let mut parents: Vec<RouteParentStatus> = old
        .map(|s| {
            s.parents
                .iter()
                .filter(|p| p.controller_name != CONTROLLER)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for p in &v.parents {
        let parent_ref = ParentReference {
            group: Some(GROUP.into()),
            kind: Some("Gateway".into()),
            ..p.parent_ref.clone()
        };
        let have = old
            .and_then(|s| {
                s.parents
                    .iter()
                    .find(|h| h.controller_name == CONTROLLER && h.parent_ref == parent_ref)
            })
            .map(|h| h.conditions.as_slice())
            .unwrap_or_default();
        parents.push(RouteParentStatus {
            parent_ref,
            controller_name: CONTROLLER.into(),
            conditions: vec![
                condition("Accepted", &p.accepted, generation, have, now),
                condition("ResolvedRefs", &p.resolved_refs, generation, have, now),
            ],
        });
    }
    RouteStatus { parents }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::api::{Gateway, HttpRoute};
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_transition_time_moves_only_when_the_status_flips() {
        let then = t("2026-01-01T00:00:00Z");
        let now = t("2026-12-04T00:00:00Z");
        let yes = Cond {
            status: true,
            reason: "Accepted",
            message: String::new(),
        };
        let first = condition("Accepted", &yes, Some(1), &[], then);
        assert_eq!(
            (first.status.as_str(), first.observed_generation),
            ("True", Some(1))
        );
        let again = condition("Accepted", &yes, Some(2), std::slice::from_ref(&first), now);
        assert_eq!(again.last_transition_time, Time(then));
        assert_eq!(again.observed_generation, Some(2));
        assert!(!same(
            std::slice::from_ref(&first),
            std::slice::from_ref(&again)
        ));
        let no = Cond {
            status: false,
            reason: "NoMatchingParent",
            message: "x".into(),
        };
        let flipped = condition("Accepted", &no, Some(2), &[again], now);
        assert_eq!(
            (flipped.status.as_str(), flipped.last_transition_time),
            ("False", Time(now))
        );
    }

    #[test]
    fn a_gateway_without_an_address_is_not_programmed() {
        let mut g: Gateway = serde_yaml::from_str(
            "metadata: {name: g, namespace: infra, generation: 3}\nspec: {gatewayClassName: sluice, listeners: [{name: http, port: 80, protocol: HTTP}]}",
        )
        .unwrap();
        g.metadata.generation = Some(3);
        let v = GatewayVerdict {
            gateway: Arc::new(g),
            listeners: Vec::new(),
            accepted: Cond {
                status: true,
                reason: "Accepted",
                message: String::new(),
            },
            programmed: Cond {
                status: true,
                reason: "Programmed",
                message: String::new(),
            },
        };
        let now = t("2026-12-04T00:00:00Z");
        let s = gateway_status(&v, &[], now);
        let programmed = &s.conditions[1];
        assert_eq!(
            (programmed.status.as_str(), programmed.reason.as_str()),
            ("False", "AddressNotAssigned")
        );
        let address = GatewayStatusAddress {
            type_: "IPAddress".into(),
            value: "203.0.113.7".into(),
        };
        let s = gateway_status(&v, std::slice::from_ref(&address), now);
        assert_eq!(s.conditions[1].status, "True");
        assert_eq!(s.conditions[1].observed_generation, Some(3));
        assert_eq!(s.addresses, vec![address]);
    }

    /// Other controllers' entries stay; ours are replaced, with the
    /// parent's group and kind spelled out.
    #[test]
    fn a_route_s_other_parents_are_kept() {
        let route: HttpRoute = serde_yaml::from_str(
            r#"
metadata: {name: r, namespace: infra, generation: 2}
spec: {parentRefs: [{name: g}]}
status:
  parents:
  - parentRef: {name: elsewhere}
    controllerName: example.com/other
    conditions: []
  - parentRef: {group: gateway.networking.k8s.io, kind: Gateway, name: g}
    controllerName: sluice.dev/gateway-controller
    conditions:
    - {type: Accepted, status: "True", reason: Accepted, message: "", observedGeneration: 1, lastTransitionTime: "2026-01-01T00:00:00Z"}
"#,
        )
        .unwrap();
        let v = RouteVerdict {
            route: Arc::new(route),
            parents: vec![super::super::attach::ParentVerdict {
                parent_ref: ParentReference {
                    name: "g".into(),
                    ..Default::default()
                },
                gateway: 0,
                accepted: Cond {
                    status: true,
                    reason: "Accepted",
                    message: String::new(),
                },
                resolved_refs: Cond {
                    status: false,
                    reason: "BackendNotFound",
                    message: "backendRef infra/x: no such Service".into(),
                },
                attached: Vec::new(),
            }],
        };
        let s = route_status(&v, t("2026-12-04T00:00:00Z"));
        assert_eq!(s.parents.len(), 2);
        assert_eq!(s.parents[0].controller_name, "example.com/other");
        let ours = &s.parents[1];
        assert_eq!(ours.parent_ref.group.as_deref(), Some(GROUP));
        assert_eq!(ours.parent_ref.kind.as_deref(), Some("Gateway"));
        let accepted = &ours.conditions[0];
        assert_eq!(accepted.observed_generation, Some(2));
        assert_eq!(
            accepted.last_transition_time,
            Time(t("2026-01-01T00:00:00Z"))
        );
        assert_eq!(ours.conditions[1].reason, "BackendNotFound");
    }
}
