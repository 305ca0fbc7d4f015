//! `splice-floor LISTEN BACKEND...`: each client connection is paired with
//! one connection to the next backend in turn, and bytes are copied both
//! ways until either side closes. One thread (a current-thread runtime),
//! as the other peers run one worker. Nothing is parsed: with keep-alive
//! clients this is the least CPU per request a Tokio proxy can spend here,
//! the syscalls of reading and writing each side and nothing else.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: splice-floor LISTEN BACKEND...";
    let listen: SocketAddr = args.next().expect(usage).parse().expect(usage);
    let backends: Vec<SocketAddr> = args.map(|a| a.parse().expect(usage)).collect();
    assert!(!backends.is_empty(), "{usage}");
    let listener = TcpListener::bind(listen).await?;
    let mut next = 0;
    loop {
        let (mut client, _) = listener.accept().await?;
        let backend = backends[next % backends.len()];
        next += 1;
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            let Ok(mut upstream) = TcpStream::connect(backend).await else {
                return;
            };
            let _ = upstream.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
    }
}
