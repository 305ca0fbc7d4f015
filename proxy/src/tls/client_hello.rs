//! The server name (SNI) of a TLS ClientHello, read from its first record
//! without shaking hands: what TLS passthrough routes by, before it knows
//! whether sluice terminates the connection or splices it to a backend
//! that terminates TLS itself.
//!
//! rustls reads the same bytes again when sluice terminates, so this
//! parser only has to be right about the name and never panic: anything it
//! cannot read is [`Sni::Unreadable`], and the connection is terminated as
//! if no passthrough host had asked for it (ingress-nginx hands whatever
//! its parser cannot read to nginx the same way). Nothing is allocated:
//! the name borrows from the record.

/// A TLS record header: type, version, length.
pub const RECORD_HEADER: usize = 5;
/// The largest plaintext record TLS allows (2^14 bytes), and so the
/// largest first record a ClientHello comes in.
pub const MAX_RECORD: usize = 1 << 14;

const HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 0x01;
const SERVER_NAME: u16 = 0x0000;
const HOST_NAME: u8 = 0x00;

/// What the first record says about the server name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sni<'a> {
    /// The `host_name` the client asked for, as sent (any case).
    Name(&'a str),
    /// A whole ClientHello without the extension (an IP address, an old
    /// client).
    Absent,
    /// Not a ClientHello, cut short, split over records, or malformed.
    Unreadable,
}

/// The whole length of the record whose 5-byte header is `header`, when it
/// can be the first record of a ClientHello (a handshake record of at most
/// [`MAX_RECORD`] bytes); `None` otherwise, so that the caller reads no
/// further and leaves the bytes to rustls to refuse.
pub fn record_len(header: &[u8; RECORD_HEADER]) -> Option<usize> {
    if header[0] != HANDSHAKE || header[1] != 3 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    (len > 0 && len <= MAX_RECORD).then_some(RECORD_HEADER + len)
}

/// The server name in `record`, the first TLS record of a connection
/// (header included).
pub fn sni(record: &[u8]) -> Sni<'_> {
    parse(record).unwrap_or(Sni::Unreadable)
}

/// The reader: each `?` is a length that runs past what was sent.
fn parse(record: &[u8]) -> Option<Sni<'_>> {
    let header: &[u8; RECORD_HEADER] = record.get(..RECORD_HEADER)?.try_into().ok()?;
    let end = record_len(header)?;
    let mut r = Reader(record.get(RECORD_HEADER..end)?);
    if r.u8()? != CLIENT_HELLO {
        return None;
    }
    // A ClientHello longer than its first record (rare: a huge list of
    // key shares or a big ticket) is not reassembled; it is terminated.
    let len = r.u24()?;
    let mut hello = Reader(r.take(len)?);
    hello.take(2 + 32)?; // legacy_version, random
    let session_id = usize::from(hello.u8()?);
    hello.take(session_id)?;
    let suites = usize::from(hello.u16()?);
    hello.take(suites)?;
    let compression = usize::from(hello.u8()?);
    hello.take(compression)?;
    if hello.0.is_empty() {
        // TLS 1.0-style, without extensions.
        return Some(Sni::Absent);
    }
    let len = usize::from(hello.u16()?);
    let mut exts = Reader(hello.take(len)?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let len = usize::from(exts.u16()?);
        let mut body = Reader(exts.take(len)?);
        if kind != SERVER_NAME {
            continue;
        }
        let len = usize::from(body.u16()?);
        let mut names = Reader(body.take(len)?);
        while !names.0.is_empty() {
            let ty = names.u8()?;
            let len = usize::from(names.u16()?);
            let name = names.take(len)?;
            if ty == HOST_NAME {
                let name = std::str::from_utf8(name).ok()?;
                return (!name.is_empty()).then_some(Sni::Name(name));
            }
        }
        return Some(Sni::Absent);
    }
    Some(Sni::Absent)
}

