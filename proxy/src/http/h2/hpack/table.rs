//! HPACK's two tables (RFC 7541 §2.3): the static table every peer knows,
//! and the decoder's dynamic table, which the client's encoder fills and
//! which must be kept exactly in step with it.
//!
//! Indexes 1..=61 name static entries; 62 and up name dynamic entries,
//! newest first.

use std::collections::VecDeque;

/// RFC 7541 Appendix A, in order: entry `i` (1-based) is `STATIC[i - 1]`.
pub(super) const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// What RFC 7541 §4.1 charges each entry beyond its name and value: an
/// estimate of the bookkeeping, which also bounds how many entries a
/// table of a given size can hold (4096 / 32 = 128).
pub(super) const ENTRY_OVERHEAD: usize = 32;

/// The static index of `:status` with this code's value, for the seven the
/// static table has.
pub(super) fn status_index(code: u16) -> Option<u8> {
    match code {
        200 => Some(8),
        204 => Some(9),
        206 => Some(10),
        304 => Some(11),
        400 => Some(12),
        404 => Some(13),
        500 => Some(14),
        _ => None,
    }
}

/// The lowest static index whose name is `name`, if any.
///
/// A `match` rather than a scan of [`STATIC`]: the compiler turns it into
/// length tests and short comparisons, with no loop and no hashing. Only
/// the first of the entries sharing a name is listed; a test checks that
/// the arms agree with [`STATIC`].
pub(super) fn name_index(name: &[u8]) -> Option<u8> {
    let index = match name {
        b":authority" => 1,
        b":method" => 2,
        b":path" => 4,
        b":scheme" => 6,
        b":status" => 8,
        b"accept-charset" => 15,
        b"accept-encoding" => 16,
        b"accept-language" => 17,
        b"accept-ranges" => 18,
        b"accept" => 19,
        b"access-control-allow-origin" => 20,
        b"age" => 21,
        b"allow" => 22,
        b"authorization" => 23,
        b"cache-control" => 24,
        b"content-disposition" => 25,
        b"content-encoding" => 26,
        b"content-language" => 27,
        b"content-length" => 28,
        b"content-location" => 29,
        b"content-range" => 30,
        b"content-type" => 31,
        b"cookie" => 32,
        b"date" => 33,
        b"etag" => 34,
        b"expect" => 35,
        b"expires" => 36,
        b"from" => 37,
        b"host" => 38,
        b"if-match" => 39,
        b"if-modified-since" => 40,
        b"if-none-match" => 41,
        b"if-range" => 42,
        b"if-unmodified-since" => 43,
        b"last-modified" => 44,
        b"link" => 45,
        b"location" => 46,
        b"max-forwards" => 47,
        b"proxy-authenticate" => 48,
        b"proxy-authorization" => 49,
        b"range" => 50,
        b"referer" => 51,
        b"refresh" => 52,
        b"retry-after" => 53,
        b"server" => 54,
        b"set-cookie" => 55,
        b"strict-transport-security" => 56,
        b"transfer-encoding" => 57,
        b"user-agent" => 58,
        b"vary" => 59,
        b"via" => 60,
        b"www-authenticate" => 61,
        _ => return None,
    };
    Some(index)
}

/// One dynamic table entry: name and value in a single allocation.
pub(super) struct Entry {
    /// The name, then the value.
    bytes: Box<[u8]>,
    /// Where the name ends in `bytes`.
    name_len: usize,
}

impl Entry {
    /// Copies `name` and `value` into one exactly-sized allocation (the only
    /// allocation an insertion makes).
    pub(super) fn new(name: &[u8], value: &[u8]) -> Entry {
        let mut bytes = Vec::with_capacity(name.len().saturating_add(value.len()));
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(value);
        Entry {
            bytes: bytes.into_boxed_slice(),
            name_len: name.len(),
        }
    }

    /// The entry's name and value.
    pub(super) fn parts(&self) -> (&[u8], &[u8]) {
        // `name_len <= bytes.len()` by construction; the fallback only
        // keeps this free of a panic path.
        self.bytes
            .split_at_checked(self.name_len)
            .unwrap_or((&self.bytes, &[]))
    }

    /// The entry's size as RFC 7541 §4.1 counts it.
    fn size(&self) -> usize {
        self.bytes.len().saturating_add(ENTRY_OVERHEAD)
    }
}

/// The size RFC 7541 §4.1 counts for an entry with this name and value.
pub(super) fn entry_size(name: &[u8], value: &[u8]) -> usize {
    name.len()
        .saturating_add(value.len())
        .saturating_add(ENTRY_OVERHEAD)
}

