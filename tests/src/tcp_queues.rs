//! What the kernel holds for one end of a TCP connection on this machine,
//! read from `/proc/net/tcp`: bytes sent and not yet acknowledged, bytes
//! received and not yet read, and whether that end is probing a closed
//! window. A test waits on these instead of sleeping and hoping: until the
//! proxy has really read what a client sent, or until a slow client's
//! socket is really full and the proxy's writes have to wait.

use std::net::{IpAddr, SocketAddr};

/// One end of an IPv4 TCP connection, as the kernel sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpQueues {
    /// Bytes written by this end and not yet acknowledged by the peer
    /// (`tx_queue`): in flight, or waiting for the peer's window.
    pub unacked: u32,
    /// Bytes received by this end and not yet read by its program
    /// (`rx_queue`).
    pub unread: u32,
    /// The peer's window is closed and this end has bytes it cannot send:
    /// the kernel runs its zero-window probe timer (`tr` 4).
    pub window_closed: bool,
}

/// The end bound to `local` and connected to `remote`, or `None` when no
/// such connection is open (or the addresses are not IPv4).
pub fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<TcpQueues> {
    let (local, remote) = (proc_addr(local)?, proc_addr(remote)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when ...
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[1] != local || f[2] != remote {
            return None;
        }
        let (tx, rx) = f[4].split_once(':')?;
        let (timer, _) = f[5].split_once(':')?;
        Some(TcpQueues {
            unacked: u32::from_str_radix(tx, 16).ok()?,
            unread: u32::from_str_radix(rx, 16).ok()?,
            window_closed: timer == "04",
        })
    })
}

/// An address as `/proc/net/tcp` writes it: the IPv4 address as the
/// kernel's 32-bit word in this machine's byte order, then the port, both
/// in upper-case hex.
fn proc_addr(addr: SocketAddr) -> Option<String> {
    let IpAddr::V4(ip) = addr.ip() else {
        return None;
    };
    Some(format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(ip.octets()),
        addr.port()
    ))
}

/// Bytes the kernel holds for `tcp`, received and not yet read: for a
/// socket the test holds, a peek is far cheaper than [`tcp_queues`]. At
/// most 256 KiB is counted.
pub fn unread(tcp: &tokio::net::TcpStream) -> usize {
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 256 << 10];
    socket2::SockRef::from(tcp).peek(&mut buf).unwrap_or(0)
}