/// Big-endian fields off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use std::sync::Arc;

    /// The first flight of a real rustls client for `name` (an IP address
    /// sends no SNI).
    fn hello(name: &str) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let mut c = rustls::ClientConnection::new(
            Arc::new(cfg),
            ServerName::try_from(name.to_owned()).unwrap(),
        )
        .unwrap();
        let mut out = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut out).unwrap();
        }
        out
    }

    /// One record of a hand-made ClientHello with `exts` as extensions.
    fn handmade(exts: &[u8]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one suite
        body.extend([1, 0]); // null compression
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![CLIENT_HELLO, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend(body);
        let mut rec = vec![HANDSHAKE, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    fn sni_ext(entries: &[(u8, &[u8])]) -> Vec<u8> {
        let mut list = Vec::new();
        for (ty, name) in entries {
            list.push(*ty);
            list.extend((name.len() as u16).to_be_bytes());
            list.extend(*name);
        }
        let mut ext = vec![0, 0];
        ext.extend(((list.len() + 2) as u16).to_be_bytes());
        ext.extend((list.len() as u16).to_be_bytes());
        ext.extend(list);
        ext
    }

    #[test]
    fn reads_the_name_a_real_client_sends() {
        let h = hello("pass.example.com");
        let header: &[u8; 5] = h[..5].try_into().unwrap();
        let end = record_len(header).unwrap();
        assert_eq!(sni(&h[..end]), Sni::Name("pass.example.com"));
        // Bytes after the record (a second flight) are not looked at.
        let mut more = h.clone();
        more.extend(b"trailing");
        assert_eq!(sni(&more), Sni::Name("pass.example.com"));
    }

    #[test]
    fn an_ip_address_sends_no_name() {
        assert_eq!(sni(&hello("127.0.0.1")), Sni::Absent);
        assert_eq!(sni(&handmade(&[])), Sni::Absent);
        // Another extension only.
        assert_eq!(sni(&handmade(&[0, 0x2b, 0, 3, 2, 3, 4])), Sni::Absent);
    }

    #[test]
    fn the_host_name_entry_is_found_among_others() {
        let ext = sni_ext(&[(7, b"other"), (HOST_NAME, b"a.example.com")]);
        let mut exts = vec![0, 0x2b, 0, 3, 2, 3, 4];
        exts.extend(ext);
        assert_eq!(sni(&handmade(&exts)), Sni::Name("a.example.com"));
        assert_eq!(
            sni(&handmade(&sni_ext(&[(HOST_NAME, b"")]))),
            Sni::Unreadable
        );
        assert_eq!(
            sni(&handmade(&sni_ext(&[(HOST_NAME, &[0xff, 0xfe])]))),
            Sni::Unreadable
        );
    }

    #[test]
    fn every_cut_short_record_is_unreadable_never_a_panic() {
        let h = hello("a.example.com");
        for n in 0..h.len() {
            let got = sni(&h[..n]);
            assert_eq!(got, Sni::Unreadable, "{n} bytes");
        }
        // Every byte changed in turn: no panic, and no name longer than
        // the record.
        for i in 0..h.len() {
            let mut bad = h.clone();
            bad[i] ^= 0xff;
            if let Sni::Name(n) = sni(&bad) {
                assert!(n.len() < bad.len());
            }
        }
    }

    #[test]
    fn only_a_handshake_record_of_a_legal_size_is_read_whole() {
        assert_eq!(record_len(&[0x16, 3, 1, 0, 5]), Some(10));
        assert_eq!(record_len(&[0x16, 3, 3, 0x40, 0]), Some(5 + MAX_RECORD));
        assert_eq!(record_len(&[0x16, 3, 3, 0x40, 1]), None);
        assert_eq!(record_len(&[0x16, 3, 3, 0, 0]), None);
        assert_eq!(record_len(b"GET /"), None);
        assert_eq!(record_len(b"PRI *"), None);
        assert_eq!(sni(b"GET / HTTP/1.1\r\n\r\n"), Sni::Unreadable);
    }
}
