//! `health:`, at the top level and per route: after how many failures an
//! endpoint is ejected, for how long, and below what share of healthy
//! endpoints ejections are ignored (the panic threshold).

use std::time::Duration;

use super::Validator;
use crate::config::raw::RawHealth;
use crate::spec::HealthPolicy;

impl Validator {
    pub(super) fn health(
        &mut self,
        field: &str,
        raw: Option<&RawHealth>,
        base: HealthPolicy,
    ) -> HealthPolicy {
        let Some(raw) = raw else { return base };
        let mut h = base;
        if let Some(k) = raw.consecutive_failures {
            h.consecutive_failures = k;
        }
        h.base_ejection = self.duration(
            &format!("{field}.health.base_ejection"),
            raw.base_ejection.as_ref(),
            base.base_ejection,
        );
        h.max_ejection = self.duration(
            &format!("{field}.health.max_ejection"),
            raw.max_ejection.as_ref(),
            base.max_ejection,
        );
        const DAY: Duration = Duration::from_secs(86_400);
        if h.max_ejection > DAY {
            self.error(
                format!("{field}.health.max_ejection"),
                "must be at most 24h",
            );
            h.max_ejection = DAY;
        }
        if h.base_ejection > DAY {
            self.error(
                format!("{field}.health.base_ejection"),
                "must be at most 24h",
            );
            h.base_ejection = DAY;
        }
        if h.max_ejection < h.base_ejection {
            self.error(
                format!("{field}.health.max_ejection"),
                "must not be shorter than base_ejection",
            );
        }
        if let Some(p) = raw.panic_threshold {
            if p > 100 {
                self.error(
                    format!("{field}.health.panic_threshold"),
                    format!("{p} is not a percentage"),
                );
            } else {
                h.panic_threshold_percent = p as u8;
            }
        }
        h
    }
}
