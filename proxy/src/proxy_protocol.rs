//! The PROXY protocol (v1 text and v2 binary) on a listener: the cloud
//! LoadBalancer in front tells who the client really is.
//!
//! The header is read (never peeked: a header that arrives in pieces must
//! not spin) before any HTTP, from trusted networks only, under the
//! request-header timeout. What came after it in the same reads is handed
//! on. A connection from elsewhere, or with a malformed, truncated or
//! oversized header, is closed: a proxy that falls back to the socket's
//! address would let anyone who reaches it directly pose as any client.

use std::net::SocketAddr;

use ppp::{HeaderResult, PartialResult};

use crate::forwarded::Trusted;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest header accepted: a v1 line is at most 107 bytes, a v2
/// header 16 plus its addresses and TLVs.
const MAX_HEADER: usize = 4096;

/// Why a connection was closed before any HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("PROXY header from an untrusted address")]
    Untrusted,
    #[error("malformed PROXY header")]
    Malformed,
    #[error("PROXY header too large")]
    TooLarge,
    #[error("connection closed before a whole PROXY header")]
    Truncated,
}

/// Reads the header. Returns the client's address (the peer's own for a
/// LOCAL or UNKNOWN header, as health checks send) and the bytes read past
/// the header.
pub async fn read<S: AsyncRead + Unpin>(
    io: &mut S,
    peer: SocketAddr,
    trusted: &Trusted,
) -> Result<(SocketAddr, Vec<u8>), Refused> {
    if !trusted.allows(peer.ip()) {
        return Err(Refused::Untrusted);
    }
    let mut buf = Vec::with_capacity(256);
    loop {
        if buf.len() >= MAX_HEADER {
            return Err(Refused::TooLarge);
        }
        buf.reserve(256);
        match io.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Err(Refused::Truncated),
            Ok(_) => {}
        }
        match parse(&buf) {
            Parsed::Incomplete => continue,
            Parsed::Invalid => return Err(Refused::Malformed),
            Parsed::Header { len, client } => {
                let rest = buf.split_off(len);
                return Ok((client.unwrap_or(peer), rest));
            }
        }
    }
}

/// What a buffer holds (`pub(crate)` for the fuzz targets' entry points).
pub(crate) enum Parsed {
    Incomplete,
    Invalid,
    /// The header's length; the client's address when it names one.
    Header {
        len: usize,
        client: Option<SocketAddr>,
    },
}

