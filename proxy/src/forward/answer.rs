//! The answers the proxy makes itself, in one vocabulary.
//!
//! Every refusal and every upstream failure is one [`Answer`]: its status,
//! its short plain-text message, whether the connection must close after
//! it, and the headers it needs (`Retry-After`, `Location`). Each HTTP path
//! renders it in its own way (a hyper response, bytes on the fast path),
//! and a gRPC client gets it as a gRPC status instead (HTTP 200 with
//! `grpc-status` and `grpc-message`, a trailers-only response), because a
//! gRPC client reads nothing else. This follows linkerd2-proxy's synthetic
//! responses.

use http::{HeaderValue, StatusCode};

use super::Overload;

/// An answer of the proxy's own, never the upstream's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The request target is past `limits.max_uri`.
    UriTooLong,
    /// The request head is past `limits.max_header_size` or
    /// `limits.max_headers`.
    HeadersTooLarge,
    /// The overload guard refused the request.
    Overloaded(Overload),
    /// CONNECT: this is not a forward proxy.
    ConnectNotSupported,
    /// A path whose dot segments could not be resolved into a valid URI.
    BadPath,
    /// The request's host is missing, repeated or malformed.
    BadHost(HostError),
    /// No route for this host and path.
    NoRoute,
    /// A plain HTTP request to a route that sends it to HTTPS.
    HttpsRedirect(HeaderValue),
    /// The body is past the route's `max_request_body`.
    BodyTooLarge,
    /// The client stalled its body past `timeouts.request_body`.
    BodyTimeout,
    /// Connecting to the last endpoint tried timed out.
    ConnectTimeout,
    /// No endpoint could be connected to.
    Unreachable,
    /// The upstream's response head did not come in time.
    UpstreamTimeout,
    /// The upstream failed under the request (closed, reset, or broke the
    /// protocol).
    UpstreamFailed,
    /// The upstream has no endpoint to try (none ready, or all tried).
    NoEndpoint,
    /// The route's backend reference does not resolve (Gateway API's 500
    /// for the share of requests sent to it).
    BackendUnresolved,
    /// A route's own redirect (ingress-nginx's `permanent-redirect`,
    /// `temporal-redirect`, `app-root`, `from-to-www-redirect`): its status
    /// (a 3xx) and `Location`.
    Redirect(StatusCode, HeaderValue),
    /// The client's address is not admitted by the route's allow- or
    /// deny-list.
    Forbidden,
    /// The route wants credentials that the request lacks or got wrong:
    /// the challenge for `WWW-Authenticate`.
    Unauthorized(HeaderValue),
    /// The client is past the route's `limit-rps` / `limit-rpm` or
    /// `limit-connections`: the status ingress-nginx's
    /// `limit-req-status-code` / `limit-conn-status-code` name (503 by
    /// default).
    Limited(StatusCode),
    /// The route's authentication service (`auth-url`) answered 401: its
    /// `WWW-Authenticate`, if it sent one, is passed on (nginx's
    /// `auth_request` does the same).
    AuthRequired(Option<HeaderValue>),
    /// The authentication service could not be asked, or answered
    /// neither 2xx nor 401 / 403 (nginx's `auth_request` answers 500).
    AuthFailed,
    /// A CORS preflight the route answers itself (ingress-nginx's
    /// `enable-cors`): 204, the Access-Control-* headers added by
    /// [`crate::forward::cors`].
    Preflight,
}

/// What is wrong with a request's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// More than one Host header.
    Repeated,
    /// The authority of an absolute-form or HTTP/2 request is not a host.
    BadAuthority,
    /// The Host header is not a host.
    BadHeader,
    /// An HTTP/1.1 request without Host.
    Missing,
}

/// gRPC status codes the proxy answers with (grpc/doc/statuscodes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum GrpcCode {
    DeadlineExceeded = 4,
    PermissionDenied = 7,
    Unauthenticated = 16,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
}

impl GrpcCode {
    /// The `grpc-status` value.
    pub fn as_str(self) -> &'static str {
        match self {
            GrpcCode::DeadlineExceeded => "4",
            GrpcCode::PermissionDenied => "7",
            GrpcCode::Unauthenticated => "16",
            GrpcCode::ResourceExhausted => "8",
            GrpcCode::Unimplemented => "12",
            GrpcCode::Internal => "13",
            GrpcCode::Unavailable => "14",
        }
    }
}

