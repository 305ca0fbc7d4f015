//! Every ingress-nginx annotation (as its v1.15 documentation lists them),
//! and what sluice does with each: the one table `sluice migrate`, the
//! parser's refusals and the README's support table are read from, so
//! that none of them can drift from what the code does (unit tests below
//! parse each supported annotation's example, and compare the README's
//! table with [`markdown_table`]).

/// What sluice does with an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Support {
    /// Read, with ingress-nginx's meaning, defaults and answers.
    Supported,
    /// Read, and done another way with the same effect for traffic (the
    /// note says how).
    Mapped,
    /// An nginx tuning knob (buffers, logging): accepted, nothing to do.
    Tuning,
    /// Refused on purpose (raw nginx configuration, a WAF): the Ingress is
    /// served without it, and a Warning Event says so.
    Refused,
    /// Not built yet: served without it, with a Warning Event.
    NotYet,
}

impl Support {
    pub fn as_str(self) -> &'static str {
        match self {
            Support::Supported => "supported",
            Support::Mapped => "mapped",
            Support::Tuning => "ignored as tuning",
            Support::Refused => "refused",
            Support::NotYet => "not supported yet",
        }
    }

    /// Whether an Ingress carrying it behaves differently under sluice.
    pub fn changes_behaviour(self) -> bool {
        matches!(self, Support::Refused | Support::NotYet)
    }
}

/// One annotation, without its `nginx.ingress.kubernetes.io/` prefix.
#[derive(Debug, Clone, Copy)]
pub struct Annotation {
    pub name: &'static str,
    pub support: Support,
    /// One line: the meaning, the mapping, or why not.
    pub note: &'static str,
    /// A value ingress-nginx accepts, which the parser must take without a
    /// problem (`""` for those not read).
    pub example: &'static str,
}

const fn a(
    name: &'static str,
    support: Support,
    note: &'static str,
    example: &'static str,
) -> Annotation {
    Annotation {
        name,
        support,
        note,
        example,
    }
}

use Support::*;

