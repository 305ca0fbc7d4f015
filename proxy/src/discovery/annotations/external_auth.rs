//! ingress-nginx's external authentication annotations (`auth-url` and
//! its family, `internal/ingress/annotations/authreq`), parsed into
//! typed values: URL templates with their nginx variables resolved to
//! typed pieces, the method, the headers to copy. Nothing happens without
//! `auth-url`, as in ingress-nginx. What ingress-nginx refuses the
//! location for (a bad URL, method or header list) denies the route (503);
//! what it only warns about is reported and left out. `auth-snippet` is
//! refused with the other snippets; the cache and keep-alive annotations
//! are tuning: the subrequest's connections are pooled always, and its
//! answers are not cached.

use std::sync::{Arc, LazyLock};

use http::{HeaderName, HeaderValue, Method};

use crate::spec::{signin_template, AuthUrl, ExternalAuth, Template};

/// What an Ingress's `auth-*` annotations (other than basic auth's) say.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExternalAuthNotes {
    /// `auth-url`; `None` without (or when it could not be read, then
    /// `denied` says why).
    url: Option<AuthUrl>,
    /// `auth-url` was given.
    asked: bool,
    method: Option<Method>,
    /// `auth-signin` as written (the redirect parameter is appended when
    /// the route is made, once `auth-signin-redirect-param` is known).
    signin: Option<String>,
    redirect_param: Option<String>,
    response_headers: Vec<HeaderName>,
    request_redirect: Option<HeaderValue>,
    always_set_cookie: bool,
    /// Why the route must answer 503 instead of serving unauthenticated.
    denied: Option<String>,
}

/// ingress-nginx's `methodsRegex`.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
];

/// ingress-nginx's `URLIsValidRegex` characters (no `$`: not a template).
static URL_CHARS: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[\w\-.:/?&=%~#+@!*',;()\[\]]*$").expect("valid"));

/// Reads one `nginx.ingress.kubernetes.io/NAME` annotation if it is an
/// external-auth one; `false` when it is not.
pub(super) fn parse(
    notes: &mut ExternalAuthNotes,
    key: &str,
    name: &str,
    value: &str,
    problems: &mut Vec<String>,
) -> bool {
    let v = value.trim();
    match name {
        "auth-url" => {
            notes.asked = true;
            match AuthUrl::parse(v) {
                Ok(u) => notes.url = Some(u),
                Err(e) => deny(notes, problems, format!("{key}: {v:?}: {e}")),
            }
        }
        "auth-method" => match METHODS.iter().find(|m| **m == v) {
            Some(m) => notes.method = Method::from_bytes(m.as_bytes()).ok(),
            None => deny(
                notes,
                problems,
                format!("{key}: {v:?} is not an HTTP method"),
            ),
        },
        "auth-signin" => match Template::parse(&signin_template(v, "rd")) {
            Ok(_) => notes.signin = Some(v.to_owned()),
            Err(e) => problems.push(format!("{key}: {v:?}: {e}; ignored")),
        },
        "auth-signin-redirect-param" => {
            if !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
            {
                notes.redirect_param = Some(v.to_owned());
            } else {
                problems.push(format!(
                    "{key}: {v:?} is not a query parameter name; ignored"
                ));
            }
        }
        "auth-response-headers" => {
            let mut names = Vec::new();
            for h in v.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                let ok = h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                match HeaderName::from_bytes(h.as_bytes()) {
                    Ok(n) if ok => names.push(n),
                    _ => {
                        return {
                            deny(
                                notes,
                                problems,
                                format!("{key}: {h:?} is not a header name"),
                            );
                            true
                        }
                    }
                }
            }
            notes.response_headers = names;
        }
        "auth-request-redirect" => match HeaderValue::from_str(v) {
            Ok(h) if URL_CHARS.is_match(v) => notes.request_redirect = Some(h),
            _ => deny(notes, problems, format!("{key}: {v:?} is not a URL")),
        },
        "auth-always-set-cookie" => match go_bool(v) {
            Some(b) => notes.always_set_cookie = b,
            None => problems.push(format!("{key}: {v:?} is not true or false")),
        },
        "auth-cache-key" | "auth-cache-duration" => problems.push(format!(
            "{key}: auth answers are not cached by sluice: every request asks the auth service"
        )),
        // The subrequest's connections are pooled (kept alive) always.
        "auth-keepalive" | "auth-keepalive-requests" | "auth-keepalive-timeout" => {
            if v.parse::<i64>().is_err() {
                problems.push(format!("{key}: {v:?} is not a whole number"));
            }
        }
        "auth-keepalive-share-vars" => {
            if go_bool(v).is_none() {
                problems.push(format!("{key}: {v:?} is not true or false"));
            }
        }
        "auth-proxy-set-headers" => problems.push(format!(
            "{key}: headers from a ConfigMap are not sent to the auth service by sluice; ignored"
        )),
        _ => return false,
    }
    true
}

