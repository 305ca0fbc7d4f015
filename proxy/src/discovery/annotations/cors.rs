//! ingress-nginx's CORS annotations (`enable-cors`, `cors-allow-origin`,
//! `-methods`, `-headers`, `-credentials`, `cors-expose-headers`,
//! `cors-max-age`), parsed with ingress-nginx's validation and defaults
//! (`internal/ingress/annotations/cors/main.go`): a value it would not
//! take falls back to the default, as it does, and is reported.

use std::sync::{Arc, LazyLock};

use http::HeaderValue;

use super::external_auth::go_bool;
use super::AS_INGRESS_NGINX;
use crate::spec::{Cors, OriginPattern, Origins, CORS_HEADERS, CORS_MAX_AGE, CORS_METHODS};

/// What an Ingress's CORS annotations say.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CorsNotes {
    enabled: bool,
    /// `None`: `*`.
    origins: Option<Origins>,
    methods: Option<HeaderValue>,
    headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    /// `None`: true.
    credentials: Option<bool>,
    max_age: Option<i64>,
}

fn re(s: &str) -> regex::Regex {
    regex::Regex::new(s).expect("valid")
}

/// ingress-nginx's `corsOriginRegexValidator`, checked on the whole list
/// with its spaces removed.
static ORIGIN_LIST: LazyLock<regex::Regex> =
    LazyLock::new(|| re(r"^((((([a-z]+://)?(\*\.)?[A-Za-z0-9\-.]*(:\d+)?,?)|null)+)|\*)?$"));
/// `parser.HeadersVariable`.
static HEADERS: LazyLock<regex::Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9\-_, ]*$"));
/// `corsMethodsRegex`.
static METHODS: LazyLock<regex::Regex> = LazyLock::new(|| re(r"^([A-Za-z]+,?\s?)+$"));
/// `corsExposeHeadersRegex`.
static EXPOSE: LazyLock<regex::Regex> = LazyLock::new(|| re(r"^(([A-Za-z0-9\-_]+|\*),?\s?)+$"));

/// Reads one `nginx.ingress.kubernetes.io/NAME` annotation if it is a
/// CORS one; `false` when it is not.
pub(super) fn parse(
    notes: &mut CorsNotes,
    key: &str,
    name: &str,
    value: &str,
    problems: &mut Vec<String>,
) -> bool {
    let v = value.trim();
    let header = |re: &regex::Regex| {
        (!v.is_empty() && re.is_match(v))
            .then(|| HeaderValue::from_str(v).ok())
            .flatten()
    };
    match name {
        "enable-cors" => match go_bool(v) {
            Some(b) => notes.enabled = b,
            None => problems.push(format!("{key}: {v:?} is not true or false; CORS is off{AS_INGRESS_NGINX}")),
        },
        "cors-allow-origin" => notes.origins = Some(origins(key, v, problems)),
        "cors-allow-methods" => {
            notes.methods = header(&METHODS);
            if notes.methods.is_none() {
                problems.push(format!(
                    "{key}: {v:?} is not a list of methods; the default is used{AS_INGRESS_NGINX}"
                ));
            }
        }
        "cors-allow-headers" => {
            notes.headers = header(&HEADERS);
            if notes.headers.is_none() {
                problems.push(format!(
                    "{key}: {v:?} is not a list of headers; the default is used{AS_INGRESS_NGINX}"
                ));
            }
        }
        "cors-expose-headers" => {
            notes.expose = header(&EXPOSE);
            if notes.expose.is_none() {
                problems.push(format!(
                    "{key}: {v:?} is not a list of headers; none are exposed{AS_INGRESS_NGINX}"
                ));
            }
        }
        "cors-allow-credentials" => match go_bool(v) {
            Some(b) => notes.credentials = Some(b),
            None => problems.push(format!("{key}: {v:?} is not true or false; true is used{AS_INGRESS_NGINX}")),
        },
        "cors-max-age" => match v.parse::<i64>() {
            Ok(n) => notes.max_age = Some(n),
            Err(_) => problems.push(format!(
                "{key}: {v:?} is not a whole number of seconds; {CORS_MAX_AGE} is used{AS_INGRESS_NGINX}"
            )),
        },
        _ => return false,
    }
    true
}

