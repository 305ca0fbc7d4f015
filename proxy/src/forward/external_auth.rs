//! What an authentication service's answer means for the request
//! (ingress-nginx's `auth-url`, nginx's `auth_request`): a 2xx lets it
//! through with the headers `auth-response-headers` names copied onto it,
//! a 401 or 403 is the client's answer (a 401 becomes a 302 to
//! `auth-signin` when there is one, as ingress-nginx's
//! `error_page 401 = @auth_signin` makes it), anything else is a 500.
//! The service's Set-Cookie reaches the client as ingress-nginx's
//! `add_header Set-Cookie $auth_cookie` lets it: on the statuses nginx's
//! `add_header` applies to, or on every one with `auth-always-set-cookie`.
//!
//! No I/O here: the subrequest is [`crate::http`]'s.

use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::Answer;
use crate::spec::{ExternalAuth, Vars};

/// A request the service let through.
#[derive(Debug, Default)]
pub struct Granted {
    /// The named headers and the values the service gave them (none: the
    /// header is removed from the request, so a client cannot claim it).
    headers: Vec<(HeaderName, Vec<HeaderValue>)>,
    /// The service's Set-Cookie lines, for the client's answer.
    pub cookies: Cookies,
}

/// A request the service did not let through: the client's answer, and
/// the service's Set-Cookie lines to go with it.
#[derive(Debug)]
pub struct Denied {
    pub answer: Answer,
    pub cookies: Cookies,
}

/// The service's Set-Cookie lines, and whether they go on every status.
#[derive(Debug, Default)]
pub struct Cookies {
    lines: Vec<HeaderValue>,
    always: bool,
}