impl Answer {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Answer::UriTooLong => StatusCode::URI_TOO_LONG,
            Answer::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Answer::Overloaded(_) | Answer::NoEndpoint => StatusCode::SERVICE_UNAVAILABLE,
            Answer::ConnectNotSupported => StatusCode::METHOD_NOT_ALLOWED,
            Answer::BadPath | Answer::BadHost(_) => StatusCode::BAD_REQUEST,
            Answer::NoRoute => StatusCode::NOT_FOUND,
            Answer::HttpsRedirect(_) => StatusCode::PERMANENT_REDIRECT,
            Answer::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Answer::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Answer::ConnectTimeout | Answer::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Answer::Unreachable | Answer::UpstreamFailed => StatusCode::BAD_GATEWAY,
            Answer::Redirect(status, _) => *status,
            Answer::Forbidden => StatusCode::FORBIDDEN,
            Answer::Unauthorized(_) | Answer::AuthRequired(_) => StatusCode::UNAUTHORIZED,
            Answer::Limited(status) => *status,
            Answer::AuthFailed | Answer::BackendUnresolved => StatusCode::INTERNAL_SERVER_ERROR,
            Answer::Preflight => StatusCode::NO_CONTENT,
        }
    }

    /// The body: one short line, or nothing for a redirect.
    pub fn message(&self) -> &'static str {
        match self {
            Answer::UriTooLong => "request target too long\n",
            Answer::HeadersTooLarge => "request header fields too large\n",
            Answer::Overloaded(_) => "overloaded, retry shortly\n",
            Answer::ConnectNotSupported => "CONNECT is not supported\n",
            Answer::BadPath => "the request path is not valid\n",
            Answer::BadHost(HostError::Repeated) => "more than one Host header\n",
            Answer::BadHost(HostError::BadAuthority) => {
                "the request target's authority is not a valid host\n"
            }
            Answer::BadHost(HostError::BadHeader) => "the Host header is not valid\n",
            Answer::BadHost(HostError::Missing) => "HTTP/1.1 requests need a Host header\n",
            Answer::NoRoute => "no route for this host and path\n",
            Answer::HttpsRedirect(_) => "",
            Answer::BodyTooLarge => "request body too large\n",
            Answer::BodyTimeout => "request body timed out\n",
            Answer::ConnectTimeout => "upstream connect timed out\n",
            Answer::Unreachable => "no upstream could be reached\n",
            Answer::UpstreamTimeout => "upstream timed out\n",
            Answer::UpstreamFailed => "upstream failed\n",
            Answer::NoEndpoint => "no upstream endpoint available\n",
            Answer::Redirect(..) => "",
            Answer::Forbidden => "access denied\n",
            Answer::Unauthorized(_) | Answer::AuthRequired(_) => "authorization required\n",
            Answer::Limited(_) => "too many requests from this client, retry later\n",
            Answer::AuthFailed => "the authentication service failed\n",
            Answer::BackendUnresolved => "the route's backend does not resolve\n",
            Answer::Preflight => "",
        }
    }

    /// The connection closes after this answer: the request's body was not
    /// read (or not all of it), and what follows on the connection cannot
    /// be told apart from it.
    pub fn close(&self) -> bool {
        matches!(self, Answer::BodyTooLarge | Answer::BodyTimeout)
    }

    /// `Retry-After`, in seconds, for answers that ask the client to come
    /// back.
    pub fn retry_after(&self) -> Option<HeaderValue> {
        match self {
            Answer::Overloaded(_) => Some(HeaderValue::from_static("1")),
            _ => None,
        }
    }

    /// `Location`, for redirects.
    pub fn location(&self) -> Option<&HeaderValue> {
        match self {
            Answer::HttpsRedirect(l) | Answer::Redirect(_, l) => Some(l),
            _ => None,
        }
    }

    /// `WWW-Authenticate`, for a 401.
    pub fn www_authenticate(&self) -> Option<&HeaderValue> {
        match self {
            Answer::Unauthorized(c) | Answer::AuthRequired(Some(c)) => Some(c),
            _ => None,
        }
    }

    /// The gRPC status a gRPC client gets instead, following gRPC's
    /// HTTP-to-gRPC mapping (doc/http-grpc-status-mapping.md) where it has
    /// one, and the closer code where the proxy knows more.
    pub fn grpc_status(&self) -> GrpcCode {
        match self {
            Answer::UriTooLong | Answer::HeadersTooLarge | Answer::BodyTooLarge => {
                GrpcCode::ResourceExhausted
            }
            Answer::Overloaded(_)
            | Answer::NoEndpoint
            | Answer::Unreachable
            | Answer::UpstreamFailed
            | Answer::Limited(_) => GrpcCode::Unavailable,
            Answer::ConnectNotSupported | Answer::NoRoute => GrpcCode::Unimplemented,
            Answer::BadPath | Answer::BadHost(_) | Answer::BodyTimeout => GrpcCode::Internal,
            Answer::HttpsRedirect(_) | Answer::Redirect(..) | Answer::Forbidden => {
                GrpcCode::PermissionDenied
            }
            Answer::Unauthorized(_) | Answer::AuthRequired(_) => GrpcCode::Unauthenticated,
            Answer::AuthFailed | Answer::BackendUnresolved => GrpcCode::Internal,
            Answer::Preflight => GrpcCode::Unimplemented,
            Answer::ConnectTimeout | Answer::UpstreamTimeout => GrpcCode::DeadlineExceeded,
        }
    }

    /// The message as `grpc-message` carries it: the line without its
    /// newline (every message is plain ASCII without `%`, so no
    /// percent-encoding is needed).
    pub fn grpc_message(&self) -> &'static str {
        let m = self.message().trim_end_matches('\n');
        match self {
            Answer::HttpsRedirect(_) => "redirected to HTTPS",
            Answer::Redirect(..) => "redirected",
            _ => m,
        }
    }
}