/// Go's `strconv.ParseBool`, which ingress-nginx reads booleans with.
pub(super) fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn deny(notes: &mut ExternalAuthNotes, problems: &mut Vec<String>, why: String) {
    problems.push(format!("{why}; a route with auth-url answers 503"));
    notes.denied.get_or_insert(why);
}

impl ExternalAuthNotes {
    /// The route's external authentication: `Ok(None)` without
    /// `auth-url`, `Err` (why) when it was asked for and cannot be had.
    pub fn spec(&self) -> Result<Option<Arc<ExternalAuth>>, String> {
        if !self.asked {
            return Ok(None);
        }
        if let Some(why) = &self.denied {
            return Err(why.clone());
        }
        let Some(url) = self.url.clone() else {
            return Err("auth-url cannot be read".into());
        };
        let param = self.redirect_param.as_deref().unwrap_or("rd");
        let signin = self
            .signin
            .as_deref()
            .and_then(|s| Template::parse(&signin_template(s, param)).ok());
        Ok(Some(Arc::new(ExternalAuth {
            url,
            method: self.method.clone(),
            signin,
            response_headers: self.response_headers.clone(),
            request_redirect: self.request_redirect.clone(),
            always_set_cookie: self.always_set_cookie,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notes(pairs: &[(&str, &str)]) -> (ExternalAuthNotes, Vec<String>) {
        super::super::read_family(parse, pairs)
    }

    #[test]
    fn oauth2_proxy_setup() {
        let (n, problems) = notes(&[
            ("auth-url", "https://$host/oauth2/auth"),
            (
                "auth-signin",
                "https://$host/oauth2/start?rd=$escaped_request_uri",
            ),
            (
                "auth-response-headers",
                "X-Auth-Request-User, X-Auth-Request-Email",
            ),
            ("auth-keepalive", "10"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let a = n.spec().unwrap().unwrap();
        assert!(matches!(a.url, AuthUrl::Template(_)));
        assert_eq!(a.method, None);
        assert_eq!(a.response_headers.len(), 2);
        assert_eq!(a.response_headers[1], "x-auth-request-email");
        assert!(a.signin.is_some());
    }

    #[test]
    fn nothing_without_auth_url_and_denial_with_bad_values() {
        let (n, _) = notes(&[("auth-signin", "https://x/start")]);
        assert_eq!(n.spec(), Ok(None));
        let (n, problems) = notes(&[
            ("auth-url", "http://auth.svc/check"),
            ("auth-method", "FETCH"),
        ]);
        assert!(n.spec().unwrap_err().contains("FETCH"), "{problems:?}");
        let (n, _) = notes(&[
            ("auth-url", "http://auth.svc/check"),
            ("auth-response-headers", "X-User, Bad Header"),
        ]);
        assert!(n.spec().is_err());
        let (n, _) = notes(&[("auth-url", "auth.svc/check")]);
        assert!(n.spec().is_err());
        // A sign-in URL that cannot be read is left out, as ingress-nginx
        // leaves it (a warning), the auth itself stays.
        let (n, problems) = notes(&[
            ("auth-url", "http://auth.svc/check"),
            ("auth-signin", "https://$nope/start"),
            ("auth-method", "POST"),
        ]);
        assert_eq!(problems.len(), 1);
        let a = n.spec().unwrap().unwrap();
        assert!(a.signin.is_none());
        assert_eq!(a.method, Some(Method::POST));
    }
}
