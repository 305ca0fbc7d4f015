//! Puts the cases the suite recorded (`target/reliability/*.json`, see
//! `sluice_integration::report`) together as a Markdown report, beside what
//! nginx and HAProxy promise for the same case.
//!
//! `reliability-report [DIR] [OUT]`: DIR defaults to the record directory,
//! OUT to `DIR/RELIABILITY.md`. `docs/RELIABILITY.md` is a copy from a real
//! run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use sluice_integration::report::{dir, Case};

/// The sections, in the report's order.
const SECTIONS: &[(&str, &str)] = &[
    ("limits", "Limits"),
    ("http2", "HTTP/2 abuse"),
    ("slow", "Slow clients at scale"),
    ("faults", "Faults under load"),
    ("soak", "Soak"),
];

/// What the peers promise for a case: (nginx, HAProxy).
fn peers(id: &str) -> Option<(&'static str, &'static str)> {
    Some(match id {
        "max-connections" => (
            "`worker_connections` (512 per worker by default); past it new connections are refused and logged",
            "`maxconn`: past it new connections wait in the kernel's backlog",
        ),
        "uri-too-long" => (
            "414 past `large_client_header_buffers` (4 × 8k)",
            "the request line must fit in `tune.bufsize` (16k) less `tune.maxrewrite`; else 414/400",
        ),
        "overload" => (
            "no global guard; `limit_conn`/`limit_req` per key (503 by default)",
            "`maxconn` per server and a queue bounded by `timeout queue` (503 when it expires)",
        ),
        "h2-rapid-reset" => (
            "since 1.25.3 new streams per event-loop pass are limited; `http2_max_concurrent_streams` 128",
            "says it was not affected: streams are bounded per connection (`tune.h2.fe.max-concurrent-streams`, 100 by default)",
        ),
        "h2-continuation-flood" => (
            "the header block must fit in `large_client_header_buffers`",
            "the header block must fit in one buffer (`tune.bufsize`, 16k)",
        ),
        "h2-ping-flood" | "h2-settings-flood" => (
            "control frames are answered from a bounded queue; a client that reads nothing is closed by `send_timeout` (60s)",
            "a client that reads nothing is closed by `timeout client`",
        ),
        "h2-zero-window" => (
            "`send_timeout` (60s) per stream: \"client timed out while sending to client\", the upstream freed (62 s measured)",
            "`timeout client` on the connection",
        ),
        "h2-idle-streams" => (
            "`http2_max_concurrent_streams` 128; an idle request body is ended by `client_body_timeout` (60s, 408)",
            "`tune.h2.fe.max-concurrent-streams` 100; `timeout client`/`timeout http-request`",
        ),
        "slowloris" => (
            "`client_header_timeout` (60s, then 408 unsent and closed)",
            "`timeout http-request` (the whole head must arrive in time)",
        ),
        "slow-readers" => (
            "`send_timeout` (60s between two writes)",
            "`timeout client`",
        ),
        "headers-too-large" => (
            "400 or 494 past `large_client_header_buffers` (4 × 8k; one header line at most 8k)",
            "400 past `tune.bufsize` less `tune.maxrewrite` (about 15k), or past `tune.http.maxhdr` (101) fields",
        ),
        "rollout-kills" => (
            "`proxy_next_upstream error timeout` (default): an idempotent request whose server failed before answering goes to the next one; `max_fails`/`fail_timeout` take it out",
            "`retries 3` on connection failures by default, `option redispatch` to another server; `retry-on empty-response` (opt-in) for one that closes without answering; health checks take it out",
        ),
        "api-outage" => (
            "ingress-nginx keeps its last nginx.conf; client-go's watches retry with a backoff",
            "(no Kubernetes discovery of its own; the HAProxy Ingress controller keeps its last config)",
        ),
        "reloads-and-ingress-changes" => (
            "`nginx -s reload` starts new workers; old ones finish their requests (long connections are cut at `worker_shutdown_timeout`); ingress-nginx reloads on most Ingress changes",
            "hitless reload: the new process takes the listening sockets (`-x`/`expose-fd listeners`), the old one finishes its connections",
        ),
        "sigterm-websockets" => (
            "SIGQUIT: graceful shutdown, open connections finished (WebSockets until `worker_shutdown_timeout`)",
            "SIGUSR1 (soft stop): listeners closed, connections finished, `hard-stop-after` bounds it",
        ),
        "soak" => (
            "(no published soak figures; memory is fixed pools per worker)",
            "(no published soak figures; memory is bounded by `maxconn` × buffers)",
        ),
        _ => return None,
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let from = args.next().map_or_else(dir, PathBuf::from);
    let out = args
        .next()
        .map_or_else(|| from.join("RELIABILITY.md"), PathBuf::from);
    let mut cases: BTreeMap<(String, String), Vec<Case>> = BTreeMap::new();
    let entries = match std::fs::read_dir(&from) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("reliability-report: {}: {e}", from.display());
            std::process::exit(1);
        }
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Case>(&b).map_err(|e| e.to_string()))
        {
            Ok(c) => cases
                .entry((c.section.clone(), c.id.clone()))
                .or_default()
                .push(c),
            Err(e) => eprintln!("reliability-report: skipped {}: {e}", path.display()),
        }
    }
    let text = render(&cases);
    if let Err(e) = std::fs::write(&out, text) {
        eprintln!("reliability-report: {}: {e}", out.display());
        std::process::exit(1);
    }
    println!(
        "reliability report: {} cases, {}",
        cases.len(),
        out.display()
    );
}

