//! The parking lot: plain keep-alive connections idle for [`PARK_AFTER`]
//! leave their task, and wait together in one.
//!
//! A big ingress holds tens of thousands of browsers' keep-alive
//! connections that send nothing for seconds or minutes. A Tokio task per
//! connection is at least 512 bytes for as long as it is open (its
//! header, its future, its trailer, aligned to 128 bytes, which glibc
//! serves with `memalign` and the waste that goes with it), whatever the
//! connection does. Here, a connection that has waited [`PARK_AFTER`] for
//! its next request ends its task: its socket and context go to the lot
//! (about a hundred bytes in the lot's slab, [`Spot`]), which waits for
//! all of them in one task. When the client sends bytes (or closes), the lot
//! spawns a task for the connection again, which serves the request as
//! if it had never left. nginx's keep-alive handler does the same: an
//! idle connection is an event registration and a small struct.
//!
//! A parked connection keeps its header timeout (the keep-alive idle
//! limit): the lot closes it once the deadline passes, up to one
//! [`TICK`](super::clock::TICK) late. When the proxy stops, the lot gives
//! every connection back its task, which then has the last call an idle
//! connection gets (bytes sent just before the stop are served), and the
//! lot ends.
//!
//! A parked socket is out of Tokio's reactor too: its registration there
//! (a cache-aligned 256-byte block and a waker) would be the largest part
//! of an idle connection. The lot watches its sockets in an epoll set of
//! its own, which is one socket in Tokio's reactor; each registration
//! carries the connection's slot, so a readiness event costs a lookup,
//! not a scan of the lot.

use std::future::{poll_fn, Future};
use std::os::fd::OwnedFd;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rustix::event::{epoll, Timespec};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::clock::{until, Clock, Rang};
use super::io::{Stream, Unregistered};
use super::{lock, Connection};

/// Spawns a parked connection's task again (`dispatch`'s, given here so
/// that this module does not import it back).
pub(super) type Respawn = fn(Stream, Connection, Instant) -> AbortHandle;

/// How long a plain keep-alive connection waits for its next request in
/// its own task before it parks. Long enough that a connection in use
/// (a page's requests, a client polling every few hundred milliseconds)
/// never pays the task's respawn; short enough that the connections a
/// busy ingress holds idle are nearly all parked.
pub(super) const PARK_AFTER: Duration = Duration::from_secs(1);

/// How many readiness events the lot takes from its epoll set at once.
const EVENTS: usize = 64;

/// A connection without a task: what it needs to be served again.
pub(super) struct Parked {
    pub(super) io: Stream,
    pub(super) conn: Connection,
    /// Its header timeout: closed at it unless bytes come.
    pub(super) deadline: Instant,
}

/// The lot as the listeners hold it: parking a connection hands it over,
/// and the first one starts the lot's task.
#[derive(Default)]
pub(super) struct Lot {
    inbox: Arc<Inbox>,
}

/// Between the lot's task and the connections that park.
#[derive(Default)]
struct Inbox {
    state: Mutex<InboxState>,
    /// Rung for a newcomer.
    notify: Notify,
}

#[derive(Default)]
struct InboxState {
    arriving: Vec<Parked>,
    /// The task has been started.
    running: bool,
    /// The task has ended (the proxy stopped): newcomers are turned away.
    closed: bool,
}

/// A parked connection, in the lot's slab at the key its socket's epoll
/// registration carries.
struct Spot {
    io: Unregistered,
    conn: Connection,
    deadline: Instant,
}

impl Lot {
    /// Parks `p`, or gives it back when the lot is closed (the proxy is
    /// stopping) or cannot be opened (no file descriptor for its epoll
    /// set): the caller then goes on serving it in its own task.
    // Given back whole, not boxed: it happens once, at the stop, and a box
    // would be an allocation on every park.
    #[allow(clippy::result_large_err)]
    pub(super) fn park(&self, p: Parked, respawn: Respawn) -> Result<(), Parked> {
        let mut state = lock(&self.inbox.state);
        if state.closed {
            return Err(p);
        }
        let shared = &p.conn.shared;
        if !state.running {
            let watch = match watch() {
                Ok(watch) => watch,
                Err(e) => {
                    tracing::debug!(error = %e, "the parking lot cannot open its epoll set");
                    return Err(p);
                }
            };
            state.running = true;
            let gauge = shared.handler.metrics().client_connections_parked.clone();
            tokio::spawn(run(
                self.inbox.clone(),
                shared.clock.clone(),
                gauge,
                respawn,
                watch,
            ));
        }
        // The ending task's handle let go: it would keep the task's memory
        // (512 bytes) allocated for as long as the connection stays
        // parked. The lot fills the slot again when it resumes the
        // connection, which it cannot do before this lock is released.
        let ending = lock(&shared.tasks)
            .get_mut(shared.task)
            .and_then(Option::take);
        state.arriving.push(p);
        drop(state);
        drop(ending);
        self.inbox.notify.notify_one();
        Ok(())
    }
}

