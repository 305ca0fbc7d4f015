//! Specs: the shared vocabulary of what to serve, as plain data.
//!
//! A spec is what [`crate::config`] (a file, or the command line's quick
//! form) and [`crate::discovery`] (Kubernetes) produce, and what
//! [`crate::routing`], [`crate::upstream`] and [`crate::tls`] build live
//! state from: routes, upstreams, endpoints, timeouts, certificate paths.
//! They sit in a module of their own, below all of those, so that the
//! dependencies run one way (config → spec ← routing, tls, upstream)
//! instead of config and routing each reaching into the other.
//!
//! This module imports nothing of the crate but [`crate::balance`]'s
//! `Strategy`. `config`, `routing`, `upstream` and `tls` re-export the types
//! they used to define, so older paths (`sluice::config::RouteSpec`) still
//! work.

mod access;
mod affinity;
mod canary;
mod conditions;
mod cors;
mod error_pages;
mod external_auth;
mod gateway_cors;
mod gateway_paths;
mod host;
mod limits;
mod nginx_vars;
mod path;
mod path_rules;
mod route;
mod tls;
mod upstream;

pub use access::{
    Access, BasicAuth, Htpasswd, HtpasswdError, PasswordHash, Remembered, SourceRanges,
};
pub use affinity::{AffinityMode, AffinitySpec, SameSite, DEFAULT_COOKIE_NAME};
pub use canary::{CanaryRules, HeaderPattern, HeaderPatternError, HeaderRule};
pub use conditions::{Conditions, ValueMatch};
pub use cors::{Cors, OriginPattern, Origins, CORS_HEADERS, CORS_MAX_AGE, CORS_METHODS};
pub use error_pages::{ErrorContext, ErrorPagesSpec, StatusSet, StatusSetError};
pub use external_auth::{signin_template, AuthUrl, AuthUrlError, ExternalAuth};
pub use gateway_cors::{is_preflight, vary as cors_vary, GatewayCors, OriginPattern as CorsOrigin};
pub use gateway_paths::{GatewayRedirect, PathModifier, Scheme};
pub use host::{HostError, HostMatch};
pub use limits::{Rate, RateLimits, BURST_MULTIPLIER, LIMIT_STATUS};
pub use nginx_vars::{escape_uri, Template, TemplateError, Vars};
pub use path::{PathType, PathTypeError};
pub use path_rules::{
    app_root, PathRegexError, PathRules, PathValueError, Redirect, RegexPath, Rewrite,
    RewriteTarget, WWW_REDIRECT_STATUS,
};
pub use route::{
    CanarySpec, HeaderEdits, MirrorSpec, RetryPolicy, RouteSpec, RouteTimeouts, ServerHeader,
    SplitSpec, DEFAULT_RETRY, DEFAULT_TIMEOUTS,
};
pub use tls::{CertFiles, Hsts, Policy};
pub use upstream::{
    EndpointSpec, HealthPolicy, NamedBackend, Protocol, UpstreamSpec, UpstreamTls, DEFAULT_HEALTH,
    DEFAULT_MAX_IDLE,
};
