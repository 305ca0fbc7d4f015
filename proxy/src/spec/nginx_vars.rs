//! nginx variables in annotation values, as ingress-nginx's users write
//! them: `auth-url: https://$host/oauth2/auth` and `auth-signin:
//! https://$host/oauth2/start?rd=$escaped_request_uri` (oauth2-proxy's
//! documented setup). ingress-nginx pastes such values into nginx's
//! configuration and nginx substitutes them per request; here a value is
//! parsed once into literal pieces and typed variables ([`Template`]), and
//! a request only fills them in ([`Template::render`]). A variable nginx
//! would know but this list does not is refused when the Ingress is read,
//! never passed through as text.

use std::net::IpAddr;

/// A variable a [`Template`] may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `$host`: the request's host, lower-cased, without its port.
    Host,
    /// `$http_host`: the Host header as the client sent it.
    HttpHost,
    /// `$scheme`: `http` or `https`, the client connection's own.
    Scheme,
    /// `$pass_access_scheme`: ingress-nginx's; the scheme a trusted
    /// forwarder names in X-Forwarded-Proto, else `$scheme`.
    PassAccessScheme,
    /// `$request_uri`: the path and query as the client sent them.
    RequestUri,
    /// `$escaped_request_uri`: `$request_uri` escaped as a query value
    /// (set-misc's `set_escape_uri`, which ingress-nginx sets it with).
    EscapedRequestUri,
    /// `$uri`: the (normalized) path.
    Uri,
    /// `$args` / `$query_string`: the query, without `?`.
    Args,
    /// `$is_args`: `?` when there is a query.
    IsArgs,
    /// `$request_method`.
    RequestMethod,
    /// `$remote_addr`: the real client's address.
    RemoteAddr,
    /// `$http_NAME`: a request header (`-` written `_`), empty when absent.
    Header(http::HeaderName),
}

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Box<str>),
    Var(Var),
}

/// A value with nginx variables in it, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
    /// The length of the literal text: what a rendering starts its
    /// buffer at.
    text_len: usize,
}

/// Why a value is not a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("${0} is not an nginx variable sluice substitutes (host, http_host, scheme, pass_access_scheme, request_uri, escaped_request_uri, uri, args, query_string, is_args, request_method, remote_addr, http_NAME)")]
    Unknown(String),
    #[error("a $ is not followed by a variable name")]
    Dangling,
    #[error("${{ is not closed")]
    Unclosed,
}

/// What a request fills a [`Template`] in with.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    /// The request's host without its port (`$host` lower-cases it).
    pub host: &'a str,
    /// The request's host as sent (Host or :authority), `""` when none.
    pub http_host: &'a str,
    pub scheme: &'a str,
    pub pass_access_scheme: &'a str,
    /// The path and query as the client sent them.
    pub request_uri: &'a str,
    /// The normalized path.
    pub uri: &'a str,
    pub args: Option<&'a str>,
    pub method: &'a str,
    pub remote_addr: IpAddr,
    pub headers: &'a http::HeaderMap,
}

impl Template {
    /// Parses `$name` and `${name}` references; every other byte is text.
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(at) = rest.find('$') {
            text.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced.find('}').ok_or(TemplateError::Unclosed)?;
                (&braced[..end], &braced[end + 1..])
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if name.is_empty() {
                return Err(TemplateError::Dangling);
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text).into()));
            }
            pieces.push(Piece::Var(var(name)?));
            rest = tail;
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text.into()));
        }
        let text_len = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                Piece::Var(_) => 0,
            })
            .sum();
        Ok(Template { pieces, text_len })
    }

    /// The text when there is no variable in it.
    pub fn as_literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// The value for one request.
    pub fn render(&self, vars: &Vars<'_>) -> String {
        let mut out = String::with_capacity(self.text_len + 64);
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => push_var(&mut out, v, vars),
            }
        }
        out
    }
}

fn var(name: &str) -> Result<Var, TemplateError> {
    Ok(match name {
        "host" => Var::Host,
        "http_host" => Var::HttpHost,
        "scheme" => Var::Scheme,
        "pass_access_scheme" => Var::PassAccessScheme,
        "request_uri" => Var::RequestUri,
        "escaped_request_uri" => Var::EscapedRequestUri,
        "uri" | "document_uri" => Var::Uri,
        "args" | "query_string" => Var::Args,
        "is_args" => Var::IsArgs,
        "request_method" => Var::RequestMethod,
        "remote_addr" => Var::RemoteAddr,
        other => match other.strip_prefix("http_") {
            Some(h) => http::HeaderName::from_bytes(h.replace('_', "-").as_bytes())
                .map(Var::Header)
                .map_err(|_| TemplateError::Unknown(other.to_owned()))?,
            None => return Err(TemplateError::Unknown(other.to_owned())),
        },
    })
}