/// The lot's epoll set, in Tokio's reactor: readable when a parked socket
/// is. Parked sockets are in it level-triggered, so bytes that came before
/// a socket was added are announced too.
// Tokio's safe constructors for this are deprecated (they cannot tell an
// owned descriptor from a borrowed one); an `OwnedFd` is owned.
#[allow(unsafe_code)]
fn watch() -> std::io::Result<AsyncFd<OwnedFd>> {
    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    // SAFETY: an `OwnedFd` is an open descriptor for as long as it lives,
    // and always the same one; the `AsyncFd` owns it.
    unsafe { AsyncFd::register_with_interest(epoll, tokio::io::Interest::READABLE) }
        .map_err(std::io::Error::from)
}

/// The lot's task: takes newcomers in, gives a task back to each
/// connection its client wakes, closes those whose deadline passes, and,
/// at the stop, gives every connection its task back and ends.
async fn run(
    inbox: Arc<Inbox>,
    clock: Arc<Clock>,
    parked: prometheus::IntGauge,
    respawn: Respawn,
    watch: AsyncFd<OwnedFd>,
) {
    let mut spots: slab::Slab<Spot> = slab::Slab::new();
    // The earliest deadline parked: the lot looks for connections to
    // close only once it has passed.
    let mut earliest: Option<Instant> = None;
    let mut trim = Trim::default();
    loop {
        // A turn of the ring at most when nothing is due, to look again.
        let due = earliest.unwrap_or_else(|| Instant::now() + Duration::from_secs(20));
        let due = trim.at.map_or(due, |t| t.min(due));
        let mut arrived = pin!(inbox.notify.notified());
        let woke = until(
            &clock,
            due,
            true,
            poll_fn(|cx| {
                if arrived.as_mut().poll(cx).is_ready() || watch.poll_read_ready(cx).is_ready() {
                    return Poll::Ready(());
                }
                Poll::Pending
            }),
        )
        .await;
        let stopping = woke == Err(Rang::Stop);
        let arriving = {
            let mut state = lock(&inbox.state);
            if stopping {
                // Closed under the lock: whoever parks after this gets
                // the connection back.
                state.closed = true;
            }
            std::mem::take(&mut state.arriving)
        };
        trim.admitted(arriving.len());
        for p in arriving {
            if let Some(deadline) = admit(&mut spots, watch.get_ref(), p, respawn) {
                earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
            }
        }
        take_ready(&mut spots, &watch, respawn);
        if stopping {
            parked.set(0);
            for spot in spots.drain() {
                resume(watch.get_ref(), spot, respawn);
            }
            // What arrived between the last look and `closed` is in the
            // inbox still.
            let late = std::mem::take(&mut lock(&inbox.state).arriving);
            for p in late {
                resume_stream(p.io, p.conn, p.deadline, respawn);
            }
            return;
        }
        trim.if_due();
        if earliest.is_some_and(|e| Instant::now() >= e) {
            earliest = close_expired(&mut spots);
        }
        parked.set(spots.len() as i64);
    }
}

/// When the lot hands the allocator's free pages back to the kernel.
///
/// A connection's task (its future, its registration in the reactor, its
/// buffers while it read) is freed when the connection parks, into the
/// allocator's arenas, which keep it resident: after a burst of clients
/// that then sit idle (a page load's connections, a reconnect storm), the
/// process would hold the burst's peak for good. Once the lot has taken
/// in [`Trim::MIN`] connections and no more have come for
/// [`Trim::QUIET`] (or [`Trim::LONGEST`] has passed since the first of
/// them), the pages go back (`memory::trim`, on Tokio's blocking pool:
/// it walks the arenas for about a millisecond per 40 MiB).
#[derive(Default)]
struct Trim {
    /// Connections taken in since the last trim.
    pending: usize,
    first: Option<Instant>,
    /// When the next trim is due, once enough are pending.
    at: Option<Instant>,
}