/// The annotations, by name.
pub static NGINX: &[Annotation] = &[
    a("affinity", Supported, "`cookie`: a session cookie keeps a client on one pod (balanced: a key hashed to the pods; persistent: the pod itself)", "cookie"),
    a("affinity-canary-behavior", Supported, "`sticky` (default) keeps a session on the canary too; `legacy` keeps none there", "sticky"),
    a("affinity-mode", Supported, "`balanced` (sessions move when pods are added) or `persistent` (never moved while the pod lives)", "persistent"),
    a("allowlist-source-range", Supported, "client CIDRs allowed; others get 403 (the real client behind PROXY or trusted X-Forwarded-For); an unreadable list answers 503", "10.0.0.0/8, 192.168.0.1"),
    a("app-root", Supported, "`/` redirected (302) to the application root", "/app"),
    a("auth-always-set-cookie", Supported, "the auth service's Set-Cookie on every status", "true"),
    a("auth-cache-duration", NotYet, "external authentication caching", ""),
    a("auth-cache-key", NotYet, "external authentication caching", ""),
    a("auth-keepalive", Tuning, "connection reuse to the auth service", "10"),
    a("auth-keepalive-requests", Tuning, "connection reuse to the auth service", "100"),
    a("auth-keepalive-share-vars", Tuning, "connection reuse to the auth service", "true"),
    a("auth-keepalive-timeout", Tuning, "connection reuse to the auth service", "60"),
    a("auth-method", Supported, "the subrequest's method", "GET"),
    a("auth-proxy-set-headers", NotYet, "headers sent to the auth service from a ConfigMap", ""),
    a("auth-realm", Supported, "the realm of basic authentication's challenge", "Staff only"),
    a("auth-request-redirect", Supported, "X-Auth-Request-Redirect sent to the auth service", "/"),
    a("auth-response-headers", Supported, "these headers of the auth answer are set on the upstream request", "X-Auth-Request-User, X-Auth-Request-Email"),
    a("auth-secret", Supported, "the htpasswd Secret (`name` or `namespace/name`), read by a watch on that Secret alone; missing, the route answers 503", "basic-auth"),
    a("auth-secret-type", Supported, "`auth-file` (an htpasswd file in key `auth`) or `auth-map` (a user per key)", "auth-file"),
    a("auth-signin", Supported, "a 401 from auth-url becomes a 302 here, with `rd=` the original URL", "https://$host/oauth2/start?rd=$escaped_request_uri"),
    a("auth-signin-redirect-param", Supported, "the query parameter carrying the original URL (default `rd`)", "rd"),
    a("auth-snippet", Refused, "raw nginx configuration", ""),
    a("auth-tls-error-page", NotYet, "client certificate authentication", ""),
    a("auth-tls-match-cn", NotYet, "client certificate authentication", ""),
    a("auth-tls-pass-certificate-to-upstream", NotYet, "client certificate authentication", ""),
    a("auth-tls-secret", NotYet, "client certificate authentication", ""),
    a("auth-tls-verify-client", NotYet, "client certificate authentication", ""),
    a("auth-tls-verify-depth", NotYet, "client certificate authentication", ""),
    a("auth-type", Supported, "`basic` (bcrypt, `$apr1$`, `{SHA}`, `{PLAIN}` hashes); `digest` answers 503, as nginx lacks it too", "basic"),
    a("auth-url", Supported, "nginx's `auth_request`: a subrequest whose 2xx lets the request through, 401/403 answer the client, anything else 500; `$host`-style variables", "https://$host/oauth2/auth"),
    a("backend-protocol", Supported, "HTTP, HTTPS (TLS to the pod, unverified unless proxy-ssl-verify), GRPC (h2c), GRPCS, AUTO_HTTP; FCGI and AJP are refused", "HTTPS"),
    a("canary", Supported, "this Ingress is a canary of the one with the same host and path", "true"),
    a("canary-by-cookie", Supported, "cookie `always` / `never` decides, after the header", "canary"),
    a("canary-by-header", Supported, "header `always` / `never` decides first", "X-Canary"),
    a("canary-by-header-pattern", Supported, "the header matching this regex (Rust syntax, no look-around) goes to the canary", "^(beta|alpha)$"),
    a("canary-by-header-value", Supported, "the header equal to this value goes to the canary", "yes"),
    a("canary-weight", Supported, "requests in canary-weight-total sent to the canary", "20"),
    a("canary-weight-total", Supported, "the weight's total; below 100 ignored, as ingress-nginx does", "1000"),
    a("client-body-buffer-size", Tuning, "bodies are streamed, never buffered to disk", "1m"),
    a("configuration-snippet", Mapped, "never run; its `more_set_headers`, `add_header` and `proxy_set_header` with literal values are applied, every other directive is refused by name", "more_set_headers \"X-Frame-Options: DENY\";"),
    a("connection-proxy-header", Tuning, "connections to pods are pooled keep-alive", "keep-alive"),
    a("cors-allow-credentials", Supported, "Access-Control-Allow-Credentials (default true)", "true"),
    a("cors-allow-headers", Supported, "Access-Control-Allow-Headers", "X-Custom, Content-Type"),
    a("cors-allow-methods", Supported, "Access-Control-Allow-Methods", "GET, PUT, POST"),
    a("cors-allow-origin", Supported, "allowed origins, one `*.` label wildcard each (default `*`)", "https://*.example.com"),
    a("cors-expose-headers", Supported, "Access-Control-Expose-Headers", "X-Total"),
    a("cors-max-age", Supported, "Access-Control-Max-Age (default 1728000)", "600"),
    a("custom-headers", NotYet, "response headers from a ConfigMap", ""),
    a("custom-http-errors", Supported, "answers with these codes (the upstream's, or the proxy's own 502/503/504) are replaced by the default backend's answer to `/`, told X-Code, X-Format, X-Original-URI and the route", "404,503"),
    a("default-backend", Supported, "the Service (this namespace, its first port) answering custom-http-errors, and serving paths whose Service has no endpoints (with X-Code: 503)", "error-pages"),
    a("denylist-source-range", Supported, "client CIDRs refused with 403, before the allow-list; an unreadable list answers 503", "10.9.0.0/16"),
    a("enable-access-log", Tuning, "the access log is process-wide (`--access-log`)", "false"),
    a("enable-cors", Supported, "CORS: preflights answered 204 by the proxy, Access-Control-* on allowed origins' answers", "true"),
    a("enable-global-auth", NotYet, "the ConfigMap's global external authentication", ""),
    a("enable-modsecurity", Refused, "no WAF is built in", ""),
    a("enable-opentelemetry", Tuning, "no tracing exporter yet; requests carry X-Request-Id", "false"),
    a("enable-owasp-core-rules", Refused, "no WAF is built in", ""),
    a("enable-rewrite-log", Tuning, "nginx debug logging", "false"),
    a("force-ssl-redirect", Supported, "plain HTTP gets a 308 to HTTPS even without a certificate here", "true"),
    a("from-to-www-redirect", Supported, "the other name (with or without `www.`) answers 308 to this host", "true"),
    a("http2-push-preload", Tuning, "browsers dropped HTTP/2 push", "false"),
    a("limit-burst-multiplier", Supported, "the burst is the limit times this (default 5)", "5"),
    a("limit-connections", Supported, "requests in progress per client address, 503 beyond", "20"),
    a("limit-rate", NotYet, "bandwidth limits (reported, not enforced)", ""),
    a("limit-rate-after", NotYet, "bandwidth limits (reported, not enforced)", ""),
    a("limit-rpm", Supported, "requests a minute per client address, 503 beyond", "600"),
    a("limit-rps", Supported, "requests a second per client address (nginx's `limit_req ... nodelay`), 503 beyond", "10"),
    a("limit-whitelist", Supported, "CIDRs exempt from the limits", "10.0.0.0/8"),
    a("load-balance", Mapped, "`round_robin` is round-robin, `ewma` is least-request (fewest in flight, no latency average)", "ewma"),
    a("mirror-host", NotYet, "request mirroring", ""),
    a("mirror-request-body", NotYet, "request mirroring", ""),
    a("mirror-target", NotYet, "request mirroring", ""),
    a("modsecurity-snippet", Refused, "raw ModSecurity configuration; no WAF is built in", ""),
    a("modsecurity-transaction-id", Refused, "no WAF is built in", ""),
    a("opentelemetry-trust-incoming-span", Tuning, "no tracing exporter yet", "true"),
    a("permanent-redirect", Supported, "every request answers a redirect to this URL", "https://example.com/new"),
    a("permanent-redirect-code", Supported, "its status (default 301; 301, 302, 303, 307, 308)", "308"),
    a("preserve-trailing-slash", NotYet, "the HTTPS redirect keeps a trailing slash", ""),
    a("proxy-body-size", Supported, "the largest request body (413 beyond); 0 lifts the limit", "8m"),
    a("proxy-buffer-size", Supported, "the largest response head from the pods (64 KiB unless raised, up to 1 MiB); larger answer 502, as nginx's \"upstream sent too big header\"", "128k"),
    a("proxy-buffering", Tuning, "responses are streamed, never buffered to disk", "off"),
    a("proxy-buffers-number", Tuning, "responses are streamed", "4"),
    a("proxy-busy-buffers-size", Tuning, "responses are streamed", "16k"),
    a("proxy-connect-timeout", Supported, "the connect timeout to a pod, in seconds", "5"),
    a("proxy-cookie-domain", NotYet, "Set-Cookie domain rewriting", ""),
    a("proxy-cookie-path", NotYet, "Set-Cookie path rewriting", ""),
    a("proxy-http-version", Tuning, "pods are spoken to in HTTP/1.1 (or HTTP/2 for gRPC)", "1.1"),
    a("proxy-max-temp-file-size", Tuning, "responses are never buffered to disk", "0"),
    a("proxy-next-upstream", Mapped, "`error timeout` is what sluice retries (idempotent requests), `off` one try; other conditions are reported", "error timeout"),
    a("proxy-next-upstream-timeout", NotYet, "the time limit of retries", ""),
    a("proxy-next-upstream-tries", Supported, "the most pods one request tries (0: all)", "3"),
    a("proxy-read-timeout", Supported, "how long the response headers may take, in seconds", "120"),
    a("proxy-redirect-from", NotYet, "Location rewriting", ""),
    a("proxy-redirect-to", NotYet, "Location rewriting", ""),
    a("proxy-request-buffering", Tuning, "uploads are streamed to the pod", "off"),
    a("proxy-send-timeout", Supported, "the longest pause while the request body goes upstream, then 408", "60"),
    a("proxy-ssl-ciphers", Tuning, "rustls's safe defaults apply (AEAD suites, TLS 1.2 and 1.3)", "HIGH:!aNULL:!MD5"),
    a("proxy-ssl-name", Supported, "the name verified (and sent with proxy-ssl-server-name)", "web.shop.internal"),
    a("proxy-ssl-protocols", Tuning, "TLS 1.2 and 1.3, rustls's defaults", "TLSv1.2 TLSv1.3"),
    a("proxy-ssl-secret", Supported, "`namespace/name` of a Secret with ca.crt (and tls.crt/tls.key for a client certificate); missing with proxy-ssl-verify on, the route answers 503", "shop/web-ca"),
    a("proxy-ssl-server-name", Supported, "`on` sends SNI to the pod", "on"),
    a("proxy-ssl-verify", Supported, "`on` verifies the pod's certificate against proxy-ssl-secret's CA", "on"),
    a("proxy-ssl-verify-depth", Tuning, "webpki verifies any chain to the CA", "2"),
    a("rewrite-target", Supported, "the path sent upstream, with `$1`-style groups of a regex path", "/$2"),
    a("satisfy", NotYet, "`any` of the access checks", ""),
    a("server-alias", NotYet, "more host names for the Ingress's rules", ""),
    a("server-snippet", Mapped, "as configuration-snippet, for the Ingress's own paths", "add_header Cache-Control no-store always;"),
    a("service-upstream", Supported, "the Service's ClusterIP instead of its pods", "true"),
    a("session-cookie-change-on-failure", Supported, "a failed pod moves the session (and re-sets the cookie) instead of retrying the same pod", "true"),
    a("session-cookie-conditional-samesite-none", Supported, "no SameSite=None for browsers that mishandle it (nginx's list)", "true"),
    a("session-cookie-domain", Supported, "its Domain", "example.com"),
    a("session-cookie-expires", Supported, "its Expires, in seconds from now", "172800"),
    a("session-cookie-max-age", Supported, "its Max-Age, in seconds", "172800"),
    a("session-cookie-name", Supported, "the cookie (default INGRESSCOOKIE)", "SESSION"),
    a("session-cookie-path", Supported, "its Path (default: the Ingress path; required with regex paths)", "/"),
    a("session-cookie-samesite", Supported, "its SameSite (`None`, `Lax`, `Strict`)", "Lax"),
    a("session-cookie-secure", Supported, "Secure even over plain HTTP (else only over TLS)", "true"),
    a("ssl-ciphers", Tuning, "rustls's safe defaults apply", "HIGH:!aNULL:!MD5"),
    a("ssl-passthrough", Supported, "TLS spliced to the host's `/` backend by SNI (with `--enable-ssl-passthrough`, as ingress-nginx)", "true"),
    a("ssl-prefer-server-ciphers", Tuning, "rustls's defaults apply", "true"),
    a("ssl-redirect", Supported, "`false` serves plain HTTP for hosts with a certificate", "false"),
    a("stream-snippet", Refused, "raw nginx configuration", ""),
    a("temporal-redirect", Supported, "every request answers a redirect to this URL", "https://example.com/maintenance"),
    a("temporal-redirect-code", Supported, "its status (default 302; 301, 302, 303, 307)", "307"),
    a("upstream-hash-by", Mapped, "`$remote_addr` is ip-hash (Maglev); other keys are refused", "$remote_addr"),
    a("upstream-hash-by-subset", NotYet, "subset hashing", ""),
    a("upstream-hash-by-subset-size", NotYet, "subset hashing", ""),
    a("upstream-vhost", Supported, "the Host sent to the pods (X-Forwarded-Host keeps the client's)", "internal.shop.svc"),
    a("use-regex", Supported, "paths are case-insensitive regex prefixes, for the whole host, in ingress-nginx's order", "true"),
    a("whitelist-source-range", Supported, "allowlist-source-range's old name", "10.0.0.0/8"),
    a("x-forwarded-prefix", Supported, "sent as X-Forwarded-Prefix", "/shop"),
];

