//! Finds where a chunked body ends, and decodes it when asked.
//!
//! The fast path passes a chunked response through byte for byte; it only
//! needs to know where the message stops, so that the connection can serve
//! the next response and nothing of one response leaks into another. The
//! scanner is strict where leniency would let two parties disagree about
//! that end (RFC 9112 7.1): sizes are hex digits only and at most 16 of
//! them, every line ends in CRLF, and chunk data is followed by CRLF.

/// Why a chunked body is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("a chunk size is not hexadecimal")]
    BadSize,
    #[error("a chunk size is too large")]
    TooLarge,
    #[error("a chunk line does not end in CRLF")]
    BadLineEnd,
    #[error("a trailer section is too large")]
    TrailersTooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size (`digits` so far).
    Size {
        digits: u8,
    },
    /// After the size: whitespace, then `;` or CR.
    SizeWs,
    /// Inside a chunk extension (`;name=value`), up to CR.
    Extension,
    /// After the size line's CR.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// After chunk data: CR expected.
    DataCr,
    /// After chunk data and CR: LF expected.
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// After a trailer line's CR.
    TrailerLf,
    /// After the final empty line's CR.
    EndLf,
    Done,
}

/// What [`ChunkedScanner::decode`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// `skip` bytes of framing, then `len` bytes of chunk data.
    Data { skip: usize, len: usize },
    /// All of the bytes were framing; the body goes on.
    More,
    /// The body ended after this many bytes (any further bytes are not
    /// the body's).
    End(usize),
}

/// The scanner's state between reads.
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: State,
    size: u64,
    trailer_bytes: usize,
    /// Bytes of the current chunk extension.
    line: usize,
}

/// The most trailer bytes accepted, like the most header bytes.
const MAX_TRAILERS: usize = 16 * 1024;
/// The longest chunk extension accepted.
const MAX_EXTENSION: usize = 4096;

impl Default for ChunkedScanner {
    fn default() -> Self {
        ChunkedScanner {
            state: State::Size { digits: 0 },
            size: 0,
            trailer_bytes: 0,
            line: 0,
        }
    }
}

impl ChunkedScanner {
    /// Scans the next bytes of the body. Returns where in `buf` the body
    /// ended (one past its last byte), or `None` when it goes on.
    pub fn feed(&mut self, buf: &[u8]) -> Result<Option<usize>, ChunkError> {
        let mut at = 0;
        loop {
            match self.decode(&buf[at..])? {
                // The data is skipped in one step.
                Decoded::Data { skip, len } => at += skip + len,
                Decoded::More => return Ok(None),
                Decoded::End(n) => return Ok(Some(at + n)),
            }
        }
    }

