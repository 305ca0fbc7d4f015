//! Least request: the better of two random choices, by in-flight requests
//! relative to weight. Cheap, and avoids the herd that "pick the global
//! minimum" causes when every worker sees the same minimum.

use super::Load;

/// Power of two random choices over in-flight counts.
#[derive(Debug)]
pub struct LeastRequest {
    weights: Box<[u32]>,
}

impl LeastRequest {
    pub fn new(weights: &[u32]) -> Self {
        LeastRequest {
            weights: weights.iter().map(|&w| w.max(1)).collect(),
        }
    }

    #[inline]
    pub fn pick(&self, load: &impl Load) -> Option<usize> {
        let n = self.weights.len();
        match n {
            0 => None,
            1 => Some(0),
            _ => {
                let a = fastrand::usize(..n);
                let mut b = fastrand::usize(..n - 1);
                if b >= a {
                    b += 1;
                }
                // in_flight(a) / w(a) <= in_flight(b) / w(b), without division.
                let la = u64::from(load.in_flight(a)) * u64::from(self.weights[b]);
                let lb = u64::from(load.in_flight(b)) * u64::from(self.weights[a]);
                Some(if la <= lb { a } else { b })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<u32>);
    impl Load for Fixed {
        fn in_flight(&self, i: usize) -> u32 {
            self.0[i]
        }
    }

    #[test]
    fn never_picks_the_busiest_of_two() {
        let b = LeastRequest::new(&[1, 1]);
        let load = Fixed(vec![5, 0]);
        assert!((0..1000).all(|_| b.pick(&load) == Some(1)));
    }

    #[test]
    fn the_most_loaded_endpoint_is_never_picked() {
        // With four endpoints, the one with the most in flight loses every
        // comparison, so it is never chosen; the idle ones take most picks.
        let b = LeastRequest::new(&[1, 1, 1, 1]);
        let load = Fixed(vec![0, 3, 9, 0]);
        let mut counts = [0u32; 4];
        for _ in 0..4000 {
            counts[b.pick(&load).unwrap()] += 1;
        }
        assert_eq!(counts[2], 0);
        assert!(counts[0] + counts[3] > counts[1] * 2, "{counts:?}");
    }

    #[test]
    fn weight_scales_load() {
        // Endpoint 0 has weight 4 and 3 in flight: 0.75 per weight, less than 1.
        let b = LeastRequest::new(&[4, 1]);
        let load = Fixed(vec![3, 1]);
        assert!((0..200).all(|_| b.pick(&load) == Some(0)));
    }
}
