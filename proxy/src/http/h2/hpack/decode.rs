//! The HPACK decoder (RFC 7541 §3, §6): turns a client's header blocks into
//! fields, keeping the dynamic table in step with the client's encoder.
//!
//! This is internet-facing and runs for every request, so it is written to
//! two rules. It never panics and never trusts a length: every read goes
//! through `split_first`/`split_at_checked`, every integer is capped, and
//! every index is looked up with `get`. And it allocates only when the
//! client inserts into the dynamic table (one allocation per entry):
//! literals are handed to the caller as slices of the block itself, and
//! Huffman-coded ones are decoded into two scratch buffers the decoder
//! keeps for the connection's life.

use super::huffman::{self, HuffmanError};
use super::table::{self, DynamicTable, Entry, STATIC};

/// The most continuation octets an integer may have (RFC 7541 §5.1).
///
/// Four carry 28 bits, far beyond any length, index or table size a sane
/// peer sends (header blocks are bounded well below that by the caller);
/// the cap keeps the arithmetic trivially free of overflow, even with a
/// 32-bit `usize`, and stops a peer from sending endless `0x80` octets.
const MAX_CONTINUATION_OCTETS: u32 = 4;

/// The most capacity a scratch buffer keeps between header blocks: enough
/// for any ordinary Huffman-coded value (a long cookie or URL), so that
/// almost no block allocates.
const SCRATCH_KEEP: usize = 4096;

/// Every way a header block can be malformed. Each is a connection error of
/// type COMPRESSION_ERROR (RFC 9113 §4.3): once a block fails, the dynamic
/// table may be out of step with the client's, so the connection must end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The block ends in the middle of a field: inside an integer, or where
    /// a string literal's length should be.
    #[error("the header block ends in the middle of a field")]
    Truncated,
    /// An integer has more continuation octets than we accept (see
    /// `MAX_CONTINUATION_OCTETS`).
    #[error("an integer in the header block is too large (more than {MAX_CONTINUATION_OCTETS} continuation octets)")]
    IntegerOverflow,
    /// A string literal claims more octets than the block has left.
    #[error(
        "a string literal of {len} octets runs past the end of the header block ({left} left)"
    )]
    StringTooLong {
        /// The length the literal declares.
        len: usize,
        /// The octets left in the block after the length.
        left: usize,
    },
    /// Index 0, which RFC 7541 §6.1 reserves as an error.
    #[error("index 0 is not a valid table index")]
    ZeroIndex,
    /// An index past the end of the static and dynamic tables.
    #[error("index {index} is past the table (61 static + {dynamic} dynamic)")]
    BadIndex {
        /// The index the block used.
        index: usize,
        /// How many dynamic entries there were at the time.
        dynamic: usize,
    },
    /// A Huffman-coded string literal is malformed.
    #[error("bad Huffman-coded string: {0}")]
    BadHuffman(#[from] HuffmanError),
    /// A dynamic table size update above the size we advertised in
    /// SETTINGS_HEADER_TABLE_SIZE (RFC 7541 §6.3).
    #[error("dynamic table size update to {size} exceeds the {max} octets allowed")]
    TableSizeTooLarge {
        /// The size the update asked for.
        size: usize,
        /// The decoder's `max_table_size`.
        max: usize,
    },
    /// A dynamic table size update after a field: RFC 7541 §4.2 allows them
    /// only at the start of a block.
    #[error("dynamic table size update after the first field of the header block")]
    LateTableSizeUpdate,
}

/// An HPACK decoder: one per connection, fed every header block the client
/// sends, in order.
pub struct Decoder {
    /// The dynamic table, mirroring the client encoder's.
    table: DynamicTable,
    /// The most the client may set the table to: the
    /// SETTINGS_HEADER_TABLE_SIZE we advertised.
    max_table_size: usize,
    /// Scratch for a Huffman-coded name.
    name_buf: Vec<u8>,
    /// Scratch for a Huffman-coded value (a field can have both coded).
    value_buf: Vec<u8>,
}

