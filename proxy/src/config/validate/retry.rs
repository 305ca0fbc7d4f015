//! `retry:`, at the top level and per route: how many attempts a request
//! gets.

use super::Validator;
use crate::config::raw::RawRetry;
use crate::spec::RetryPolicy;

const MAX_ATTEMPTS: u32 = 10;

impl Validator {
    pub(super) fn retry(
        &mut self,
        field: &str,
        raw: Option<&RawRetry>,
        base: RetryPolicy,
    ) -> RetryPolicy {
        match raw.and_then(|r| r.attempts) {
            None => base,
            Some(a) if (1..=MAX_ATTEMPTS).contains(&a) => RetryPolicy { attempts: a },
            Some(a) => {
                self.error(
                    format!("{field}.retry.attempts"),
                    format!("{a} is out of range 1..={MAX_ATTEMPTS}"),
                );
                base
            }
        }
    }
}
