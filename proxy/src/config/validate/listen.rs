//! The listeners: `listen`, `listen_tls` and `admin`, which must not take
//! each other's connections, and how client connections are taken on
//! them (`proxy_protocol`, `proxy_protocol_from`, `trust_forwarded_for`,
//! `http1_fast_path`, `http2_fast_path`).

use std::net::SocketAddr;

use super::Validator;
use crate::config::model::ListenerSettings;
use crate::config::raw::RawConfig;

/// Two listen addresses that would take the same connections: the same
/// port, and the same address or either one a wildcard (`0.0.0.0`, `::`).
/// Port 0 overlaps nothing: the kernel gives each such listener a port of
/// its own.
pub fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

impl Validator {
    /// The traffic listeners, HTTP and HTTPS, and the admin listener.
    pub(super) fn addresses(
        &mut self,
        raw: &RawConfig,
    ) -> (Vec<SocketAddr>, Vec<SocketAddr>, Option<SocketAddr>) {
        let mut listen = Vec::new();
        for (i, l) in raw.listen.iter().enumerate() {
            if let Some(a) = self.addr(&format!("listen[{i}]"), l) {
                listen.push(a);
            }
        }
        let mut listen_tls = Vec::new();
        for (i, l) in raw.listen_tls.iter().enumerate() {
            if let Some(a) = self.addr(&format!("listen_tls[{i}]"), l) {
                if a.port() != 0 && listen.contains(&a) {
                    self.error(
                        format!("listen_tls[{i}]"),
                        format!("{a} is also in listen: one port cannot be both HTTP and HTTPS"),
                    );
                }
                listen_tls.push(a);
            }
        }
        let admin = raw.admin.as_deref().and_then(|a| self.addr("admin", a));
        if let Some(admin) = admin {
            if let Some(traffic) = listen
                .iter()
                .chain(&listen_tls)
                .find(|l| overlap(admin, **l))
            {
                self.error(
                    "admin",
                    format!(
                        "{admin} overlaps the traffic listener {traffic}: the admin listener needs a \
                         port of its own, so that it is never reachable where traffic is"
                    ),
                );
            }
        }
        (listen, listen_tls, admin)
    }

    /// How client connections are taken, over `base`.
    pub(super) fn connections(
        &mut self,
        raw: &RawConfig,
        base: ListenerSettings,
    ) -> ListenerSettings {
        ListenerSettings {
            http1_fast_path: raw.http1_fast_path.unwrap_or(base.http1_fast_path),
            http2_fast_path: raw.http2_fast_path.unwrap_or(base.http2_fast_path),
            proxy_protocol: {
                let nets = self.networks("proxy_protocol_from", &raw.proxy_protocol_from);
                (raw.proxy_protocol.unwrap_or(false) || !nets.is_empty())
                    .then(|| std::sync::Arc::new(crate::forwarded::Trusted(nets)))
            },
            trust_forwarded_for: {
                let nets = self.networks("trust_forwarded_for", &raw.trust_forwarded_for);
                (!nets.is_empty()).then(|| std::sync::Arc::new(crate::forwarded::Trusted(nets)))
            },
            forwarded_for_header: match raw.forwarded_for_header.as_deref() {
                None => base.forwarded_for_header.clone(),
                Some(s) => http::HeaderName::from_bytes(s.trim().as_bytes()).unwrap_or_else(|_| {
                    self.error(
                        "forwarded_for_header",
                        format_args!("{s:?} is not a header name"),
                    );
                    base.forwarded_for_header.clone()
                }),
            },
            forwarding: crate::policy::Forwarding {
                forwarded_for: match raw.forwarded_for.as_deref() {
                    None => base.forwarding.forwarded_for,
                    Some(s) => crate::policy::ForwardedFor::parse(s).unwrap_or_else(|| {
                        self.error(
                            "forwarded_for",
                            format_args!("{s:?} is not append or replace"),
                        );
                        base.forwarding.forwarded_for
                    }),
                },
                real_ip: raw.x_real_ip.unwrap_or(base.forwarding.real_ip),
            },
            ..base
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{parse_str, ConfigError};
    use crate::policy::{ForwardedFor, Forwarding};

    #[test]
    fn forwarding_is_read_and_a_bad_mode_named() {
        let base = "listen: 127.0.0.1:8080\ndefault_backend: {backends: [127.0.0.1:1]}\n";
        let c = parse_str(base, "t").unwrap();
        assert_eq!(c.listener.forwarding, Forwarding::default());
        let c = parse_str(
            &format!("{base}forwarded_for: replace\nx_real_ip: true\n"),
            "t",
        )
        .unwrap();
        assert_eq!(
            c.listener.forwarding,
            Forwarding {
                forwarded_for: ForwardedFor::Replace,
                real_ip: true
            }
        );
        let Err(ConfigError::Invalid { errors, .. }) =
            parse_str(&format!("{base}forwarded_for: prepend\n"), "t")
        else {
            panic!("prepend accepted");
        };
        assert_eq!(errors[0].field, "forwarded_for", "{errors:?}");
        assert!(
            errors[0].message.contains("append or replace"),
            "{errors:?}"
        );
    }
}
