//! The HPACK encoder for our responses (RFC 7541 §6): deliberately the
//! simplest one the RFC allows.
//!
//! It never inserts into the dynamic table and never Huffman-codes. Every
//! field is a "literal without indexing", naming a static entry when the
//! name has one; only the seven `:status` values the static table holds go
//! out as single-octet indexed fields. What that gives up is a few bytes
//! per response header; what it buys is that encoding is a couple of
//! copies, with no table to search, evict or keep in step, no per-field
//! allocation, and no state at all beyond one flag. Over TLS, Huffman
//! coding would cost more CPU than the bytes it saves are worth.
//!
//! The one piece of state is whether the encoder has written its opening
//! dynamic table size update to 0; see [`Encoder`].

use super::table;

/// An HPACK encoder: one per connection, for every header block the server
/// sends on it, in order.
///
/// The first thing it ever writes (at the start of the first header block)
/// is a dynamic table size update to 0, the octet `0x20`. We never use the
/// dynamic table, so the update changes nothing about what we send; its
/// point is the client's SETTINGS_HEADER_TABLE_SIZE. RFC 7541 §4.2 says
/// that when the client lowers that setting below the table size our
/// encoder is using, the first header block we send after acknowledging
/// the SETTINGS must start with a size update, and clients such as nghttp2
/// treat a missing one as a COMPRESSION_ERROR. Honouring that would mean
/// tracking the setting and the acknowledgement across the frame layer.
/// With our size announced as 0 up front, no value the client can set is
/// ever below it, so the setting never matters to the encoder again.
#[derive(Debug, Default)]
pub struct Encoder {
    /// Whether the opening size update has been written.
    started: bool,
}

/// The octet of a dynamic table size update to 0: pattern `001`, value 0.
const SIZE_UPDATE_TO_ZERO: u8 = 0x20;

/// The first-octet pattern of an indexed field (`1xxxxxxx`).
const INDEXED: u8 = 0x80;

/// The first-octet pattern of a literal without indexing (`0000xxxx`),
/// whose low four bits are the name's static index, or 0 for a literal
/// name.
const LITERAL_WITHOUT_INDEXING: u8 = 0x00;

/// The static index of the `:status` name.
const STATUS_NAME_INDEX: u8 = 8;

impl Encoder {
    /// An encoder that has written nothing yet.
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// Appends `:status` with `code` to `out`: a one-octet indexed field
    /// for the seven statuses in the static table (200, 204, 206, 304,
    /// 400, 404, 500), else a literal without indexing whose name is static
    /// index 8. `code` should be a three-digit HTTP status; any `u16` is
    /// written as its decimal digits.
    pub fn status(&mut self, code: u16, out: &mut Vec<u8>) {
        self.start(out);
        if let Some(index) = table::status_index(code) {
            out.push(INDEXED | index);
            return;
        }
        let mut digits = [0u8; 5];
        let value = decimal(code, &mut digits);
        out.reserve(2 + value.len());
        out.push(LITERAL_WITHOUT_INDEXING | STATUS_NAME_INDEX);
        string(value, out);
    }

    /// Appends one field to `out` as a literal without indexing: with the
    /// static table's index for the name when it has one, else with the
    /// name as a literal. `name` must already be lowercase, as HTTP/2
    /// requires; nothing here checks it. Neither string is Huffman-coded.
    pub fn field(&mut self, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        self.start(out);
        // Two integers of at most 10 octets each for 64-bit lengths, the
        // first octet, and the strings: one reservation for the field.
        out.reserve(name.len().saturating_add(value.len()).saturating_add(24));
        match table::name_index(name) {
            Some(index) => integer(usize::from(index), 4, LITERAL_WITHOUT_INDEXING, out),
            None => {
                out.push(LITERAL_WITHOUT_INDEXING);
                string(name, out);
            }
        }
        string(value, out);
    }

    /// [`Encoder::field`] for a name that may have capitals (an HTTP/1.1
    /// upstream's `Content-Type`): HTTP/2 sends names in lowercase. Short
    /// names are lowered on the stack.
    pub fn field_lowercased(&mut self, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        if !name.iter().any(u8::is_ascii_uppercase) {
            return self.field(name, value, out);
        }
        let mut small = [0u8; 64];
        match small.get_mut(..name.len()) {
            Some(lower) => {
                lower.copy_from_slice(name);
                lower.make_ascii_lowercase();
                self.field(lower, value, out);
            }
            None => self.field(&name.to_ascii_lowercase(), value, out),
        }
    }

    /// Writes the opening size update if this is the first block ever.
    fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            out.push(SIZE_UPDATE_TO_ZERO);
        }
    }
}

/// Appends a plain (not Huffman-coded) string literal (RFC 7541 §5.2).
fn string(bytes: &[u8], out: &mut Vec<u8>) {
    integer(bytes.len(), 7, 0x00, out);
    out.extend_from_slice(bytes);
}

/// Appends `value` as an integer with a `prefix_bits`-bit prefix (RFC 7541
/// §5.1), the first octet's high bits set to `pattern`.
pub(super) fn integer(mut value: usize, prefix_bits: u32, pattern: u8, out: &mut Vec<u8>) {
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        out.push(pattern | value as u8);
        return;
    }
    out.push(pattern | max_prefix as u8);
    value -= max_prefix;
    while value >= 0x80 {
        out.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Writes `n` in decimal into the end of `buf`, returning the digits.
fn decimal(mut n: u16, buf: &mut [u8; 5]) -> &[u8] {
    let mut start = buf.len();
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        start -= 1;
        if n == 0 {
            break;
        }
    }
    buf.get(start..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_writes_every_width() {
        let mut buf = [0; 5];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(7, &mut buf), b"7");
        assert_eq!(decimal(418, &mut buf), b"418");
        assert_eq!(decimal(1000, &mut buf), b"1000");
        assert_eq!(decimal(u16::MAX, &mut buf), b"65535");
    }

    #[test]
    fn integers_at_and_around_the_prefix_limit() {
        let encoded = |value, bits| {
            let mut out = Vec::new();
            integer(value, bits, 0, &mut out);
            out
        };
        assert_eq!(encoded(14, 4), [0x0e]);
        assert_eq!(encoded(15, 4), [0x0f, 0x00]);
        assert_eq!(encoded(16, 4), [0x0f, 0x01]);
        assert_eq!(encoded(126, 7), [0x7e]);
        assert_eq!(encoded(127, 7), [0x7f, 0x00]);
        assert_eq!(encoded(127 + 128, 7), [0x7f, 0x80, 0x01]);
    }
}
