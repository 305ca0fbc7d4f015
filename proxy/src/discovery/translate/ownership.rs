//! Which Ingresses are ours: the class an Ingress names (by IngressClass
//! or the legacy annotation), or, naming none, whether our class is the
//! cluster's default. A cluster may run several ingress controllers, each
//! serving its own class; what is not ours is left to them.

use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use super::{value_of, TranslateSettings};

/// The controller name an IngressClass must carry to be ours, unless
/// `--controller-name` says otherwise.
pub const CONTROLLER: &str = "sluice.dev/ingress-controller";
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// True when `ing` belongs to the class we serve.
///
/// As ingress-nginx reads it: the legacy `kubernetes.io/ingress.class`
/// annotation first (its value must be our class name); then
/// `spec.ingressClassName`, which must name our class, and that
/// IngressClass must exist with our controller; then, with no class at
/// all, only with `--watch-ingress-without-class` or when our IngressClass
/// is the cluster's default.
pub fn owned(ing: &Ingress, classes: &[Arc<IngressClass>], settings: &TranslateSettings) -> bool {
    if let Some(name) = value_of(&ing.metadata.annotations, LEGACY_CLASS_ANNOTATION) {
        return name == settings.class;
    }
    let named = ing
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    match named {
        Some(name) => {
            name == settings.class
                && classes.iter().any(|c| {
                    c.metadata.name.as_deref() == Some(name) && is_ours(c, &settings.controller)
                })
        }
        None => {
            settings.watch_without_class
                || classes.iter().any(|c| {
                    c.metadata.name.as_deref() == Some(settings.class.as_str())
                        && is_ours(c, &settings.controller)
                        && value_of(&c.metadata.annotations, DEFAULT_CLASS_ANNOTATION)
                            == Some("true")
                })
        }
    }
}

/// True when the IngressClass names our controller.
fn is_ours(c: &IngressClass, controller: &str) -> bool {
    c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(controller)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::translate::fixtures::*;

    #[test]
    fn classes_decide_what_is_ours() {
        let with_class = |c: Option<&str>| match c {
            Some(c) => ingress("n", "x").class(c),
            None => ingress("n", "x"),
        };
        let legacy = ingress("n", "x").with_annotation(LEGACY_CLASS_ANNOTATION, "sluice");
        let s = settings();
        let ours: [Arc<IngressClass>; 1] = [ingress_class("sluice", CONTROLLER).into()];
        assert!(owned(&with_class(Some("sluice")), &ours, &s));
        // A class name with no IngressClass behind it is not enough.
        assert!(!owned(&with_class(Some("sluice")), &[], &s));
        assert!(owned(&legacy, &ours, &s));
        // The legacy annotation is read first, as ingress-nginx does.
        let both = legacy
            .clone()
            .with_annotation(LEGACY_CLASS_ANNOTATION, "nginx")
            .class("sluice");
        assert!(!owned(&both, &ours, &s));
        assert!(!owned(&with_class(Some("nginx")), &ours, &s));
        assert!(!owned(&with_class(None), &ours, &s));
        // A class of that name run by another controller is not ours.
        let theirs = [ingress_class("sluice", "k8s.io/ingress-nginx").into()];
        assert!(!owned(&with_class(Some("sluice")), &theirs, &s));
        // No class: ours when our class is the default, or when told so.
        let default =
            ingress_class("sluice", CONTROLLER).with_annotation(DEFAULT_CLASS_ANNOTATION, "true");
        assert!(owned(&with_class(None), &[default.into()], &s));
        let without = TranslateSettings {
            watch_without_class: true,
            ..settings()
        };
        assert!(owned(&with_class(None), &ours, &without));
    }
}
