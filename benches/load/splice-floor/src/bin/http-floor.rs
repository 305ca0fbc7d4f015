//! `http-floor LISTEN BACKEND...`: the least an HTTP/1.1 balancer can do
//! per request, for the load bench's `http-floor` peer (issue 14, point 5).
//!
//! Per request it does what any per-request balancer must, and nothing
//! else: it parses the request head (httparse), picks the next backend in
//! turn, takes an idle connection to it from a pool (or opens one), writes
//! the head and body as they came, parses the response head for its
//! framing, and passes the response back by Content-Length. No routing
//! table, no header rewriting, no metrics, no timeouts, no limits; a
//! chunked or bodiless-by-EOF answer closes the client. One thread (a
//! current-thread runtime), as the other peers run one worker.
//!
//! What it measures: against the `splice` peer (which pairs each client
//! with one upstream connection and parses nothing), the user CPU that
//! parsing two heads and balancing each request cost at the least; against
//! Sluice, what Sluice spends on top of that.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Idle upstream connections, per backend.
struct Pools {
    backends: Vec<SocketAddr>,
    idle: Vec<Vec<TcpStream>>,
    next: usize,
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: http-floor LISTEN BACKEND...";
    let listen: SocketAddr = args.next().expect(usage).parse().expect(usage);
    let backends: Vec<SocketAddr> = args.map(|a| a.parse().expect(usage)).collect();
    assert!(!backends.is_empty(), "{usage}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let pools = Rc::new(RefCell::new(Pools {
            idle: backends.iter().map(|_| Vec::new()).collect(),
            backends,
            next: 0,
        }));
        let listener = TcpListener::bind(listen).await?;
        loop {
            let (client, _) = listener.accept().await?;
            let _ = client.set_nodelay(true);
            tokio::task::spawn_local(serve(client, pools.clone()));
        }
    })
}

/// Serves one client connection's requests until it closes or sends what
/// the floor does not serve.
async fn serve(mut client: TcpStream, pools: Rc<RefCell<Pools>>) {
    let mut input: Vec<u8> = Vec::with_capacity(4096);
    let mut output: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // The request head (and a body by Content-Length), whole.
        let (head_len, body_len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&input) {
                Ok(httparse::Status::Complete(n)) => break (n, content_length(req.headers)),
                Ok(httparse::Status::Partial) => {}
                Err(_) => return,
            }
            if !read_some(&mut client, &mut input).await {
                return;
            }
        };
        while input.len() < head_len + body_len {
            if !read_some(&mut client, &mut input).await {
                return;
            }
        }
        let request = head_len + body_len;
        // The next backend, and an idle connection to it.
        let (i, pooled) = {
            let mut p = pools.borrow_mut();
            let i = p.next % p.backends.len();
            p.next += 1;
            (i, p.idle[i].pop())
        };
        let mut upstream = match pooled {
            Some(u) => u,
            None => {
                let addr = pools.borrow().backends[i];
                let Ok(u) = TcpStream::connect(addr).await else {
                    return;
                };
                let _ = u.set_nodelay(true);
                u
            }
        };
        if upstream.write_all(&input[..request]).await.is_err() {
            return;
        }
        input.drain(..request);
        // The response head, then its body by length.
        output.clear();
        let (head_len, body_len) = loop {
            if !read_some(&mut upstream, &mut output).await {
                return;
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&output) {
                Ok(httparse::Status::Complete(n)) => break (n, content_length(resp.headers)),
                Ok(httparse::Status::Partial) => {}
                Err(_) => return,
            }
        };
        while output.len() < head_len + body_len {
            if !read_some(&mut upstream, &mut output).await {
                return;
            }
        }
        if client.write_all(&output).await.is_err() {
            return;
        }
        pools.borrow_mut().idle[i].push(upstream);
    }
}

/// Reads more onto `buf`; false at EOF or on an error.
async fn read_some(io: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(4096);
    }
    matches!(io.read_buf(buf).await, Ok(n) if n > 0)
}

/// The Content-Length, or 0 when there is none (the bench's requests are
/// GETs and its backend answers with a length).
fn content_length(headers: &[httparse::Header]) -> usize {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
        .unwrap_or(0)
}
