//! Addresses for tests. Servers bind port 0 and say which port they got;
//! these are for what cannot: a port a config or another program must name
//! before it starts ([`free_addr`], [`stable_addr`]), and addresses that
//! misbehave on purpose ([`blackhole`], [`dead`]).

use std::net::SocketAddr;
use std::time::Duration;

/// `N` distinct free addresses on 127.0.0.1: all bound at once, then
/// released, so two of them are never the same port. Another socket may
/// take one before the program meant to bind it does: only for what must
/// name a port before it starts (sluice's own listeners bind port 0).
pub fn free_addrs<const N: usize>() -> [SocketAddr; N] {
    let held: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap())
}

/// One address as [`free_addrs`] gives them.
pub fn free_addr() -> SocketAddr {
    free_addrs::<1>()[0]
}

/// A free address that stays free until the test binds it, perhaps more
/// than once: for a backend stopped and started again on the same port, or
/// a listener another process (HAProxy) binds later. Ports from
/// `free_addr()` come from the kernel's ephemeral range, so once the first
/// backend closes, an outgoing connection of a test running beside this
/// one may take the port and the restart fails with "Address already in
/// use". These ports lie below that range (10000–32767).
pub fn stable_addr() -> SocketAddr {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id().rotate_left(16);
    let mut x = seed | 1;
    for _ in 0..1000 {
        // xorshift: cheap, and good enough to spread parallel tests apart.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let port = 10_000 + (x % 22_768) as u16;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free port in 10000..32768 after 1000 tries");
}

/// An address that never completes a TCP handshake: a listener with a
/// backlog of one that never accepts, its queue filled by connections held
/// here. The kernel then drops further SYNs, so a connect to it hangs until
/// the connector's timeout, all on loopback.
pub struct Blackhole {
    pub addr: SocketAddr,
    _listener: socket2::Socket,
    _fill: Vec<std::net::TcpStream>,
}

pub fn blackhole() -> Blackhole {
    use socket2::{Domain, Protocol, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fill = Vec::new();
    // Fill the accept queue; stop once a connect no longer completes quickly.
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fill.push(s),
            Err(_) => break,
        }
    }
    Blackhole {
        addr,
        _listener: listener,
        _fill: fill,
    }
}

/// An address nothing listens on, held for the test's lifetime: a socket
/// bound to it that never listens, so connects are refused at once and no
/// other server can take the port the way it could a port merely bound
/// and released.
pub struct Dead {
    pub addr: SocketAddr,
    _socket: socket2::Socket,
}

pub fn dead() -> Dead {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    Dead {
        addr,
        _socket: socket,
    }
}
