//! Discovery and configuration at scale, measured with a release build of
//! Sluice against the tests' API server (`sluice_integration::kube_api`):
//! what `benches/load/loadbench.py` cannot show, because it needs a
//! cluster or a thousand hosts.
//!
//! ```text
//! cluster-bench endpoints [--changes 200] [--rate 1000]
//! cluster-bench memory [--services 1000] [--endpoints 10] [--certs 1000]
//! cluster-bench scale [--points 1000,2000,5000,10000] [--endpoints 10]
//! cluster-bench churn [--hosts 1000] [--rate 5000] [--websockets 200]
//!                     [--changes 60] [--before 60] [--rounds 6] [--peers "kube file nginx"]
//! ```
//!
//! - **endpoints** (`endpoints.rs`): the delay from an EndpointSlice change
//!   to the traffic following it.
//! - **memory**, **scale** (`scale.rs`): resident memory with many Services,
//!   endpoints and certificates; the first table and one rebuild at
//!   1k–10k Ingresses.
//! - **churn** (`churn.rs`): one Ingress change a second under load and
//!   open WebSockets, beside nginx reloaded once a second.
//!
//! The binary is `SLUICE_BIN`, by default `target/release/sluice` (build it
//! first: `cargo build --release -p sluice`); build this one with
//! `--release` too for `churn` (its client and backends carry the load).
//! Traffic goes only to 127.0.0.1, to backends the bench starts; the
//! endpoints of `memory` and `scale` are 127.x.y.z addresses never sent to.

mod churn;
mod endpoints;
mod procs;
mod scale;

use std::time::Duration;

use sluice_integration::kube_api::KubeApi;
use sluice_integration::*;

const USAGE: &str = "usage: cluster-bench endpoints [--changes N] [--rate R]
       cluster-bench memory [--services N] [--endpoints E] [--certs C]
       cluster-bench scale [--points N,N,...] [--endpoints E]
       cluster-bench churn [--hosts N] [--rate R] [--websockets W] [--changes C] [--before S] [--rounds R] [--peers \"kube file nginx\"]";

/// The command line: `--name value` pairs after the case.
struct Args(Vec<String>);

impl Args {
    /// Every flag after the case is one of `known`, with a value: an
    /// unknown one (or `--help`) prints the usage rather than starting a
    /// run that takes minutes.
    fn check(&self, known: &[&str]) {
        let mut rest = self.0.iter().skip(1);
        while let Some(flag) = rest.next() {
            if flag == "--help" || flag == "-h" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            if !known.contains(&flag.as_str()) {
                eprintln!("unknown option {flag}\n{USAGE}");
                std::process::exit(2);
            }
            if rest.next().is_none() {
                eprintln!("{flag}: a value is missing\n{USAGE}");
                std::process::exit(2);
            }
        }
    }

    fn text(&self, name: &str, default: &str) -> String {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    fn num(&self, name: &str, default: usize) -> usize {
        let v = self.text(name, &default.to_string());
        v.parse().unwrap_or_else(|_| {
            eprintln!("{name}: not a number: {v}\n{USAGE}");
            std::process::exit(2)
        })
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let Some(what) = all.first().cloned() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let args = Args(all);
    args.check(match what.as_str() {
        "endpoints" => &["--changes", "--rate"],
        "memory" => &["--services", "--endpoints", "--certs"],
        "scale" => &["--points", "--endpoints"],
        "churn" => &[
            "--hosts",
            "--rate",
            "--websockets",
            "--changes",
            "--before",
            "--rounds",
            "--peers",
        ],
        "--help" | "-h" => {
            println!("{USAGE}");
            std::process::exit(0)
        }
        _ => &[],
    });
    if std::env::var_os("SLUICE_BIN").is_none() {
        let release = workspace_root().join("target/release/sluice");
        if !release.exists() {
            eprintln!(
                "{} is missing: cargo build --release -p sluice (or set SLUICE_BIN)",
                release.display()
            );
            std::process::exit(2);
        }
        std::env::set_var("SLUICE_BIN", release);
    }
    match what.as_str() {
        "endpoints" => endpoints::run(args.num("--changes", 200), args.num("--rate", 1000)).await,
        "memory" => {
            scale::memory(
                args.num("--services", 1000),
                args.num("--endpoints", 10),
                args.num("--certs", 1000),
            )
            .await
        }
        "scale" => {
            let points: Vec<usize> = args
                .text("--points", "1000,2000,5000,10000")
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse()
                        .expect("--points: numbers, comma-separated")
                })
                .collect();
            scale::scale(&points, args.num("--endpoints", 10)).await
        }
        "churn" => {
            churn::run(churn::Options {
                hosts: args.num("--hosts", 1000),
                rate: args.num("--rate", 5000),
                websockets: args.num("--websockets", 200),
                changes: args.num("--changes", 60),
                before: Duration::from_secs(args.num("--before", 60) as u64),
                rounds: args.num("--rounds", 6),
                peers: args
                    .text("--peers", "kube file nginx")
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
            })
            .await
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

/// Sluice watching `api`, with the debounce at its default.
async fn watching(api: &KubeApi, extra: &[&str]) -> Sluice {
    let kc = api.kubeconfig().display().to_string();
    let mut args = vec!["--kube", "--kubeconfig", &kc];
    args.extend_from_slice(extra);
    Sluice::serve(&args).await
}

/// The `q`th percentile of sorted durations.
fn percentile(sorted: &[Duration], q: usize) -> Duration {
    sorted
        .get((sorted.len() * q / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// Milliseconds, one decimal.
fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
