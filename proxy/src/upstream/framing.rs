//! What an upstream's HTTP/1.1 response head says of its body and its
//! connection (RFC 9112 6.3): how the body is delimited, and whether the
//! connection may serve another request after it.
//!
//! One reading for both users of raw upstream sockets: the fast path,
//! which passes the head on to an HTTP/1.1 client as bytes, and the raw
//! exchange of the hyper path (`pool/raw.rs`), which makes an
//! `http::Response` of it for HTTP/2 clients. Two readings of the same
//! head could disagree about where a response ends, and that is how one
//! response leaks into the next.

use std::mem::MaybeUninit;

use crate::policy;

/// Response header fields accepted, as hyper's client accepts.
pub const MAX_FIELDS: usize = 100;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a HEAD request, 204 or 304.
    Empty,
    Length(u64),
    /// Chunked: the chunk framing tells where it ends.
    Chunked,
    /// Until the upstream closes.
    Eof,
}

/// What the start of a buffer holds, read as a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    Partial,
    /// An interim (1xx) head of this length, to skip.
    Interim(usize),
    /// A final head of this length; `version` is httparse's minor version.
    Final {
        len: usize,
        code: u16,
        version: u8,
        facts: Facts,
    },
    Invalid(&'static str),
}

/// Room for a response head's fields, left unset: httparse writes only
/// the ones the head has, where zeroing all of them (3.2 KB) first would
/// cost more than the parse.
pub type Fields<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_FIELDS];

/// Empty room for [`Fields`].
pub fn fields<'b>() -> Fields<'b> {
    [const { MaybeUninit::uninit() }; MAX_FIELDS]
}

/// Parses the response head at the start of `buf` into `resp`, its fields
/// into `fields` (a head longer than `limit` is refused, however it came
/// in: one read may bring a whole head larger than the limit), and reads
/// what it says.
pub fn parse<'h, 'b>(
    resp: &mut httparse::Response<'h, 'b>,
    fields: &'h mut [MaybeUninit<httparse::Header<'b>>],
    buf: &'b [u8],
    limit: usize,
    head_request: bool,
) -> Head {
    let parsed =
        httparse::ParserConfig::default().parse_response_with_uninit_headers(resp, buf, fields);
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) if n <= limit => n,
        Ok(httparse::Status::Complete(_)) => return Head::Invalid("response head too large"),
        Ok(httparse::Status::Partial) if buf.len() <= limit => return Head::Partial,
        Ok(httparse::Status::Partial) => return Head::Invalid("response head too large"),
        Err(_) => return Head::Invalid("malformed response head"),
    };
    let (Some(version), Some(code)) = (resp.version, resp.code) else {
        return Head::Invalid("malformed response head");
    };
    match status(code) {
        Ok(Status::Interim) => return Head::Interim(len),
        Ok(Status::Final) => {}
        Err(why) => return Head::Invalid(why),
    }
    match read(version, code, resp.headers, head_request) {
        Ok(facts) => Head::Final {
            len,
            code,
            version,
            facts,
        },
        Err(why) => Head::Invalid(why),
    }
}

/// What kind of response a status code makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// 1xx other than 101: skipped, as the client did not ask for one
    /// (neither path forwards `Expect`).
    Interim,
    Final,
}

/// Sorts a status code: 101 without an upgrade and codes hyper's client
/// would not take are errors.
fn status(code: u16) -> Result<Status, &'static str> {
    match code {
        101 => Err("switching protocols without an upgrade"),
        100..=199 => Ok(Status::Interim),
        200..=999 => Ok(Status::Final),
        _ => Err("malformed status code"),
    }
}

/// What a final response head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub framing: Framing,
    /// The upstream connection may serve another request afterwards.
    pub reusable: bool,
    /// Transfer-Encoding was sent (then Content-Length is not passed on).
    pub transfer_encoding: bool,
    /// A Connection field names other fields as hop-by-hop.
    pub names_fields: bool,
    /// The upstream set Strict-Transport-Security.
    pub sts: bool,
    /// The upstream set Server.
    pub server: bool,
}

/// Reads a final response head's fields. `version` is httparse's minor
/// version (0 for HTTP/1.0); `head_request`: the request was a HEAD.
fn read(
    version: u8,
    code: u16,
    fields: &[httparse::Header<'_>],
    head_request: bool,
) -> Result<Facts, &'static str> {
    let mut upstream_close = version == 0;
    let mut names_fields = false;
    let mut sts = false;
    let mut server = false;
    let mut chunked: Option<bool> = None;
    let mut len: Option<u64> = None;
    for f in fields {
        let name = f.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            for t in f.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if t.eq_ignore_ascii_case(b"close") {
                    upstream_close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    // It names only Keep-Alive, which is hop-by-hop anyway:
                    // the common `Connection: keep-alive` costs no search.
                    if version == 0 {
                        upstream_close = false;
                    }
                } else if !t.is_empty() {
                    names_fields = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Chunked only when it is the final coding.
            let last = f.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"strict-transport-security") {
            sts = true;
        } else if name.eq_ignore_ascii_case(b"server") {
            server = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            for v in f.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                let Some(n) = length(v) else {
                    return Err("malformed content-length");
                };
                if len.is_some_and(|l| l != n) {
                    return Err("conflicting content-lengths");
                }
                len = Some(n);
            }
        }
    }
    if version == 0 && chunked.is_some() {
        // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has
        // faulty framing; hyper's client refuses it too.
        return Err("transfer-encoding in an HTTP/1.0 response");
    }
    let framing = if head_request || code == 204 || code == 304 {
        Framing::Empty
    } else {
        match (chunked, len) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::Eof,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::Eof,
        }
    };
    // A response with both framings was sent by something confused (or
    // hostile): deliver it, but never reuse that connection.
    let both = chunked.is_some() && len.is_some();
    Ok(Facts {
        framing,
        reusable: !upstream_close && !both && framing != Framing::Eof,
        transfer_encoding: chunked.is_some(),
        names_fields,
        sts,
        server,
    })
}

/// True when a Connection field names `name` as hop-by-hop. Framing,
/// content and the other [`policy::PROTECTED`] fields cannot be removed
/// that way.
pub fn named_by_connection(fields: &[httparse::Header<'_>], name: &[u8]) -> bool {
    if policy::protected(name) {
        return false;
    }
    fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("connection"))
        .flat_map(|f| f.value.split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(name))
}

/// A Content-Length value: digits only, at most 19 of them (RFC 9110
/// 8.6). A sign, spaces inside or a list are not a length.
pub fn length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(head: &str) -> Facts {
        let mut fields = fields();
        let mut resp = httparse::Response::new(&mut []);
        match parse(&mut resp, &mut fields, head.as_bytes(), 65536, false) {
            Head::Final { facts, .. } => facts,
            other => panic!("{head:?}: {other:?}"),
        }
    }

    #[test]
    fn connection_keep_alive_names_no_field() {
        let f = facts("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(!f.names_fields && f.reusable);
        let f = facts(
            "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, X-Secret\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(f.names_fields && f.reusable);
        let f = facts("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        assert!(!f.names_fields && !f.reusable);
        // HTTP/1.0 keeps the connection only when asked to.
        let f = facts("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(!f.names_fields && f.reusable);
        let f = facts("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(!f.reusable);
    }
}
