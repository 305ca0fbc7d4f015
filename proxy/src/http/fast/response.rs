//! The response head on the fast path: parsed in place, its body framing
//! found (RFC 9112 6.3), and written out for the client without the
//! upstream connection's hop-by-hop fields.

use crate::config::ServerHeader;
use crate::policy;
use crate::upstream::framing;
pub use crate::upstream::framing::Framing;

/// The largest response head accepted from an upstream: the hyper path's
/// too (routes that raise it are not the fast path's).
pub const MAX_HEAD: usize = crate::upstream::pool::RESPONSE_HEAD;

/// A response head ready to go to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Its length in the upstream buffer.
    pub len: usize,
    pub status: u16,
    pub framing: Framing,
    /// The upstream connection may serve another request afterwards.
    pub reusable: bool,
    /// The client connection closes after this response.
    pub close_client: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    Partial,
    /// An interim (1xx) response of this length, to skip: the client did
    /// not ask for one (the fast path never forwards `Expect`).
    Interim(usize),
    Ready(Head),
    Invalid(&'static str),
}

/// Parses the response head at the start of `buf` and writes the head to
/// send the client into `out`. `close_client` asks for `connection: close`
/// (the client asked for it, or the proxy is draining); `hsts` is a
/// Strict-Transport-Security value to add when the upstream set none;
/// `server` says what becomes of the `Server` header.
pub fn prepare(
    buf: &[u8],
    head_request: bool,
    close_client: bool,
    hsts: Option<&[u8]>,
    server: ServerHeader,
    out: &mut Vec<u8>,
) -> Parsed {
    let mut fields = framing::fields();
    let mut resp = httparse::Response::new(&mut []);
    let (len, status, facts) =
        match framing::parse(&mut resp, &mut fields, buf, MAX_HEAD, head_request) {
            framing::Head::Partial => return Parsed::Partial,
            framing::Head::Interim(len) => return Parsed::Interim(len),
            framing::Head::Invalid(why) => return Parsed::Invalid(why),
            framing::Head::Final {
                len, code, facts, ..
            } => (len, code, facts),
        };
    let framing = facts.framing;
    let close_client = close_client || framing == Framing::Eof;

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&three_digits(status));
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for f in resp.headers.iter() {
        let name = f.name.as_bytes();
        if hop_by_hop(name)
            || (facts.transfer_encoding && name.eq_ignore_ascii_case(b"content-length"))
            || (facts.names_fields && framing::named_by_connection(&*resp.headers, name))
            || (server == ServerHeader::Off && name.eq_ignore_ascii_case(b"server"))
        {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(f.value);
        out.extend_from_slice(b"\r\n");
    }
    if server == ServerHeader::Add && !facts.server {
        out.extend_from_slice(b"server: sluice\r\n");
    }
    if let (Some(v), false) = (hsts, facts.sts) {
        out.extend_from_slice(b"strict-transport-security: ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if close_client {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Parsed::Ready(Head {
        len,
        status,
        framing,
        reusable: facts.reusable,
        close_client,
    })
}

fn three_digits(s: u16) -> [u8; 3] {
    let s = s.min(999);
    [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]
}

