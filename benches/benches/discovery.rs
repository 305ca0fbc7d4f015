//! Discovery's rebuild: from the cluster's objects (1,000 Services, each
//! with an Ingress, 10,000 pods in EndpointSlices of 10) to a published
//! routing snapshot. This is what every debounced burst of events costs.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use sluice::discovery::translate::{translate, ClusterState, TranslateSettings};
use sluice::metrics::Metrics;
use sluice::routing::Snapshot;

fn cluster(services: usize, pods_per_service: usize) -> ClusterState {
    let mut state = ClusterState::default();
    state.classes.push(Arc::new(
        serde_json::from_value(json!({"metadata": {"name": "sluice"},
            "spec": {"controller": sluice::discovery::CONTROLLER}}))
        .unwrap(),
    ));
    for s in 0..services {
        let name = format!("svc-{s}");
        state.services.push(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "bench"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
            }))
            .unwrap(),
        ));
        state.ingresses.push(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "bench",
                             "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"ingressClassName": "sluice", "rules": [{
                    "host": format!("{name}.bench.example.com"),
                    "http": {"paths": [{"path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}
            }))
            .unwrap(),
        ));
        let endpoints: Vec<serde_json::Value> = (0..pods_per_service)
            .map(|p| {
                let n = s * pods_per_service + p;
                json!({"addresses": [format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255)],
                       "conditions": {"ready": true},
                       "targetRef": {"kind": "Pod", "name": format!("{name}-{p}"), "namespace": "bench"}})
            })
            .collect();
        state
            .slices
            .push(Arc::new(sluice::discovery::slice::Slice::from(
                serde_json::from_value::<k8s_openapi::api::discovery::v1::EndpointSlice>(json!({
                    "metadata": {"name": format!("{name}-abc"), "namespace": "bench",
                                 "labels": {"kubernetes.io/service-name": name}},
                    "addressType": "IPv4",
                    "ports": [{"name": "http", "port": 8080}],
                    "endpoints": endpoints
                }))
                .unwrap(),
            )));
    }
    state
}

fn rebuild(c: &mut Criterion) {
    let state = cluster(1000, 10);
    let settings = TranslateSettings {
        class: "sluice".into(),
        watch_without_class: false,
        defaults: sluice::config::DEFAULTS,
        ssl_passthrough: false,
        controller: sluice::discovery::CONTROLLER.into(),
        default_backend_service: None,
        controller_config: Default::default(),
        custom_http_errors: Default::default(),
    };
    let metrics = Metrics::new();
    let t = translate(&state, &settings);
    assert_eq!(t.routes.len(), 1000);
    assert_eq!(
        t.routes
            .iter()
            .map(|r| r.upstream.endpoints.len())
            .sum::<usize>(),
        10_000
    );
    let previous = Snapshot::build(&t.routes, None, None, &metrics);
    let mut g = c.benchmark_group("discovery");
    g.sample_size(20);
    g.bench_function("translate 1000 services 10000 endpoints", |b| {
        b.iter(|| translate(&state, &settings))
    });
    g.bench_function("translate and rebuild 1000 services 10000 endpoints", |b| {
        b.iter(|| {
            let t = translate(&state, &settings);
            Snapshot::build(&t.routes, None, Some(&previous), &metrics)
        })
    });
    g.finish();
}

criterion_group!(benches, rebuild);
criterion_main!(benches);
