//! One request rate per client address, as nginx's `limit_req` with
//! `burst=N nodelay` counts it, in a table of fixed size that no request
//! waits on.
//!
//! nginx's leaky bucket keeps, per client, an "excess" that drains at the
//! rate and grows by one per accepted request, and refuses a request that
//! would take it past the burst. The generic cell rate algorithm (GCRA) is
//! the same bucket written as one timestamp, the theoretical arrival time
//! (TAT): a request at `now` is accepted when `TAT - now <= burst × T`
//! (`T` the interval between requests at the rate), and then moves the TAT
//! to `max(TAT, now) + T`. A new client, like nginx's new node, starts
//! empty, so `burst + 1` requests pass at once and then one per `T`.
//!
//! The table is set-associative: a client's address hashes to a set of
//! [`WAYS`] slots, each one `AtomicU64` holding a 24-bit tag of the hash
//! and a 40-bit TAT, updated with compare-and-swap. A TAT in the past is a
//! client whose bucket has drained, the same as no entry, so it is the
//! first to be reused; when a set is all busy, the client closest to
//! draining is forgotten (it gets a fresh bucket back, as in nginx when its
//! zone is full and the oldest node is dropped). Memory is fixed when the
//! table is made: [`SLOTS`] × 8 bytes.
//!
//! Each request reads the clock before it reads its slot, so a request
//! delayed in between (preempted, on a busy core) can see a TAT moved by a
//! later request further ahead of its `now` than any bucket goes. That
//! TAT is a full bucket seen late, not a drained one: up to [`STALE`]
//! beyond the bucket's depth counts as full, and only past that as the
//! past (else such a request would reset its client's bucket, and let a
//! whole burst through again).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::spec::Rate;

/// Slots per set.
pub const WAYS: usize = 4;
/// Slots per table: 128 KiB, some 16,000 clients at once (nginx's 5 MB
/// zone holds about 40,000, across three zones).
pub const SLOTS: usize = 16_384;
const SETS: usize = SLOTS / WAYS;

/// The TAT's bits: ticks of `T / 1024`, so 2^30 intervals before the
/// counter wraps (12 days at 1000 requests a second, decades at a few).
/// Comparisons are made modulo 2^40: a TAT never lies more than
/// `(burst + 1) × T` ahead of now, so anything further "ahead" is in the
/// past.
const TAT_BITS: u32 = 40;
const TAT_MASK: u64 = (1 << TAT_BITS) - 1;
/// Ticks per interval (about: `T` in nanoseconds divided by it, rounded down).
const TICKS_PER_INTERVAL: u64 = 1024;
/// How late a request's clock may be against its slot's TAT and still see
/// a full bucket as full (see the module's doc). It costs nothing but
/// this: a client back after exactly a wrap of the counter (days) may be
/// refused for up to this long.
pub const STALE: Duration = Duration::from_secs(5);

/// One rate's table.
#[derive(Debug)]
pub struct RateTable {
    slots: Box<[AtomicU64]>,
    /// Nanoseconds per tick.
    tick_ns: u64,
    /// `T` in ticks.
    interval: u64,
    /// `burst × T` in ticks: how far ahead of now a TAT may be and still
    /// accept a request.
    tolerance: u64,
    /// [`STALE`] in ticks.
    stale: u64,
}

/// A request taken from a rate, which can be given back when another
/// limit refuses the request (nginx charges no zone for a refused one).
#[derive(Debug, Clone, Copy)]
pub struct Taken {
    slot: usize,
    tag: u64,
}