/// Fields about the upstream connection, never passed on
/// ([`policy::hop_by_hop`]). `Transfer-Encoding` is kept: the body is
/// passed through as it came, framing and all.
fn hop_by_hop(name: &[u8]) -> bool {
    policy::hop_by_hop(name) && !name.eq_ignore_ascii_case(b"transfer-encoding")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(resp: &[u8], head_request: bool, close: bool) -> (Parsed, String) {
        let mut out = Vec::new();
        let p = prepare(
            resp,
            head_request,
            close,
            None,
            ServerHeader::Pass,
            &mut out,
        );
        (p, String::from_utf8(out).unwrap())
    }

    fn ready(resp: &[u8]) -> (Head, String) {
        match run(resp, false, false) {
            (Parsed::Ready(h), out) => (h, out),
            (other, _) => panic!("{other:?}"),
        }
    }

    #[test]
    fn hsts_is_added_unless_the_upstream_set_one() {
        let mut out = Vec::new();
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        prepare(
            resp,
            false,
            false,
            Some(b"max-age=60"),
            ServerHeader::Pass,
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nstrict-transport-security: max-age=60\r\n\r\n"
        );
        let resp =
            b"HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=1\r\nContent-Length: 0\r\n\r\n";
        prepare(
            resp,
            false,
            false,
            Some(b"max-age=60"),
            ServerHeader::Pass,
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("max-age").count(), 1, "{text}");
        assert!(text.contains("max-age=1"));
    }

    #[test]
    fn content_length_response() {
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=4\r\nX-A: 1\r\n\r\nhello";
        let (h, out) = ready(resp);
        assert_eq!(h.len, resp.len() - 5);
        assert_eq!(h.status, 200);
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.reusable && !h.close_client);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n"
        );
    }

    #[test]
    fn chunked_wins_over_content_length_and_is_not_reused() {
        let (h, out) =
            ready(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.reusable);
        assert_eq!(out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        let (h, _) = ready(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.reusable);
    }

    #[test]
    fn unframed_bodies_run_to_close() {
        for resp in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.0 200 OK\r\n\r\n",
        ] {
            let (h, out) = ready(resp);
            assert_eq!(h.framing, Framing::Eof);
            assert!(!h.reusable && h.close_client);
            assert!(out.ends_with("connection: close\r\n\r\n"), "{out}");
        }
    }

    #[test]
    fn no_body_for_head_204_and_304() {
        let (p, _) = run(
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n",
            true,
            false,
        );
        assert!(matches!(
            p,
            Parsed::Ready(Head {
                framing: Framing::Empty,
                reusable: true,
                ..
            })
        ));
        for s in [
            &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
            b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(ready(s).0.framing, Framing::Empty);
        }
    }

    #[test]
    fn upstream_close_and_http10_keep_alive() {
        let (h, _) = ready(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.reusable && !h.close_client);
        let (h, _) =
            ready(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(h.reusable);
    }

    #[test]
    fn connection_named_fields_are_dropped_but_not_framing() {
        let (_, out) = ready(
            b"HTTP/1.1 200 OK\r\nConnection: x-secret, content-length\r\nX-Secret: 1\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn asks_the_client_to_close() {
        let (p, out) = run(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, true);
        assert!(matches!(
            p,
            Parsed::Ready(Head {
                close_client: true,
                reusable: true,
                ..
            })
        ));
        assert!(out.ends_with("connection: close\r\n\r\n"));
    }

    #[test]
    fn interim_and_invalid() {
        assert_eq!(
            run(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200", false, false).0,
            Parsed::Interim(25)
        );
        assert_eq!(
            run(b"HTTP/1.1 200 OK\r\nContent-Le", false, false).0,
            Parsed::Partial
        );
        for bad in [
            &b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
            b"HTTP/9.9 200 OK\r\n\r\n",
            b"HTTP/1.1 000 Zero\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"hello",
        ] {
            assert!(
                matches!(run(bad, false, false).0, Parsed::Invalid(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // The same length repeated is one length.
        assert_eq!(
            ready(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n")
                .0
                .framing,
            Framing::Length(2)
        );
    }

    #[test]
    fn the_server_header_is_added_passed_or_removed() {
        let with = b"HTTP/1.1 200 OK\r\nServer: gunicorn\r\nContent-Length: 0\r\n\r\n";
        let without = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let head = |resp: &[u8], server| {
            let mut out = Vec::new();
            prepare(resp, false, false, None, server, &mut out);
            String::from_utf8(out).unwrap().to_ascii_lowercase()
        };
        assert!(head(without, ServerHeader::Add).contains("server: sluice\r\n"));
        let kept = head(with, ServerHeader::Add);
        assert!(
            kept.contains("server: gunicorn") && !kept.contains("sluice"),
            "{kept}"
        );
        assert!(!head(without, ServerHeader::Pass).contains("server:"));
        assert!(head(with, ServerHeader::Pass).contains("server: gunicorn"));
        assert!(!head(with, ServerHeader::Off).contains("server:"));
    }
}