impl Cookies {
    /// Adds the lines to an answer with `status`: nginx's `add_header`
    /// (without `always`) sets headers on 200, 201, 204, 206, 301, 302,
    /// 303, 304, 307 and 308 only.
    pub fn add_to(self, status: StatusCode, headers: &mut HeaderMap) {
        let applies = matches!(
            status.as_u16(),
            200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
        );
        if self.always || applies {
            for c in self.lines {
                headers.append(header::SET_COOKIE, c);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

impl Granted {
    /// Puts the copied headers on the upstream request, in place of the
    /// client's.
    pub fn apply(&mut self, headers: &mut HeaderMap) {
        for (name, values) in self.headers.drain(..) {
            headers.remove(&name);
            for v in values {
                headers.append(name.clone(), v);
            }
        }
    }
}

/// What the service's answer (`status`, `headers`) means. `vars` fill in
/// the sign-in URL.
pub fn verdict(
    auth: &ExternalAuth,
    status: StatusCode,
    headers: &HeaderMap,
    vars: &Vars<'_>,
) -> Result<Granted, Denied> {
    let cookies = Cookies {
        lines: headers
            .get_all(header::SET_COOKIE)
            .iter()
            .cloned()
            .collect(),
        always: auth.always_set_cookie,
    };
    if status.is_success() {
        let copied = auth
            .response_headers
            .iter()
            .map(|n| (n.clone(), headers.get_all(n).iter().cloned().collect()))
            .collect();
        return Ok(Granted {
            headers: copied,
            cookies,
        });
    }
    let answer = match status {
        StatusCode::UNAUTHORIZED => match &auth.signin {
            Some(t) => match HeaderValue::try_from(t.render(vars)) {
                Ok(location) => {
                    // The sign-in location's `add_header` has a 302 to
                    // apply to: its cookies always go.
                    return Err(Denied {
                        answer: Answer::Redirect(StatusCode::FOUND, location),
                        cookies: Cookies {
                            always: true,
                            ..cookies
                        },
                    });
                }
                Err(_) => Answer::AuthFailed,
            },
            None => Answer::AuthRequired(headers.get(header::WWW_AUTHENTICATE).cloned()),
        },
        StatusCode::FORBIDDEN => Answer::Forbidden,
        _ => Answer::AuthFailed,
    };
    Err(Denied { answer, cookies })
}

impl Denied {
    /// The service could not be asked.
    pub fn failed() -> Denied {
        Denied {
            answer: Answer::AuthFailed,
            cookies: Cookies::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{signin_template, AuthUrl, Template};

    fn auth(signin: Option<&str>) -> ExternalAuth {
        ExternalAuth {
            url: AuthUrl::parse("http://auth.svc/oauth2/auth").unwrap(),
            method: None,
            signin: signin.map(|s| Template::parse(&signin_template(s, "rd")).unwrap()),
            response_headers: vec![
                HeaderName::from_static("x-auth-request-user"),
                HeaderName::from_static("x-auth-request-email"),
            ],
            request_redirect: None,
            always_set_cookie: false,
        }
    }

    fn vars(h: &HeaderMap) -> Vars<'_> {
        Vars {
            host: "shop.example.com",
            http_host: "shop.example.com",
            scheme: "http",
            pass_access_scheme: "https",
            request_uri: "/cart?item=7",
            uri: "/cart",
            args: Some("item=7"),
            method: "GET",
            remote_addr: "10.0.0.1".parse().unwrap(),
            headers: h,
        }
    }

    fn answer(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn success_copies_the_named_headers_and_drops_the_client_s() {
        let none = HeaderMap::new();
        let from_auth = answer(&[
            ("x-auth-request-user", "alice"),
            ("set-cookie", "_oauth2_proxy=refreshed"),
            ("x-other", "not copied"),
        ]);
        let mut g = verdict(&auth(None), StatusCode::ACCEPTED, &from_auth, &vars(&none)).unwrap();
        let mut req = answer(&[
            ("x-auth-request-user", "mallory"),
            ("x-auth-request-email", "mallory@evil.io"),
        ]);
        g.apply(&mut req);
        assert_eq!(req.get("x-auth-request-user").unwrap(), "alice");
        assert!(req.get("x-auth-request-email").is_none());
        assert!(req.get("x-other").is_none());
        let mut resp = HeaderMap::new();
        g.cookies.add_to(StatusCode::OK, &mut resp);
        assert_eq!(resp.get("set-cookie").unwrap(), "_oauth2_proxy=refreshed");
        // Not on a 404 from the upstream (nginx's add_header).
        let g = verdict(&auth(None), StatusCode::OK, &from_auth, &vars(&none)).unwrap();
        let mut resp = HeaderMap::new();
        g.cookies.add_to(StatusCode::NOT_FOUND, &mut resp);
        assert!(resp.is_empty());
    }

    #[test]
    fn refusals() {
        let none = HeaderMap::new();
        let v = vars(&none);
        let challenge = answer(&[("www-authenticate", "Bearer"), ("set-cookie", "a=b")]);
        let d = verdict(&auth(None), StatusCode::UNAUTHORIZED, &challenge, &v).unwrap_err();
        assert_eq!(
            d.answer,
            Answer::AuthRequired(Some(HeaderValue::from_static("Bearer")))
        );
        let mut resp = HeaderMap::new();
        d.cookies.add_to(StatusCode::UNAUTHORIZED, &mut resp);
        assert!(
            resp.is_empty(),
            "no cookie on a 401 without always-set-cookie"
        );
        let d = verdict(
            &auth(Some("https://$host/oauth2/start?rd=$escaped_request_uri")),
            StatusCode::UNAUTHORIZED,
            &challenge,
            &v,
        )
        .unwrap_err();
        assert_eq!(
            d.answer,
            Answer::Redirect(
                StatusCode::FOUND,
                HeaderValue::from_static(
                    "https://shop.example.com/oauth2/start?rd=%2Fcart%3Fitem%3D7"
                )
            )
        );
        let mut resp = HeaderMap::new();
        d.cookies.add_to(StatusCode::FOUND, &mut resp);
        assert_eq!(resp.get("set-cookie").unwrap(), "a=b");
        let d = verdict(
            &auth(Some("https://login.example.com/start")),
            StatusCode::UNAUTHORIZED,
            &none,
            &v,
        )
        .unwrap_err();
        assert_eq!(
            d.answer.location().unwrap(),
            "https://login.example.com/start?rd=https://shop.example.com%2Fcart%3Fitem%3D7"
        );
        for (status, want) in [
            (StatusCode::FORBIDDEN, Answer::Forbidden),
            (StatusCode::FOUND, Answer::AuthFailed),
            (StatusCode::NOT_FOUND, Answer::AuthFailed),
            (StatusCode::BAD_GATEWAY, Answer::AuthFailed),
        ] {
            let d = verdict(&auth(None), status, &none, &v).unwrap_err();
            assert_eq!(d.answer, want, "{status}");
        }
    }
}
