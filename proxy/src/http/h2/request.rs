//! A request head as HTTP/2 carries it: decoded from HPACK, checked
//! against RFC 9113 8.2–8.3, and kept as one buffer of bytes with the
//! fields' places in it.
//!
//! One buffer and a list of spans, not a map of owned names and values: a
//! request costs two allocations however many fields it has, and what it
//! becomes next (an HTTP/1.1 head for the upstream, or hyper's types for
//! the general path) reads the fields once, in order.
//!
//! The checks matter more for a proxy than for an origin: the head is
//! written upstream as HTTP/1.1, where a CR or LF in a value, or a
//! Transfer-Encoding the client slipped in, would be request smuggling.
//! A malformed head is a stream error (RST_STREAM PROTOCOL_ERROR), as the
//! RFC asks; a head past the size limits is kept as "too large", for the
//! driver to answer 431.

use super::hpack;

/// A place in a [`RequestHead`]'s bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
}

/// A regular field.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: Span,
    pub value: Span,
}

/// A decoded request head (or trailers: no pseudo-fields, then).
#[derive(Debug, Default)]
pub struct RequestHead {
    bytes: Vec<u8>,
    fields: Vec<Field>,
    pub method: Option<Span>,
    pub scheme: Option<Span>,
    pub authority: Option<Span>,
    pub path: Option<Span>,
    /// The Content-Length the request declared.
    pub content_length: Option<u64>,
    /// Why the head is malformed, if it is: the stream is reset.
    pub malformed: Option<&'static str>,
    /// Past the header size or count limit: answered 431.
    pub too_large: bool,
    /// The header list's size as HTTP/2 counts it (each field's name and
    /// value plus 32).
    pub size: usize,
}

/// The limits a head is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_size: usize,
    pub max_count: usize,
}

impl RequestHead {
    pub fn get(&self, span: Span) -> &[u8] {
        &self.bytes[span.start as usize..span.end as usize]
    }

    /// The regular fields, in the order sent (Cookie fields joined into
    /// one, at the end).
    pub fn fields(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.fields
            .iter()
            .map(|f| (self.get(f.name), self.get(f.value)))
    }

    pub fn method(&self) -> &[u8] {
        self.method.map_or(&[][..], |s| self.get(s))
    }

    fn push(&mut self, bytes: &[u8]) -> Span {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(bytes);
        Span {
            start,
            end: self.bytes.len() as u32,
        }
    }

    fn malformed(&mut self, why: &'static str) {
        if self.malformed.is_none() {
            self.malformed = Some(why);
        }
    }
}

