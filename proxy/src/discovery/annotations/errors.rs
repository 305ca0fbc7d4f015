//! ingress-nginx's error-page annotations: `custom-http-errors` (the
//! answer codes replaced by the default backend's answer) and
//! `default-backend` (the Service, in the Ingress's namespace, that gives
//! those answers, and that serves the Ingress's paths whose own Service
//! has no endpoints). The routes are made in `translate/routes.rs`.

use crate::spec::StatusSet;

/// What an Ingress's error-page annotations say.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ErrorNotes {
    /// `custom-http-errors`: set (even empty) replaces the ConfigMap's
    /// codes for this Ingress, as a location's `error_page` replaces the
    /// ones nginx would inherit.
    pub codes: Option<StatusSet>,
    /// `default-backend`: a Service name in the Ingress's namespace.
    pub backend: Option<String>,
}

/// Reads one `nginx.ingress.kubernetes.io/NAME` annotation if it is one of
/// these; `false` when it is not one.
pub(super) fn parse(
    notes: &mut ErrorNotes,
    key: &str,
    name: &str,
    value: &str,
    problems: &mut Vec<String>,
) -> bool {
    match name {
        "custom-http-errors" => match StatusSet::parse_list(value) {
            // ingress-nginx's annotation takes 4xx and 5xx codes only.
            Ok(set) if set.iter().all(|c| c >= 400) => notes.codes = Some(set),
            Ok(set) => problems.push(format!(
                "{key}: {} is not a 4xx or 5xx code; no error page is served",
                set.iter().find(|c| *c < 400).unwrap_or_default()
            )),
            Err(e) => problems.push(format!("{key}: {e}; no error page is served")),
        },
        "default-backend" => {
            let v = value.trim();
            if service_name(v) {
                notes.backend = Some(v.to_owned());
            } else {
                problems.push(format!(
                    "{key}: {v:?} is not a Service name (of the Ingress's namespace)"
                ));
            }
        }
        _ => return false,
    }
    true
}

/// A Service name: an RFC 1035 label (lower-case letters, digits and `-`,
/// starting with a letter, at most 63 bytes).
fn service_name(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && !v.ends_with('-')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::super::read_family;
    use super::*;

    #[test]
    fn codes_and_the_backend_service() {
        let (n, problems) = read_family(
            parse,
            &[
                ("custom-http-errors", "404, 503"),
                ("default-backend", "error-pages"),
            ],
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(n.codes.unwrap().iter().collect::<Vec<_>>(), [404, 503]);
        assert_eq!(n.backend.as_deref(), Some("error-pages"));
    }

    #[test]
    fn bad_values_are_reported_and_change_nothing() {
        let (n, problems) = read_family(
            parse,
            &[
                ("custom-http-errors", "404,abc"),
                ("default-backend", "other/errors"),
            ],
        );
        assert_eq!(n, ErrorNotes::default());
        assert!(problems[0].contains("\"abc\" is not an HTTP status code"));
        assert!(problems[1].contains("is not a Service name"));
        let (n, problems) = read_family(parse, &[("custom-http-errors", "302")]);
        assert!(n.codes.is_none());
        assert!(
            problems[0].contains("302 is not a 4xx or 5xx"),
            "{problems:?}"
        );
    }
}