impl Trim {
    const MIN: usize = 256;
    const QUIET: Duration = Duration::from_secs(1);
    const LONGEST: Duration = Duration::from_secs(10);

    fn admitted(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let now = Instant::now();
        self.pending += n;
        let first = *self.first.get_or_insert(now);
        if self.pending >= Self::MIN {
            self.at = Some((now + Self::QUIET).min(first + Self::LONGEST));
        }
    }

    fn if_due(&mut self) {
        if self.at.is_some_and(|t| Instant::now() >= t) {
            *self = Trim::default();
            drop(tokio::task::spawn_blocking(crate::memory::trim));
        }
    }
}

/// Takes a newcomer's socket out of the reactor and into the lot's epoll
/// set; returns its deadline if it is parked. One with bytes already read
/// is given its task back at once, and one the lot cannot watch too.
fn admit(
    spots: &mut slab::Slab<Spot>,
    epoll: &OwnedFd,
    p: Parked,
    respawn: Respawn,
) -> Option<Instant> {
    let Parked { io, conn, deadline } = p;
    let io = match io.unregister() {
        Ok(io) => io,
        Err(e) => {
            // The socket is gone with the error: so is the connection.
            tracing::debug!(client = %conn.client, error = %e, "a parking connection's socket failed");
            return None;
        }
    };
    if io.has_buffered() {
        register_and_resume(io, conn, deadline, respawn);
        return None;
    }
    let entry = spots.vacant_entry();
    let added = epoll::add(
        epoll,
        io.socket(),
        epoll::EventData::new_u64(entry.key() as u64),
        epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
    );
    if let Err(e) = added {
        tracing::debug!(client = %conn.client, error = %e, "the parking lot cannot watch a socket; served in its own task");
        register_and_resume(io, conn, deadline, respawn);
        return None;
    }
    entry.insert(Spot { io, conn, deadline });
    Some(deadline)
}

/// Gives a task back to every parked connection whose client has sent
/// bytes, closed, or failed.
fn take_ready(spots: &mut slab::Slab<Spot>, watch: &AsyncFd<OwnedFd>, respawn: Respawn) {
    // Looked at without a waker of its own: the task's next wait polls
    // the readiness again with the real one.
    let mut cx = Context::from_waker(Waker::noop());
    let none = epoll::Event {
        flags: epoll::EventFlags::empty(),
        data: epoll::EventData::new_u64(0),
    };
    let mut events = [none; EVENTS];
    loop {
        // The guard taken before the look: readiness that comes after it
        // is not cleared with what the look saw.
        let Poll::Ready(Ok(mut guard)) = watch.poll_read_ready(&mut cx) else {
            return;
        };
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let n = match epoll::wait(watch.get_ref(), &mut events[..], Some(&zero)) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                // Not expected of an epoll set the lot owns; its sockets
                // still close at their deadlines or at the stop.
                tracing::warn!(error = %e, "the parking lot's epoll_wait failed");
                return;
            }
        };
        for event in &events[..n] {
            let slot = event.data.u64() as usize;
            if let Some(spot) = spots.try_remove(slot) {
                resume(watch.get_ref(), spot, respawn);
            }
        }
        if n < EVENTS {
            guard.clear_ready();
            return;
        }
    }
}

/// Closes the connections whose deadline has passed (closing a socket
/// takes it out of the epoll set); returns the earliest deadline left.
fn close_expired(spots: &mut slab::Slab<Spot>) -> Option<Instant> {
    let now = Instant::now();
    let mut earliest = None::<Instant>;
    spots.retain(|_, spot| {
        if spot.deadline > now {
            earliest = Some(earliest.map_or(spot.deadline, |e| e.min(spot.deadline)));
            return true;
        }
        tracing::debug!(client = %spot.conn.client, "closed an idle connection at the header timeout");
        false
    });
    earliest
}