/// The entry for `name` (without the prefix).
pub fn lookup(name: &str) -> Option<&'static Annotation> {
    NGINX
        .binary_search_by(|a| a.name.cmp(name))
        .ok()
        .map(|i| &NGINX[i])
}

/// The README's support table: one row per annotation.
pub fn markdown_table() -> String {
    let mut out = String::from("| Annotation | Sluice | Note |\n|---|---|---|\n");
    for a in NGINX {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            a.name,
            a.support.as_str(),
            a.note.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn sorted_unique_and_one_line_each() {
        for w in NGINX.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
        for a in NGINX {
            assert!(!a.note.contains('\n') && !a.note.is_empty(), "{}", a.name);
            assert_eq!(lookup(a.name).map(|x| x.name), Some(a.name));
            let read = matches!(a.support, Supported | Mapped | Tuning);
            assert_eq!(!a.example.is_empty(), read, "{}: example", a.name);
        }
        assert!(lookup("no-such-thing").is_none());
    }

    /// What the parser says of one annotation with `value`.
    fn problems_of(name: &str, value: &str) -> Vec<String> {
        let mut map = BTreeMap::new();
        map.insert(
            format!("nginx.ingress.kubernetes.io/{name}"),
            value.to_owned(),
        );
        if name.starts_with("canary-by-header-") {
            map.insert(
                "nginx.ingress.kubernetes.io/canary-by-header".into(),
                "X-Canary".into(),
            );
        }
        // Some need a companion to be complete (a canary's weight, basic
        // authentication's Secret); those are not what is checked here.
        super::super::parse(&Some(map)).problems
    }

    #[test]
    fn the_parser_does_what_the_table_says() {
        for a in NGINX {
            match a.support {
                Supported | Mapped | Tuning => {
                    let p = problems_of(a.name, a.example);
                    assert!(p.is_empty(), "{} = {:?}: {p:?}", a.name, a.example);
                }
                Refused => {
                    let p = problems_of(a.name, "x");
                    assert!(p.iter().any(|p| p.contains("refused")), "{}: {p:?}", a.name);
                }
                // Reported, whatever the value: served without it.
                NotYet => {
                    let p = problems_of(a.name, "x");
                    assert!(!p.is_empty(), "{}: no problem reported", a.name);
                }
            }
        }
    }

    #[test]
    fn the_readme_table_is_the_registry() {
        let readme = include_str!("../../../../README.md");
        let start = "<!-- annotations:start -->\n";
        let end = "<!-- annotations:end -->";
        let at = readme
            .find(start)
            .expect("the README's annotation table markers")
            + start.len();
        let to = readme[at..].find(end).expect("the end marker") + at;
        let (readme, code) = (&readme[at..to], markdown_table());
        if let Some((r, c)) = readme.lines().zip(code.lines()).find(|(r, c)| r != c) {
            panic!("README.md's annotation table is stale (`sluice migrate --table` prints it):\nREADME: {r}\ncode:   {c}");
        }
        assert_eq!(
            readme.lines().count(),
            code.lines().count(),
            "README.md's annotation table is stale: `sluice migrate --table` prints it"
        );
    }
}