impl Decoder {
    /// A decoder whose dynamic table starts empty with room for
    /// `max_table_size` octets.
    ///
    /// `max_table_size` is the SETTINGS_HEADER_TABLE_SIZE the server
    /// advertises (we use 4096, the protocol default). Keep it at least
    /// 4096: a client may send its first header blocks before it has seen
    /// our SETTINGS, filling its table up to the default, and a smaller
    /// table here would evict entries the client still refers to.
    pub fn new(max_table_size: usize) -> Decoder {
        Decoder {
            table: DynamicTable::new(max_table_size),
            max_table_size,
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// Decodes one complete header block (the HEADERS payload plus any
    /// CONTINUATION payloads, concatenated, with padding and priority
    /// removed), calling `field(name, value)` for every field in order.
    ///
    /// Names are passed exactly as decoded, pseudo-headers like `:method`
    /// included; validating them (case, characters, order) is the caller's
    /// job. The callback cannot stop decoding: even when the caller rejects
    /// the request (too many headers, say), the rest of the block must
    /// still update the dynamic table, or every later block on the
    /// connection would decode wrongly.
    ///
    /// On an error, the fields before it have already been passed to
    /// `field`; the caller discards them and ends the connection with
    /// COMPRESSION_ERROR.
    pub fn decode(
        &mut self,
        block: &[u8],
        field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), DecodeError> {
        let result = self.decode_fields(block, field);
        self.trim_scratch();
        result
    }

    /// [`decode`](Self::decode) without the cleanup.
    fn decode_fields(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), DecodeError> {
        let mut input = Input(block);
        let mut at_start = true;
        while let Some(first) = input.byte() {
            match first {
                0x80..=0xff => self.indexed(first, &mut input, &mut field)?,
                0x40..=0x7f => self.literal_with_indexing(first, &mut input, &mut field)?,
                0x20..=0x3f if at_start => self.size_update(first, &mut input)?,
                0x20..=0x3f => return Err(DecodeError::LateTableSizeUpdate),
                _ => self.literal_without_indexing(first, &mut input, &mut field)?,
            }
            // Size updates may come in a row, but only before any field.
            at_start &= matches!(first, 0x20..=0x3f);
        }
        Ok(())
    }

    /// Frees a scratch buffer that one unusually long string grew past
    /// [`SCRATCH_KEEP`], so that a client cannot pin that much memory for
    /// the life of every connection it opens.
    fn trim_scratch(&mut self) {
        for buf in [&mut self.name_buf, &mut self.value_buf] {
            if buf.capacity() > SCRATCH_KEEP {
                *buf = Vec::new();
            }
        }
    }

    /// `1xxxxxxx`: an indexed field (RFC 7541 §6.1).
    fn indexed(
        &self,
        first: u8,
        input: &mut Input<'_>,
        field: &mut impl FnMut(&[u8], &[u8]),
    ) -> Result<(), DecodeError> {
        let index = input.integer(first, 7)?;
        let (name, value) = lookup(&self.table, index)?;
        field(name, value);
        Ok(())
    }

    /// `01xxxxxx`: a literal field with incremental indexing (RFC 7541
    /// §6.2.1), which the client's encoder has also added to its table.
    fn literal_with_indexing(
        &mut self,
        first: u8,
        input: &mut Input<'_>,
        field: &mut impl FnMut(&[u8], &[u8]),
    ) -> Result<(), DecodeError> {
        let Decoder {
            table,
            name_buf,
            value_buf,
            ..
        } = self;
        let index = input.integer(first, 6)?;
        let name = literal_name(index, table, input, name_buf)?;
        let value = input.string(value_buf)?;
        if table::entry_size(name, value) <= table.max_size() {
            // Copy first: the name may be a dynamic entry that making room
            // for this one is about to evict.
            let entry = Entry::new(name, value);
            let (name, value) = entry.parts();
            field(name, value);
            table.push(entry);
        } else {
            field(name, value);
            table.clear();
        }
        Ok(())
    }

    /// `0000xxxx` or `0001xxxx`: a literal field without indexing or never
    /// indexed (RFC 7541 §6.2.2, §6.2.3). The two are alike to a decoder:
    /// never-indexed only asks whoever re-encodes the field with HPACK not
    /// to index it.
    fn literal_without_indexing(
        &mut self,
        first: u8,
        input: &mut Input<'_>,
        field: &mut impl FnMut(&[u8], &[u8]),
    ) -> Result<(), DecodeError> {
        let Decoder {
            table,
            name_buf,
            value_buf,
            ..
        } = self;
        let index = input.integer(first, 4)?;
        let name = literal_name(index, table, input, name_buf)?;
        let value = input.string(value_buf)?;
        field(name, value);
        Ok(())
    }

    /// `001xxxxx`: a dynamic table size update (RFC 7541 §6.3), which may
    /// not exceed what we advertised.
    fn size_update(&mut self, first: u8, input: &mut Input<'_>) -> Result<(), DecodeError> {
        let size = input.integer(first, 5)?;
        if size > self.max_table_size {
            return Err(DecodeError::TableSizeTooLarge {
                size,
                max: self.max_table_size,
            });
        }
        self.table.set_max_size(size);
        Ok(())
    }

    /// The scratch buffers' capacity (for tests' checks).
    #[cfg(test)]
    pub(super) fn scratch_capacity(&self) -> usize {
        self.name_buf.capacity() + self.value_buf.capacity()
    }

    /// The dynamic table (for tests' checks).
    #[cfg(test)]
    pub(super) fn table(&self) -> &DynamicTable {
        &self.table
    }
}

/// Not derived: a derived `Debug` would print the dynamic table, i.e. the
/// client's recent header values (cookies, authorization), into any log
/// line that formats the decoder.
impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("entries", &self.table.len())
            .field("table_size", &self.table.size())
            .field("table_max_size", &self.table.max_size())
            .field("max_table_size", &self.max_table_size)
            .finish()
    }
}

