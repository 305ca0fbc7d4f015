//! The proxy's own rhythm: how often backends' DNS names are resolved
//! again (`dns_refresh`), how long shutdown waits (`drain_timeout`,
//! `shutdown_delay`) and how often the file is looked at
//! (`reload_interval`).

use std::time::Duration;

use super::Validator;
use crate::config::model::{DEFAULT_DNS_REFRESH, DEFAULT_DRAIN, DEFAULT_RELOAD_INTERVAL};
use crate::config::raw::RawConfig;

impl Validator {
    pub(super) fn dns_refresh(&mut self, raw: &RawConfig) -> Duration {
        let dns_refresh =
            self.duration("dns_refresh", raw.dns_refresh.as_ref(), DEFAULT_DNS_REFRESH);
        if dns_refresh < Duration::from_secs(1) {
            self.error("dns_refresh", "must be 1s or more");
        }
        dns_refresh
    }

    pub(super) fn drain_timeout(&mut self, raw: &RawConfig) -> Duration {
        self.duration("drain_timeout", raw.drain_timeout.as_ref(), DEFAULT_DRAIN)
    }

    pub(super) fn shutdown_delay(&mut self, raw: &RawConfig) -> Duration {
        // Zero is allowed here: no delay.
        match raw.shutdown_delay.as_deref().map(str::trim) {
            None | Some("0") | Some("0s") => Duration::ZERO,
            Some(d) => self.duration("shutdown_delay", Some(&d.to_owned()), Duration::ZERO),
        }
    }

    pub(super) fn reload_interval(&mut self, raw: &RawConfig) -> Duration {
        self.duration(
            "reload_interval",
            raw.reload_interval.as_ref(),
            DEFAULT_RELOAD_INTERVAL,
        )
    }
}