/// Takes a parked socket out of the lot's epoll set and gives its
/// connection a task again.
fn resume(epoll: &OwnedFd, spot: Spot, respawn: Respawn) {
    // Not fatal if it fails: the set forgets the socket when it closes.
    let _ = epoll::delete(epoll, spot.io.socket());
    register_and_resume(spot.io, spot.conn, spot.deadline, respawn);
}

/// Puts a socket back in Tokio's reactor and gives its connection a task.
fn register_and_resume(io: Unregistered, conn: Connection, deadline: Instant, respawn: Respawn) {
    match io.register() {
        Ok(io) => resume_stream(io, conn, deadline, respawn),
        Err(e) => {
            tracing::debug!(client = %conn.client, error = %e, "a parked connection's socket could not be watched again; closed");
        }
    }
}

/// Spawns a task for a parked connection, in the slot its first task had
/// (which a drain past its deadline aborts).
fn resume_stream(io: Stream, conn: Connection, deadline: Instant, respawn: Respawn) {
    let shared = Arc::clone(&conn.shared.shared);
    let slot = conn.shared.task;
    // Spawned and its slot filled under one lock: the task, should it end
    // at once, frees the slot only after.
    let mut tasks = lock(&shared.tasks);
    let task = respawn(io, conn, deadline);
    match tasks.get_mut(slot) {
        Some(handle) => *handle = Some(task),
        // The drain ran out of time and took the slots: this one ends too.
        None => task.abort(),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::super::io::{Prefixed, SendDeadline};
    use super::super::{Connection, Counted};
    use super::*;

    /// What the test's lot spawns for a connection it gives back: it says
    /// so to the client, and holds the connection until the client closes.
    fn respawn(mut io: Stream, conn: Connection, _: Instant) -> AbortHandle {
        tokio::spawn(async move {
            let _ = io.write_all(b"resumed").await;
            let mut buf = [0u8; 16];
            while let Ok(1..) = io.read(&mut buf).await {}
            drop(conn);
        })
        .abort_handle()
    }

    /// A parked connection holds no handle on the task that parked it (a
    /// handle keeps an ended task's memory allocated), and is given a new
    /// task, in the same slot, when its client sends.
    #[tokio::test]
    async fn a_parked_connection_lets_its_task_go_and_gets_one_back() {
        let shared = super::super::shared_for_tests();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        // Read dry, as the fast path leaves a connection it gives up (a
        // socket never read may be announced readable).
        let dry = stream.try_read(&mut [0u8; 1]);
        assert!(matches!(dry, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));
        shared.open.add();
        let io = SendDeadline::new(Prefixed::new(Vec::new(), stream), Duration::from_secs(5));
        let fast = super::super::fast_for_tests(&shared, Duration::from_secs(60));
        // The connection's first task, as accept spawns it: it parks the
        // connection and ends.
        let (parked_tx, parked_rx) = tokio::sync::oneshot::channel();
        let slot = {
            let mut tasks = lock(&shared.tasks);
            let entry = tasks.vacant_entry();
            let slot = entry.key();
            let conn = Connection {
                client: peer,
                shared: Counted::new(shared.clone(), slot),
                fast,
            };
            let lot_of = shared.clone();
            let task = tokio::spawn(async move {
                let p = Parked {
                    io,
                    conn,
                    deadline: Instant::now() + Duration::from_secs(60),
                };
                let _ = parked_tx.send(lot_of.lot.park(p, respawn).is_ok());
            });
            entry.insert(Some(task.abort_handle()));
            slot
        };
        assert!(parked_rx.await.unwrap(), "the lot took the connection");
        assert!(
            lock(&shared.tasks).get(slot).is_some_and(Option::is_none),
            "the slot is kept, without the ended task's handle"
        );
        assert_eq!(shared.open.get(), 1, "the connection is still counted");

        client.write_all(b"x").await.unwrap();
        let mut said = [0u8; 7];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut said))
            .await
            .expect("resumed within 10 s")
            .unwrap();
        assert_eq!(&said, b"resumed");
        assert!(
            lock(&shared.tasks).get(slot).is_some_and(Option::is_some),
            "the new task's handle is in the connection's slot"
        );

        drop(client);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while shared.open.get() != 0 {
            assert!(std::time::Instant::now() < deadline, "the connection ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(lock(&shared.tasks).get(slot).is_none(), "its slot is freed");
    }
}
