//! A backend that speaks raw HTTP/1.1 from a script, for answers a real
//! server would not send, and that records exactly what the proxy sent it,
//! request by request and byte by byte, connection by connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;

/// Collects lines from concurrent tasks.
pub type Shared<T> = Arc<Mutex<T>>;

/// A backend speaking raw HTTP/1.1 from a script, for responses a real
/// server would not send: odd framing, trailers, malformed heads. It reads
/// each request (head and Content-Length body), records it, and writes
/// what `answer(request)` returns; the connection closes after an answer
/// whose `close` is set.
pub struct RawBackend {
    pub addr: SocketAddr,
    /// Every whole request received, raw, in order.
    pub requests: Shared<Vec<Vec<u8>>>,
    /// Connections accepted.
    pub conns: Arc<AtomicUsize>,
    /// What each connection carried, in the order accepted.
    connections: Shared<Vec<RawConn>>,
    task: tokio::task::JoinHandle<()>,
}

/// What one connection to a [`RawBackend`] carried: every byte, whole
/// requests or not, so a test sees a request the proxy began and never
/// finished.
#[derive(Debug, Clone, Default)]
pub struct RawConn {
    /// Every byte received, in order.
    pub bytes: Vec<u8>,
    /// The connection is over: the proxy closed it (or it failed), or the
    /// backend did after an answer with `close` set.
    pub closed: bool,
}

impl RawConn {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// What a [`RawBackend`] writes back: parts written one at a time with a
/// short pause between, so the proxy sees them in separate reads.
pub struct RawAnswer {
    pub parts: Vec<Vec<u8>>,
    pub close: bool,
}

impl RawAnswer {
    pub fn whole(bytes: impl Into<Vec<u8>>) -> Self {
        RawAnswer {
            parts: vec![bytes.into()],
            close: false,
        }
    }
}

impl RawBackend {
    pub async fn start(answer: impl Fn(&[u8]) -> RawAnswer + Send + Sync + 'static) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests: Shared<Vec<Vec<u8>>> = Arc::default();
        let connections: Shared<Vec<RawConn>> = Arc::default();
        let conns = Arc::new(AtomicUsize::new(0));
        let answer = Arc::new(answer);
        let (reqs, log, count) = (requests.clone(), connections.clone(), conns.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let index = {
                    let mut log = log.lock().unwrap();
                    log.push(RawConn::default());
                    log.len() - 1
                };
                let (reqs, log, answer) = (reqs.clone(), log.clone(), answer.clone());
                tokio::spawn(async move {
                    serve_raw(s, &reqs, &log, index, &*answer).await;
                    log.lock().unwrap()[index].closed = true;
                });
            }
        });
        RawBackend {
            addr,
            requests,
            conns,
            connections,
            task,
        }
    }

    /// The requests received so far, as text.
    pub fn received(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }

    /// What each connection has carried so far, in the order accepted.
    pub fn connections(&self) -> Vec<RawConn> {
        self.connections.lock().unwrap().clone()
    }
}

/// Serves one connection until either side closes it: reads whole
/// requests, records them (and every byte in `log[index]`), and writes
/// the scripted answers.
async fn serve_raw(
    mut s: tokio::net::TcpStream,
    reqs: &Shared<Vec<Vec<u8>>>,
    log: &Shared<Vec<RawConn>>,
    index: usize,
    answer: &(dyn Fn(&[u8]) -> RawAnswer + Send + Sync),
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // One whole request: head, then a Content-Length body.
        let len = loop {
            if let Some(n) = raw_request_len(&buf) {
                break n;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    log.lock().unwrap()[index]
                        .bytes
                        .extend_from_slice(&chunk[..n]);
                }
            }
        };
        let req: Vec<u8> = buf.drain(..len).collect();
        let a = answer(&req);
        reqs.lock().unwrap().push(req);
        for (i, part) in a.parts.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if s.write_all(part).await.is_err() {
                return;
            }
        }
        if a.close {
            return;
        }
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The length of the first whole request in `buf` (head plus
/// Content-Length body), if it is all there.
fn raw_request_len(buf: &[u8]) -> Option<usize> {
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
    let body: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (buf.len() >= head + body).then_some(head + body)
}