/// Decodes a header block into a head, checked as a request's
/// (`trailers`: as a request's trailers). The block is decoded to its end
/// whatever is wrong with it, so the decoder's table stays right; only an
/// HPACK error is returned as one (it ends the connection).
pub fn decode(
    decoder: &mut hpack::Decoder,
    block: &[u8],
    limits: Limits,
    trailers: bool,
) -> Result<RequestHead, hpack::DecodeError> {
    let mut head = RequestHead {
        bytes: Vec::with_capacity(block.len() * 2 + 64),
        fields: Vec::with_capacity(16),
        ..RequestHead::default()
    };
    let mut cookies: Vec<u8> = Vec::new();
    let mut regular_seen = false;
    decoder.decode(block, |name, value| {
        head.size += name.len() + value.len() + 32;
        if head.malformed.is_some() || head.too_large {
            return;
        }
        if head.size > limits.max_size {
            head.too_large = true;
            return;
        }
        if let Some(pseudo) = name.strip_prefix(b":") {
            if trailers {
                return head.malformed("a pseudo-header in trailers");
            }
            if regular_seen {
                return head.malformed("a pseudo-header after a regular field");
            }
            if !valid_value(value) {
                return head.malformed("a pseudo-header value with a control character");
            }
            let span = head.push(value);
            let slot = match pseudo {
                b"method" => &mut head.method,
                b"scheme" => &mut head.scheme,
                b"authority" => &mut head.authority,
                b"path" => &mut head.path,
                _ => return head.malformed("an unknown pseudo-header"),
            };
            if slot.replace(span).is_some() {
                head.malformed("a pseudo-header sent twice");
            }
            return;
        }
        regular_seen = true;
        if !valid_name(name) {
            return head.malformed("a field name that is not a lowercase token");
        }
        if !valid_value(value) {
            return head.malformed("a field value with a control character or edge whitespace");
        }
        match name {
            b"connection" | b"proxy-connection" | b"keep-alive" | b"transfer-encoding"
            | b"upgrade" => return head.malformed("a connection-specific field"),
            b"te" if value != b"trailers" => return head.malformed("TE other than trailers"),
            b"content-length" => {
                let Some(n) = crate::upstream::framing::length(value) else {
                    return head.malformed("a Content-Length that is not a number");
                };
                if head.content_length.is_some_and(|m| m != n) {
                    return head.malformed("two different Content-Lengths");
                }
                head.content_length = Some(n);
            }
            b"cookie" => {
                // Joined into one field, as HTTP/1.1 wants (RFC 9113 8.2.3).
                if !cookies.is_empty() {
                    cookies.extend_from_slice(b"; ");
                }
                cookies.extend_from_slice(value);
                return;
            }
            _ => {}
        }
        if head.fields.len() >= limits.max_count {
            head.too_large = true;
            return;
        }
        let name = head.push(name);
        let value = head.push(value);
        head.fields.push(Field { name, value });
    })?;
    if !cookies.is_empty() && head.malformed.is_none() && !head.too_large {
        if head.fields.len() >= limits.max_count {
            head.too_large = true;
        } else {
            let name = head.push(b"cookie");
            let value = head.push(&cookies);
            head.fields.push(Field { name, value });
        }
    }
    if !trailers && head.malformed.is_none() && !head.too_large {
        if head.method.is_none() {
            head.malformed("no :method");
        } else if head.method() == b"CONNECT" {
            if head.authority.is_none() || head.scheme.is_some() || head.path.is_some() {
                head.malformed("a CONNECT without :authority, or with :scheme or :path");
            }
        } else if head.scheme.is_none() {
            head.malformed("no :scheme");
        } else if !valid_path(head.path.map(|p| head.get(p)), head.method()) {
            head.malformed("a :path that is neither origin-form nor * for OPTIONS");
        }
        if !head
            .method()
            .iter()
            .all(|&c| TOKEN[usize::from(c)] || c.is_ascii_uppercase())
        {
            head.malformed("a :method that is not a token");
        }
    }
    Ok(head)
}

/// A `:path` RFC 9113 8.3.1 allows for http and https: origin-form (a
/// `/` first), or `*` for OPTIONS.
fn valid_path(path: Option<&[u8]>, method: &[u8]) -> bool {
    match path {
        Some([b'/', ..]) => true,
        Some(b"*") => method == b"OPTIONS",
        _ => false,
    }
}

/// A field name HTTP/2 allows: a token, in lowercase.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&c| TOKEN[usize::from(c)])
}

/// A field value HTTP/2 allows (RFC 9113 8.2.1): no NUL, CR or LF, and no
/// whitespace at either end. Other control characters are refused too,
/// as hyper's types and HTTP/1.1 upstreams would refuse them.
fn valid_value(value: &[u8]) -> bool {
    let edge = |c: Option<&u8>| matches!(c, Some(b' ' | b'\t'));
    !edge(value.first())
        && !edge(value.last())
        && value.iter().all(|&c| c >= 0x20 && c != 0x7f || c == b'\t')
}

/// The lowercase token characters (RFC 9110 5.6.2).
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_lowercase()
            || b.is_ascii_digit()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        c += 1;
    }
    t
};