/// `cors-allow-origin`: `*` when the list as a whole is not one
/// ingress-nginx takes; otherwise each origin it takes (the ones it skips
/// are reported), `*` ending the list.
fn origins(key: &str, v: &str, problems: &mut Vec<String>) -> Origins {
    if !ORIGIN_LIST.is_match(&v.replace(' ', "")) {
        problems.push(format!(
            "{key}: {v:?} is not a list of origins; * is used{AS_INGRESS_NGINX}"
        ));
        return Origins::Any;
    }
    let mut list = Vec::new();
    for o in v.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if o == "*" {
            return Origins::Any;
        }
        match OriginPattern::parse(o) {
            Some(p) => list.push(p),
            None => problems.push(format!(
                "{key}: {o:?} is not an origin; skipped{AS_INGRESS_NGINX}"
            )),
        }
    }
    Origins::List(list)
}

impl CorsNotes {
    /// The route's CORS answers; `None` unless `enable-cors` is true.
    pub fn spec(&self) -> Option<Arc<Cors>> {
        if !self.enabled {
            return None;
        }
        let max_age = self.max_age.unwrap_or(CORS_MAX_AGE);
        Some(Arc::new(Cors {
            origins: self.origins.clone().unwrap_or(Origins::Any),
            methods: self
                .methods
                .clone()
                .unwrap_or(HeaderValue::from_static(CORS_METHODS)),
            headers: self
                .headers
                .clone()
                .unwrap_or(HeaderValue::from_static(CORS_HEADERS)),
            expose: self.expose.clone(),
            credentials: self.credentials.unwrap_or(true),
            max_age: HeaderValue::from(max_age),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notes(pairs: &[(&str, &str)]) -> (CorsNotes, Vec<String>) {
        super::super::read_family(parse, pairs)
    }

    #[test]
    fn defaults_are_ingress_nginx_s() {
        let (n, problems) = notes(&[("enable-cors", "true")]);
        assert!(problems.is_empty());
        let c = n.spec().unwrap();
        assert_eq!(c.origins, Origins::Any);
        assert_eq!(c.methods, "GET, PUT, POST, DELETE, PATCH, OPTIONS");
        assert_eq!(c.headers, CORS_HEADERS);
        assert_eq!(c.expose, None);
        assert!(c.credentials);
        assert_eq!(c.max_age, "1728000");
        assert_eq!(notes(&[("cors-max-age", "5")]).0.spec(), None);
    }

    #[test]
    fn values_and_fallbacks() {
        let (n, problems) = notes(&[
            ("enable-cors", "true"),
            (
                "cors-allow-origin",
                "https://shop.example.com, https://*.example.org:8443, example.net",
            ),
            ("cors-allow-methods", "GET, POST"),
            ("cors-allow-headers", "X-Custom, Content-Type"),
            ("cors-expose-headers", "X-Total, *"),
            ("cors-allow-credentials", "false"),
            ("cors-max-age", "600"),
        ]);
        // example.net has no scheme: skipped, as ingress-nginx skips it.
        assert_eq!(problems.len(), 1, "{problems:?}");
        let c = n.spec().unwrap();
        let Origins::List(list) = &c.origins else {
            panic!("a list");
        };
        assert_eq!(list.len(), 2);
        assert_eq!(c.methods, "GET, POST");
        assert_eq!(c.expose.as_ref().unwrap(), "X-Total, *");
        assert!(!c.credentials);
        assert_eq!(c.max_age, "600");
        let (n, problems) = notes(&[
            ("enable-cors", "true"),
            ("cors-allow-origin", "https://a.com/path"),
            ("cors-allow-methods", "GET;DROP"),
        ]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        let c = n.spec().unwrap();
        assert_eq!(c.origins, Origins::Any);
        assert_eq!(c.methods, CORS_METHODS);
        let (n, _) = notes(&[
            ("enable-cors", "true"),
            ("cors-allow-origin", "https://a.com, *"),
        ]);
        assert_eq!(n.spec().unwrap().origins, Origins::Any);
    }
}