impl RateTable {
    pub fn new(rate: Rate) -> RateTable {
        let interval_ns = u64::try_from(rate.interval.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let tick_ns = (interval_ns / TICKS_PER_INTERVAL).max(1);
        let interval = (interval_ns / tick_ns).max(1);
        RateTable {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            tick_ns,
            interval,
            tolerance: interval.saturating_mul(u64::from(rate.burst)),
            stale: u64::try_from(STALE.as_nanos()).unwrap_or(u64::MAX) / tick_ns,
        }
    }

    /// Takes one request for the client whose address hashes to `hash`, at
    /// `now` (time since the table's epoch); `None` when its rate is spent.
    pub fn take(&self, hash: u64, now: Duration) -> Option<Taken> {
        let now = (u64::try_from(now.as_nanos()).unwrap_or(u64::MAX) / self.tick_ns) & TAT_MASK;
        let tag = tag_of(hash);
        let set = (hash as usize % SETS) * WAYS;
        let ways = &self.slots[set..set + WAYS];
        // A few rounds against racing updates to the same set; past them
        // the request is let through rather than spun on.
        for _ in 0..8 {
            if let Some((i, v)) = ways
                .iter()
                .enumerate()
                .map(|(i, s)| (i, s.load(Ordering::Acquire)))
                .find(|(_, v)| *v >> TAT_BITS == tag)
            {
                let ahead = self.ahead(v & TAT_MASK, now);
                if ahead > self.tolerance {
                    return None;
                }
                let tat = (now + ahead + self.interval) & TAT_MASK;
                if ways[i]
                    .compare_exchange(
                        v,
                        tag << TAT_BITS | tat,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return Some(Taken { slot: set + i, tag });
                }
                continue;
            }
            // A new client: the slot nearest to drained (an empty or
            // drained one is at 0).
            let (i, v) = ways
                .iter()
                .enumerate()
                .map(|(i, s)| (i, s.load(Ordering::Acquire)))
                .min_by_key(|(_, v)| {
                    if *v == 0 {
                        0
                    } else {
                        self.ahead(v & TAT_MASK, now)
                    }
                })
                .unwrap_or((0, 0));
            let tat = (now + self.interval) & TAT_MASK;
            if ways[i]
                .compare_exchange(
                    v,
                    tag << TAT_BITS | tat,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return Some(Taken { slot: set + i, tag });
            }
        }
        Some(Taken {
            slot: usize::MAX,
            tag,
        })
    }

    /// Gives back a request taken with [`RateTable::take`].
    pub fn give_back(&self, taken: Taken) {
        let Some(slot) = self.slots.get(taken.slot) else {
            return;
        };
        let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            (v >> TAT_BITS == taken.tag)
                .then(|| taken.tag << TAT_BITS | (v.wrapping_sub(self.interval) & TAT_MASK))
        });
    }

    /// How far `tat` is ahead of `now`, in ticks: 0 when it is in the past,
    /// and at most a full bucket's depth (a TAT further ahead was moved by
    /// a request whose clock was read after this one's).
    fn ahead(&self, tat: u64, now: u64) -> u64 {
        let ahead = tat.wrapping_sub(now) & TAT_MASK;
        let full = self.tolerance + self.interval;
        if ahead <= full {
            ahead
        } else if ahead <= full.saturating_add(self.stale) {
            full
        } else {
            0
        }
    }
}

