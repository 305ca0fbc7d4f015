//! Host names as requests carry them: the port and trailing dot cut off
//! before the host table is looked up. What a route's host matches is
//! [`crate::spec::HostMatch`].

/// The host part of a Host header or authority: port and trailing dot cut.
/// Case is left for the caller, who lower-cases only when it must.
#[inline]
pub fn strip_port(host: &str) -> &str {
    let h = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        match rest.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(i) => &host[..i],
            None => host,
        }
    };
    h.strip_suffix('.').unwrap_or(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("example.com."), "example.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
