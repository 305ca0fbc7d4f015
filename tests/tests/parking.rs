//! Idle keep-alive connections parked without a task (issue 14, point 3):
//! a plain HTTP/1.1 connection idle for a second leaves its task and waits
//! in the listeners' lot, and is served again, as if it had never left,
//! when its client sends; its header timeout still closes it, its client's
//! close frees it, and a drain gives it back.

use std::time::{Duration, Instant};

use sluice_integration::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const PARKED: &str = "sluice_client_connections_parked";
const OPEN: &str = "sluice_client_connections";

/// Sends one GET on `c` and reads its answer (the test backend's body is
/// its name and a newline).
async fn get_on(c: &mut TcpStream, name: &str) -> String {
    c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let body = format!("\r\n\r\n{name}\n");
    read_until(c, Duration::from_secs(30), |b| b.ends_with(body.as_bytes()))
        .await
        .text()
}

async fn gauge_is(s: &Sluice, series: &str, want: f64, why: &str) {
    wait_until(why, Duration::from_secs(30), || async {
        s.metric(series).await == Some(want)
    })
    .await;
}

/// A connection idle past a second is parked; its next requests (one,
/// then two pipelined) are served on it; once idle again it parks again,
/// and its header timeout closes it: never early, and not long after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_parks_is_served_again_and_times_out() {
    let b = Backend::start("a").await;
    let (s, _) = Sluice::with_config(&format!(
        "listen: {{LISTEN}}\nadmin: {{ADMIN}}\ntimeouts: {{request_header: 6s}}\nroutes:\n  - backends: [{}]\n",
        b.addr
    ))
    .await;
    let mut c = TcpStream::connect(s.listen).await.unwrap();
    let got = get_on(&mut c, "a").await;
    assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
    gauge_is(&s, PARKED, 1.0, "the idle connection to park").await;

    // Served again, on the same connection.
    let got = get_on(&mut c, "a").await;
    assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
    gauge_is(&s, PARKED, 1.0, "the connection to park again").await;

    // Two requests at once wake it: both are answered, in order.
    c.write_all(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let got = read_until(&mut c, Duration::from_secs(30), |b| {
        String::from_utf8_lossy(b).matches("\r\n\r\na\n").count() == 2
    })
    .await;
    assert_eq!(
        got.text().matches("HTTP/1.1 200 ").count(),
        2,
        "{}",
        got.text()
    );
    let answered = Instant::now();
    gauge_is(&s, PARKED, 1.0, "the connection to park a third time").await;

    // Parked, it is closed at its header timeout, counted from its last
    // answer (up to a tick late), as an unparked one is.
    let r = read_until(&mut c, Duration::from_secs(30), until_closed).await;
    assert!(
        r.closed,
        "the parked connection was not closed: {}",
        r.text()
    );
    assert!(r.bytes.is_empty(), "{}", r.text());
    let idle = answered.elapsed();
    assert!(idle >= Duration::from_millis(5900), "closed after {idle:?}");
    assert!(idle < Duration::from_secs(12), "closed after {idle:?}");
    gauge_is(&s, PARKED, 0.0, "the closed connection to leave the lot").await;
    gauge_is(&s, OPEN, 0.0, "the closed connection to be uncounted").await;
}

/// Two hundred connections parked at once: each is served again when its
/// client sends, in whatever order, and one whose client closes is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_parked_connections_are_each_served_again_and_freed_when_closed() {
    const N: usize = 200;
    let b = Backend::start("a").await;
    let s = Sluice::serve(&["--backend", &b.addr.to_string()]).await;
    let mut conns = Vec::new();
    for _ in 0..N {
        let mut c = TcpStream::connect(s.listen).await.unwrap();
        let got = get_on(&mut c, "a").await;
        assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
        conns.push(c);
    }
    gauge_is(&s, PARKED, N as f64, "every idle connection to park").await;

    // Every other one first, then the rest: slots are woken out of order.
    let order: Vec<usize> = (0..N).step_by(2).chain((1..N).step_by(2)).collect();
    for &i in &order {
        let got = get_on(&mut conns[i], "a").await;
        assert!(got.starts_with("HTTP/1.1 200 "), "connection {i}: {got}");
    }
    gauge_is(&s, PARKED, N as f64, "every connection to park again").await;

    // Half of the clients close: their connections leave the lot and the
    // count; the others stay parked, and are served.
    for c in conns.drain(..N / 2) {
        drop(c);
    }
    gauge_is(
        &s,
        OPEN,
        (N / 2) as f64,
        "the closed connections to be freed",
    )
    .await;
    gauge_is(&s, PARKED, (N / 2) as f64, "the open ones to stay parked").await;
    for c in &mut conns {
        let got = get_on(c, "a").await;
        assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
    }
}

/// A drain gives parked connections back their task: one whose client
/// sends a request as the drain begins is answered, the idle ones are
/// closed, and the process exits without waiting out `drain_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_answers_what_parked_connections_sent_and_closes_the_rest() {
    let b = Backend::start("a").await;
    let (mut s, _) = Sluice::with_config(&format!(
        "listen: {{LISTEN}}\nadmin: {{ADMIN}}\ndrain_timeout: 60s\nroutes:\n  - backends: [{}]\n",
        b.addr
    ))
    .await;
    let mut busy = TcpStream::connect(s.listen).await.unwrap();
    let mut idle = TcpStream::connect(s.listen).await.unwrap();
    for c in [&mut busy, &mut idle] {
        let got = get_on(c, "a").await;
        assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
    }
    gauge_is(&s, PARKED, 2.0, "both connections to park").await;

    let began = Instant::now();
    busy.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    s.signal("TERM");
    let got = read_until(&mut busy, Duration::from_secs(30), until_closed).await;
    assert!(got.text().starts_with("HTTP/1.1 200 "), "{}", got.text());
    assert!(got.closed, "{}", got.text());
    let got = read_until(&mut idle, Duration::from_secs(30), until_closed).await;
    assert!(got.closed && got.bytes.is_empty(), "{}", got.text());
    assert_eq!(s.wait_exit(Duration::from_secs(30)).await, Some(0));
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "the drain waited for parked connections: {:?}",
        began.elapsed()
    );
}