/// The field at `index` in the static table followed by the dynamic one.
fn lookup(table: &DynamicTable, index: usize) -> Result<(&[u8], &[u8]), DecodeError> {
    if index == 0 {
        return Err(DecodeError::ZeroIndex);
    }
    let position = index - 1;
    if let Some(&entry) = STATIC.get(position) {
        return Ok(entry);
    }
    // `position >= STATIC.len()` here, since `STATIC.get` missed.
    table
        .get(position - STATIC.len())
        .ok_or(DecodeError::BadIndex {
            index,
            dynamic: table.len(),
        })
}

/// A literal field's name: the name of table entry `index`, or, when
/// `index` is 0, a string literal that follows.
fn literal_name<'b: 's, 's>(
    index: usize,
    table: &'s DynamicTable,
    input: &mut Input<'b>,
    scratch: &'s mut Vec<u8>,
) -> Result<&'s [u8], DecodeError> {
    if index == 0 {
        input.string(scratch)
    } else {
        lookup(table, index).map(|(name, _)| name)
    }
}

/// The unread rest of a header block.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// The next octet, if any.
    fn byte(&mut self) -> Option<u8> {
        let (&byte, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(byte)
    }

    /// An integer (RFC 7541 §5.1) whose prefix is the low `prefix_bits` of
    /// `first` (already read), followed by continuation octets if the
    /// prefix is all ones.
    fn integer(&mut self, first: u8, prefix_bits: u32) -> Result<usize, DecodeError> {
        let max_prefix = (1usize << prefix_bits) - 1;
        let mut value = usize::from(first) & max_prefix;
        if value < max_prefix {
            return Ok(value);
        }
        for octet in 0..MAX_CONTINUATION_OCTETS {
            let byte = self.byte().ok_or(DecodeError::Truncated)?;
            // At most 4 × 7 = 28 bits on top of a prefix below 256: no
            // overflow even for a 32-bit usize.
            value += usize::from(byte & 0x7f) << (7 * octet);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::IntegerOverflow)
    }

    /// A string literal (RFC 7541 §5.2): a slice of the block if it is
    /// plain, else decoded into `scratch`.
    fn string<'s>(&mut self, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], DecodeError>
    where
        'a: 's,
    {
        let first = self.byte().ok_or(DecodeError::Truncated)?;
        let len = self.integer(first, 7)?;
        let Some((raw, rest)) = self.0.split_at_checked(len) else {
            return Err(DecodeError::StringTooLong {
                len,
                left: self.0.len(),
            });
        };
        self.0 = rest;
        if first & 0x80 == 0 {
            return Ok(raw);
        }
        huffman::decode(raw, scratch)?;
        Ok(scratch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes an integer whose first octet is `first`, with `rest` after
    /// it, returning it and how many octets were left.
    fn integer(first: u8, prefix_bits: u32, rest: &[u8]) -> (Result<usize, DecodeError>, usize) {
        let mut input = Input(rest);
        let value = input.integer(first, prefix_bits);
        (value, input.0.len())
    }

    #[test]
    fn c_1_integer_examples() {
        // C.1.1: 10 on a 5-bit prefix; the three high bits are not ours.
        assert_eq!(integer(0xea, 5, &[]), (Ok(10), 0));
        assert_eq!(integer(0x0a, 5, &[]), (Ok(10), 0));
        // C.1.2: 1337 on a 5-bit prefix: 31, then 154 and 10.
        assert_eq!(integer(0x1f, 5, &[0x9a, 0x0a, 0x82]), (Ok(1337), 1));
        // C.1.3: 42 on an 8-bit prefix.
        assert_eq!(integer(0x2a, 8, &[0xff]), (Ok(42), 1));
    }

    #[test]
    fn c_1_integer_examples_encode_back() {
        let encoded = |value, bits| {
            let mut out = Vec::new();
            super::super::encode::integer(value, bits, 0, &mut out);
            out
        };
        assert_eq!(encoded(10, 5), [0x0a]);
        assert_eq!(encoded(1337, 5), [0x1f, 0x9a, 0x0a]);
        assert_eq!(encoded(42, 8), [0x2a]);
    }

    #[test]
    fn integer_edges() {
        // A full prefix with a 0 continuation is the prefix's maximum.
        assert_eq!(integer(0x1f, 5, &[0x00]), (Ok(31), 0));
        assert_eq!(integer(0x1e, 5, &[0x00]), (Ok(30), 1));
        assert_eq!(integer(0x1f, 5, &[]), (Err(DecodeError::Truncated), 0));
        assert_eq!(
            integer(0x1f, 5, &[0x80, 0x80]),
            (Err(DecodeError::Truncated), 0)
        );
        let (value, left) = integer(0x1f, 5, &[0x80, 0x80, 0x80, 0x80, 0x00]);
        assert_eq!((value, left), (Err(DecodeError::IntegerOverflow), 1));
    }
}
