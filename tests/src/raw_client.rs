//! Reading a raw TCP connection to the proxy, for tests that write bytes
//! a well-behaved client would not (half a head, a stalled upload) and
//! look at exactly what comes back, and when the proxy closes.

use std::time::Duration;

/// What [`read_until`] saw on a raw connection.
#[derive(Debug)]
pub struct Received {
    pub bytes: Vec<u8>,
    /// The peer closed the connection (or it failed).
    pub closed: bool,
    /// `limit` passed before `done` held or the connection closed.
    pub timed_out: bool,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Reads from a raw connection until `done(bytes so far)` holds, the peer
/// closes, or `limit` passes.
pub async fn read_until(
    stream: &mut tokio::net::TcpStream,
    limit: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> Received {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    let mut closed = false;
    let mut buf = [0u8; 4096];
    let finished = tokio::time::timeout(limit, async {
        while !done(&bytes) {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    closed = true;
                    break;
                }
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    Received {
        bytes,
        closed,
        timed_out: finished.is_err(),
    }
}

/// Never done: read until the peer closes (or the limit).
pub fn until_closed(_: &[u8]) -> bool {
    false
}
