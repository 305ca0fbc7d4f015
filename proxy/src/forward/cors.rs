//! The Access-Control-* headers of a route with `enable-cors`, set as
//! ingress-nginx's CORS snippet sets them (`more_set_headers`, replacing
//! the upstream's own): on every answer of a request whose Origin is
//! allowed (every request with `cors-allow-origin: *`), and a preflight
//! (any OPTIONS such a request makes) answered 204 by the proxy with
//! `Content-Type: text/plain charset=UTF-8`, never forwarded.

use http::{header, HeaderMap, HeaderValue};

use crate::spec::Cors;

/// Sets the CORS headers; `allow_origin` is [`Cors::allow_origin`]'s.
pub fn add_headers(cors: &Cors, allow_origin: HeaderValue, h: &mut HeaderMap) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    if cors.credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, cors.methods.clone());
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, cors.headers.clone());
    if let Some(expose) = &cors.expose {
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
    }
    h.insert(header::ACCESS_CONTROL_MAX_AGE, cors.max_age.clone());
}

/// The headers of the preflight's 204: the CORS ones and nginx's
/// content type, written as ingress-nginx writes it (its
/// `Content-Length: 0` is left out: a 204 has none, RFC 9110 8.6).
pub fn preflight_headers(cors: &Cors, allow_origin: HeaderValue, h: &mut HeaderMap) {
    add_headers(cors, allow_origin, h);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain charset=UTF-8"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Origins, CORS_HEADERS, CORS_METHODS};

    #[test]
    fn headers_replace_the_upstream_s() {
        let mut cors = Cors {
            origins: Origins::Any,
            methods: HeaderValue::from_static(CORS_METHODS),
            headers: HeaderValue::from_static(CORS_HEADERS),
            expose: None,
            credentials: true,
            max_age: HeaderValue::from_static("1728000"),
        };
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("https://upstream.example"),
        );
        add_headers(&cors, HeaderValue::from_static("*"), &mut h);
        assert_eq!(
            h.get_all(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .iter()
                .count(),
            1
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "1728000");
        assert!(h.get(header::ACCESS_CONTROL_EXPOSE_HEADERS).is_none());
        cors.credentials = false;
        cors.expose = Some(HeaderValue::from_static("X-Total"));
        let mut h = HeaderMap::new();
        preflight_headers(&cors, HeaderValue::from_static("https://a.example"), &mut h);
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        assert_eq!(h[header::ACCESS_CONTROL_EXPOSE_HEADERS], "X-Total");
        assert_eq!(h[header::CONTENT_TYPE], "text/plain charset=UTF-8");
    }
}
