//! The subrequest to a route's authentication service (ingress-nginx's
//! `auth-url`), as ingress-nginx's `location = /_external-auth-…` block
//! makes it: the client's method (or `auth-method`) and headers, no body,
//! and the headers that tell the service what was asked —
//! X-Original-URL, X-Original-Method, X-Sent-From, X-Real-IP,
//! X-Forwarded-For, X-Auth-Request-Redirect (and with `auth-method`
//! X-Original-URI and X-Scheme) — with the Host of the auth URL. What its
//! answer means is [`crate::forward::external_auth`]'s.
//!
//! One client serves every route: HTTP/1.1, keep-alive connections
//! pooled per service, TLS verified against the system's CA certificates
//! (read once, on the blocking pool). The whole exchange is bounded by the
//! route's connect and read timeouts.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::headers;
use crate::forward::external_auth::{verdict, Denied, Granted};
use crate::spec::{ExternalAuth, Vars};

type AuthClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

static CLIENT: OnceLock<AuthClient> = OnceLock::new();

/// The most of an auth answer's body read (and dropped) so that its
/// connection can be used again.
const MAX_BODY: usize = 64 * 1024;

static X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_SCHEME: HeaderName = HeaderName::from_static("x-scheme");
static X_SENT_FROM: HeaderName = HeaderName::from_static("x-sent-from");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_AUTH_REQUEST_REDIRECT: HeaderName = HeaderName::from_static("x-auth-request-redirect");

/// Asks the service about one request: `method` and `client` are the
/// request's, `vars` what its templates are filled with.
pub async fn ask(
    auth: &ExternalAuth,
    method: &Method,
    client: &HeaderMap,
    vars: &Vars<'_>,
    timeout: Duration,
) -> Result<Granted, Denied> {
    let Some((uri, host)) = auth.url.resolve(vars) else {
        tracing::warn!("auth-url does not make a URL for this request");
        return Err(Denied::failed());
    };
    let mut sub = Request::new(Empty::<Bytes>::new());
    *sub.method_mut() = auth.method.clone().unwrap_or_else(|| method.clone());
    *sub.headers_mut() = subrequest_headers(auth, client, vars, host);
    *sub.uri_mut() = uri.clone();
    let exchange = async {
        let c = client_once().await?;
        let resp = c.request(sub).await.map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        // Read so the connection goes back to the pool; what it says is
        // not used (nginx's auth_request ignores it too).
        let _ = Limited::new(body, MAX_BODY).collect().await;
        Ok::<_, String>(parts)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(parts)) => verdict(auth, parts.status, &parts.headers, vars),
        Ok(Err(e)) => {
            tracing::warn!(url = %uri, error = %e, "the auth service could not be asked");
            Err(Denied::failed())
        }
        Err(_) => {
            tracing::warn!(url = %uri, ?timeout, "the auth service did not answer in time");
            Err(Denied::failed())
        }
    }
}

/// The subrequest's headers: the client's, less the hop-by-hop ones and
/// those about a body (`proxy_pass_request_body off`, `Content-Length ""`)
/// and X-Forwarded-Proto (set to "" by ingress-nginx), with ingress-nginx's
/// own set over them.
pub fn subrequest_headers(
    auth: &ExternalAuth,
    client: &HeaderMap,
    vars: &Vars<'_>,
    host: HeaderValue,
) -> HeaderMap {
    let mut h = client.clone();
    headers::strip_hop_by_hop(&mut h);
    headers::join_cookies(&mut h);
    for name in [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::EXPECT,
    ] {
        h.remove(name);
    }
    h.remove(&headers::X_FORWARDED_PROTO);
    let value = |s: &str| HeaderValue::from_str(s).ok();
    let set = |h: &mut HeaderMap, name: &HeaderName, v: Option<HeaderValue>| match v {
        Some(v) => {
            h.insert(name.clone(), v);
        }
        None => {
            h.remove(name);
        }
    };
    if auth.method.is_some() {
        set(&mut h, &X_ORIGINAL_URI, value(vars.request_uri));
        set(&mut h, &X_SCHEME, value(vars.pass_access_scheme));
    }
    h.insert(header::HOST, host);
    let original = format!("{}://{}{}", vars.scheme, vars.http_host, vars.request_uri);
    set(&mut h, &X_ORIGINAL_URL, value(&original));
    set(&mut h, &X_ORIGINAL_METHOD, value(vars.method));
    h.insert(
        X_SENT_FROM.clone(),
        HeaderValue::from_static("nginx-ingress-controller"),
    );
    let ip = value(&vars.remote_addr.to_canonical().to_string());
    set(&mut h, &X_REAL_IP, ip.clone());
    set(&mut h, &headers::X_FORWARDED_FOR, ip);
    let redirect = match &auth.request_redirect {
        Some(r) => Some(r.clone()),
        None => value(vars.request_uri),
    };
    set(&mut h, &X_AUTH_REQUEST_REDIRECT, redirect);
    h
}

