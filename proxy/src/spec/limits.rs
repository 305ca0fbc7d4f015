//! A route's per-client limits as data: request rates (ingress-nginx's
//! `limit-rps` / `limit-rpm` with `limit-burst-multiplier`), concurrent
//! requests (`limit-connections`), the addresses exempt from both
//! (`limit-allowlist`), and the status a refused request gets. The live
//! counters are [`crate::limit`]'s; this is what they are built from, and
//! what a rebuild compares to keep them.

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

/// ingress-nginx's `limit-req-status-code` and `limit-conn-status-code`
/// default.
pub const LIMIT_STATUS: u16 = 503;

/// ingress-nginx's `limit-burst-multiplier` default.
pub const BURST_MULTIPLIER: u32 = 5;

/// What a route limits per client address. Every route made from one
/// Ingress shares one `zone` (as nginx's zone per Ingress), so a client's
/// requests to any of its paths count together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// The zone's name: the Ingress's `namespace/name/uid`. Routes with the
    /// same zone and the same settings share their counters, across
    /// rebuilds too.
    pub zone: Arc<str>,
    /// `limit-rps` and `limit-rpm`: both apply when both are set, as two
    /// `limit_req` lines do.
    pub rates: Vec<Rate>,
    /// `limit-connections`: requests in progress at once per client.
    pub connections: Option<u32>,
    /// `limit-allowlist` (`limit-whitelist`): clients never limited.
    pub allow: Vec<IpNet>,
    /// The status of a request refused for its rate.
    pub req_status: http::StatusCode,
    /// The status of a request refused for its client's connections.
    pub conn_status: http::StatusCode,
}

/// One request rate with its burst: nginx's `limit_req_zone ... rate=`
/// with `limit_req burst=N nodelay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// One request per `interval` in the long run.
    pub interval: Duration,
    /// Requests accepted at once above the rate (without delay, as
    /// `nodelay`): `limit × limit-burst-multiplier`.
    pub burst: u32,
}

impl Rate {
    /// `per_second` requests a second with `burst`.
    pub fn per_second(per_second: u32, burst: u32) -> Rate {
        Rate {
            interval: Duration::from_secs(1) / per_second.max(1),
            burst,
        }
    }

    /// `per_minute` requests a minute with `burst`.
    pub fn per_minute(per_minute: u32, burst: u32) -> Rate {
        Rate {
            interval: Duration::from_secs(60) / per_minute.max(1),
            burst,
        }
    }
}

impl RateLimits {
    /// True when `client` is exempt (`limit-allowlist`). An IPv4 client
    /// seen as an IPv4-mapped IPv6 address is matched as IPv4.
    pub fn exempt(&self, client: std::net::IpAddr) -> bool {
        let client = client.to_canonical();
        self.allow.iter().any(|n| n.contains(&client))
    }
}
