//! The request head on the fast path: parsed in place, checked against what
//! the fast path serves, and written out for the upstream with the
//! forwarding headers, without building a header map.
//!
//! Everything the fast path does not serve is handed over to hyper, before
//! any byte of the request is consumed: hyper then answers it exactly as it
//! would have without the fast path (its 400s, its 405 for CONNECT, its
//! 404 for an unmatched route, chunked uploads, upgrades, HTTP/2).

use std::ops::Range;

use crate::http::valid_host;
use crate::policy;
use crate::routing::{normalize, strip_port, Normalized};

/// The largest request head the fast path reads before handing over.
pub const MAX_HEAD: usize = 16 * 1024;
/// The largest request body the fast path buffers before it sends the
/// request upstream (as nginx's request buffering does); larger uploads
/// are streamed by hyper.
pub const MAX_BODY: usize = 64 * 1024;
/// Request header fields the fast path parses; more go to hyper.
const MAX_HEADERS: usize = 64;

/// What to do with the bytes at the start of the client buffer.
#[derive(Debug)]
pub enum Prepared<R> {
    /// The head is not complete yet.
    Partial,
    /// Not for the fast path: hyper takes over the connection.
    Handover,
    /// Serve it: the rewritten head is in the output buffer.
    Ready(Plan<R>),
}

/// A request the fast path will forward.
#[derive(Debug)]
pub struct Plan<R> {
    pub route: R,
    /// The length of the head in the client buffer.
    pub head_len: usize,
    /// The length of the body after it (Content-Length, or 0).
    pub body_len: usize,
    /// The client asked to close after this request.
    pub close: bool,
    /// A HEAD request: the response has no body whatever it says.
    pub head_request: bool,
    /// Safe to send again after a connection failed under it.
    pub idempotent: bool,
    /// The client named by X-Forwarded-For, when the peer is a trusted
    /// forwarder (`trust_forwarded_for`).
    pub client: Option<std::net::IpAddr>,
    /// The client used HTTPS (to us, or to a trusted forwarder).
    pub https: bool,
    /// Where the access log's fields are in the head written upstream.
    pub spans: Spans,
}

/// Where a request's method, target, host and request id are in the head
/// written upstream: the access log reads them there, without parsing the
/// head again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spans {
    pub method: Range<usize>,
    pub target: Range<usize>,
    pub host: Range<usize>,
    pub request_id: Range<usize>,
}