/// The shared client, made on first use.
async fn client_once() -> Result<&'static AuthClient, String> {
    if let Some(c) = CLIENT.get() {
        return Ok(c);
    }
    let built = tokio::task::spawn_blocking(build)
        .await
        .map_err(|e| e.to_string())?;
    Ok(CLIENT.get_or_init(|| built))
}

fn build() -> AuthClient {
    let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let tls = {
        use hyper_rustls::ConfigBuilderExt;
        match tls.clone().with_native_roots() {
            Ok(b) => b.with_no_client_auth(),
            Err(e) => {
                tracing::warn!(error = %e, "no system CA certificates: https auth URLs will fail");
                tls.with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            }
        }
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build(https)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::AuthUrl;

    #[test]
    fn subrequest_headers_are_ingress_nginx_s() {
        let mut auth = ExternalAuth {
            url: AuthUrl::parse("http://auth.svc:4180/oauth2/auth").unwrap(),
            method: None,
            signin: None,
            response_headers: vec![],
            request_redirect: None,
            always_set_cookie: false,
        };
        let mut client = HeaderMap::new();
        for (k, v) in [
            ("host", "shop.example.com"),
            ("cookie", "_oauth2_proxy=abc"),
            ("content-length", "12"),
            ("content-type", "text/plain"),
            ("connection", "keep-alive"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-request-id", "r1"),
        ] {
            client.insert(k, HeaderValue::from_static(v));
        }
        let vars = Vars {
            host: "shop.example.com",
            http_host: "shop.example.com",
            scheme: "http",
            pass_access_scheme: "https",
            request_uri: "/cart?item=7",
            uri: "/cart",
            args: Some("item=7"),
            method: "POST",
            remote_addr: "10.0.0.1".parse().unwrap(),
            headers: &client,
        };
        let h = subrequest_headers(&auth, &client, &vars, HeaderValue::from_static("auth.svc"));
        let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(get("host").as_deref(), Some("auth.svc"));
        assert_eq!(get("cookie").as_deref(), Some("_oauth2_proxy=abc"));
        assert_eq!(get("content-type").as_deref(), Some("text/plain"));
        assert_eq!(
            get("x-original-url").as_deref(),
            Some("http://shop.example.com/cart?item=7")
        );
        assert_eq!(get("x-original-method").as_deref(), Some("POST"));
        assert_eq!(
            get("x-sent-from").as_deref(),
            Some("nginx-ingress-controller")
        );
        assert_eq!(get("x-real-ip").as_deref(), Some("10.0.0.1"));
        assert_eq!(get("x-forwarded-for").as_deref(), Some("10.0.0.1"));
        assert_eq!(
            get("x-auth-request-redirect").as_deref(),
            Some("/cart?item=7")
        );
        assert_eq!(get("x-request-id").as_deref(), Some("r1"));
        for gone in [
            "content-length",
            "connection",
            "x-forwarded-proto",
            "x-original-uri",
            "x-scheme",
        ] {
            assert!(h.get(gone).is_none(), "{gone}");
        }
        auth.method = Some(Method::GET);
        auth.request_redirect = Some(HeaderValue::from_static("https://shop.example.com/"));
        let h = subrequest_headers(&auth, &client, &vars, HeaderValue::from_static("auth.svc"));
        assert_eq!(h["x-original-uri"], "/cart?item=7");
        assert_eq!(h["x-scheme"], "https");
        assert_eq!(h["x-auth-request-redirect"], "https://shop.example.com/");
    }
}
