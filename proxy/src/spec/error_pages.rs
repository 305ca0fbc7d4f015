//! ingress-nginx's custom error pages (`custom-http-errors` with
//! `default-backend`, or the ConfigMap's `custom-http-errors`) as plain
//! data: which answer codes are replaced, by which Service's answer, and
//! what that Service is told about the request that failed. Parsed once,
//! when routes are made; a request tests one bit.

use super::upstream::UpstreamSpec;

/// The lowest and highest codes a set holds: ingress-nginx keeps
/// 300..=599 from its ConfigMap (its annotation accepts 4xx and 5xx).
const LOWEST: u16 = 300;
const HIGHEST: u16 = 599;

/// A set of HTTP status codes, one bit each: a lookup per response without
/// an allocation or a search.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct StatusSet([u64; 5]);

/// A code a set cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusSetError {
    #[error("{0:?} is not an HTTP status code")]
    NotANumber(String),
    #[error("{0} is not between {LOWEST} and {HIGHEST}")]
    OutOfRange(u16),
}

impl StatusSet {
    /// Adds `code`, if it is one a set holds.
    pub fn insert(&mut self, code: u16) -> Result<(), StatusSetError> {
        if !(LOWEST..=HIGHEST).contains(&code) {
            return Err(StatusSetError::OutOfRange(code));
        }
        let i = usize::from(code - LOWEST);
        self.0[i / 64] |= 1 << (i % 64);
        Ok(())
    }

    #[inline]
    pub fn contains(&self, code: u16) -> bool {
        match code.checked_sub(LOWEST) {
            Some(i) if code <= HIGHEST => {
                let i = usize::from(i);
                self.0[i / 64] & (1 << (i % 64)) != 0
            }
            _ => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The codes, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (LOWEST..=HIGHEST).filter(|c| self.contains(*c))
    }

    /// A comma-separated list (`"404, 503"`, spaces allowed as
    /// ingress-nginx trims them), every code between 300 and 599; the
    /// first item that is not one is the error.
    pub fn parse_list(list: &str) -> Result<Self, StatusSetError> {
        let mut set = StatusSet::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let code = item
                .parse::<u16>()
                .map_err(|_| StatusSetError::NotANumber(item.to_owned()))?;
            set.insert(code)?;
        }
        Ok(set)
    }
}

impl std::fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// A route's error pages: the answers with one of `codes` are replaced by
/// the default backend's answer to the same request, as ingress-nginx's
/// `proxy_intercept_errors on; error_page CODE = @custom_...` does.
#[derive(Debug, Clone)]
pub struct ErrorPagesSpec {
    /// The codes replaced, the upstream's and the proxy's own (a 502 when
    /// no endpoint answers, a 503 when there is none).
    pub codes: StatusSet,
    /// The default backend: the `default-backend` Service (when it has
    /// endpoints) or `--default-backend-service`. `None`: neither is
    /// there, and the answer is the proxy's own 404, as ingress-nginx's
    /// built-in default backend answers.
    pub backend: Option<UpstreamSpec>,
    /// What the default backend is told of the route the request was for
    /// (ingress-nginx's `$namespace`, `$ingress_name`, `$service_name`,
    /// `$service_port`).
    pub about: ErrorContext,
    /// The route's own Service has no endpoints and its requests all go to
    /// the `default-backend` Service, as they are, with `X-Code: 503`
    /// (ingress-nginx's `custom-default-backend-` upstream).
    pub replaces_upstream: bool,
}

/// The request's route, as the error backend's headers name it; empty
/// values are not sent (nginx drops a `proxy_set_header` whose value is
/// empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorContext {
    pub namespace: Option<http::HeaderValue>,
    pub ingress: Option<http::HeaderValue>,
    pub service: Option<http::HeaderValue>,
    pub port: Option<http::HeaderValue>,
}

impl ErrorContext {
    /// From the names as the Ingress writes them; one that is not a header
    /// value (none can be, in a valid object) is left out.
    pub fn new(namespace: &str, ingress: &str, service: &str, port: &str) -> Self {
        let v = |s: &str| {
            (!s.is_empty())
                .then(|| http::HeaderValue::from_str(s).ok())
                .flatten()
        };
        ErrorContext {
            namespace: v(namespace),
            ingress: v(ingress),
            service: v(service),
            port: v(port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_hold_300_to_599_and_parse_as_ingress_nginx_lists() {
        let s = StatusSet::parse_list("404, 503,500,").unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), [404, 500, 503]);
        assert!(s.contains(404) && !s.contains(405) && !s.contains(200) && !s.contains(999));
        let edges = StatusSet::parse_list("300,599").unwrap();
        assert!(edges.contains(300) && edges.contains(599));
        assert_eq!(
            StatusSet::parse_list("404,abc"),
            Err(StatusSetError::NotANumber("abc".into()))
        );
        assert_eq!(
            StatusSet::parse_list("200"),
            Err(StatusSetError::OutOfRange(200))
        );
        assert!(StatusSet::parse_list(" ").unwrap().is_empty());
    }
}
