//! Building the routing snapshot for 1,000 Services with 10,000 endpoints,
//! from scratch and as a rebuild that takes endpoints over.

use criterion::{criterion_group, criterion_main, Criterion};
use sluice::metrics::Metrics;
use sluice::routing::Snapshot;

fn build(c: &mut Criterion) {
    let metrics = Metrics::new();
    let specs = sluice_benches::cluster(1000, 10_000);
    let mut g = c.benchmark_group("snapshot");
    g.sample_size(20);
    g.bench_function("build 1000 services 10000 endpoints", |b| {
        b.iter(|| Snapshot::build(&specs, None, None, &metrics))
    });
    let previous = Snapshot::build(&specs, None, None, &metrics);
    g.bench_function("rebuild 1000 services 10000 endpoints", |b| {
        b.iter(|| Snapshot::build(&specs, None, Some(&previous), &metrics))
    });
    // ip-hash fills a Maglev table (65,537 slots) per upstream: the one
    // strategy whose build cost does not shrink with the endpoint count.
    let keys: Vec<String> = sluice_benches::endpoints(100)
        .iter()
        .map(|e| e.key.to_string())
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    g.bench_function("maglev table for 100 endpoints", |b| {
        b.iter(|| sluice::balance::Maglev::new(&keys, &[1; 100]))
    });
    g.finish();
}

criterion_group!(benches, build);
criterion_main!(benches);
