//! External authentication as data (ingress-nginx's `auth-url` family):
//! where the subrequest goes, with which method, which of its answer's
//! headers go upstream, and where a 401 sends the browser instead. The
//! subrequest itself is [`crate::http`]'s; what its answer means is
//! [`crate::forward`]'s.

use http::{HeaderName, HeaderValue, Method};

use super::nginx_vars::{Template, TemplateError, Vars};

/// What a route asks of an authentication service before forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAuth {
    /// `auth-url`.
    pub url: AuthUrl,
    /// `auth-method`: `None` sends the client's own method (nginx's
    /// subrequest keeps it).
    pub method: Option<Method>,
    /// `auth-signin`, with the redirect parameter already appended as
    /// ingress-nginx appends it ([`signin_template`]): a 401 becomes a
    /// 302 to it.
    pub signin: Option<Template>,
    /// `auth-response-headers`: copied from the service's 2xx answer onto
    /// the upstream request (the client's own values of them are dropped).
    pub response_headers: Vec<HeaderName>,
    /// `auth-request-redirect`: X-Auth-Request-Redirect instead of the
    /// request URI.
    pub request_redirect: Option<HeaderValue>,
    /// `auth-always-set-cookie`: the service's Set-Cookie reaches the
    /// client whatever the status, not only on success and redirects.
    pub always_set_cookie: bool,
}

/// The auth service's URL, parsed once: a fixed URI, or a template
/// rendered per request (`https://$host/oauth2/auth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthUrl {
    Fixed {
        uri: http::Uri,
        /// The Host sent: the URL's host without its port, as
        /// ingress-nginx sets it (`proxy_set_header Host <host>`).
        host: HeaderValue,
    },
    Template(Template),
}

/// Why an `auth-url` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthUrlError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("it is not an http:// or https:// URL")]
    Scheme,
    #[error("it is not a URL")]
    Invalid,
}

impl AuthUrl {
    pub fn parse(v: &str) -> Result<AuthUrl, AuthUrlError> {
        let lower = v.get(..8).unwrap_or(v).to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(AuthUrlError::Scheme);
        }
        let t = Template::parse(v)?;
        match t.as_literal() {
            Some(text) => {
                let (uri, host) = target(text).ok_or(AuthUrlError::Invalid)?;
                Ok(AuthUrl::Fixed { uri, host })
            }
            None => Ok(AuthUrl::Template(t)),
        }
    }

    /// The URI and Host for one request; `None` when the rendered URL is
    /// not one.
    pub fn resolve(&self, vars: &Vars<'_>) -> Option<(http::Uri, HeaderValue)> {
        match self {
            AuthUrl::Fixed { uri, host } => Some((uri.clone(), host.clone())),
            AuthUrl::Template(t) => target(&t.render(vars)),
        }
    }
}

/// An absolute http(s) URI and its host without the port.
fn target(text: &str) -> Option<(http::Uri, HeaderValue)> {
    let uri: http::Uri = text.parse().ok()?;
    let scheme = uri.scheme_str()?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let host = HeaderValue::from_str(uri.host()?).ok()?;
    Some((uri, host))
}

/// ingress-nginx's `buildAuthSignURL`: the sign-in URL as written when its
/// query already names `param` (oauth2-proxy's `?rd=$escaped_request_uri`),
/// else with `param=$pass_access_scheme://$http_host$escaped_request_uri`
/// appended (`?` when it has no query, `&` when it has one).
pub fn signin_template(url: &str, param: &str) -> String {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    let pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let rd = "$pass_access_scheme://$http_host$escaped_request_uri";
    if pairs.is_empty() {
        format!("{url}?{param}={rd}")
    } else if pairs
        .iter()
        .find(|(k, _)| *k == param)
        .is_some_and(|(_, v)| !v.is_empty())
    {
        url.to_owned()
    } else {
        format!("{url}&{param}={rd}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signin_urls_as_ingress_nginx_builds_them() {
        let rd = "$pass_access_scheme://$http_host$escaped_request_uri";
        assert_eq!(
            signin_template("https://$host/oauth2/start?rd=$escaped_request_uri", "rd"),
            "https://$host/oauth2/start?rd=$escaped_request_uri"
        );
        assert_eq!(
            signin_template("https://auth.example.com/start", "rd"),
            format!("https://auth.example.com/start?rd={rd}")
        );
        assert_eq!(
            signin_template("https://auth.example.com/start?x=1", "rd"),
            format!("https://auth.example.com/start?x=1&rd={rd}")
        );
        assert_eq!(
            signin_template("https://auth.example.com/start?x=1", "return_to"),
            format!("https://auth.example.com/start?x=1&return_to={rd}")
        );
    }

    #[test]
    fn auth_urls() {
        let AuthUrl::Fixed { uri, host } =
            AuthUrl::parse("http://oauth2-proxy.auth.svc:4180/oauth2/auth").unwrap()
        else {
            panic!("a URL without variables is fixed");
        };
        assert_eq!(uri.port_u16(), Some(4180));
        assert_eq!(host, "oauth2-proxy.auth.svc");
        assert!(matches!(
            AuthUrl::parse("https://$host/oauth2/auth"),
            Ok(AuthUrl::Template(_))
        ));
        assert_eq!(AuthUrl::parse("ftp://x/"), Err(AuthUrlError::Scheme));
        assert_eq!(AuthUrl::parse("http://a b/"), Err(AuthUrlError::Invalid));
        assert!(matches!(
            AuthUrl::parse("http://$nope/"),
            Err(AuthUrlError::Template(_))
        ));
    }
}