pub(crate) fn parse(buf: &[u8]) -> Parsed {
    let result = HeaderResult::parse(buf);
    if let HeaderResult::V1(r) = &result {
        if let Some(verdict) = v1_line(buf, r.is_incomplete()) {
            return verdict;
        }
    }
    if result.is_incomplete() {
        return Parsed::Incomplete;
    }
    match result {
        HeaderResult::V1(Ok(h)) => {
            let client = match h.addresses {
                ppp::v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Unknown => None,
            };
            Parsed::Header {
                len: h.header.len(),
                client,
            }
        }
        HeaderResult::V2(Ok(h)) => {
            let client = match (h.command, h.addresses) {
                (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => None,
            };
            Parsed::Header {
                len: h.header.len(),
                client,
            }
        }
        _ => Parsed::Invalid,
    }
}

/// The longest v1 line before its CRLF (the spec's 107 bytes in all).
const MAX_V1_LINE: usize = 105;

/// A v1 header is one line of printable ASCII, judged once it has ended.
///
/// ppp (2.3) also judges a line still arriving, and its verdict then
/// depends on where a read cut it: `PROXY TCP4 203.0.113.9 10.0.0.1 5555 `
/// is refused as malformed (a header split there closed the connection),
/// `PROXY PROXY` is awaited, and a UTF-8 character cut in two is refused
/// where the whole one is awaited; an ended line with fields missing is
/// awaited too (until the header timeout). So until the CRLF only the
/// line's start, bytes and length are checked, and after it ppp's
/// verdict is final. `None`: ppp's verdict stands. Found by the
/// `proxy_protocol` fuzz target.
fn v1_line(buf: &[u8], incomplete: bool) -> Option<Parsed> {
    let cr = buf.iter().position(|&b| b == b'\r');
    let line = &buf[..cr.unwrap_or(buf.len())];
    let plausible = line.len() <= MAX_V1_LINE
        && (line.starts_with(b"PROXY ") || b"PROXY ".starts_with(line))
        && line.iter().all(|&b| b == b' ' || b.is_ascii_graphic());
    let ended = cr.is_some_and(|cr| cr + 1 < buf.len());
    match (plausible, ended) {
        (false, _) => Some(Parsed::Invalid),
        (true, false) => Some(Parsed::Incomplete),
        (true, true) if incomplete => Some(Parsed::Invalid),
        (true, true) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v1 line is judged once it has ended, so the same however it was
    /// split into reads (found by the `proxy_protocol` fuzz target): every
    /// prefix of a header waits for more, a line that ends malformed is
    /// refused then, and one that cannot become a header at once.
    #[test]
    fn a_v1_line_is_judged_whole() {
        for header in [
            &b"PROXY TCP4 203.0.113.9 10.0.0.1 5555 80\r\n"[..],
            b"PROXY TCP6 2001:db8::1 2001:db8::2 40000 443\r\n",
            b"PROXY UNKNOWN\r\n",
        ] {
            for cut in 0..header.len() {
                assert!(
                    matches!(parse(&header[..cut]), Parsed::Incomplete),
                    "{:?}",
                    String::from_utf8_lossy(&header[..cut])
                );
            }
            assert!(matches!(parse(header), Parsed::Header { len, .. } if len == header.len()));
        }
        // Refused as soon as the line ends, not waited on: a second space,
        // a port that cannot be, fields missing, a line not PROXY's.
        for bad in [
            &b"PROXY TCP4 203.0.113.9 10.0.0.1 5555  80\r\n"[..],
            b"PROXY TCP4 203.0.113.9 10.0.0.1 99999 80\r\n",
            b"PROXY TCP4 203.0.113.9\r\nGET / HTTP/1.1\r\n",
            b"PROXY PROXY\r\n",
            b"PROXY TCP6 2001:db8::1 2001:db8::2 40000\r\n",
            b"PROXY UNKNOWN \x01\r\n",
        ] {
            assert!(
                matches!(parse(bad), Parsed::Invalid),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Refused at once: not PROXY's start, a byte not printable ASCII
        // (here the first half of a UTF-8 character), too long.
        for bad in [
            &b"GET / HTTP/1.1"[..],
            b"PROXY\t",
            b"PROXY TCP4 2\xd0",
            &[b'P'; 106],
            &[&b"PROXY UNKNOWN "[..], &[b'x'; 92]].concat(),
        ] {
            assert!(
                matches!(parse(bad), Parsed::Invalid),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// A header read one byte at a time, as a slow sender delivers it.
    #[tokio::test]
    async fn a_header_in_one_byte_reads() {
        struct Trickle<'a>(&'a [u8]);
        impl AsyncRead for Trickle<'_> {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                if let Some((first, rest)) = self.0.split_first() {
                    buf.put_slice(&[*first]);
                    self.0 = rest;
                }
                std::task::Poll::Ready(Ok(()))
            }
        }
        let mut io = Trickle(b"PROXY TCP4 203.0.113.9 10.0.0.1 5555 80\r\nGET");
        let (client, rest) = read(&mut io, "127.0.0.1:1".parse().unwrap(), &Trusted::default())
            .await
            .unwrap();
        assert_eq!(client, "203.0.113.9:5555".parse().unwrap());
        assert!(b"GET".starts_with(&rest));
    }

    async fn run(
        bytes: &[u8],
        peer: &str,
        trusted: &[&str],
    ) -> Result<(SocketAddr, Vec<u8>), Refused> {
        let trusted = Trusted(trusted.iter().map(|t| t.parse().unwrap()).collect());
        let mut io = bytes;
        read(&mut io, peer.parse().unwrap(), &trusted).await
    }

    fn v2(src: [u8; 4], sport: u16) -> Vec<u8> {
        let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        h.push(0x21); // version 2, PROXY
        h.push(0x11); // TCP over IPv4
        h.extend_from_slice(&12u16.to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&[127, 0, 0, 1]);
        h.extend_from_slice(&sport.to_be_bytes());
        h.extend_from_slice(&80u16.to_be_bytes());
        h
    }

    #[tokio::test]
    async fn v1_and_v2_name_the_client_and_keep_what_follows() {
        let (client, rest) = run(
            b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\nGET / HTTP/1.1\r\n",
            "127.0.0.1:1",
            &[],
        )
        .await
        .unwrap();
        assert_eq!(client, "203.0.113.9:5555".parse().unwrap());
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let mut bytes = v2([198, 51, 100, 7], 4242);
        bytes.extend_from_slice(b"GET");
        let (client, rest) = run(&bytes, "10.1.2.3:1", &["10.0.0.0/8"]).await.unwrap();
        assert_eq!(client, "198.51.100.7:4242".parse().unwrap());
        assert_eq!(rest, b"GET");
        // UNKNOWN (a health check): the peer itself.
        let (client, _) = run(b"PROXY UNKNOWN\r\n", "127.0.0.1:7", &[]).await.unwrap();
        assert_eq!(client, "127.0.0.1:7".parse().unwrap());
    }

    #[tokio::test]
    async fn refuses_untrusted_malformed_and_truncated() {
        let good = b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n";
        assert_eq!(
            run(good, "127.0.0.1:1", &["10.0.0.0/8"]).await.unwrap_err(),
            Refused::Untrusted
        );
        assert_eq!(
            run(good, "[::ffff:10.0.0.1]:1", &["10.0.0.0/8"])
                .await
                .map(|r| r.0.port()),
            Ok(5555)
        );
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"PROXY TCP4 nonsense 127.0.0.1 1 2\r\n",
            b"PROXY TCP4 203.0.113.9 127.0.0.1 99999 80\r\n",
        ] {
            assert_eq!(
                run(bad, "127.0.0.1:1", &[]).await.unwrap_err(),
                Refused::Malformed,
                "{bad:?}"
            );
        }
        assert_eq!(
            run(b"PROXY TCP4 203.0.", "127.0.0.1:1", &[])
                .await
                .unwrap_err(),
            Refused::Truncated
        );
        let v2 = v2([1, 2, 3, 4], 1);
        assert_eq!(
            run(&v2[..20], "127.0.0.1:1", &[]).await.unwrap_err(),
            Refused::Truncated
        );
    }
}