fn render(cases: &BTreeMap<(String, String), Vec<Case>>) -> String {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Reliability under attack and overload\n\n\
         Written by the test suite (`scripts/test.sh` runs `reliability-report` over what the tests \
         recorded); this copy is from a real run at commit `{commit}` on a {cores}-core machine. \
         Every case ran against a real `sluice` process (a debug build: memory figures are higher \
         than a release build's) on 127.0.0.1, with real backends and, where it says so, a \
         well-behaved client served alongside the attack. Each case's test asserts what this \
         report states; the figures are measurements, not assertions.\n"
    );
    for (key, title) in SECTIONS {
        let in_section: Vec<&Vec<Case>> = cases
            .iter()
            .filter(|((section, _), _)| section == key)
            .map(|(_, v)| v)
            .collect();
        if in_section.is_empty() {
            continue;
        }
        let _ = writeln!(s, "## {title}\n");
        for runs in in_section {
            let Some(c) = runs
                .iter()
                .find(|c| c.mode == "fast")
                .or_else(|| runs.first())
            else {
                continue;
            };
            let _ = writeln!(s, "### {} (`{}`)\n", c.title, c.id);
            let _ = writeln!(s, "- **Tried:** {}", c.tried);
            let mut result = c.outcome.clone();
            if c.requests > 0 {
                let _ = write!(
                    result,
                    "; good requests: {} sent, {} failed",
                    c.requests, c.failed
                );
            }
            if let Some(ms) = c.recovery_ms {
                let _ = write!(result, "; recovery {:.1} s", ms as f64 / 1000.0);
            }
            if let Some(kib) = c.peak_rss_kib {
                let _ = write!(result, "; peak RSS {:.0} MiB", kib as f64 / 1024.0);
            }
            let _ = writeln!(s, "- **Result:** {result}");
            if let Some(other) = runs.iter().find(|o| o.mode != c.mode) {
                let _ = writeln!(
                    s,
                    "- **With the fast path off** (the suite's second pass): {}",
                    other.outcome
                );
            }
            if let Some((nginx, haproxy)) = peers(&c.id) {
                let _ = writeln!(s, "- **nginx:** {nginx}\n- **HAProxy:** {haproxy}");
            }
            s.push('\n');
        }
    }
    s
}