/// True when the request comes from a gRPC client: its content type is
/// `application/grpc`, alone or with a `+format` or parameters.
pub fn is_grpc(content_type: Option<&[u8]>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    const GRPC: &[u8] = b"application/grpc";
    ct.len() >= GRPC.len()
        && ct[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && matches!(ct.get(GRPC.len()), None | Some(b'+' | b';'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Answer> {
        vec![
            Answer::UriTooLong,
            Answer::HeadersTooLarge,
            Answer::Overloaded(Overload::InFlight),
            Answer::ConnectNotSupported,
            Answer::BadPath,
            Answer::BadHost(HostError::Repeated),
            Answer::BadHost(HostError::BadAuthority),
            Answer::BadHost(HostError::BadHeader),
            Answer::BadHost(HostError::Missing),
            Answer::NoRoute,
            Answer::HttpsRedirect(HeaderValue::from_static("https://a/")),
            Answer::BodyTooLarge,
            Answer::BodyTimeout,
            Answer::ConnectTimeout,
            Answer::Unreachable,
            Answer::UpstreamTimeout,
            Answer::UpstreamFailed,
            Answer::NoEndpoint,
            Answer::BackendUnresolved,
            Answer::Redirect(
                StatusCode::MOVED_PERMANENTLY,
                HeaderValue::from_static("https://b/"),
            ),
            Answer::Forbidden,
            Answer::Unauthorized(HeaderValue::from_static("Basic realm=\"x\"")),
            Answer::Limited(StatusCode::SERVICE_UNAVAILABLE),
            Answer::Limited(StatusCode::TOO_MANY_REQUESTS),
            Answer::AuthRequired(Some(HeaderValue::from_static("Bearer"))),
            Answer::AuthFailed,
            Answer::Preflight,
        ]
    }

    #[test]
    fn every_answer_is_consistent() {
        for a in all() {
            let s = a.status();
            let no_content = s == StatusCode::NO_CONTENT;
            assert!(s.is_client_error() || s.is_server_error() || s.is_redirection() || no_content);
            // A redirect has a Location and no text; everything else a line
            // (but a 204, which has no body).
            assert_eq!(a.location().is_some(), s.is_redirection(), "{a:?}");
            assert_eq!(
                a.message().is_empty(),
                s.is_redirection() || no_content,
                "{a:?}"
            );
            if !s.is_redirection() && !no_content {
                assert!(a.message().ends_with('\n'), "{a:?}");
            }
            // A 401 has a challenge; nothing else does.
            assert_eq!(
                a.www_authenticate().is_some(),
                s == StatusCode::UNAUTHORIZED
            );
            // grpc-message needs no percent-encoding.
            assert!(a
                .grpc_message()
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'%'));
            // Server trouble is retryable for a gRPC client, its own is not.
            if s == StatusCode::BAD_GATEWAY || s == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(a.grpc_status(), GrpcCode::Unavailable, "{a:?}");
            }
        }
    }

    #[test]
    fn grpc_content_types() {
        assert!(is_grpc(Some(b"application/grpc")));
        assert!(is_grpc(Some(b"application/grpc+proto")));
        assert!(is_grpc(Some(b"Application/GRPC;charset=utf-8")));
        assert!(!is_grpc(Some(b"application/grpc-web")));
        assert!(!is_grpc(Some(b"application/json")));
        assert!(!is_grpc(None));
    }
}