/// The decoder's dynamic table: a FIFO of entries whose total size never
/// exceeds `max_size`, evicting the oldest to make room.
pub(super) struct DynamicTable {
    /// Newest at the front, so that dynamic index `i` (0-based) is
    /// `entries[i]`, and eviction pops the back.
    entries: VecDeque<Entry>,
    /// The sum of the entries' sizes; always `<= max_size`.
    size: usize,
    /// The limit the encoder last set with a size update (initially the
    /// decoder's `max_table_size`).
    max_size: usize,
}

impl DynamicTable {
    /// An empty table that may hold `max_size` bytes.
    pub(super) fn new(max_size: usize) -> DynamicTable {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    /// The number of entries.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The sum of the entries' sizes.
    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// The current limit on [`size`](Self::size).
    pub(super) fn max_size(&self) -> usize {
        self.max_size
    }

    /// The entry at 0-based dynamic position `position` (HPACK index
    /// `62 + position`), newest first.
    pub(super) fn get(&self, position: usize) -> Option<(&[u8], &[u8])> {
        self.entries.get(position).map(Entry::parts)
    }

    /// Applies a dynamic table size update (RFC 7541 §6.3): sets the limit
    /// and evicts until the entries fit under it. The caller has checked the
    /// new size against the protocol limit.
    pub(super) fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    /// Adds `entry` as the newest, evicting the oldest entries to make room
    /// (RFC 7541 §4.4). The caller has checked that the entry alone fits
    /// (`entry_size <= max_size`); one that does not must instead empty the
    /// table, with [`clear`](Self::clear).
    pub(super) fn push(&mut self, entry: Entry) {
        let size = entry.size();
        self.evict_to(self.max_size.saturating_sub(size));
        self.size = self.size.saturating_add(size);
        self.entries.push_front(entry);
    }

    /// Empties the table: what inserting an entry larger than the whole
    /// table does (RFC 7541 §4.4).
    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.size = 0;
    }

    /// Evicts the oldest entries until the total size is at most `limit`.
    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            match self.entries.pop_back() {
                Some(oldest) => self.size = self.size.saturating_sub(oldest.size()),
                None => self.size = 0,
            }
        }
    }

    /// Every entry, newest first (for tests' checks).
    #[cfg(test)]
    pub(super) fn entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries.iter().map(Entry::parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_index_agrees_with_the_static_table() {
        for (i, (name, _)) in STATIC.iter().enumerate() {
            let first = STATIC.iter().position(|(n, _)| n == name).unwrap() + 1;
            assert_eq!(name_index(name), Some(first as u8), "entry {}", i + 1);
        }
        for name in [&b""[..], b"x-forwarded-for", b":statu", b"hosts", b"Host"] {
            assert_eq!(name_index(name), None);
        }
    }

    #[test]
    fn status_index_agrees_with_the_static_table() {
        for code in 0..=1000u16 {
            let text = code.to_string();
            let expected = STATIC
                .iter()
                .position(|&(n, v)| n == b":status" && v == text.as_bytes())
                .map(|i| i as u8 + 1);
            assert_eq!(status_index(code), expected, "status {code}");
        }
    }

    #[test]
    fn eviction_is_oldest_first_and_sizes_add_up() {
        let mut table = DynamicTable::new(100);
        table.push(Entry::new(b"a", b"1")); // 34
        table.push(Entry::new(b"b", b"2")); // 34, 68 in all
        assert_eq!((table.len(), table.size()), (2, 68));
        table.push(Entry::new(b"c", b"3")); // evicts "a"
        assert_eq!((table.len(), table.size()), (2, 68));
        assert_eq!(table.get(0), Some((&b"c"[..], &b"3"[..])));
        assert_eq!(table.get(1), Some((&b"b"[..], &b"2"[..])));
        assert_eq!(table.get(2), None);
        table.set_max_size(40);
        assert_eq!((table.len(), table.size()), (1, 34));
        assert_eq!(table.get(0), Some((&b"c"[..], &b"3"[..])));
        table.set_max_size(0);
        assert_eq!((table.len(), table.size()), (0, 0));
    }

    #[test]
    fn an_entry_exactly_the_table_size_fits() {
        let mut table = DynamicTable::new(40);
        table.push(Entry::new(b"a", b"1"));
        table.push(Entry::new(b"abcd", b"efgh")); // 40: evicts everything else
        assert_eq!((table.len(), table.size()), (1, 40));
        assert_eq!(entry_size(b"abcd", b"efgh"), 40);
    }
}
