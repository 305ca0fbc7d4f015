//! HPACK, HTTP/2's header compression (RFC 7541), for Sluice's own HTTP/2
//! server codec.
//!
//! The two halves are deliberately lopsided:
//!
//! - [`Decoder`] implements all of RFC 7541, because clients use all of it:
//!   the dynamic table, Huffman coding, size updates. It is internet-facing,
//!   so it never panics, checks every length and index, and allocates only
//!   for the entries clients insert into the dynamic table.
//! - [`Encoder`] uses only what makes encoding cheap: static-table names,
//!   literals without indexing, no Huffman coding, and a dynamic table it
//!   sets to size 0 once and never touches again.
//!
//! Each connection has one of each. Every decoding error is a connection
//! error of type COMPRESSION_ERROR, since after one the dynamic tables can
//! no longer be trusted to agree.
//!
//! Files: `table.rs` (the static table and the dynamic one), `huffman.rs`
//! (Appendix B's code and a table-driven decoder built at compile time),
//! `decode.rs`, `encode.rs`, and `tests.rs` (RFC 7541 Appendix C, error
//! cases, round trips and a no-panic sweep).

mod decode;
mod encode;
mod huffman;
mod table;
#[cfg(test)]
mod tests;

pub use decode::{DecodeError, Decoder};
pub use encode::Encoder;
pub use huffman::HuffmanError;
