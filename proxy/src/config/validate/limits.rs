//! The `limits:` block: what the proxy takes on at most (connections,
//! requests in flight, memory, request heads and targets, HTTP/2 streams
//! and windows), each read by the same function as its command-line flag.

use super::Validator;
use crate::config::model::{
    ListenerSettings, DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS, DEFAULT_HTTP2_WINDOW, DEFAULT_LISTENER,
    DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_URI,
};
use crate::config::raw::RawLimits;
use crate::config::value::{
    parse_http2_streams, parse_http2_window, parse_max_header_size, parse_max_headers,
    parse_max_memory, parse_max_uri,
};

impl Validator {
    /// The limits of the listeners, over `base`.
    pub(super) fn limits(&mut self, raw: &RawLimits, base: ListenerSettings) -> ListenerSettings {
        ListenerSettings {
            max_connections: raw
                .max_connections
                .unwrap_or(DEFAULT_LISTENER.max_connections),
            max_in_flight: raw.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT),
            max_memory: match raw.max_memory.as_deref().map(parse_max_memory) {
                None => crate::memory::MaxMemory::Auto,
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    self.error("limits.max_memory", e);
                    crate::memory::MaxMemory::Auto
                }
            },
            http2_max_concurrent_streams: self.limit(
                "limits.http2_max_concurrent_streams",
                raw.http2_max_concurrent_streams
                    .map(|n| n.to_string())
                    .as_deref(),
                parse_http2_streams,
                DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
            ),
            max_header_size: self.limit(
                "limits.max_header_size",
                raw.max_header_size.as_deref(),
                parse_max_header_size,
                DEFAULT_MAX_HEADER_SIZE,
            ),
            max_headers: self.limit(
                "limits.max_headers",
                raw.max_headers.map(|n| n.to_string()).as_deref(),
                parse_max_headers,
                DEFAULT_MAX_HEADERS,
            ),
            http2_stream_window: self.limit(
                "limits.http2_stream_window",
                raw.http2_stream_window.as_deref(),
                parse_http2_window,
                DEFAULT_HTTP2_WINDOW,
            ),
            http2_connection_window: self.limit(
                "limits.http2_connection_window",
                raw.http2_connection_window.as_deref(),
                parse_http2_window,
                DEFAULT_HTTP2_WINDOW,
            ),
            max_uri: self.limit(
                "limits.max_uri",
                raw.max_uri.as_deref(),
                parse_max_uri,
                DEFAULT_MAX_URI,
            ),
            ..base
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{parse_str, ConfigError};

    #[test]
    fn http2_windows_are_sizes_within_bounds() {
        let c = parse_str(
            "listen: 127.0.0.1:8080\nlimits: {http2_stream_window: 256k, http2_connection_window: 4m}\ndefault_backend: {backends: [127.0.0.1:1]}\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.listener.http2_stream_window, 256 << 10);
        assert_eq!(c.listener.http2_connection_window, 4 << 20);
        for bad in ["1k", "2g", "0", "lots"] {
            let text = format!(
                "listen: 127.0.0.1:8080\nlimits: {{http2_stream_window: {bad}}}\ndefault_backend: {{backends: [127.0.0.1:1]}}\n"
            );
            let Err(ConfigError::Invalid { errors, .. }) = parse_str(&text, "t") else {
                panic!("{bad} accepted");
            };
            assert_eq!(
                errors[0].field, "limits.http2_stream_window",
                "{bad}: {errors:?}"
            );
        }
    }
}
