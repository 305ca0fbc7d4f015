//! Timeouts, in the top-level `timeouts:` block and a route's own: the
//! listeners' (`request_header`, `http2_idle`, `send`), which only the
//! top level may set, and the routes' (`connect`, `response_header`,
//! `upstream_idle`, `request_body`, `request`), which routes override.

use super::Validator;
use crate::config::model::ListenerSettings;
use crate::config::raw::RawTimeouts;
use crate::spec::{RouteTimeouts, DEFAULT_TIMEOUTS};

impl Validator {
    /// The listeners' timeouts, over `base`.
    pub(super) fn listener_timeouts(
        &mut self,
        t: &RawTimeouts,
        base: ListenerSettings,
    ) -> ListenerSettings {
        ListenerSettings {
            request_header_timeout: self.duration(
                "timeouts.request_header",
                t.request_header.as_ref(),
                base.request_header_timeout,
            ),
            http2_idle_timeout: self.duration(
                "timeouts.http2_idle",
                t.http2_idle.as_ref(),
                base.http2_idle_timeout,
            ),
            send_timeout: self.duration("timeouts.send", t.send.as_ref(), base.send_timeout),
            ..base
        }
    }

    /// The top level's route timeouts, which every route starts from.
    pub(super) fn default_timeouts(&mut self, t: &RawTimeouts) -> RouteTimeouts {
        RouteTimeouts {
            connect: self.duration(
                "timeouts.connect",
                t.connect.as_ref(),
                DEFAULT_TIMEOUTS.connect,
            ),
            response_header: self.duration(
                "timeouts.response_header",
                t.response_header.as_ref(),
                DEFAULT_TIMEOUTS.response_header,
            ),
            upstream_idle: self.duration(
                "timeouts.upstream_idle",
                t.upstream_idle.as_ref(),
                DEFAULT_TIMEOUTS.upstream_idle,
            ),
            request_body: self.duration(
                "timeouts.request_body",
                t.request_body.as_ref(),
                DEFAULT_TIMEOUTS.request_body,
            ),
            request: self.optional_duration("timeouts.request", t.request.as_ref(), None),
        }
    }

    /// A route's own timeouts, over the top level's (`base`).
    pub(super) fn timeouts(
        &mut self,
        field: &str,
        raw: Option<&RawTimeouts>,
        base: RouteTimeouts,
    ) -> RouteTimeouts {
        let Some(raw) = raw else { return base };
        for (name, set) in [
            ("request_header", raw.request_header.is_some()),
            ("http2_idle", raw.http2_idle.is_some()),
            ("send", raw.send.is_some()),
        ] {
            if set {
                self.error(
                    format!("{field}.timeouts.{name}"),
                    "a listener setting: set it in the top-level timeouts",
                );
            }
        }
        RouteTimeouts {
            connect: self.duration(
                &format!("{field}.timeouts.connect"),
                raw.connect.as_ref(),
                base.connect,
            ),
            response_header: self.duration(
                &format!("{field}.timeouts.response_header"),
                raw.response_header.as_ref(),
                base.response_header,
            ),
            upstream_idle: self.duration(
                &format!("{field}.timeouts.upstream_idle"),
                raw.upstream_idle.as_ref(),
                base.upstream_idle,
            ),
            request_body: self.duration(
                &format!("{field}.timeouts.request_body"),
                raw.request_body.as_ref(),
                base.request_body,
            ),
            request: self.optional_duration(
                &format!("{field}.timeouts.request"),
                raw.request.as_ref(),
                base.request,
            ),
        }
    }
}
