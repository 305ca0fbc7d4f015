//! One request end to end through the proxy to a local backend, in process,
//! and the heap allocations it costs (counted by a global allocator).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

#[global_allocator]
static GLOBAL: sluice_benches::Counting = sluice_benches::Counting;

async fn one(sender: &mut http1::SendRequest<Empty<Bytes>>, host: &str) {
    let req = http::Request::get("/")
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    sender.ready().await.unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
}

fn end_to_end(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = 10_000u64;
    // The client and backend alone, measured directly, so that the proxy's
    // share can be told apart from the whole process's count.
    let direct = rt.block_on(async {
        let backend = sluice_benches::start_backend().await;
        let stream = tokio::net::TcpStream::connect(backend).await.unwrap();
        let (mut direct, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        for _ in 0..100 {
            one(&mut direct, "backend").await;
        }
        let before = sluice_benches::allocations();
        for _ in 0..n {
            one(&mut direct, "backend").await;
        }
        sluice_benches::allocations() - before
    });
    for (name, fast_path) in [("fast path", true), ("hyper path", false)] {
        let (mut sender, proxy) = rt.block_on(async {
            let backend = sluice_benches::start_backend().await;
            let proxy = sluice_benches::start_proxy_with(&[backend], fast_path).await;
            let stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
            tokio::spawn(conn);
            (sender, proxy)
        });
        let host = proxy.to_string();
        let host = host.as_str();
        // Warm the pools, then count allocations over many requests. The
        // count covers the whole process: client, proxy and backend.
        rt.block_on(async {
            for _ in 0..100 {
                one(&mut sender, host).await;
            }
        });
        let through_proxy = rt.block_on(async {
            let before = sluice_benches::allocations();
            for _ in 0..n {
                one(&mut sender, host).await;
            }
            sluice_benches::allocations() - before
        });
        println!(
            "{name}: allocations per request: {:.1} through the proxy, {:.1} client and backend alone, {:.1} in the proxy",
            through_proxy as f64 / n as f64,
            direct as f64 / n as f64,
            (through_proxy as f64 - direct as f64) / n as f64
        );
        c.bench_function(
            &format!("request through proxy, {name} (in process, keep-alive)"),
            |b| b.iter(|| rt.block_on(one(&mut sender, host))),
        );
    }
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