/// Parses the head at the start of `buf`, routes it with `lookup(host,
/// path, https)`, and writes the head to send upstream into `out`.
/// `https` is the scheme the client used: the connection's (`proto`), or
/// what a trusted forwarder's X-Forwarded-Proto says.
pub fn prepare<R>(
    buf: &[u8],
    client_ip: &[u8],
    proto: &'static str,
    forwarders: Option<(&crate::forwarded::Trusted, std::net::IpAddr, &str)>,
    forwarding: policy::Forwarding,
    out: &mut Vec<u8>,
    lookup: impl FnOnce(&str, &str, bool) -> Option<R>,
) -> Prepared<R> {
    // Left unset: httparse writes only the fields the head has.
    let mut fields = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut fields) {
        // Past MAX_HEAD even when it came whole: hyper holds it to
        // limits.max_header_size (which is never below MAX_HEAD).
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Prepared::Partial,
        // Too large, too many fields, or malformed: hyper decides.
        _ => return Prepared::Handover,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Prepared::Handover;
    };
    if method == "CONNECT" || !plain_origin_form(target) {
        return Prepared::Handover;
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    // Not in normal form (escaped letters, dot segments, bad escapes):
    // hyper's path normalizes it, or refuses it.
    if normalize(path) != Normalized::Same {
        return Prepared::Handover;
    }

    let mut host: Option<&[u8]> = None;
    let mut body_len: Option<usize> = None;
    let mut close = false;
    let mut has_id = false;
    let mut has_xff = false;
    for f in req.headers.iter() {
        let name = f.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            if host.is_some() || !valid_host(f.value) {
                return Prepared::Handover;
            }
            host = Some(f.value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            match (
                body_len,
                super::length(f.value).and_then(|n| usize::try_from(n).ok()),
            ) {
                (None, Some(n)) if n <= MAX_BODY => body_len = Some(n),
                _ => return Prepared::Handover,
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in f.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !(token.is_empty() || token.eq_ignore_ascii_case(b"keep-alive")) {
                    // A token naming a header to drop: rare, left to hyper.
                    return Prepared::Handover;
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            return Prepared::Handover;
        } else if name.eq_ignore_ascii_case(b"x-request-id") {
            has_id = true;
        } else if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            has_xff = true;
        }
    }
    let trusted = forwarders.is_some_and(|(t, peer, _)| t.forwards(peer));
    let proto = policy::forwarded_proto(
        proto,
        trusted,
        req.headers
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case("x-forwarded-proto"))
            .map(|f| f.value),
    );
    let Some(host) = host.and_then(|h| std::str::from_utf8(h).ok()) else {
        return Prepared::Handover;
    };
    let Some(route) = lookup(strip_port(host), path, proto == "https") else {
        return Prepared::Handover;
    };

    // The client a trusted forwarder names (in X-Forwarded-For, or the
    // header configured in its place).
    let client = match forwarders {
        Some((trusted, peer, header)) if has_xff || header != "x-forwarded-for" => {
            crate::forwarded::client_from_forwarded(
                peer,
                req.headers
                    .iter()
                    .filter(|f| f.name.eq_ignore_ascii_case(header))
                    .map(|f| f.value),
                trusted,
            )
        }
        _ => None,
    };
    // The real client as text: the peer's, made once per connection, or
    // the forwarded one written into a buffer on the stack.
    let mut real_buf = [0u8; 48];
    let real: &[u8] = match client {
        Some(ip) if forwarding.needs_real() => {
            use std::io::Write;
            let mut w = std::io::Cursor::new(&mut real_buf[..]);
            // An address is at most 45 bytes: the write cannot fail.
            let _ = write!(w, "{ip}");
            let n = w.position() as usize;
            &real_buf[..n]
        }
        _ => client_ip,
    };

    out.clear();
    let mut spans = Spans::default();
    out.extend_from_slice(method.as_bytes());
    spans.method = 0..out.len();
    out.push(b' ');
    let at = out.len();
    out.extend_from_slice(target.as_bytes());
    spans.target = at..out.len();
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for f in req.headers.iter() {
        let name = f.name.as_bytes();
        if !forwarded(name) || (forwarding.real_ip && name.eq_ignore_ascii_case(b"x-real-ip")) {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        let at = out.len();
        out.extend_from_slice(f.value);
        if name.eq_ignore_ascii_case(b"host") {
            spans.host = at..out.len();
        } else if name.eq_ignore_ascii_case(b"x-request-id") {
            spans.request_id = at..out.len();
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    match forwarding.forwarded_for {
        policy::ForwardedFor::Append => {
            if has_xff {
                for f in req.headers.iter() {
                    if f.name.eq_ignore_ascii_case("x-forwarded-for") {
                        out.extend_from_slice(f.value);
                        out.extend_from_slice(b", ");
                    }
                }
            }
            out.extend_from_slice(client_ip);
        }
        policy::ForwardedFor::Replace => out.extend_from_slice(real),
    }
    if forwarding.real_ip {
        out.extend_from_slice(b"\r\nx-real-ip: ");
        out.extend_from_slice(real);
    }
    out.extend_from_slice(b"\r\nx-forwarded-proto: ");
    out.extend_from_slice(proto.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-host: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    if !has_id {
        out.extend_from_slice(b"x-request-id: ");
        let at = out.len();
        out.extend_from_slice(&policy::request_id());
        spans.request_id = at..out.len();
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");

    Prepared::Ready(Plan {
        client,
        https: proto == "https",
        route,
        head_len,
        body_len: body_len.unwrap_or(0),
        close,
        head_request: method == "HEAD",
        idempotent: policy::idempotent(method.as_bytes()),
        spans,
    })
}

/// An origin-form target (`/path?query`) whose every byte the `http`
/// crate's URI parser (hyper's) accepts in that part, and no fragment.
/// Anything else (absolute-form, `*`, `<`, raw UTF-8) goes to hyper, so that
/// the fast path never forwards what hyper would refuse.
fn plain_origin_form(target: &str) -> bool {
    let Some(rest) = target.strip_prefix('/') else {
        return false;
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    path.bytes().all(path_byte) && query.is_none_or(|q| q.bytes().all(query_byte))
}

/// Bytes `http::uri::PathAndQuery` takes in a path as they are.
fn path_byte(b: u8) -> bool {
    matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7A | 0x7C | 0x7E | b'"' | b'{' | b'}')
}

/// Bytes `http::uri::PathAndQuery` takes in a query as they are.
fn query_byte(b: u8) -> bool {
    matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E)
}

/// False for the headers the fast path drops or sets itself: hop-by-hop
/// fields ([`policy::hop_by_hop`]; `TE` among them, as fast-path upstreams
/// speak HTTP/1.1) and the forwarding headers.
fn forwarded(name: &[u8]) -> bool {
    !policy::hop_by_hop(name)
        && !policy::FORWARDING
            .iter()
            .any(|f| f.as_bytes().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(req: &[u8]) -> (Prepared<String>, String) {
        let mut out = Vec::new();
        let p = prepare(
            req,
            b"10.1.2.3",
            "http",
            None,
            Default::default(),
            &mut out,
            |h, p, _| (h != "unrouted.example").then(|| format!("{h} {p}")),
        );
        (p, String::from_utf8(out).unwrap())
    }

    fn ready(req: &[u8]) -> (Plan<String>, String) {
        match run(req) {
            (Prepared::Ready(p), out) => (p, out),
            (other, _) => panic!("{:?} for {:?}", other, String::from_utf8_lossy(req)),
        }
    }

    fn handed_over(req: &[u8]) -> bool {
        matches!(run(req).0, Prepared::Handover)
    }

    #[test]
    fn forwarded_proto_only_from_trusted_forwarders() {
        let req: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\r\n";
        let trusted = crate::forwarded::Trusted(vec!["10.0.0.0/8".parse().unwrap()]);
        let run = |peer: [u8; 4]| {
            let mut out = Vec::new();
            let mut seen = None;
            let p = prepare(
                req,
                b"1.2.3.4",
                "http",
                Some((&trusted, std::net::IpAddr::from(peer), "x-forwarded-for")),
                Default::default(),
                &mut out,
                |_, _, https| {
                    seen = Some(https);
                    Some(())
                },
            );
            let https = matches!(p, Prepared::Ready(ref plan) if plan.https);
            (seen, https, String::from_utf8(out).unwrap())
        };
        let (seen, https, out) = run([10, 0, 0, 1]);
        assert_eq!((seen, https), (Some(true), true));
        assert!(out.contains("x-forwarded-proto: https\r\n"), "{out}");
        let (seen, https, out) = run([192, 168, 0, 1]);
        assert_eq!((seen, https), (Some(false), false));
        assert!(out.contains("x-forwarded-proto: http\r\n"), "{out}");
        // Two values, even from a trusted peer: neither is believed.
        let two: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Proto: https\r\n\r\n";
        let mut out = Vec::new();
        let p = prepare(
            two,
            b"1.2.3.4",
            "http",
            Some((
                &trusted,
                std::net::IpAddr::from([10, 0, 0, 1]),
                "x-forwarded-for",
            )),
            Default::default(),
            &mut out,
            |_, _, _| Some(()),
        );
        assert!(matches!(p, Prepared::Ready(ref plan) if !plan.https));
    }

    /// ingress-nginx's way: X-Forwarded-For and X-Real-IP name the real
    /// client alone, whatever the client wrote there.
    #[test]
    fn replace_names_the_real_client_alone() {
        let trusted = crate::forwarded::Trusted(vec!["10.0.0.0/8".parse().unwrap()]);
        let nginx = policy::Forwarding {
            forwarded_for: policy::ForwardedFor::Replace,
            real_ip: true,
        };
        let run_by = |req: &[u8], peer: [u8; 4], header: &str| {
            let mut out = Vec::new();
            let peer = std::net::IpAddr::from(peer);
            let text = peer.to_string();
            let p = prepare(
                req,
                text.as_bytes(),
                "http",
                Some((&trusted, peer, header)),
                nginx,
                &mut out,
                |_, _, _| Some(()),
            );
            assert!(matches!(p, Prepared::Ready(_)));
            String::from_utf8(out).unwrap()
        };
        let run = |req: &[u8], peer: [u8; 4]| run_by(req, peer, "x-forwarded-for");
        let forged: &[u8] =
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n\r\n";
        // Straight from a client: its claims are dropped.
        let out = run(forged, [192, 168, 0, 1]);
        assert!(
            out.contains("\r\nx-forwarded-for: 192.168.0.1\r\n"),
            "{out}"
        );
        assert!(out.contains("\r\nx-real-ip: 192.168.0.1\r\n"), "{out}");
        assert!(!out.contains("6.6.6.6"), "{out}");
        // Behind a trusted forwarder: the client it names.
        let out = run(forged, [10, 0, 0, 1]);
        assert!(out.contains("\r\nx-forwarded-for: 6.6.6.6\r\n"), "{out}");
        assert!(out.contains("\r\nx-real-ip: 6.6.6.6\r\n"), "{out}");
        assert_eq!(out.matches("6.6.6.6").count(), 2, "{out}");
        let v6: &[u8] =
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 2001:db8::ffff:ffff:ffff:ffff\r\n\r\n";
        let out = run(v6, [10, 0, 0, 1]);
        assert!(
            out.contains("\r\nx-real-ip: 2001:db8::ffff:ffff:ffff:ffff\r\n"),
            "{out}"
        );
        // ingress-nginx's forwarded-for-header: the client is named in
        // another header (a CDN's), and X-Forwarded-For is not read.
        let cdn: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nCF-Connecting-IP: 7.7.7.7\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
        let out = run_by(cdn, [10, 0, 0, 1], "cf-connecting-ip");
        assert!(out.contains("\r\nx-forwarded-for: 7.7.7.7\r\n"), "{out}");
        assert!(out.contains("\r\nx-real-ip: 7.7.7.7\r\n"), "{out}");
        let out = run_by(cdn, [192, 168, 0, 1], "cf-connecting-ip");
        assert!(out.contains("\r\nx-real-ip: 192.168.0.1\r\n"), "{out}");
    }

    #[test]
    fn rewrites_a_plain_get() {
        let req: &[u8] =
            b"GET /a/b?x=1 HTTP/1.1\r\nHost: app.example:8080\r\nConnection: keep-alive\r\n\
              Keep-Alive: timeout=5\r\nTE: trailers\r\nAccept: */*\r\nX-Forwarded-Host: evil\r\n\
              X-Forwarded-Proto: https\r\n\r\nNEXT";
        let (plan, out) = ready(req);
        assert_eq!(plan.route, "app.example /a/b");
        assert_eq!(plan.body_len, 0);
        assert!(!plan.close && plan.idempotent && !plan.head_request);
        assert_eq!(plan.head_len, req.len() - b"NEXT".len());
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(lines[0], "GET /a/b?x=1 HTTP/1.1");
        assert_eq!(lines[1], "Host: app.example:8080");
        assert_eq!(lines[2], "Accept: */*");
        assert_eq!(lines[3], "x-forwarded-for: 10.1.2.3");
        assert_eq!(lines[4], "x-forwarded-proto: http");
        assert_eq!(lines[5], "x-forwarded-host: app.example:8080");
        assert!(lines[6].starts_with("x-request-id: ") && lines[6].len() == 14 + 32);
        assert_eq!(&lines[7..], ["", ""]);
    }

    #[test]
    fn spans_point_at_the_log_fields() {
        let (plan, out) =
            ready(b"PUT /a?b=1 HTTP/1.1\r\nX-Request-Id: abc\r\nhost: h.example\r\n\r\n");
        let at = |r: &std::ops::Range<usize>| out[r.clone()].to_owned();
        assert_eq!(at(&plan.spans.method), "PUT");
        assert_eq!(at(&plan.spans.target), "/a?b=1");
        assert_eq!(at(&plan.spans.host), "h.example");
        assert_eq!(at(&plan.spans.request_id), "abc");
        // A request id of our own is where it was written.
        let (plan, out) = ready(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let id = &out[plan.spans.request_id.clone()];
        assert_eq!(id.len(), 32);
        assert!(out.contains(&format!("x-request-id: {id}\r\n")));
    }

    #[test]
    fn head_length_excludes_the_next_request() {
        let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut pipelined = req.to_vec();
        pipelined.extend_from_slice(b"GET /next HTTP/1.1\r\n");
        assert_eq!(ready(&pipelined).0.head_len, req.len());
    }

    #[test]
    fn appends_to_forwarded_for_and_keeps_request_ids() {
        let (_, out) = ready(
            b"POST /x HTTP/1.1\r\nhost: a\r\nx-forwarded-for: 1.1.1.1\r\nX-Request-Id: abc\r\n\
              X-Forwarded-For: 2.2.2.2\r\ncontent-length: 3\r\n\r\nabc",
        );
        assert!(out.contains("\r\nx-forwarded-for: 1.1.1.1, 2.2.2.2, 10.1.2.3\r\n"));
        assert!(out.contains("\r\nX-Request-Id: abc\r\n"));
        assert_eq!(
            out.matches("-Request-Id").count() + out.matches("request-id").count(),
            1
        );
    }

    #[test]
    fn reads_body_length_close_and_method() {
        let (plan, _) = ready(
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(plan.body_len, 11);
        assert!(plan.close && !plan.idempotent);
        let (plan, _) = ready(b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(plan.head_request && plan.idempotent);
    }

    /// The fast path takes exactly the targets hyper's URI parser takes.
    #[test]
    fn targets_agree_with_the_http_crate() {
        for b in 0x21u8..0x7f {
            for target in [format!("/a{}b", b as char), format!("/a?x{}y", b as char)] {
                let ours = plain_origin_form(&target);
                let http =
                    target.parse::<http::uri::PathAndQuery>().is_ok() && !target.contains('#');
                assert_eq!(ours, http, "{target:?}");
            }
        }
    }

    #[test]
    fn waits_for_a_whole_head() {
        assert!(matches!(
            run(b"GET / HTTP/1.1\r\nHost: a\r\n").0,
            Prepared::Partial
        ));
        assert!(matches!(run(b"GE").0, Prepared::Partial));
    }

    #[test]
    fn hands_over_what_it_does_not_serve() {
        for req in [
            // Framing that needs care: hyper's job.
            &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            // Obsolete line folding.
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n",
            // Host trouble, answered with hyper's 400.
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a.com:1@evil.com\r\n\r\n",
            // Other targets, versions and methods.
            b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /%61dmin HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a/%2e%2e/b HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a#f HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /<x> HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a`b HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /?a<b HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-secret\r\n\r\n",
            // No route: hyper's 404.
            b"GET / HTTP/1.1\r\nHost: unrouted.example\r\n\r\n",
            b"garbage\r\n\r\n",
        ] {
            assert!(handed_over(req), "{:?}", String::from_utf8_lossy(req));
        }
    }

    #[test]
    fn hands_over_heads_that_grow_too_large() {
        let mut req = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        while req.len() <= MAX_HEAD {
            req.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        assert!(handed_over(&req));
    }
}
