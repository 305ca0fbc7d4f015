//! The reliability report (issue 11): each attack, overload and fault test
//! records what it tried and what came of it, one JSON file per case under
//! `target/reliability/`. `reliability-report` (a binary of this crate,
//! run by `scripts/test.sh`) puts them together, beside what nginx and
//! HAProxy promise for the same case, as `target/reliability/RELIABILITY.md`;
//! a copy from a real run is checked in as `docs/RELIABILITY.md`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One case as a test saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Case {
    /// A stable key, which the report's table of peers' promises uses.
    pub id: String,
    /// The report's section: `limits`, `http2`, `slow`, `faults`, `soak`.
    pub section: String,
    pub title: String,
    /// What was done, with its numbers.
    pub tried: String,
    /// Attacks made: connections, streams or frames, as `tried` says.
    pub attacks: u64,
    /// Good requests sent alongside, and how many of them failed.
    pub requests: u64,
    pub failed: u64,
    /// How long until the attack was cut off or the fault recovered from.
    pub recovery_ms: Option<u64>,
    /// The proxy's peak resident memory during the case (a debug build).
    pub peak_rss_kib: Option<u64>,
    /// What came of it, in a sentence.
    pub outcome: String,
    /// `fast` (HTTP/1.1 fast path on) or `hyper` (the suite's second pass).
    pub mode: String,
}

impl Case {
    pub fn new(id: &str, section: &str, title: &str) -> Case {
        Case {
            id: id.to_owned(),
            section: section.to_owned(),
            title: title.to_owned(),
            tried: String::new(),
            attacks: 0,
            requests: 0,
            failed: 0,
            recovery_ms: None,
            peak_rss_kib: None,
            outcome: String::new(),
            mode: if crate::hyper_only() { "hyper" } else { "fast" }.to_owned(),
        }
    }

    pub fn tried(mut self, s: impl Into<String>) -> Self {
        self.tried = s.into();
        self
    }

    pub fn attacks(mut self, n: u64) -> Self {
        self.attacks = n;
        self
    }

    pub fn requests(mut self, sent: u64, failed: u64) -> Self {
        self.requests = sent;
        self.failed = failed;
        self
    }

    pub fn recovery(mut self, d: Duration) -> Self {
        self.recovery_ms = Some(d.as_millis() as u64);
        self
    }

    pub fn peak_rss_kib(mut self, kib: u64) -> Self {
        self.peak_rss_kib = Some(kib);
        self
    }

    pub fn outcome(mut self, s: impl Into<String>) -> Self {
        self.outcome = s.into();
        self
    }

    /// Writes the case where the report finds it. A failure to write is
    /// reported, not fatal: the test's own assertions are what count.
    pub fn record(&self) {
        let dir = dir();
        let file = dir.join(format!("{}.{}.json", self.id, self.mode));
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::write(&file, serde_json::to_vec_pretty(self).unwrap_or_default())
        });
        if let Err(e) = written {
            eprintln!("could not record {}: {e}", file.display());
        }
        eprintln!("report: {} ({}): {}", self.id, self.mode, self.outcome);
    }
}

/// Where cases are recorded: `$SLUICE_REPORT_DIR`, or
/// `target/reliability` in the workspace.
pub fn dir() -> PathBuf {
    std::env::var_os("SLUICE_REPORT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target").join("reliability"))
}
