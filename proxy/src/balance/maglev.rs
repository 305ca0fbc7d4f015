//! Maglev consistent hashing (Eisenbud et al., NSDI 2016) for ip-hash.
//!
//! The lookup table depends only on the endpoint keys (in sorted order) and
//! weights, never on the order endpoints were discovered or on the process,
//! so every proxy replica sends a client to the same endpoint. Each endpoint
//! fills the table in turn, so shares differ by at most one slot; when an
//! endpoint leaves, mostly only its own slots change hands.

use xxhash_rust::xxh3::xxh3_64_with_seed;

const OFFSET_SEED: u64 = 0x5eed_0ff5_e7a1_1ce5;
const SKIP_SEED: u64 = 0x5eed_5c1b_1ce5_0ff5;
/// Table sizes: primes, the smallest used that is at least 100 slots per
/// weighted endpoint. 65,537 covers up to 655 endpoints of weight one.
const SIZES: [usize; 6] = [65_537, 131_071, 262_147, 524_287, 1_048_573, 2_097_143];

/// A Maglev lookup table.
#[derive(Debug)]
pub struct Maglev {
    table: Box<[u32]>,
}

impl Maglev {
    /// `keys` must be sorted and unique; `weights` gives each key's turns
    /// per round of the fill.
    pub fn new(keys: &[&str], weights: &[u32]) -> Self {
        let n = keys.len();
        if n == 0 {
            return Maglev {
                table: Box::new([]),
            };
        }
        // Weights are relative; a common factor only costs build time.
        let g = weights.iter().fold(0u32, |a, &b| gcd(a, b.max(1)));
        let turns: Vec<u64> = weights.iter().map(|&w| u64::from(w.max(1) / g)).collect();
        let weighted: u64 = turns.iter().sum();
        let m = SIZES
            .iter()
            .copied()
            .find(|&m| m as u64 >= weighted.saturating_mul(100))
            .unwrap_or(SIZES[SIZES.len() - 1]);

        let mut offset = Vec::with_capacity(n);
        let mut skip = Vec::with_capacity(n);
        for key in keys {
            offset.push(xxh3_64_with_seed(key.as_bytes(), OFFSET_SEED) % m as u64);
            skip.push(xxh3_64_with_seed(key.as_bytes(), SKIP_SEED) % (m as u64 - 1) + 1);
        }
        let mut next = vec![0u64; n];
        let mut table = vec![u32::MAX; m];
        let mut filled = 0;
        'fill: loop {
            for i in 0..n {
                for _ in 0..turns[i] {
                    let mut slot;
                    loop {
                        slot = ((offset[i] + next[i] * skip[i]) % m as u64) as usize;
                        next[i] += 1;
                        if table[slot] == u32::MAX {
                            break;
                        }
                    }
                    table[slot] = i as u32;
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
        Maglev {
            table: table.into_boxed_slice(),
        }
    }

    /// The endpoint for a client hash; a later `attempt` probes another slot.
    #[inline]
    pub fn pick(&self, hash: u64, attempt: u32) -> Option<usize> {
        let m = self.table.len() as u64;
        if m == 0 {
            return None;
        }
        let h = hash.wrapping_add(u64::from(attempt).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        Some(self.table[(h % m) as usize] as usize)
    }

    /// Slots per endpoint, for tests and the admin view.
    pub fn shares(&self, endpoints: usize) -> Vec<usize> {
        let mut counts = vec![0; endpoints];
        self.table.iter().for_each(|&i| counts[i as usize] += 1);
        counts
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::hash_ip;
    use std::net::{IpAddr, Ipv4Addr};

    fn keys(n: usize) -> Vec<String> {
        let mut k: Vec<String> = (0..n)
            .map(|i| format!("10.1.{}.{}:8080", i / 250, i % 250))
            .collect();
        k.sort();
        k
    }

    fn clients() -> Vec<IpAddr> {
        (0..10_000u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i * 7919)))
            .collect()
    }

    fn assign(keys: &[String]) -> Vec<String> {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let m = Maglev::new(&refs, &vec![1; refs.len()]);
        clients()
            .iter()
            .map(|&c| keys[m.pick(hash_ip(c), 0).unwrap()].clone())
            .collect()
    }

    #[test]
    fn every_client_stays_across_rebuilds() {
        let k = keys(10);
        let first = assign(&k);
        let second = assign(&k);
        assert_eq!(first, second);
    }

    #[test]
    fn losing_one_of_ten_moves_few_clients() {
        let k = keys(10);
        let before = assign(&k);
        let gone = k[3].clone();
        let rest: Vec<String> = k.iter().filter(|x| **x != gone).cloned().collect();
        let after = assign(&rest);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                moved += 1;
                // Only clients of the lost endpoint are forced to move.
            }
            if *b == gone {
                assert_ne!(a, &gone);
            }
        }
        let on_gone = before.iter().filter(|b| **b == gone).count();
        assert!(on_gone > 0);
        assert!(
            moved <= 1_500,
            "moved {moved} of 10,000 (ideal about {on_gone})"
        );
    }

    #[test]
    fn shares_within_five_percent_for_a_hundred() {
        let k = keys(100);
        let refs: Vec<&str> = k.iter().map(String::as_str).collect();
        let m = Maglev::new(&refs, &[1; 100]);
        let shares = m.shares(100);
        let mean = shares.iter().sum::<usize>() as f64 / 100.0;
        for (i, &s) in shares.iter().enumerate() {
            let dev = (s as f64 - mean).abs() / mean;
            assert!(dev <= 0.05, "endpoint {i} has {s} slots, mean {mean}");
        }
    }

    #[test]
    fn weights_scale_shares() {
        let k = keys(2);
        let refs: Vec<&str> = k.iter().map(String::as_str).collect();
        let m = Maglev::new(&refs, &[3, 1]);
        let shares = m.shares(2);
        let ratio = shares[0] as f64 / shares[1] as f64;
        assert!((ratio - 3.0).abs() < 0.01, "{shares:?}");
    }

    #[test]
    fn later_attempts_reach_other_endpoints() {
        let k = keys(5);
        let refs: Vec<&str> = k.iter().map(String::as_str).collect();
        let m = Maglev::new(&refs, &[1; 5]);
        let h = hash_ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        let mut seen: Vec<usize> = (0..64).map(|a| m.pick(h, a).unwrap()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 5);
    }
}
