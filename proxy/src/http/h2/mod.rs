//! Sluice's own HTTP/2 server codec: frames, HPACK and the connection's
//! state, without I/O. The driver that runs it over a socket, one task per
//! connection, is `server::http2`.
//!
//! Why not the h2 crate: counted in instructions per request over TLS,
//! h2 and the `http` types around it were most of what HTTP/2 cost Sluice
//! beyond a plain HTTP/1.1 request (docs/BENCHMARKS.md, "What TLS and
//! HTTP/2 cost each proxy"): a header map per message, a task and its
//! wakeups per stream, locks on a shared stream store. Here a stream is a
//! slot in the connection's table, served by the connection's own task,
//! and a request head is one buffer of decoded fields.

pub mod conn;
pub mod frame;
pub mod hpack;
pub mod request;

pub use conn::{Conn, ConnError, Event, Settings};
pub use frame::Reason;
pub use request::RequestHead;
