//! ingress-nginx's remaining `proxy-*` annotations: the ones that map onto
//! sluice's timeouts and retries (`proxy-send-timeout`,
//! `proxy-next-upstream`, `proxy-next-upstream-tries`), and the pure
//! tuning knobs of nginx's buffering, which sluice's streaming has no use
//! for. Those are accepted without a problem and listed in
//! [`ProxyNotes::tuning`], so a migration report can say they were read
//! and why they change nothing.

use std::time::Duration;

/// What an Ingress's `proxy-*` annotations say, beyond the connect and
/// read timeouts and the body size.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProxyNotes {
    /// `proxy-send-timeout`: the longest pause while the request goes
    /// upstream. Its body comes from the client as it is sent, so it is
    /// the body's stall limit (`timeouts.request_body`).
    pub send_timeout: Option<Duration>,
    /// `proxy-next-upstream-tries`: total tries, the first included
    /// (`0`, nginx's "no limit", is every endpoint).
    pub tries: Option<u32>,
    /// `proxy-next-upstream: off`: one try only.
    pub next_upstream_off: bool,
    /// Annotations read and accepted as tuning that changes nothing here:
    /// `name: reason`.
    pub tuning: Vec<String>,
    /// `proxy-buffer-size` above the 64 KiB every route reads: the largest
    /// response head read from its pods (at most `MAX_RESPONSE_HEAD`, 1 MiB).
    pub response_head: Option<usize>,
}

/// The most `proxy-buffer-size` raises the response head limit to.
pub const MAX_RESPONSE_HEAD: u64 = 1 << 20;

/// The largest upstream response head read (`upstream/pool/h1.rs`).
const RESPONSE_HEAD_LIMIT: u64 = crate::upstream::pool::RESPONSE_HEAD as u64;

/// Reads one `nginx.ingress.kubernetes.io/NAME` annotation if it is one of
/// these; `false` when it is not one.
pub(super) fn parse(
    notes: &mut ProxyNotes,
    key: &str,
    name: &str,
    value: &str,
    problems: &mut Vec<String>,
) -> bool {
    let v = value.trim();
    match name {
        "proxy-send-timeout" => match super::seconds(v) {
            Some(d) => notes.send_timeout = Some(d),
            None => problems.push(format!("{key}: {v:?} is not a number of seconds")),
        },
        "proxy-next-upstream-tries" => match v.parse::<u32>() {
            Ok(0) => notes.tries = Some(u32::MAX),
            Ok(n) => notes.tries = Some(n),
            Err(_) => problems.push(format!("{key}: {v:?} is not a whole number")),
        },
        "proxy-next-upstream" => {
            let mut unsupported = Vec::new();
            for word in v.split_whitespace() {
                match word {
                    "off" => notes.next_upstream_off = true,
                    // What sluice retries: a connection that fails or
                    // closes before any answer (idempotent requests only,
                    // as nginx without `non_idempotent`), and a connect
                    // timeout.
                    "error" | "timeout" => {}
                    other => unsupported.push(other),
                }
            }
            if !unsupported.is_empty() {
                problems.push(format!(
                    "{key}: {} not supported: sluice tries the next endpoint on connection errors and connect timeouts only",
                    unsupported.join(" ")
                ));
            }
        }
        // nginx's default is one page (4 or 8 KiB), and Ingresses raise
        // it for large cookies or auth headers: sluice reads response
        // heads of up to 64 KiB on every route, so a raise up to there is
        // already met. It is not a lower limit per route.
        "proxy-buffer-size" => match crate::config::parse_size(v) {
            Ok(Some(n)) if n <= RESPONSE_HEAD_LIMIT => notes.tuning.push(format!(
                "{key}: response heads of up to 64 KiB are read on every route"
            )),
            Ok(None) => problems.push(format!("{key}: {v:?} is not a buffer size")),
            Ok(Some(n)) if n <= MAX_RESPONSE_HEAD => notes.response_head = Some(n as usize),
            Ok(Some(_)) => {
                problems.push(format!(
                    "{key}: {v:?} is more than 1 MiB; response heads of up to 1 MiB are read, larger ones answer 502"
                ));
                notes.response_head = Some(MAX_RESPONSE_HEAD as usize);
            }
            Err(e) => problems.push(format!("{key}: {e}")),
        },
        "proxy-next-upstream-timeout" => match v.parse::<u64>() {
            Ok(0) => {}
            Ok(_) => problems.push(format!(
                "{key}: not supported: retries are bounded by proxy-next-upstream-tries and the connect timeout"
            )),
            Err(_) => problems.push(format!("{key}: {v:?} is not a number of seconds")),
        },
        // The tuning knobs are the registry's (`registry.rs`).
        _ => return false,
    }
    true
}

impl ProxyNotes {
    /// Applies them to a route's timeouts and retries.
    pub fn apply(
        &self,
        timeouts: &mut crate::spec::RouteTimeouts,
        retry: &mut crate::spec::RetryPolicy,
    ) {
        if let Some(d) = self.send_timeout {
            timeouts.request_body = d;
        }
        if let Some(n) = self.tries {
            retry.attempts = n;
        }
        if self.next_upstream_off {
            retry.attempts = 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> (ProxyNotes, Vec<String>) {
        super::super::read_family(parse, pairs)
    }

    #[test]
    fn timeouts_and_tries_map_onto_the_route() {
        let (n, p) = read(&[
            ("proxy-send-timeout", "15"),
            ("proxy-next-upstream-tries", "2"),
            ("proxy-next-upstream", "error timeout"),
        ]);
        assert!(p.is_empty(), "{p:?}");
        let mut t = crate::spec::DEFAULT_TIMEOUTS;
        let mut r = crate::spec::DEFAULT_RETRY;
        n.apply(&mut t, &mut r);
        assert_eq!(t.request_body, Duration::from_secs(15));
        assert_eq!(r.attempts, 2);
        let (n, _) = read(&[("proxy-next-upstream", "off")]);
        n.apply(&mut t, &mut r);
        assert_eq!(r.attempts, 1);
        let (n, _) = read(&[("proxy-next-upstream-tries", "0")]);
        n.apply(&mut t, &mut r);
        assert_eq!(r.attempts, u32::MAX);
    }

    #[test]
    fn what_cannot_be_done_is_said_and_tuning_is_listed_quietly() {
        let (n, p) = read(&[
            ("proxy-next-upstream", "error http_502 non_idempotent"),
            ("proxy-next-upstream-timeout", "10"),
            ("proxy-buffer-size", "16k"),
            ("proxy-buffer-size", "2m"),
        ]);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[2].contains("larger ones answer 502"), "{p:?}");
        assert_eq!(n.response_head, Some(1 << 20));
        assert!(p[0].contains("http_502 non_idempotent"), "{p:?}");
        assert_eq!(n.tuning.len(), 1, "{:?}", n.tuning);
        let (n, p) = read(&[("proxy-buffer-size", "128k")]);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(n.response_head, Some(128 << 10));
        // The other tuning knobs are the registry's.
        let mut notes = ProxyNotes::default();
        assert!(!parse(
            &mut notes,
            "k",
            "proxy-buffering",
            "on",
            &mut Vec::new()
        ));
        assert!(!parse(&mut notes, "k", "proxy-other", "1", &mut Vec::new()));
    }
}
