//! HPACK's static Huffman code (RFC 7541 §5.2 and Appendix B): decoding only.
//!
//! Clients Huffman-code most header strings, so this runs for nearly every
//! field of every request. It is a table-driven state machine that consumes
//! four bits at a time, the scheme nghttp2 uses: a state is an internal node
//! of the code tree (a prefix of some codes, i.e. the bits read but not yet
//! resolved to a symbol), and one table lookup per nibble gives the next
//! state and, at most, one decoded byte (no code is shorter than five bits,
//! so a nibble can finish at most one). Two lookups per input byte, one
//! predictable branch per lookup, and no bit-by-bit tree walking.
//!
//! The table is built at compile time from the RFC's 257 `(code, length)`
//! pairs by `const fn`s, so there is nothing to initialise at run time and
//! the tree's consistency (prefix-free, complete, 256 internal nodes) is
//! checked by the compiler: a mistyped code fails the build.
//!
//! We never Huffman-code what we send (see `encode.rs`), so there is no
//! encoder here; the tests carry a small one to check round trips.

/// Why a Huffman-coded string literal was rejected (RFC 7541 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HuffmanError {
    /// The 30-bit EOS code appeared inside the string; RFC 7541 §5.2 says a
    /// decoder MUST treat that as an error.
    #[error("the EOS symbol appears inside the string")]
    Eos,
    /// More than 7 bits were left over after the last symbol: an encoder
    /// pads only up to the next octet boundary.
    #[error("the padding is longer than 7 bits")]
    PaddingTooLong,
    /// The bits after the last symbol are not a prefix of EOS (all 1s).
    #[error("the padding is not all 1s")]
    PaddingNotOnes,
}

/// RFC 7541 Appendix B: `(code, length in bits)` for symbols 0..=255 and,
/// last, EOS (256). Codes are aligned to the least significant bit.
pub(super) const CODES: [(u32, u8); 257] = [
    // 0..=31: control characters, all long.
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    // 32..=47: ' ' ! " # $ % & ' ( ) * + , - . /
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    // 48..=57: '0'..='9'
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    // 58..=64: : ; < = > ? @
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    // 65..=90: 'A'..='Z'
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    // 91..=96: [ \ ] ^ _ `
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    // 97..=122: 'a'..='z'
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    // 123..=127: { | } ~ DEL
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    // 128..=255
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    // 256: EOS, never valid inside a string; its leading bits are the padding.
    (0x3fffffff, 30),
];

/// The symbol number of EOS.
const EOS: u16 = 256;

/// A code tree with 257 leaves has 256 internal nodes: the decoder's states.
const NODES: usize = 256;

/// In [`Tree::children`], a child with this bit set is a leaf (the low bits
/// are its symbol); otherwise it is the index of an internal node. The root
/// (node 0) is nobody's child, so 0 also means "not set yet" while building.
const LEAF: u16 = 0x8000;

/// The code tree, built once at compile time from [`CODES`].
struct Tree {
    /// `children[node][bit]`: where reading `bit` at `node` leads.
    children: [[u16; 2]; NODES],
    /// How many bits lead from the root to each node.
    depth: [u8; NODES],
    /// Whether every one of those bits is a 1.
    all_ones: [bool; NODES],
}

/// Builds the code tree, failing the build if [`CODES`] is not a complete
/// prefix code.
const fn build_tree() -> Tree {
    let mut tree = Tree {
        children: [[0; 2]; NODES],
        depth: [0; NODES],
        all_ones: [true; NODES],
    };
    let mut nodes = 1; // the root
    let mut symbol = 0;
    while symbol < CODES.len() {
        let (code, len) = CODES[symbol];
        assert!(len >= 5 && len <= 30, "Huffman code length out of range");
        assert!(code >> len == 0, "Huffman code wider than its length");
        let mut node = 0;
        let mut bit_pos = len - 1;
        // Every bit but the last leads to an internal node.
        while bit_pos > 0 {
            let bit = ((code >> bit_pos) & 1) as usize;
            let child = tree.children[node][bit];
            if child == 0 {
                assert!(nodes < NODES, "too many internal nodes in the Huffman tree");
                tree.children[node][bit] = nodes as u16;
                tree.depth[nodes] = tree.depth[node] + 1;
                tree.all_ones[nodes] = tree.all_ones[node] && bit == 1;
                node = nodes;
                nodes += 1;
            } else {
                assert!(child & LEAF == 0, "a Huffman code is a prefix of another");
                node = child as usize;
            }
            bit_pos -= 1;
        }
        let bit = (code & 1) as usize;
        assert!(tree.children[node][bit] == 0, "two Huffman codes collide");
        tree.children[node][bit] = LEAF | symbol as u16;
        symbol += 1;
    }
    assert!(nodes == NODES, "the Huffman tree is not complete");
    let mut node = 0;
    while node < NODES {
        assert!(
            tree.children[node][0] != 0 && tree.children[node][1] != 0,
            "the Huffman tree has a dangling branch"
        );
        node += 1;
    }
    tree
}

