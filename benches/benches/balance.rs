//! Balancer pick, per strategy, at 3, 100 and 1,000 endpoints.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sluice::balance::{hash_ip, Balancer, Load, Strategy};

#[global_allocator]
static GLOBAL: sluice_benches::Counting = sluice_benches::Counting;

struct Idle(Vec<u32>);
impl Load for Idle {
    fn in_flight(&self, i: usize) -> u32 {
        self.0[i]
    }
}

fn picks(c: &mut Criterion) {
    let mut g = c.benchmark_group("pick");
    for n in [3usize, 100, 1000] {
        let keys: Vec<String> = sluice_benches::endpoints(n)
            .iter()
            .map(|e| e.key.to_string())
            .collect();
        let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        keys.sort();
        let weights: Vec<u32> = (0..n).map(|i| 1 + (i % 5) as u32).collect();
        let load = Idle((0..n).map(|i| (i % 7) as u32).collect());
        for s in [
            Strategy::RoundRobin,
            Strategy::Weighted,
            Strategy::IpHash,
            Strategy::LeastRequest,
        ] {
            let b = Balancer::build(s, &keys, &weights);
            let before = sluice_benches::allocations();
            for i in 0..10_000u32 {
                black_box(b.pick(u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15), 0, &load));
            }
            let allocs = sluice_benches::allocations() - before;
            println!("{s} at {n}: {allocs} allocations in 10,000 picks");
            assert_eq!(allocs, 0, "a pick must not allocate");
            let mut ip = 0u32;
            g.bench_with_input(BenchmarkId::new(s.as_str(), n), &n, |bench, _| {
                bench.iter(|| {
                    ip = ip.wrapping_add(0x9e37_79b9);
                    let h = if s == Strategy::IpHash {
                        hash_ip(std::net::IpAddr::V4(ip.into()))
                    } else {
                        0
                    };
                    black_box(b.pick(black_box(h), 0, &load))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, picks);
criterion_main!(benches);
