//! Certificates: what a new Secret or file costs to load, what the SNI
//! table costs to build for 1,000 certificates, and one SNI lookup (the
//! only TLS work of ours in a handshake; the rest is rustls).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use sluice::tls::{Binding, CertTable, Certificate};

fn pem(names: Vec<String>) -> (String, String) {
    let c = rcgen::generate_simple_self_signed(names).expect("rcgen makes a certificate");
    (c.cert.pem(), c.signing_key.serialize_pem())
}

fn certs(c: &mut Criterion) {
    let (cert, key) = pem(vec!["shop.example.com".into()]);
    c.bench_function("tls/parse_one", |b| {
        b.iter(|| Certificate::from_pem(black_box(cert.as_bytes()), black_box(key.as_bytes())))
    });

    // 1,000 Secrets: 900 hosts of their own, 100 wildcards.
    let bindings: Vec<Binding> = (0..1000)
        .map(|i| {
            let name = if i % 10 == 9 {
                format!("*.tenant{i}.example.com")
            } else {
                format!("host{i}.example.com")
            };
            let (cert, key) = pem(vec![name.clone()]);
            Binding {
                source: format!("secret:ns/tls-{i}").into(),
                hosts: vec![name],
                cert: Arc::new(Certificate::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()),
            }
        })
        .collect();
    let default = Certificate::self_signed();
    c.bench_function("tls/table_build_1000", |b| {
        b.iter(|| CertTable::build(black_box(&bindings), Some(&default)))
    });
    let (table, problems) = CertTable::build(&bindings, Some(&default));
    assert!(problems.is_empty());
    for (what, sni) in [
        ("exact", Some("host500.example.com")),
        ("wildcard", Some("a.tenant509.example.com")),
        ("default", Some("unknown.example.org")),
        ("mixed_case", Some("Host500.Example.com")),
    ] {
        assert!(table.resolve(sni).is_some());
        c.bench_function(&format!("tls/resolve_{what}"), |b| {
            b.iter(|| table.resolve(black_box(sni)))
        });
    }
}

criterion_group!(benches, certs);
criterion_main!(benches);