    /// Decodes the next bytes of the body, for a client that gets the data
    /// without the chunk framing: the framing bytes are consumed, and the
    /// first run of chunk data met is handed back as a range of `buf`.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Decoded, ChunkError> {
        let mut i = 0;
        while i < buf.len() {
            match self.state {
                State::Done => return Ok(Decoded::End(i)),
                State::Data => {
                    let take = ((buf.len() - i) as u64).min(self.size);
                    self.size -= take;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Decoded::Data {
                        skip: i,
                        len: take as usize,
                    });
                }
                _ => {
                    if self.framing(buf[i])? {
                        return Ok(Decoded::End(i + 1));
                    }
                    i += 1;
                }
            }
        }
        Ok(if self.state == State::Done {
            Decoded::End(i)
        } else {
            Decoded::More
        })
    }

    /// Takes one byte of framing (anything but chunk data). True when it
    /// ended the body.
    fn framing(&mut self, b: u8) -> Result<bool, ChunkError> {
        match self.state {
            State::Size { digits } => match hex(b) {
                Some(d) => {
                    if digits == 16 {
                        return Err(ChunkError::TooLarge);
                    }
                    self.size = (self.size << 4) | u64::from(d);
                    self.state = State::Size { digits: digits + 1 };
                }
                None if digits == 0 => return Err(ChunkError::BadSize),
                None => match b {
                    b' ' | b'\t' => self.state = State::SizeWs,
                    b';' => {
                        self.line = 0;
                        self.state = State::Extension;
                    }
                    b'\r' => self.state = State::SizeLf,
                    b'\n' => return Err(ChunkError::BadLineEnd),
                    _ => return Err(ChunkError::BadSize),
                },
            },
            State::SizeWs => match b {
                b' ' | b'\t' => {}
                b';' => {
                    self.line = 0;
                    self.state = State::Extension;
                }
                b'\r' => self.state = State::SizeLf,
                b'\n' => return Err(ChunkError::BadLineEnd),
                _ => return Err(ChunkError::BadSize),
            },
            State::Extension => match b {
                b'\r' => self.state = State::SizeLf,
                b'\n' => return Err(ChunkError::BadLineEnd),
                // Visible characters and whitespace only, and not
                // without end.
                b'\t' | b' '..=b'~' | 0x80.. => {
                    self.line += 1;
                    if self.line > MAX_EXTENSION {
                        return Err(ChunkError::BadSize);
                    }
                }
                _ => return Err(ChunkError::BadSize),
            },
            State::SizeLf => {
                if b != b'\n' {
                    return Err(ChunkError::BadLineEnd);
                }
                self.state = if self.size == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                };
            }
            State::DataCr => {
                if b != b'\r' {
                    return Err(ChunkError::BadLineEnd);
                }
                self.state = State::DataLf;
            }
            State::DataLf => {
                if b != b'\n' {
                    return Err(ChunkError::BadLineEnd);
                }
                self.state = State::Size { digits: 0 };
            }
            State::TrailerStart => match b {
                b'\r' => self.state = State::EndLf,
                b'\n' => return Err(ChunkError::BadLineEnd),
                _ => {
                    self.count_trailer()?;
                    self.state = State::Trailer;
                }
            },
            State::Trailer => {
                self.count_trailer()?;
                match b {
                    b'\r' => self.state = State::TrailerLf,
                    b'\n' => return Err(ChunkError::BadLineEnd),
                    _ => {}
                }
            }
            State::TrailerLf => {
                if b != b'\n' {
                    return Err(ChunkError::BadLineEnd);
                }
                self.state = State::TrailerStart;
            }
            State::EndLf => {
                if b != b'\n' {
                    return Err(ChunkError::BadLineEnd);
                }
                self.state = State::Done;
                return Ok(true);
            }
            State::Data | State::Done => {}
        }
        Ok(false)
    }

    fn count_trailer(&mut self) -> Result<(), ChunkError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILERS {
            return Err(ChunkError::TrailersTooLarge);
        }
        Ok(())
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_whole(body: &[u8]) -> Result<Option<usize>, ChunkError> {
        ChunkedScanner::default().feed(body)
    }

    /// Feeds `body` one byte at a time: the end found must not depend on
    /// how the reads fell.
    fn scan_bytewise(body: &[u8]) -> Result<Option<usize>, ChunkError> {
        let mut s = ChunkedScanner::default();
        for (i, b) in body.iter().enumerate() {
            if let Some(end) = s.feed(std::slice::from_ref(b))? {
                return Ok(Some(i + end));
            }
        }
        Ok(None)
    }

    #[test]
    fn finds_the_end() {
        let cases: &[&[u8]] = &[
            b"0\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\r\n",
            b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nx-trailer: 1\r\nx-other: 2\r\n\r\n",
            b"1\r\n\r\r\n0 ; last\r\n\r\n",
        ];
        for body in cases {
            let mut with_next = body.to_vec();
            with_next.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
            assert_eq!(scan_whole(&with_next), Ok(Some(body.len())), "{body:?}");
            assert_eq!(scan_bytewise(&with_next), Ok(Some(body.len())), "{body:?}");
        }
    }

    #[test]
    fn waits_for_more() {
        for body in [&b"5\r\nhel"[..], b"5\r\nhello\r\n0\r\n", b"0\r\nx: 1\r\n"] {
            assert_eq!(scan_whole(body), Ok(None));
        }
    }

    #[test]
    fn refuses_what_could_be_read_two_ways() {
        let cases: &[(&[u8], ChunkError)] = &[
            (b"x\r\n", ChunkError::BadSize),
            (b"\r\n", ChunkError::BadSize),
            (b"-5\r\n", ChunkError::BadSize),
            (b"0x5\r\n", ChunkError::BadSize),
            (b"5\nhello\r\n", ChunkError::BadLineEnd),
            (b"5\r\nhelloX\r\n", ChunkError::BadLineEnd),
            (b"5\r\nhello\rX", ChunkError::BadLineEnd),
            (b"5;a\nb\r\n", ChunkError::BadLineEnd),
            (b"0\r\n\n", ChunkError::BadLineEnd),
            (b"0\r\nx: 1\n\r\n", ChunkError::BadLineEnd),
            (b"10000000000000000\r\n", ChunkError::TooLarge),
            (b"5 garbage\r\nhello\r\n", ChunkError::BadSize),
            (b"5;a\x01b\r\n", ChunkError::BadSize),
        ];
        for (body, want) in cases {
            assert_eq!(scan_whole(body), Err(*want), "{body:?}");
            assert_eq!(scan_bytewise(body), Err(*want), "{body:?}");
        }
    }

    #[test]
    fn sixteen_hex_digits_fit() {
        let mut s = ChunkedScanner::default();
        assert_eq!(s.feed(b"ffffffffffffffff\r\nabc"), Ok(None));
        assert_eq!(s.size, u64::MAX - 3);
    }

    #[test]
    fn endless_extensions_are_refused() {
        let mut body = b"5;".to_vec();
        body.extend(std::iter::repeat_n(b'x', MAX_EXTENSION + 1));
        assert_eq!(scan_whole(&body), Err(ChunkError::BadSize));
    }

    #[test]
    fn huge_trailers_are_refused() {
        let mut body = b"0\r\n".to_vec();
        for _ in 0..2000 {
            body.extend_from_slice(b"x-padding: 0123456789\r\n");
        }
        assert_eq!(scan_whole(&body), Err(ChunkError::TrailersTooLarge));
    }

    /// Decodes `body` handed over `piece` bytes at a time, as reads would:
    /// the data, and how many bytes the body took.
    fn decode_in_pieces(body: &[u8], piece: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = ChunkedScanner::default();
        let mut data = Vec::new();
        let mut at = 0;
        for chunk in body.chunks(piece) {
            let mut buf = chunk;
            loop {
                match d.decode(buf)? {
                    Decoded::Data { skip, len } => {
                        data.extend_from_slice(&buf[skip..skip + len]);
                        at += skip + len;
                        buf = &buf[skip + len..];
                    }
                    Decoded::More => {
                        at += buf.len();
                        break;
                    }
                    Decoded::End(n) => return Ok((data, at + n)),
                }
            }
        }
        panic!("the body did not end");
    }

    #[test]
    fn decodes_the_data_however_it_is_cut() {
        let body =
            b"5;ext=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-t: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        for piece in 1..=body.len() {
            let (data, took) = decode_in_pieces(body, piece).unwrap();
            assert_eq!(
                data, b"helloabcdefghijklmnopqrstuvwxyz",
                "pieces of {piece}"
            );
            assert_eq!(took, end, "pieces of {piece}");
        }
        // What the scanner refuses, the decoder refuses.
        assert_eq!(
            decode_in_pieces(b"5\r\nhelloX\r\n0\r\n\r\n", 3),
            Err(ChunkError::BadLineEnd)
        );
        assert_eq!(decode_in_pieces(b"zz\r\n", 1), Err(ChunkError::BadSize));
    }
}