/// The hash's top 24 bits, never 0 (an empty slot).
fn tag_of(hash: u64) -> u64 {
    (hash >> TAT_BITS).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Requests accepted when one is tried every `every` for `for_`.
    fn accepted(t: &RateTable, hash: u64, start: Duration, every: Duration, for_: Duration) -> u32 {
        let mut n = 0;
        let mut at = start;
        while at < start + for_ {
            n += u32::from(t.take(hash, at).is_some());
            at += every;
        }
        n
    }

    #[test]
    fn burst_plus_one_at_once_then_the_rate() {
        // 10 r/s, burst 5 (limit-burst-multiplier's default of 5 × 1... here 5).
        let t = RateTable::new(Rate::per_second(10, 5));
        for i in 0..6 {
            assert!(t.take(7, ms(1000)).is_some(), "request {i} of the burst");
        }
        assert!(t.take(7, ms(1000)).is_none());
        // The bucket drains one request per 100 ms.
        assert!(t.take(7, ms(1099)).is_none());
        assert!(t.take(7, ms(1100)).is_some());
        assert!(t.take(7, ms(1100)).is_none());
    }

    #[test]
    fn the_long_run_rate_holds_within_a_percent() {
        for (rate, burst) in [(1, 0), (3, 15), (10, 50), (7, 1), (1000, 5000)] {
            let t = RateTable::new(Rate::per_second(rate, burst));
            // Ten times faster than the rate, for 20 s.
            let every = Duration::from_secs(1) / (rate * 10);
            let n = accepted(&t, 42, ms(5), every, Duration::from_secs(20));
            let want = 20 * rate + burst;
            let off = n.abs_diff(want);
            assert!(
                off <= (want / 100).max(1),
                "{rate} r/s burst {burst}: {n}, want about {want}"
            );
        }
        let t = RateTable::new(Rate::per_minute(120, 0));
        let n = accepted(&t, 42, ms(0), ms(10), Duration::from_secs(60));
        assert!((119..=121).contains(&n), "{n}");
    }

    #[test]
    fn a_request_with_a_late_clock_sees_a_full_bucket_as_full() {
        // 10 r/s, burst 5: full at 10 s, one more at 10.1 s moves the TAT
        // to 10.7 s.
        let at = |n: u64| Duration::from_secs(10) + ms(n);
        let t = RateTable::new(Rate::per_second(10, 5));
        for _ in 0..6 {
            assert!(t.take(7, at(0)).is_some());
        }
        assert!(t.take(7, at(100)).is_some());
        // A request that read the clock at 10.05 s and its slot after the
        // one above: 650 ms ahead, past the bucket's 600. It is refused,
        // and the bucket is not reset.
        assert!(t.take(7, at(50)).is_none());
        assert!(t.take(7, at(100)).is_none());
        assert!(t.take(7, at(200)).is_some());
        assert!(t.take(7, at(200)).is_none());
        // A clock behind by more than the bucket's depth and the margin is
        // a counter that wrapped: a drained bucket.
        assert!(t.take(7, at(800) - ms(600) - STALE - ms(1)).is_some());
    }

    #[test]
    fn clients_are_independent_and_refusals_cost_nothing() {
        let t = RateTable::new(Rate::per_second(1, 0));
        assert!(t.take(1, ms(0)).is_some());
        assert!(t.take(2, ms(0)).is_some());
        for at in 1..1000 {
            assert!(t.take(1, ms(at)).is_none());
        }
        // Refused requests do not push the next acceptance further off.
        assert!(t.take(1, ms(1000)).is_some());
    }

    #[test]
    fn given_back_requests_are_not_counted() {
        let t = RateTable::new(Rate::per_second(1, 0));
        let taken = t.take(9, ms(0)).unwrap();
        t.give_back(taken);
        assert!(t.take(9, ms(0)).is_some());
        assert!(t.take(9, ms(0)).is_none());
    }

    #[test]
    fn a_full_set_forgets_the_client_nearest_to_drained() {
        let t = RateTable::new(Rate::per_second(1, 0));
        // WAYS + 1 clients in one set: the same low bits, different tags.
        let hash = |k: u64| (k << TAT_BITS) | 3;
        for k in 1..=WAYS as u64 {
            assert!(t.take(hash(k), ms(k * 100)).is_some());
        }
        assert!(t.take(hash(99), ms(500)).is_some());
        // The first client (oldest TAT) was forgotten; the others remain.
        assert!(t.take(hash(1), ms(600)).is_some());
        assert!(t.take(hash(4), ms(600)).is_none());
    }

    #[test]
    fn an_old_entry_counts_as_drained_across_the_wrap() {
        let t = RateTable::new(Rate::per_second(1000, 0));
        let wrap = Duration::from_nanos((1 << TAT_BITS) * t.tick_ns);
        assert!(t.take(5, ms(0)).is_some());
        assert!(t.take(5, ms(0)).is_none());
        // Long after, whatever the counter's wraps, it is a fresh bucket.
        assert!(t.take(5, wrap + ms(500)).is_some());
    }
}
