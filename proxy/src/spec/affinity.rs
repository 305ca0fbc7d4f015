//! Cookie affinity as typed data: ingress-nginx's `affinity: cookie` with
//! its `affinity-mode` and `session-cookie-*` annotations.
//!
//! It lives in the shared vocabulary because discovery makes it and the
//! routing snapshot carries it. Every value is checked once, when the
//! Ingress is translated; a request only reads these fields. What a
//! request's cookie decides is `routing::affinity`'s and `forward::sticky`'s.

use std::fmt;

/// The cookie ingress-nginx names when `session-cookie-name` is not set.
pub const DEFAULT_COOKIE_NAME: &str = "INGRESSCOOKIE";

/// How a session is kept on its endpoint (`affinity-mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AffinityMode {
    /// The cookie holds a random key, hashed to an endpoint over the
    /// endpoints there are now: when pods are added, some sessions move to
    /// them (ingress-nginx's `sticky_balanced`), and when a pod goes, only
    /// its sessions move, without a new cookie.
    #[default]
    Balanced,
    /// The cookie names the endpoint itself: sessions never move while it
    /// is there (ingress-nginx's `sticky_persistent`); when it goes, the
    /// session gets another endpoint and a new cookie.
    Persistent,
}

impl AffinityMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            AffinityMode::Balanced => "balanced",
            AffinityMode::Persistent => "persistent",
        }
    }
}

impl fmt::Display for AffinityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    /// The attribute's value as browsers expect it written.
    pub const fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// One route's cookie affinity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinitySpec {
    pub mode: AffinityMode,
    /// The cookie's name (`session-cookie-name`, else `INGRESSCOOKIE`).
    pub name: Box<str>,
    /// The cookie's `Path`: `session-cookie-path`, else the Ingress path as
    /// written (nginx's `$location_path`).
    pub path: Box<str>,
    /// `session-cookie-domain`.
    pub domain: Option<Box<str>>,
    /// `session-cookie-max-age`, seconds, written as `Max-Age`.
    pub max_age: Option<i64>,
    /// `session-cookie-expires`, seconds from the moment the cookie is
    /// set, written as an `Expires` date.
    pub expires: Option<i64>,
    /// `session-cookie-samesite`.
    pub same_site: Option<SameSite>,
    /// `session-cookie-conditional-samesite-none`: `SameSite=None` is left
    /// out for the browsers known to mishandle it.
    pub conditional_same_site_none: bool,
    /// `session-cookie-secure: "true"`: `Secure` on every cookie; without
    /// it, `Secure` only when the request came over TLS.
    pub secure: bool,
    /// `session-cookie-change-on-failure`: when the pinned endpoint fails,
    /// the request moves to another one and the cookie follows it;
    /// otherwise the request keeps to its endpoint.
    pub change_on_failure: bool,
}

impl AffinitySpec {
    /// ingress-nginx's defaults for a route whose Ingress path is `path`.
    pub fn new(path: &str) -> Self {
        AffinitySpec {
            mode: AffinityMode::Balanced,
            name: DEFAULT_COOKIE_NAME.into(),
            path: path.into(),
            domain: None,
            max_age: None,
            expires: None,
            same_site: None,
            conditional_same_site_none: false,
            secure: false,
            change_on_failure: false,
        }
    }
}
