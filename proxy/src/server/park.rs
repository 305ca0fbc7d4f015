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
//! (one heap block of under 200 bytes, [`Spot`]), which waits for all of
//! them in one task. When the client sends bytes (or closes), the lot
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
//! The lot's wakeups are per connection: each parked socket has a waker
//! that names its slot, so a readiness event costs one poll of that
//! socket, not a scan of the lot.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::clock::{until, Clock, Rang};
use super::io::{ReadReady, Stream};
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

/// Between the lot's task, the connections that park, and the wakers of
/// parked sockets.
#[derive(Default)]
struct Inbox {
    state: Mutex<InboxState>,
    /// Rung for a newcomer and for a parked socket's readiness.
    notify: Notify,
}

#[derive(Default)]
struct InboxState {
    arriving: Vec<Parked>,
    /// Slots whose socket's waker has been called.
    ready: Vec<usize>,
    /// The task has been started.
    running: bool,
    /// The task has ended (the proxy stopped): newcomers are turned away.
    closed: bool,
}

/// A parked connection in its slot. Its waker (the `Spot` itself) is what
/// the socket's readiness calls; the connection is taken out of it only
/// by the lot's task.
struct Spot {
    slot: usize,
    deadline: Instant,
    inbox: Arc<Inbox>,
    parked: Mutex<Option<(Stream, Connection)>>,
}

impl Wake for Spot {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        lock(&self.inbox.state).ready.push(self.slot);
        self.inbox.notify.notify_one();
    }
}

impl Lot {
    /// Parks `p`, or gives it back when the lot is closed (the proxy is
    /// stopping): the caller then goes on serving it in its own task.
    // Given back whole, not boxed: it happens once, at the stop, and a box
    // would be an allocation on every park.
    #[allow(clippy::result_large_err)]
    pub(super) fn park(&self, p: Parked, respawn: Respawn) -> Result<(), Parked> {
        let mut state = lock(&self.inbox.state);
        if state.closed {
            return Err(p);
        }
        // The ending task's handle let go: it would keep the task's memory
        // (512 bytes) allocated for as long as the connection stays
        // parked. The lot fills the slot again when it resumes the
        // connection, which it cannot do before this lock is released.
        let shared = &p.conn.shared;
        let ending = lock(&shared.tasks)
            .get_mut(shared.task)
            .and_then(Option::take);
        if !state.running {
            state.running = true;
            let gauge = shared.handler.metrics().client_connections_parked.clone();
            tokio::spawn(run(
                self.inbox.clone(),
                shared.clock.clone(),
                gauge,
                respawn,
            ));
        }
        state.arriving.push(p);
        drop(state);
        drop(ending);
        self.inbox.notify.notify_one();
        Ok(())
    }
}

/// The lot's task: takes newcomers in, gives a task back to each
/// connection its client wakes, closes those whose deadline passes, and,
/// at the stop, gives every connection its task back and ends.
async fn run(inbox: Arc<Inbox>, clock: Arc<Clock>, parked: prometheus::IntGauge, respawn: Respawn) {
    let mut spots: slab::Slab<Arc<Spot>> = slab::Slab::new();
    // The earliest deadline parked: the lot looks for connections to
    // close only once it has passed.
    let mut earliest: Option<Instant> = None;
    loop {
        // A turn of the ring at most when nothing is due, to look again.
        let due = earliest.unwrap_or_else(|| Instant::now() + Duration::from_secs(20));
        let woke = until(&clock, due, true, inbox.notify.notified()).await;
        let stopping = woke == Err(Rang::Stop);
        let (arriving, ready) = {
            let mut state = lock(&inbox.state);
            if stopping {
                // Closed under the lock: whoever parks after this gets
                // the connection back.
                state.closed = true;
            }
            (
                std::mem::take(&mut state.arriving),
                std::mem::take(&mut state.ready),
            )
        };
        for p in arriving {
            let entry = spots.vacant_entry();
            let spot = Arc::new(Spot {
                slot: entry.key(),
                deadline: p.deadline,
                inbox: inbox.clone(),
                parked: Mutex::new(Some((p.io, p.conn))),
            });
            entry.insert(spot.clone());
            earliest = Some(earliest.map_or(p.deadline, |e| e.min(p.deadline)));
            // Its first poll registers the waker; bytes that came while
            // it was on its way in are seen here.
            wake_if_ready(&mut spots, &spot, respawn);
        }
        for slot in ready {
            // A slot freed and taken again since its waker was called is
            // polled for nothing: the poll finds it not ready.
            if let Some(spot) = spots.get(slot).cloned() {
                wake_if_ready(&mut spots, &spot, respawn);
            }
        }
        if stopping {
            parked.set(0);
            for spot in spots.drain() {
                if let Some((io, conn)) = lock(&spot.parked).take() {
                    resume(io, conn, spot.deadline, respawn);
                }
            }
            // What arrived between the last look and `closed` is in the
            // inbox still.
            let late = std::mem::take(&mut lock(&inbox.state).arriving);
            for p in late {
                resume(p.io, p.conn, p.deadline, respawn);
            }
            return;
        }
        if earliest.is_some_and(|e| Instant::now() >= e) {
            earliest = close_expired(&mut spots);
        }
        parked.set(spots.len() as i64);
    }
}

/// Gives `spot`'s connection its task back if its client has sent bytes,
/// closed, or failed; otherwise leaves its waker registered.
fn wake_if_ready(spots: &mut slab::Slab<Arc<Spot>>, spot: &Arc<Spot>, respawn: Respawn) {
    let mut parked = lock(&spot.parked);
    let Some((io, _)) = parked.as_mut() else {
        return;
    };
    let waker = Waker::from(spot.clone());
    let mut cx = Context::from_waker(&waker);
    if Pin::new(io).poll_read_ready(&mut cx).is_pending() {
        return;
    }
    let (io, conn) = parked.take().expect("checked above");
    drop(parked);
    spots.remove(spot.slot);
    resume(io, conn, spot.deadline, respawn);
}

/// Closes the connections whose deadline has passed; returns the earliest
/// deadline left.
fn close_expired(spots: &mut slab::Slab<Arc<Spot>>) -> Option<Instant> {
    let now = Instant::now();
    let mut earliest = None::<Instant>;
    spots.retain(|_, spot| {
        if spot.deadline > now {
            earliest = Some(earliest.map_or(spot.deadline, |e| e.min(spot.deadline)));
            return true;
        }
        if let Some((_, conn)) = lock(&spot.parked).take() {
            tracing::debug!(client = %conn.client, "closed an idle connection at the header timeout");
        }
        false
    });
    earliest
}

/// Spawns a task for a parked connection, in the slot its first task had
/// (which a drain past its deadline aborts).
fn resume(io: Stream, conn: Connection, deadline: Instant, respawn: Respawn) {
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
