//! Route lookup at 10, 1,000 and 10,000 host/path rules.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sluice::metrics::Metrics;
use sluice::routing::Snapshot;

fn lookup(c: &mut Criterion) {
    let metrics = Metrics::new();
    let mut g = c.benchmark_group("lookup");
    for n in [10usize, 1000, 10_000] {
        let snap = Snapshot::build(&sluice_benches::rules(n), None, None, &metrics);
        let hosts = (n / 10).max(1);
        // A deep path under the last rule of the last host: the worst case
        // is several path elements to cut before a hit.
        let host = format!("host{}.example.com", hosts - 1);
        let path = format!("/svc{}/api/users/42/orders", (n - 1) / hosts);
        assert!(snap.lookup(Some(&host), &path).is_some());
        g.bench_with_input(BenchmarkId::new("hit", n), &n, |b, _| {
            b.iter(|| black_box(snap.lookup(Some(black_box(&host)), black_box(&path))))
        });
        g.bench_with_input(BenchmarkId::new("miss", n), &n, |b, _| {
            b.iter(|| {
                black_box(snap.lookup(Some(black_box("nowhere.example.org")), black_box("/x/y")))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
