//! The idle clock: coarse deadlines for the fast path's idle connections,
//! and the drain's wakeup, in one small wait.
//!
//! Every idle keep-alive connection waits for its client, for its header
//! timeout and for the proxy to stop. A Tokio `Sleep` per connection is
//! 112 bytes of its task's state and a `Notified` for the stop 64 more; at
//! 10,000 idle connections those two were an eighth of Sluice's memory
//! per connection. Here a connection waits on one `Notified` instead: on
//! the slot of a ring that the clock's task notifies when the slot's tick
//! comes, and that the stop notifies all of. A deadline is met up to one
//! [`TICK`] late, as nginx's timers are coarse too, which a timeout
//! counted in seconds does not feel.
//!
//! A slot is shared by every deadline that rounds up to its tick, and by
//! the ticks a whole ring later: a wait woken early checks the time and
//! waits again. A wait registers before it looks at the time and the stop
//! flag, so a tick or a stop between the two still wakes it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Weak;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How late a deadline may be met.
pub const TICK: Duration = Duration::from_millis(100);
/// Slots in the ring: 25.6 s of ticks. A deadline further off wakes its
/// connection once per turn of the ring, to look at the time again.
const SLOTS: usize = 256;
/// Each slot is as many `Notify`s, one per group of worker threads: a
/// wait locks its slot's list to register, and every request on every
/// worker waits on the slot of the same tick.
const SHARDS: usize = 8;

/// The ring of slots, the stop flag, and the time the ticks count from.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    tick: Duration,
    /// `slots × SHARDS`, a slot's shards side by side.
    slots: Box<[Notify]>,
    stopping: AtomicBool,
}

/// What ended a wait on the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rang {
    /// The deadline passed.
    Deadline,
    /// The proxy is stopping.
    Stop,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Clock::with(TICK, SLOTS)
    }

    fn with(tick: Duration, slots: usize) -> Self {
        Clock {
            start: Instant::now(),
            tick,
            slots: (0..slots.max(1) * SHARDS).map(|_| Notify::new()).collect(),
            stopping: AtomicBool::new(false),
        }
    }

    /// The slot whose tick comes at or after `at`.
    fn slot(&self, at: Instant) -> &Notify {
        // In u64 (584 years of nanoseconds): a u128 division is tens of
        // nanoseconds, and every request computes two slots.
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let since = nanos(at.saturating_duration_since(self.start));
        let tick = since.div_ceil(nanos(self.tick).max(1));
        let ring = (self.slots.len() / SHARDS) as u64;
        &self.slots[(tick % ring) as usize * SHARDS + shard()]
    }

    /// Whether the proxy is stopping.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Tells every wait that the proxy is stopping.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        for slot in &*self.slots {
            slot.notify_waiters();
        }
    }

    /// Resolves once `deadline` has passed (up to a [`TICK`] later), or,
    /// when `on_stop`, once the proxy is stopping, whichever is first.
    pub fn wait(&self, deadline: Instant, on_stop: bool) -> Wait<'_> {
        let slot = self.slot(deadline);
        Wait {
            rung: slot.notified(),
            slot,
            deadline,
            stopping: on_stop.then_some(&self.stopping),
        }
    }

    /// The clock's task: notifies each slot when its tick comes, until
    /// the clock is dropped. A late wakeup rings every tick it missed (at
    /// most the whole ring once).
    pub async fn run(clock: Weak<Clock>) {
        let Some((start, tick, slots)) = clock
            .upgrade()
            .map(|c| (c.start, c.tick, (c.slots.len() / SHARDS) as u64))
        else {
            return;
        };
        let mut rung = 0u64;
        // A late tick is not made up by a burst of them: the catch-up below
        // rings what it missed.
        let mut ticks = tokio::time::interval_at(start + tick, tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            let Some(clock) = clock.upgrade() else {
                return;
            };
            // Every tick that has begun and not rung yet: a slot rings
            // once its tick has begun, so a deadline is never met early.
            let since = Instant::now().saturating_duration_since(start).as_nanos();
            let begun = u64::try_from(since / tick.as_nanos().max(1))
                .unwrap_or(u64::MAX)
                .max(rung + 1);
            let from = (rung + 1).max(begun.saturating_sub(slots - 1));
            for t in from..=begun {
                let first = (t % slots) as usize * SHARDS;
                for shard in &clock.slots[first..first + SHARDS] {
                    shard.notify_waiters();
                }
            }
            rung = begun;
        }
    }
}

/// This thread's shard of a slot: threads take them in turn.
fn shard() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

pin_project_lite::pin_project! {
    /// A wait on the clock ([`Clock::wait`]): written out by hand, as an
    /// `async` block would keep the slot's `Notified` and a pin of it.
    #[derive(Debug)]
    pub struct Wait<'a> {
        #[pin]
        rung: Notified<'a>,
        slot: &'a Notify,
        deadline: Instant,
        stopping: Option<&'a AtomicBool>,
    }
}