/// In a [`Step`]: the step completes a symbol, found in bits 8..16.
const EMIT: u32 = 1 << 16;
/// In a [`Step`]: the step completes EOS, which is an error.
const FAIL: u32 = 1 << 17;

/// One transition of the decoder, packed into a `u32` to keep the table at
/// 16 KiB: bits 0..8 are the next state, bits 8..16 the symbol decoded (if
/// [`EMIT`]), and then the [`EMIT`] and [`FAIL`] flags.
type Step = u32;

/// What it means for a string to end in a given state.
#[derive(Clone, Copy)]
enum End {
    /// At most 7 bits of EOS's prefix are pending: valid padding.
    Ok,
    /// 8 or more 1 bits are pending.
    TooLong,
    /// The pending bits contain a 0, so they are not EOS's prefix.
    NotOnes,
}

/// The decoder's tables, built at compile time.
struct Machine {
    /// `steps[state][nibble]`.
    steps: [[Step; 16]; NODES],
    /// `end[state]`: whether the string may end in that state.
    end: [End; NODES],
}

/// Walks every state through every nibble to build the [`Machine`].
const fn build_machine() -> Machine {
    let tree = build_tree();
    let mut machine = Machine {
        steps: [[0; 16]; NODES],
        end: [End::Ok; NODES],
    };
    let mut state = 0;
    while state < NODES {
        machine.end[state] = match (tree.all_ones[state], tree.depth[state] <= 7) {
            (true, true) => End::Ok,
            (true, false) => End::TooLong,
            (false, _) => End::NotOnes,
        };
        let mut nibble = 0;
        while nibble < 16 {
            machine.steps[state][nibble] = walk_nibble(&tree, state, nibble);
            nibble += 1;
        }
        state += 1;
    }
    machine
}

/// Follows the four bits of `nibble` from `state`, most significant first.
const fn walk_nibble(tree: &Tree, state: usize, nibble: usize) -> Step {
    let mut node = state;
    let mut step = 0;
    let mut bit_pos = 4;
    while bit_pos > 0 {
        bit_pos -= 1;
        let child = tree.children[node][(nibble >> bit_pos) & 1];
        if child & LEAF == 0 {
            node = child as usize;
            continue;
        }
        let symbol = child & !LEAF;
        if symbol == EOS {
            return FAIL;
        }
        assert!(step & EMIT == 0, "two symbols completed in one nibble");
        step = EMIT | (symbol as u32) << 8;
        node = 0;
    }
    step | node as u32
}

/// The decoder's tables; a `static` so that every use reads the one copy.
static MACHINE: Machine = build_machine();

/// Decodes the Huffman-coded `src` into `dst`, replacing its contents.
///
/// `dst` is a scratch buffer its owner reuses, so after the first few
/// strings of a connection this allocates nothing.
pub(super) fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), HuffmanError> {
    dst.clear();
    // Every code is at least 5 bits, so n bytes decode to at most 8n/5.
    dst.reserve(src.len() / 5 * 8 + 8);
    let mut state = 0u8;
    for &byte in src {
        state = step(state, byte >> 4, dst)?;
        state = step(state, byte & 0x0f, dst)?;
    }
    match MACHINE.end[usize::from(state)] {
        End::Ok => Ok(()),
        End::TooLong => Err(HuffmanError::PaddingTooLong),
        End::NotOnes => Err(HuffmanError::PaddingNotOnes),
    }
}