fn push_var(out: &mut String, v: &Var, vars: &Vars<'_>) {
    use std::fmt::Write;
    match v {
        Var::Host => out.extend(vars.host.chars().map(|c| c.to_ascii_lowercase())),
        Var::HttpHost => out.push_str(vars.http_host),
        Var::Scheme => out.push_str(vars.scheme),
        Var::PassAccessScheme => out.push_str(vars.pass_access_scheme),
        Var::RequestUri => out.push_str(vars.request_uri),
        Var::EscapedRequestUri => escape_uri(out, vars.request_uri),
        Var::Uri => out.push_str(vars.uri),
        Var::Args => out.push_str(vars.args.unwrap_or("")),
        Var::IsArgs => {
            if vars.args.is_some() {
                out.push('?');
            }
        }
        Var::RequestMethod => out.push_str(vars.method),
        Var::RemoteAddr => {
            let _ = write!(out, "{}", vars.remote_addr.to_canonical());
        }
        Var::Header(name) => {
            if let Some(v) = vars.headers.get(name).and_then(|v| v.to_str().ok()) {
                out.push_str(v);
            }
        }
    }
}

/// Escapes `s` as set-misc's `set_escape_uri` does: every byte but
/// ASCII letters, digits and `!$'()*,-.@_`|~` becomes `%XX` (upper-case
/// hex), so `/`, `?`, `&`, `=` and `:` are escaped too and the result can
/// stand as one query value (`rd=`).
pub fn escape_uri(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'$'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b','
                    | b'-'
                    | b'.'
                    | b'@'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        if keep {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(headers: &'a http::HeaderMap) -> Vars<'a> {
        Vars {
            host: "Shop.Example.com",
            http_host: "Shop.Example.com:8443",
            scheme: "http",
            pass_access_scheme: "https",
            request_uri: "/cart/a b?x=1&y=/2",
            uri: "/cart/a b",
            args: Some("x=1&y=/2"),
            method: "POST",
            remote_addr: "::ffff:10.1.2.3".parse().unwrap(),
            headers,
        }
    }

    #[test]
    fn oauth2_proxy_urls_render() {
        let h = http::HeaderMap::new();
        let v = vars(&h);
        let t = Template::parse("https://$host/oauth2/start?rd=$escaped_request_uri").unwrap();
        assert_eq!(
            t.render(&v),
            "https://shop.example.com/oauth2/start?rd=%2Fcart%2Fa%20b%3Fx%3D1%26y%3D%2F2"
        );
        let t = Template::parse("${scheme}://$http_host$request_uri").unwrap();
        assert_eq!(
            t.render(&v),
            "http://Shop.Example.com:8443/cart/a b?x=1&y=/2"
        );
        let t =
            Template::parse("$pass_access_scheme|$uri$is_args$args|$request_method|$remote_addr")
                .unwrap();
        assert_eq!(t.render(&v), "https|/cart/a b?x=1&y=/2|POST|10.1.2.3");
    }

    #[test]
    fn headers_literals_and_refusals() {
        let mut h = http::HeaderMap::new();
        h.insert("x-tenant", http::HeaderValue::from_static("blue"));
        let t = Template::parse("http://auth/$http_x_tenant/$http_missing").unwrap();
        assert_eq!(t.render(&vars(&h)), "http://auth/blue/");
        let lit = Template::parse("http://auth.svc:4180/oauth2/auth").unwrap();
        assert_eq!(lit.as_literal(), Some("http://auth.svc:4180/oauth2/auth"));
        assert_eq!(t.as_literal(), None);
        assert!(matches!(
            Template::parse("http://$upstream_addr/"),
            Err(TemplateError::Unknown(n)) if n == "upstream_addr"
        ));
        assert_eq!(Template::parse("a$"), Err(TemplateError::Dangling));
        assert_eq!(Template::parse("a${host"), Err(TemplateError::Unclosed));
    }

    #[test]
    fn escaping_matches_set_escape_uri() {
        let mut out = String::new();
        escape_uri(
            &mut out,
            "/p?a=1&b=c d#e:f;g+h[i]{j}^k\"l<m>n%o|p~q!r'(s)*t,u$v@w`x\u{e9}",
        );
        assert_eq!(
            out,
            "%2Fp%3Fa%3D1%26b%3Dc%20d%23e%3Af%3Bg%2Bh%5Bi%5D%7Bj%7D%5Ek%22l%3Cm%3En%25o|p~q!r'(s)*t,u$v@w`x%C3%A9"
        );
    }
}