impl Future for Wait<'_> {
    type Output = Rang;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Rang> {
        let mut this = self.project();
        loop {
            // Registered (by its first poll) before the flag and the time
            // are read, so a tick or a stop between them still wakes this
            // wait. One lock of the slot; `enable` first would be two.
            let rung = this.rung.as_mut().poll(cx);
            if this.stopping.is_some_and(|s| s.load(Ordering::Acquire)) {
                return Poll::Ready(Rang::Stop);
            }
            if Instant::now() >= *this.deadline {
                return Poll::Ready(Rang::Deadline);
            }
            match rung {
                Poll::Pending => return Poll::Pending,
                // Rung for an earlier turn of the ring, or for the stop
                // when this wait does not end at it: wait again.
                Poll::Ready(()) => this.rung.set(this.slot.notified()),
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// `F`, unless the clock passes a deadline first ([`until`]).
    #[derive(Debug)]
    pub struct Until<'a, F> {
        #[pin]
        f: F,
        #[pin]
        wait: Wait<'a>,
    }
}

/// `f`, or the reason the clock gave up on it: its deadline passed or,
/// when `on_stop`, the proxy is stopping. `f` is polled first.
pub fn until<F: Future>(clock: &Clock, deadline: Instant, on_stop: bool, f: F) -> Until<'_, F> {
    Until {
        f,
        wait: clock.wait(deadline, on_stop),
    }
}

impl<F: Future> Future for Until<'_, F> {
    type Output = Result<F::Output, Rang>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.f.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        this.wait.poll(cx).map(Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A clock of the default tick, ringing.
    fn ticking() -> Arc<Clock> {
        let clock = Arc::new(Clock::new());
        tokio::spawn(Clock::run(Arc::downgrade(&clock)));
        clock
    }

    #[tokio::test]
    async fn a_wait_ends_at_its_deadline_not_before_and_within_a_tick_or_two() {
        let clock = ticking();
        for ms in [0u64, 30, 250, 420] {
            let begun = Instant::now();
            let deadline = begun + Duration::from_millis(ms);
            assert_eq!(clock.wait(deadline, true).await, Rang::Deadline);
            let took = begun.elapsed();
            assert!(
                took >= Duration::from_millis(ms),
                "{ms} ms: woke at {took:?}"
            );
            // Late by a tick at most, on an idle runtime; a busy machine
            // gets a generous margin.
            assert!(
                took < Duration::from_millis(ms) + TICK * 10,
                "{ms} ms: woke at {took:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_stop_ends_the_waits_that_end_at_it_and_only_those() {
        let clock = ticking();
        let far = Instant::now() + Duration::from_secs(3600);
        let stopped = tokio::spawn({
            let clock = clock.clone();
            async move { clock.wait(far, true).await }
        });
        let read = tokio::spawn({
            let clock = clock.clone();
            async move {
                until(
                    &clock,
                    Instant::now() + Duration::from_millis(300),
                    false,
                    std::future::pending::<()>(),
                )
                .await
            }
        });
        // Both registered (a wait registers on its first poll).
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        clock.stop();
        let rang = tokio::time::timeout(Duration::from_secs(10), stopped).await;
        assert_eq!(rang.expect("the stop woke the wait").unwrap(), Rang::Stop);
        // The other one goes on to its deadline.
        let out = tokio::time::timeout(Duration::from_secs(10), read).await;
        assert_eq!(
            out.expect("the deadline came").unwrap(),
            Err(Rang::Deadline)
        );
        assert!(clock.stopping());
        // A wait begun after the stop ends at once.
        assert_eq!(clock.wait(far, true).await, Rang::Stop);
    }

    #[tokio::test]
    async fn a_deadline_past_a_turn_of_the_ring_is_kept() {
        // 8 slots of 20 ms: a deadline 8 ticks and more after a near one
        // shares its slot. The near one's ring wakes both; the far one
        // waits on to its own deadline.
        let tick = Duration::from_millis(20);
        let clock = Arc::new(Clock::with(tick, 8));
        tokio::spawn(Clock::run(Arc::downgrade(&clock)));
        let near = Instant::now() + tick * 3;
        let far = near + tick * 8;
        let far_wait = tokio::spawn({
            let clock = clock.clone();
            async move { clock.wait(far, false).await }
        });
        assert_eq!(clock.wait(near, false).await, Rang::Deadline);
        let rang = tokio::time::timeout(Duration::from_secs(10), far_wait).await;
        assert_eq!(
            rang.expect("the far deadline came").unwrap(),
            Rang::Deadline
        );
        assert!(Instant::now() >= far);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_late_clock_rings_every_tick_it_missed() {
        // The runtime's timers are held up (a worker blocked for 10
        // ticks): every wait whose tick passed meanwhile is woken.
        let tick = Duration::from_millis(10);
        let clock = Arc::new(Clock::with(tick, 64));
        tokio::spawn(Clock::run(Arc::downgrade(&clock)));
        let waits: Vec<_> = (1..=8u32)
            .map(|n| {
                let clock = clock.clone();
                let deadline = Instant::now() + tick * n;
                tokio::spawn(async move { clock.wait(deadline, false).await })
            })
            .collect();
        std::thread::sleep(tick * 10);
        for w in waits {
            let rang = tokio::time::timeout(Duration::from_secs(10), w).await;
            assert_eq!(rang.expect("woken").unwrap(), Rang::Deadline);
        }
    }
}
