//! The delay from an EndpointSlice change (a pod turns ready, a pod goes
//! away) to the traffic following it, with the debounce at its default,
//! over changes a few hundred milliseconds apart, under a steady rate of
//! GETs. A pod's first request after it turned ready, and its last after
//! it went away, are what is timed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_integration::cluster::*;
use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;

use crate::{ms, percentile, watching};

/// One answer seen by the client: when its request was sent, and whether
/// the pod that comes and goes answered it.
type Seen = (Instant, bool);

pub async fn run(changes: usize, rate: usize) {
    let api = KubeApi::start().await;
    // Two pods that stay, and one that turns ready and goes away.
    let (pods, port) = pods(3, "pod").await;
    let steady = ready_eps(&pods[..2], "pod");
    let with_third = ready_eps(&pods, "pod");
    shop(&api, port, steady.clone());
    let s = watching(&api, &[]).await;
    routes(&s).await;

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let failed = Arc::new(AtomicUsize::new(0));
    let client_task = {
        let (stop, seen, failed) = (stop.clone(), seen.clone(), failed.clone());
        let addr = s.listen;
        tokio::spawn(async move {
            let c = client(None);
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            // Bounded: an hour at most, whatever --changes asks.
            let deadline = Instant::now() + Duration::from_secs(3600);
            let mut inflight = tokio::task::JoinSet::new();
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                tick.tick().await;
                let (c, seen, failed) = (c.clone(), seen.clone(), failed.clone());
                inflight.spawn(async move {
                    let sent = Instant::now();
                    match request(
                        &c,
                        addr,
                        "GET",
                        "/",
                        &[("host", "shop.example.com")],
                        empty(),
                    )
                    .await
                    {
                        Ok((200, _, body)) => {
                            seen.lock().unwrap().push((sent, body.trim() == "pod2"))
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
                while inflight.try_join_next().is_some() {}
            }
            while inflight.join_next().await.is_some() {}
        })
    };

    // (when applied, whether the pod came)
    let mut marks: Vec<(Instant, bool)> = Vec::with_capacity(changes);
    eprintln!("{changes} EndpointSlice changes, 250-400 ms apart, under {rate} GET/s");
    for i in 0..changes {
        tokio::time::sleep(Duration::from_millis(250 + fastrand::u64(0..150))).await;
        let came = i % 2 == 0;
        let eps = if came { &with_third } else { &steady };
        let at = Instant::now();
        api.apply(slice("shop", "web-abc", "web", port, eps.clone()));
        marks.push((at, came));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = client_task.await;

    let mut seen = std::mem::take(&mut *seen.lock().unwrap());
    seen.sort_by_key(|s| s.0);
    let (mut ready, mut gone, mut missed) = (Vec::new(), Vec::new(), 0);
    for (k, &(at, came)) in marks.iter().enumerate() {
        let until = marks.get(k + 1).map_or(Instant::now(), |m| m.0);
        let third = seen
            .iter()
            .filter(|(sent, pod)| *pod && *sent >= at && *sent < until)
            .map(|(sent, _)| *sent - at);
        if came {
            match third.min() {
                Some(d) => ready.push(d),
                None => missed += 1,
            }
        } else {
            gone.push(third.max().unwrap_or_default());
        }
    }
    let failed = failed.load(Ordering::Relaxed);
    println!("## EndpointSlice change to traffic ({changes} changes, {rate} GET/s, debounce at its default)");
    println!();
    println!("| change | count | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    row("pod ready: its first request", &mut ready);
    row("pod gone: its last request", &mut gone);
    let mut all: Vec<Duration> = ready.iter().chain(&gone).copied().collect();
    row("both", &mut all);
    println!();
    println!(
        "requests answered {}, failed {failed}; ready pods never reached before the next change: {missed}",
        seen.len()
    );
    println!(
        "(resolution: the pod that comes gets every third request, one each {:.1} ms)",
        3000.0 / rate as f64
    );
    if failed > 0 || missed > 0 {
        std::process::exit(1);
    }
}

fn row(what: &str, d: &mut [Duration]) {
    d.sort();
    println!(
        "| {what} | {} | {} | {} | {} |",
        d.len(),
        ms(percentile(d, 50)),
        ms(percentile(d, 99)),
        ms(d.last().copied().unwrap_or_default())
    );
}
