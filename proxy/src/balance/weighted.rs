//! Smooth weighted round-robin, as nginx does it, without its lock.
//!
//! nginx keeps a running "current weight" per peer and updates all of them
//! on every pick, under a lock. The sequence that produces is periodic with
//! a period of the sum of the weights, so we run the same algorithm once at
//! build time, store one period, and a pick is one atomic add and one load.
//! A 5:1:1 set gives a, a, b, a, c, a, a: spread out, never five a's in a row.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The longest period we store; larger weight sums are scaled down first.
const MAX_PERIOD: u64 = 1 << 20;
/// Above this much build work (period × endpoints) the exact nginx order is
/// replaced by an equally smooth earliest-deadline order built with a heap.
const MAX_EXACT_WORK: u64 = 1 << 22;

/// Picks endpoints in the precomputed smooth order.
#[derive(Debug)]
pub struct Weighted {
    next: AtomicUsize,
    sequence: Box<[u32]>,
}

impl Weighted {
    pub fn new(weights: &[u32]) -> Self {
        Weighted {
            next: AtomicUsize::new(0),
            sequence: sequence(weights).into_boxed_slice(),
        }
    }

    #[inline]
    pub fn pick(&self) -> Option<usize> {
        let len = self.sequence.len();
        if len == 0 {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % len;
        Some(self.sequence[i] as usize)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// One period of the pick order for these weights.
fn sequence(weights: &[u32]) -> Vec<u32> {
    if weights.is_empty() {
        return Vec::new();
    }
    // A weight of zero would never be picked; the config refuses it, but be safe.
    let mut w: Vec<u64> = weights.iter().map(|&w| u64::from(w.max(1))).collect();
    let g = w.iter().copied().fold(0, gcd);
    w.iter_mut().for_each(|x| *x /= g);
    let mut total: u64 = w.iter().sum();
    if total > MAX_PERIOD {
        let scale = total.div_ceil(MAX_PERIOD);
        w.iter_mut().for_each(|x| *x = (*x / scale).max(1));
        total = w.iter().sum();
    }
    if w.iter().all(|&x| x == 1) {
        return (0..w.len() as u32).collect();
    }
    if total.saturating_mul(w.len() as u64) <= MAX_EXACT_WORK {
        nginx_order(&w, total)
    } else {
        deadline_order(&w, total)
    }
}

/// nginx's algorithm: add each weight to its current weight, pick the
/// largest (the first one on a tie), subtract the total from it.
fn nginx_order(w: &[u64], total: u64) -> Vec<u32> {
    let total = total as i64;
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i] as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u32);
    }
    out
}

/// For very large sets: each endpoint's k-th pick is due at (k + ½) / w,
/// picked in order of due time. Same counts per period, equally spread.
fn deadline_order(w: &[u64], total: u64) -> Vec<u32> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    // Due times compared as fractions (2k + 1) / (2w) by cross-multiplying,
    // kept exact in u128.
    #[derive(PartialEq, Eq)]
    struct Due {
        num: u64,
        den: u64,
        index: u32,
    }
    impl Ord for Due {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            (u128::from(self.num) * u128::from(other.den))
                .cmp(&(u128::from(other.num) * u128::from(self.den)))
                .then(self.index.cmp(&other.index))
        }
    }
    impl PartialOrd for Due {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    let mut heap: BinaryHeap<Reverse<Due>> = w
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            Reverse(Due {
                num: 1,
                den: 2 * w,
                index: i as u32,
            })
        })
        .collect();
    let mut out = Vec::with_capacity(total as usize);
    while out.len() < total as usize {
        let Reverse(mut due) = heap.pop().expect("heap holds every endpoint");
        out.push(due.index);
        due.num += 2;
        heap.push(Reverse(due));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(b: &Weighted, n: usize) -> Vec<usize> {
        (0..n).map(|_| b.pick().unwrap()).collect()
    }

    #[test]
    fn five_one_one_is_nginx_order() {
        let b = Weighted::new(&[5, 1, 1]);
        assert_eq!(picks(&b, 7), [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn every_window_of_seven_holds_five_one_one() {
        let b = Weighted::new(&[5, 1, 1]);
        let seq = picks(&b, 700);
        for window in seq.windows(7) {
            let mut counts = [0; 3];
            window.iter().for_each(|&i| counts[i] += 1);
            assert_eq!(counts, [5, 1, 1], "window {window:?}");
        }
    }

    #[test]
    fn no_bursts_for_uneven_weights() {
        // 3:2: nginx gives a, b, a, b, a.
        let b = Weighted::new(&[3, 2]);
        assert_eq!(picks(&b, 5), [0, 1, 0, 1, 0]);
    }

    #[test]
    fn common_factor_is_removed() {
        let b = Weighted::new(&[10, 10]);
        assert_eq!(b.sequence.len(), 2);
        let b = Weighted::new(&[50, 10, 10]);
        assert_eq!(&b.sequence[..], &[0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn large_sets_keep_exact_shares() {
        // 2,000 endpoints with weights 1..=4: takes the deadline path.
        let weights: Vec<u32> = (0..2000).map(|i| (i % 4) + 1).collect();
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        assert!(total * weights.len() as u64 > MAX_EXACT_WORK);
        let b = Weighted::new(&weights);
        assert_eq!(b.sequence.len() as u64, total);
        let mut counts = vec![0u32; weights.len()];
        b.sequence.iter().for_each(|&i| counts[i as usize] += 1);
        assert_eq!(counts, weights);
        // Smooth: an endpoint of weight 4 never appears twice within
        // a quarter of the period minus one.
        let gap = (total / 4) as usize - 1;
        let positions: Vec<usize> = b
            .sequence
            .iter()
            .enumerate()
            .filter(|(_, &i)| i == 3)
            .map(|(p, _)| p)
            .collect();
        assert!(positions.windows(2).all(|p| p[1] - p[0] >= gap));
    }
}
