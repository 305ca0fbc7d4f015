//! Tests across the module: every example of RFC 7541 Appendix C, every
//! error, the encoder and its round trip through the decoder, a comparison
//! with a simple model of the dynamic table on random valid blocks, and a
//! no-panic sweep over hundreds of thousands of random and mutated blocks.

use std::collections::VecDeque;

use super::encode::integer;
use super::huffman::tests::encode as huffman_encode;
use super::table::STATIC;
use super::*;

/// The bytes of a hex dump such as the RFC's ("8286 8441 ..."), spaces
/// ignored.
fn hex(dump: &str) -> Vec<u8> {
    let digits: Vec<u8> = dump.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Decodes `block`, collecting the fields.
fn decode(decoder: &mut Decoder, block: &[u8]) -> Result<Fields, DecodeError> {
    let mut fields = Vec::new();
    decoder.decode(block, |name, value| {
        fields.push((name.to_vec(), value.to_vec()))
    })?;
    Ok(fields)
}

/// Owned copies of string pairs, to compare with [`Fields`].
fn owned(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// Checks the dynamic table's entries (newest first) and size.
fn assert_table(decoder: &Decoder, entries: &[(&str, &str)], size: usize) {
    let actual: Fields = decoder
        .table()
        .entries()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(actual, owned(entries), "dynamic table entries");
    assert_eq!(decoder.table().size(), size, "dynamic table size");
}

/// Decodes `block` and checks its fields and the table after it.
fn check_block(
    decoder: &mut Decoder,
    block: &str,
    fields: &[(&str, &str)],
    table: &[(&str, &str)],
    size: usize,
) {
    assert_eq!(decode(decoder, &hex(block)), Ok(owned(fields)));
    assert_table(decoder, table, size);
}

// RFC 7541 Appendix C.2: single fields, each on a fresh decoder.

#[test]
fn c_2_1_literal_with_indexing() {
    let mut decoder = Decoder::new(4096);
    check_block(
        &mut decoder,
        "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
        &[("custom-key", "custom-header")],
        &[("custom-key", "custom-header")],
        55,
    );
}

#[test]
fn c_2_2_literal_without_indexing() {
    let mut decoder = Decoder::new(4096);
    check_block(
        &mut decoder,
        "040c 2f73 616d 706c 652f 7061 7468",
        &[(":path", "/sample/path")],
        &[],
        0,
    );
}

#[test]
fn c_2_3_literal_never_indexed() {
    let mut decoder = Decoder::new(4096);
    check_block(
        &mut decoder,
        "1008 7061 7373 776f 7264 0673 6563 7265 74",
        &[("password", "secret")],
        &[],
        0,
    );
}

#[test]
fn c_2_4_indexed() {
    let mut decoder = Decoder::new(4096);
    check_block(&mut decoder, "82", &[(":method", "GET")], &[], 0);
}

// RFC 7541 Appendix C.3 and C.4: three requests on one connection, without
// and with Huffman coding.

const REQUEST_1: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const REQUEST_2: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQUEST_3: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const REQUEST_TABLE_1: &[(&str, &str)] = &[(":authority", "www.example.com")];
const REQUEST_TABLE_2: &[(&str, &str)] = &[
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];
const REQUEST_TABLE_3: &[(&str, &str)] = &[
    ("custom-key", "custom-value"),
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];

/// Decodes the three requests of C.3 or C.4 with one decoder.
fn check_requests(blocks: [&str; 3]) {
    let mut decoder = Decoder::new(4096);
    check_block(&mut decoder, blocks[0], REQUEST_1, REQUEST_TABLE_1, 57);
    check_block(&mut decoder, blocks[1], REQUEST_2, REQUEST_TABLE_2, 110);
    check_block(&mut decoder, blocks[2], REQUEST_3, REQUEST_TABLE_3, 164);
}

#[test]
fn c_3_requests_without_huffman() {
    check_requests([
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
}

#[test]
fn c_4_requests_with_huffman() {
    check_requests([
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
}

// RFC 7541 Appendix C.5 and C.6: three responses with a 256-octet table,
// so that entries are evicted.

const DATE_1: &str = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE_2: &str = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOCATION: &str = "https://www.example.com";
const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

/// Decodes the three responses of C.5 or C.6 with one decoder.
fn check_responses(blocks: [&str; 3]) {
    let mut decoder = Decoder::new(256);
    check_block(
        &mut decoder,
        blocks[0],
        &[
            (":status", "302"),
            ("cache-control", "private"),
            ("date", DATE_1),
            ("location", LOCATION),
        ],
        &[
            ("location", LOCATION),
            ("date", DATE_1),
            ("cache-control", "private"),
            (":status", "302"),
        ],
        222,
    );
    check_block(
        &mut decoder,
        blocks[1],
        &[
            (":status", "307"),
            ("cache-control", "private"),
            ("date", DATE_1),
            ("location", LOCATION),
        ],
        &[
            (":status", "307"),
            ("location", LOCATION),
            ("date", DATE_1),
            ("cache-control", "private"),
        ],
        222,
    );
    check_block(
        &mut decoder,
        blocks[2],
        &[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", DATE_2),
            ("location", LOCATION),
            ("content-encoding", "gzip"),
            ("set-cookie", COOKIE),
        ],
        &[
            ("set-cookie", COOKIE),
            ("content-encoding", "gzip"),
            ("date", DATE_2),
        ],
        215,
    );
}

#[test]
fn c_5_responses_without_huffman() {
    check_responses([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31",
    ]);
}

#[test]
fn c_6_responses_with_huffman() {
    check_responses([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}

// Dynamic table behaviour beyond the examples.

#[test]
fn size_updates_at_the_start_of_a_block() {
    let mut decoder = Decoder::new(4096);
    // C.1.1's integer: 10 on a 5-bit prefix, as a size update.
    assert_eq!(decode(&mut decoder, &[0x2a]), Ok(vec![]));
    assert_eq!(decoder.table().max_size(), 10);
    // C.1.2's integer: 1337 on a 5-bit prefix.
    assert_eq!(decode(&mut decoder, &[0x3f, 0x9a, 0x0a]), Ok(vec![]));
    assert_eq!(decoder.table().max_size(), 1337);
    // Two in a row (down to 0, then to the 4096 maximum), then a field.
    let block = [0x20, 0x3f, 0xe1, 0x1f, 0x82];
    assert_eq!(
        decode(&mut decoder, &block),
        Ok(owned(&[(":method", "GET")]))
    );
    assert_eq!(decoder.table().max_size(), 4096);
}

#[test]
fn a_size_update_evicts_down_to_the_new_size() {
    let mut decoder = Decoder::new(4096);
    check_block(
        &mut decoder,
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        REQUEST_1,
        REQUEST_TABLE_1,
        57,
    );
    assert_eq!(decode(&mut decoder, &[0x3f, 0x19]), Ok(vec![])); // 56
    assert_table(&decoder, &[], 0);
    assert_eq!(decoder.table().max_size(), 56);
}

#[test]
fn an_entry_larger_than_the_table_empties_it() {
    let mut decoder = Decoder::new(4096);
    let mut block = vec![0x3f, 0x31]; // size update to 80
    block.extend(hex("4001 6101 62")); // a: b (34)
    block.extend(hex("4001 6301 64")); // c: d (34)
    assert_eq!(
        decode(&mut decoder, &block),
        Ok(owned(&[("a", "b"), ("c", "d")]))
    );
    assert_table(&decoder, &[("c", "d"), ("a", "b")], 68);
    // 32 + 1 + 48 = 81 > 80: passed on, but the table ends up empty.
    let mut block = hex("4001 6530");
    block.extend([b'x'; 48]);
    let fields = decode(&mut decoder, &block).unwrap();
    assert_eq!(fields, vec![(b"e".to_vec(), vec![b'x'; 48])]);
    assert_table(&decoder, &[], 0);
}

#[test]
fn a_name_from_an_entry_that_the_insertion_evicts() {
    let mut decoder = Decoder::new(4096);
    // A table of 80 holding "name: val1" (40); then a field with
    // indexing, named by index 62 (that entry), whose 42 octets evict it.
    let mut block = vec![0x3f, 0x31];
    block.extend(hex("4004 6e61 6d65 0476 616c 31"));
    assert_eq!(decode(&mut decoder, &block), Ok(owned(&[("name", "val1")])));
    let block = hex("7e06 7661 6c75 6532"); // index 62, "value2"
    assert_eq!(
        decode(&mut decoder, &block),
        Ok(owned(&[("name", "value2")]))
    );
    assert_table(&decoder, &[("name", "value2")], 42);
    // Again with two entries to evict, named by the older one (index 63).
    assert_eq!(
        decode(&mut decoder, &hex("4001 6101 62")),
        Ok(owned(&[("a", "b")]))
    );
    assert_table(&decoder, &[("a", "b"), ("name", "value2")], 76);
    let mut block = hex("7f00 1e");
    block.extend([b'v'; 30]);
    let fields = decode(&mut decoder, &block).unwrap();
    assert_eq!(fields, vec![(b"name".to_vec(), vec![b'v'; 30])]);
    let value = "v".repeat(30);
    assert_table(&decoder, &[("name", &value)], 66);
}

#[test]
fn fields_without_indexing_leave_the_table_alone() {
    let mut decoder = Decoder::new(4096);
    // Never indexed with a literal name, both Huffman-coded.
    let mut block = vec![0x10];
    for text in [&b"x-huff"[..], b"Some Value"] {
        let coded = huffman_encode(text);
        integer(coded.len(), 7, 0x80, &mut block);
        block.extend(coded);
    }
    assert_eq!(
        decode(&mut decoder, &block),
        Ok(owned(&[("x-huff", "Some Value")]))
    );
    assert_table(&decoder, &[], 0);
}

#[test]
fn empty_block_and_empty_strings() {
    let mut decoder = Decoder::new(4096);
    assert_eq!(decode(&mut decoder, &[]), Ok(vec![]));
    // Literal name "" and value "", with indexing: an entry of 32.
    assert_eq!(
        decode(&mut decoder, &[0x40, 0x00, 0x00]),
        Ok(owned(&[("", "")]))
    );
    assert_table(&decoder, &[("", "")], 32);
    // Huffman-coded empty strings.
    assert_eq!(
        decode(&mut decoder, &[0x00, 0x80, 0x80]),
        Ok(owned(&[("", "")]))
    );
}

#[test]
fn scratch_buffers_do_not_keep_a_long_string() {
    let mut decoder = Decoder::new(4096);
    let mut block = vec![0x00];
    for len in [10, 20_000] {
        let coded = huffman_encode(&vec![b'a'; len]);
        integer(coded.len(), 7, 0x80, &mut block);
        block.extend(coded);
    }
    let fields = decode(&mut decoder, &block).unwrap();
    assert_eq!(fields[0].1.len(), 20_000);
    assert!(decoder.scratch_capacity() <= 4096);
    // Short strings keep their buffers.
    let mut block = vec![0x00];
    for text in [&b"name"[..], b"value"] {
        let coded = huffman_encode(text);
        integer(coded.len(), 7, 0x80, &mut block);
        block.extend(coded);
    }
    assert_eq!(
        decode(&mut decoder, &block),
        Ok(owned(&[("name", "value")]))
    );
    assert!(decoder.scratch_capacity() > 0);
}

#[test]
fn decoder_debug_hides_header_values() {
    let mut decoder = Decoder::new(4096);
    let block = hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    decode(&mut decoder, &block).unwrap();
    let debug = format!("{decoder:?}");
    assert!(!debug.contains("custom"), "{debug}");
    assert!(debug.contains("table_size: 55"), "{debug}");
}

// Errors.

#[test]
fn truncated_integers_and_fields() {
    let mut decoder = Decoder::new(4096);
    for block in [
        &[0xff][..],         // indexed, prefix full, no continuation
        &[0xff, 0x80],       // continuation promised, missing
        &[0x3f],             // size update, prefix full
        &[0x04],             // literal, no value
        &[0x40],             // literal with indexing, no name
        &[0x40, 0x01, b'a'], // ... no value
        &[0x00, 0x7f],       // name length prefix full, no continuation
    ] {
        assert_eq!(
            decode(&mut decoder, block),
            Err(DecodeError::Truncated),
            "{block:02x?}"
        );
    }
}

#[test]
fn truncated_strings() {
    let mut decoder = Decoder::new(4096);
    let block = [0x04, 0x05, b'a', b'b'];
    let err = DecodeError::StringTooLong { len: 5, left: 2 };
    assert_eq!(decode(&mut decoder, &block), Err(err));
    // A Huffman-coded name that claims 3 octets with 1 left.
    let block = [0x00, 0x83, 0x1f];
    let err = DecodeError::StringTooLong { len: 3, left: 1 };
    assert_eq!(decode(&mut decoder, &block), Err(err));
    // A huge length, within the integer limit.
    let block = [0x04, 0x7f, 0xff, 0xff, 0xff, 0x7f, b'a'];
    let len = 127 + (1 << 28) - 1;
    let err = DecodeError::StringTooLong { len, left: 1 };
    assert_eq!(decode(&mut decoder, &block), Err(err));
}

#[test]
fn huge_integers() {
    let mut decoder = Decoder::new(4096);
    // Four continuation octets is the limit: the largest index we parse.
    let block = [0xff, 0xff, 0xff, 0xff, 0x7f];
    let index = 127 + (1 << 28) - 1;
    let err = DecodeError::BadIndex { index, dynamic: 0 };
    assert_eq!(decode(&mut decoder, &block), Err(err));
    // A fifth is refused, whatever it holds.
    for block in [
        &[0xff, 0x80, 0x80, 0x80, 0x80, 0x00][..],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0x0f],
        &[
            0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
        &[0x04, 0x7f, 0xff, 0xff, 0xff, 0xff, 0x7f],
    ] {
        let result = decode(&mut decoder, block);
        assert_eq!(result, Err(DecodeError::IntegerOverflow), "{block:02x?}");
    }
}

#[test]
fn index_zero() {
    let mut decoder = Decoder::new(4096);
    assert_eq!(decode(&mut decoder, &[0x80]), Err(DecodeError::ZeroIndex));
}

#[test]
fn indexes_past_the_table() {
    let mut decoder = Decoder::new(4096);
    let err = DecodeError::BadIndex {
        index: 62,
        dynamic: 0,
    };
    assert_eq!(decode(&mut decoder, &[0xbe]), Err(err.clone()));
    // The same as a literal's name (with and without indexing).
    assert_eq!(decode(&mut decoder, &[0x7e, 0x00]), Err(err.clone()));
    assert_eq!(decode(&mut decoder, &[0x0f, 0x2f, 0x00]), Err(err));
    // After C.3's requests the table has 3 entries: 62..=64.
    let mut decoder = Decoder::new(4096);
    for block in [
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ] {
        decode(&mut decoder, &hex(block)).unwrap();
    }
    assert_eq!(
        decode(&mut decoder, &[0xc0]),
        Ok(owned(&[(":authority", "www.example.com")]))
    );
    let err = decode(&mut decoder, &[0xc6]).unwrap_err();
    assert_eq!(
        err,
        DecodeError::BadIndex {
            index: 70,
            dynamic: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "index 70 is past the table (61 static + 3 dynamic)"
    );
    assert_eq!(
        decode(&mut decoder, &[0xc1]),
        Err(DecodeError::BadIndex {
            index: 65,
            dynamic: 3
        })
    );
}

#[test]
fn bad_huffman_strings() {
    let mut decoder = Decoder::new(4096);
    let cases = [
        // EOS (30 ones) as a value.
        (vec![0x04, 0x84, 0xff, 0xff, 0xff, 0xff], HuffmanError::Eos),
        // "0" then 11 ones of padding.
        (vec![0x04, 0x82, 0x07, 0xff], HuffmanError::PaddingTooLong),
        // "a" then 110.
        (vec![0x04, 0x81, 0x1e], HuffmanError::PaddingNotOnes),
        // The same in a literal name, with indexing.
        (vec![0x40, 0x81, 0x1e, 0x00], HuffmanError::PaddingNotOnes),
        (vec![0x40, 0x81, 0xff, 0x00], HuffmanError::PaddingTooLong),
    ];
    for (block, huffman) in cases {
        let result = decode(&mut decoder, &block);
        assert_eq!(
            result,
            Err(DecodeError::BadHuffman(huffman)),
            "{block:02x?}"
        );
    }
    assert_table(&decoder, &[], 0);
}

#[test]
fn size_update_above_the_maximum() {
    let mut decoder = Decoder::new(4096);
    let err = DecodeError::TableSizeTooLarge {
        size: 4097,
        max: 4096,
    };
    assert_eq!(decode(&mut decoder, &[0x3f, 0xe2, 0x1f]), Err(err));
    let mut decoder = Decoder::new(256);
    let err = DecodeError::TableSizeTooLarge {
        size: 257,
        max: 256,
    };
    assert_eq!(decode(&mut decoder, &[0x3f, 0xe2, 0x01]), Err(err));
    assert_eq!(decode(&mut decoder, &[0x3f, 0xe1, 0x01]), Ok(vec![]));
}

#[test]
fn size_update_after_a_field() {
    let mut decoder = Decoder::new(4096);
    let result = decode(&mut decoder, &[0x82, 0x20]);
    assert_eq!(result, Err(DecodeError::LateTableSizeUpdate));
    let result = decode(&mut decoder, &[0x20, 0x82, 0x3f, 0xe1, 0x1f]);
    assert_eq!(result, Err(DecodeError::LateTableSizeUpdate));
    // Fine again at the start of the next block.
    assert_eq!(decode(&mut decoder, &[0x20]), Ok(vec![]));
}

#[test]
fn error_messages_name_the_problem() {
    let cases = [
        (
            DecodeError::Truncated,
            "the header block ends in the middle of a field",
        ),
        (
            DecodeError::StringTooLong { len: 5, left: 2 },
            "a string literal of 5 octets runs past the end of the header block (2 left)",
        ),
        (
            DecodeError::BadHuffman(HuffmanError::Eos),
            "bad Huffman-coded string: the EOS symbol appears inside the string",
        ),
        (
            DecodeError::TableSizeTooLarge {
                size: 4097,
                max: 4096,
            },
            "dynamic table size update to 4097 exceeds the 4096 octets allowed",
        ),
    ];
    for (err, message) in cases {
        assert_eq!(err.to_string(), message);
    }
}

// The encoder.

#[test]
fn statuses_in_the_static_table_are_one_octet() {
    let mut encoder = Encoder::new();
    let mut out = Vec::new();
    encoder.status(200, &mut out);
    assert_eq!(
        out,
        [0x20, 0x88],
        "the first block opens with a size update"
    );
    for (code, octet) in [
        (200, 0x88),
        (204, 0x89),
        (206, 0x8a),
        (304, 0x8b),
        (400, 0x8c),
        (404, 0x8d),
        (500, 0x8e),
    ] {
        let mut out = Vec::new();
        encoder.status(code, &mut out);
        assert_eq!(out, [octet], "status {code}");
    }
}

#[test]
fn other_statuses_are_literals_named_by_index_8() {
    let mut encoder = Encoder::new();
    encoder.status(200, &mut Vec::new());
    for code in [
        100, 101, 201, 301, 302, 307, 401, 403, 429, 502, 503, 504, 999,
    ] {
        let mut out = Vec::new();
        encoder.status(code, &mut out);
        let mut expected = vec![0x08, 0x03];
        expected.extend(code.to_string().bytes());
        assert_eq!(out, expected, "status {code}");
    }
}

#[test]
fn fields_with_and_without_a_static_name() {
    let mut encoder = Encoder::new();
    let mut out = Vec::new();
    encoder.field(b"grpc-status", b"0", &mut out); // trailers: no status first
    assert_eq!(out[..2], [0x20, 0x00]);
    let cases: [(&[u8], &[u8], &[u8]); 5] = [
        (b":authority", b"a", &[0x01, 0x01, b'a']),
        (b"age", b"0", &[0x0f, 0x06, 0x01, b'0']),
        (b"content-type", b"x", &[0x0f, 0x10, 0x01, b'x']),
        (b"www-authenticate", b"", &[0x0f, 0x2e, 0x00]),
        (
            b"x-id",
            b"7",
            &[0x00, 0x04, b'x', b'-', b'i', b'd', 0x01, b'7'],
        ),
    ];
    for (name, value, expected) in cases {
        let mut out = Vec::new();
        encoder.field(name, value, &mut out);
        assert_eq!(out, expected, "{}", String::from_utf8_lossy(name));
    }
}

#[test]
fn the_size_update_comes_once_per_encoder() {
    let mut encoder = Encoder::default();
    let mut out = Vec::new();
    encoder.status(302, &mut out);
    encoder.field(b"location", b"/", &mut out);
    encoder.status(204, &mut out);
    assert_eq!(out.iter().filter(|&&b| b == 0x20).count(), 1);
    assert_eq!(out[0], 0x20);
    // Each encoder opens its own first block.
    let mut out = Vec::new();
    Encoder::new().field(b"a", b"b", &mut out);
    assert_eq!(out[0], 0x20);
}

#[test]
fn encoded_blocks_decode_back() {
    let long_name = "x-".repeat(100);
    let long_value = "v".repeat(5000);
    let fields: Vec<(&str, &str)> = vec![
        ("content-type", "text/html; charset=utf-8"),
        ("content-length", "1234"),
        ("set-cookie", "a=b; Path=/; HttpOnly"),
        ("x-request-id", "0123456789abcdef"),
        ("server", ""),
        (&long_name, &long_value),
        ("via", "2 sluice"),
        ("accept-ranges", "bytes"),
    ];
    let mut encoder = Encoder::new();
    let mut decoder = Decoder::new(4096);
    for code in [200, 302, 404, 503] {
        let mut block = Vec::new();
        encoder.status(code, &mut block);
        for (name, value) in &fields {
            encoder.field(name.as_bytes(), value.as_bytes(), &mut block);
        }
        let code = code.to_string();
        let mut expected = vec![(":status", code.as_str())];
        expected.extend(fields.iter().copied());
        assert_eq!(decode(&mut decoder, &block), Ok(owned(&expected)));
        assert_table(&decoder, &[], 0);
        assert_eq!(decoder.table().max_size(), 0);
    }
    // Trailers.
    let mut block = Vec::new();
    encoder.field(b"grpc-status", b"0", &mut block);
    let expected = owned(&[("grpc-status", "0")]);
    assert_eq!(decode(&mut decoder, &block), Ok(expected));
}

// Random blocks.

/// A tiny xorshift PRNG with a fixed seed, so that the tests need no crates
/// and fail the same way every time.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub(super) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A deliberately naive model of the dynamic table, to check the real one
/// against.
struct Model {
    entries: VecDeque<(Vec<u8>, Vec<u8>)>,
    max_size: usize,
}

impl Model {
    fn size(&self) -> usize {
        self.entries
            .iter()
            .map(|(n, v)| n.len() + v.len() + 32)
            .sum()
    }

    fn evict(&mut self) {
        while self.size() > self.max_size {
            self.entries.pop_back();
        }
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        self.entries.push_front((name, value));
        self.evict();
    }

    fn get(&self, index: usize) -> (Vec<u8>, Vec<u8>) {
        match STATIC.get(index - 1) {
            Some(&(n, v)) => (n.to_vec(), v.to_vec()),
            None => self.entries[index - 1 - STATIC.len()].clone(),
        }
    }
}

/// Appends a string literal, Huffman-coded or not at random.
fn push_string(rng: &mut Rng, text: &[u8], block: &mut Vec<u8>) {
    if rng.chance(2) {
        let coded = huffman_encode(text);
        integer(coded.len(), 7, 0x80, block);
        block.extend(coded);
    } else {
        integer(text.len(), 7, 0x00, block);
        block.extend_from_slice(text);
    }
}

/// A random string: usually short, sometimes long enough to evict much.
fn random_text(rng: &mut Rng) -> Vec<u8> {
    let len = if rng.chance(10) {
        100 + rng.below(400)
    } else {
        rng.below(20)
    };
    if rng.chance(2) {
        (0..len).map(|_| b"abcxyz-:;= 019"[rng.below(14)]).collect()
    } else {
        rng.bytes(len)
    }
}

/// A random valid block, and the fields it should decode to, updating the
/// model as the decoder should update its table.
fn random_valid_block(rng: &mut Rng, model: &mut Model, limit: usize) -> (Vec<u8>, Fields) {
    let mut block = Vec::new();
    let mut fields = Vec::new();
    for _ in 0..rng.below(3) {
        // Often small, to make evictions common.
        let size = if rng.chance(2) {
            rng.below(300.min(limit + 1))
        } else {
            rng.below(limit + 1)
        };
        integer(size, 5, 0x20, &mut block);
        model.max_size = size;
        model.evict();
    }
    for _ in 0..rng.below(12) {
        let indexes = STATIC.len() + model.entries.len();
        let kind = rng.below(4);
        if kind == 0 {
            let index = 1 + rng.below(indexes);
            integer(index, 7, 0x80, &mut block);
            fields.push(model.get(index));
            continue;
        }
        let (bits, pattern) = [(6, 0x40), (4, 0x00), (4, 0x10)][kind - 1];
        let name = if rng.chance(2) {
            let index = 1 + rng.below(indexes);
            integer(index, bits, pattern, &mut block);
            model.get(index).0
        } else {
            block.push(pattern);
            let name = random_text(rng);
            push_string(rng, &name, &mut block);
            name
        };
        let value = random_text(rng);
        push_string(rng, &value, &mut block);
        if pattern == 0x40 {
            model.insert(name.clone(), value.clone());
        }
        fields.push((name, value));
    }
    (block, fields)
}

#[test]
fn random_valid_blocks_match_a_model() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for limit in [4096, 256] {
        let mut decoder = Decoder::new(limit);
        let mut model = Model {
            entries: VecDeque::new(),
            max_size: limit,
        };
        for round in 0..5_000 {
            let (block, expected) = random_valid_block(&mut rng, &mut model, limit);
            assert_eq!(decode(&mut decoder, &block), Ok(expected), "round {round}");
            let table: Fields = decoder
                .table()
                .entries()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect();
            assert!(model.entries == table, "table differs in round {round}");
            assert_eq!(decoder.table().size(), model.size());
            assert_eq!(decoder.table().max_size(), model.max_size);
        }
    }
}

/// Checks the table's invariants: its size is the sum of its entries' and
/// within both limits.
fn assert_table_invariants(decoder: &Decoder, limit: usize) {
    let table = decoder.table();
    let sum: usize = table.entries().map(|(n, v)| n.len() + v.len() + 32).sum();
    assert_eq!(table.size(), sum);
    assert!(table.size() <= table.max_size());
    assert!(table.max_size() <= limit);
}

/// Changes a copy of `seed` in one of a few ways.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut block = seed.to_vec();
    for _ in 0..1 + rng.below(3) {
        let len = block.len();
        match rng.below(6) {
            0 if len > 0 => {
                let at = rng.below(len);
                block[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                block[at] = rng.next() as u8;
            }
            2 => block.truncate(rng.below(len + 1)),
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(4);
                let extra = rng.bytes(n);
                block.splice(at..at, extra);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                block.remove(at);
            }
            _ => {
                let n = rng.below(8);
                block.extend(rng.bytes(n));
            }
        }
    }
    block
}

#[test]
fn no_panic_on_random_and_mutated_blocks() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let limit = 4096;
    // Seeds: valid blocks of every kind, from the model generator.
    let mut model = Model {
        entries: VecDeque::new(),
        max_size: limit,
    };
    let seeds: Vec<Vec<u8>> = (0..200)
        .map(|_| random_valid_block(&mut rng, &mut model, limit).0)
        .collect();
    let mut decoder = Decoder::new(limit);
    let mut small = Decoder::new(64);
    let (mut ok, mut failed) = (0u32, 0u32);
    for _ in 0..300_000 {
        let block = match rng.below(3) {
            0 => {
                let len = rng.below(48);
                rng.bytes(len)
            }
            _ => {
                let seed = &seeds[rng.below(seeds.len())];
                mutate(&mut rng, seed)
            }
        };
        let mut octets = 0usize;
        let result = decoder.decode(&block, |n, v| octets += n.len() + v.len());
        match result {
            Ok(()) => ok += 1,
            Err(_) => failed += 1,
        }
        // Huffman output is at most 8/5 of its input; indexed fields are
        // at most a table's worth (or the longest static entry) each.
        assert!(octets <= block.len() * (4096 + 64));
        assert_table_invariants(&decoder, limit);
        let _ = small.decode(&block, |_, _| {});
        assert_table_invariants(&small, 64);
    }
    // Both outcomes were exercised in bulk.
    assert!(ok > 10_000 && failed > 10_000, "ok {ok}, failed {failed}");
}