/// Feeds one nibble (`< 16`) to the machine, returning the next state.
#[inline(always)]
fn step(state: u8, nibble: u8, dst: &mut Vec<u8>) -> Result<u8, HuffmanError> {
    // `state` is below 256 and the nibble below 16 by their types and the
    // mask, so the compiler drops the bounds checks.
    let step = MACHINE.steps[usize::from(state)][usize::from(nibble & 0x0f)];
    if step & (EMIT | FAIL) != 0 {
        if step & FAIL != 0 {
            return Err(HuffmanError::Eos);
        }
        dst.push((step >> 8) as u8);
    }
    Ok(step as u8)
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::tests::Rng;
    use super::*;

    /// A plain Huffman encoder for tests: codes MSB-first, padded with the
    /// top bits of EOS.
    pub(crate) fn encode(src: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut bits: u64 = 0;
        let mut nbits = 0u32;
        for &byte in src {
            let (code, len) = CODES[usize::from(byte)];
            bits = (bits << len) | u64::from(code);
            nbits += u32::from(len);
            while nbits >= 8 {
                nbits -= 8;
                out.push((bits >> nbits) as u8);
            }
        }
        if nbits > 0 {
            let pad = 8 - nbits;
            out.push(((bits << pad) as u8) | ((1u8 << pad) - 1));
        }
        out
    }

    fn decoded(src: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        let mut out = Vec::new();
        decode(src, &mut out).map(|()| out)
    }

    #[test]
    fn every_byte_round_trips_alone_and_together() {
        for byte in 0..=255u8 {
            let encoded = encode(&[byte]);
            assert_eq!(decoded(&encoded), Ok(vec![byte]), "byte {byte}");
        }
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(decoded(&encode(&all)), Ok(all.clone()));
        let reversed: Vec<u8> = all.iter().rev().copied().collect();
        assert_eq!(decoded(&encode(&reversed)), Ok(reversed));
    }

    #[test]
    fn random_strings_round_trip() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let len = rng.below(64);
            let text = rng.bytes(len);
            assert_eq!(decoded(&encode(&text)), Ok(text));
        }
    }

    #[test]
    fn rfc_7541_strings() {
        // From the Appendix C.4 and C.6 examples.
        let www = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(decoded(&www), Ok(b"www.example.com".to_vec()));
        assert_eq!(encode(b"www.example.com"), www);
        let no_cache = [0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf];
        assert_eq!(decoded(&no_cache), Ok(b"no-cache".to_vec()));
        assert_eq!(decoded(&[0x64, 0x02]), Ok(b"302".to_vec()));
        assert_eq!(decoded(&[0x64, 0x0e, 0xff]), Ok(b"307".to_vec()));
        assert_eq!(decoded(&[]), Ok(Vec::new()));
    }

    #[test]
    fn code_lengths_match_the_rfc_summary() {
        // Counts from Appendix B, a guard against a mistyped length that
        // still builds a valid tree (the build checks the rest).
        let count = |len: u8| CODES.iter().filter(|&&(_, l)| l == len).count();
        assert_eq!(count(5), 10);
        assert_eq!(count(6), 26);
        assert_eq!(count(7), 32);
        assert_eq!(count(8), 6);
        assert_eq!(count(30), 4);
    }

    #[test]
    fn eos_inside_the_string_is_rejected() {
        // EOS alone: 30 ones, then 2 bits of padding.
        assert_eq!(decoded(&[0xff, 0xff, 0xff, 0xff]), Err(HuffmanError::Eos));
        // 'a' (00011), then EOS, then padding.
        let mut bits: u64 = 0b00011;
        bits = (bits << 30) | 0x3fff_ffff;
        bits = (bits << 5) | 0b11111; // 40 bits in all
        let bytes: Vec<u8> = (0..5).rev().map(|i| (bits >> (i * 8)) as u8).collect();
        assert_eq!(decoded(&bytes), Err(HuffmanError::Eos));
    }

    #[test]
    fn padding_longer_than_seven_bits_is_rejected() {
        // "0" is 00000; then 11 bits of ones pad to 16.
        assert_eq!(decoded(&[0x07, 0xff]), Err(HuffmanError::PaddingTooLong));
        // A whole byte of padding and nothing else.
        assert_eq!(decoded(&[0xff]), Err(HuffmanError::PaddingTooLong));
        // Up to 7 bits is fine: "00:" is 5 + 5 + 7 bits, then 7 ones.
        assert_eq!(decoded(&[0x00, 0x2e, 0x7f]), Ok(b"00:".to_vec()));
        // 'a' (00011) then 3 ones.
        assert_eq!(decoded(&[0x1f]), Ok(b"a".to_vec()));
    }

    #[test]
    fn padding_with_a_zero_is_rejected() {
        // 'a' (00011) then 110 instead of 111.
        assert_eq!(decoded(&[0x1e]), Err(HuffmanError::PaddingNotOnes));
        // 'a' then 000: that is the start of another code, never completed.
        assert_eq!(decoded(&[0x18]), Err(HuffmanError::PaddingNotOnes));
    }
}
