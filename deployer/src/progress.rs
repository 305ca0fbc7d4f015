//! What the user sees while `up` works: numbered steps, each a spinner
//! with a live message (pods ready n/N, seconds waited for the address)
//! that ends in a ✓ or ✗ line. On a terminal the spinner redraws in place
//! on stderr; elsewhere (CI, a pipe) only the finished lines are printed,
//! so logs stay readable.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The steps of one command.
pub struct Progress {
    total: usize,
    done: usize,
    quiet: bool,
}

impl Progress {
    /// `total` steps; `quiet` prints nothing (for `--output json`).
    pub fn new(total: usize, quiet: bool) -> Progress {
        Progress {
            total,
            done: 0,
            quiet,
        }
    }

    /// One more step than planned (one that turned out to be needed).
    pub fn add_step(&mut self) {
        self.total += 1;
    }

    /// Starts the next step.
    pub fn step(&mut self, what: impl Into<String>) -> Step {
        self.done += 1;
        let prefix = format!("[{}/{}]", self.done, self.total.max(self.done));
        let bar = if !self.quiet && std::io::stderr().is_terminal() {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{prefix} {spinner} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(100));
            b
        } else {
            ProgressBar::hidden()
        };
        let what = what.into();
        bar.set_prefix(prefix.clone());
        bar.set_message(what.clone());
        Step {
            bar,
            prefix,
            what,
            started: Instant::now(),
            quiet: self.quiet,
        }
    }
}

/// One step under way.
pub struct Step {
    bar: ProgressBar,
    prefix: String,
    what: String,
    started: Instant,
    quiet: bool,
}

impl Step {
    /// The live part of the line: `what — message`.
    pub fn set_message(&self, msg: impl AsRef<str>) {
        self.bar
            .set_message(format!("{} — {}", self.what, msg.as_ref()));
    }

    /// Ends the step with a ✓ line.
    pub fn ok(self, result: impl AsRef<str>) {
        self.finish("✓", result.as_ref());
    }

    /// Ends the step with a ✗ line.
    pub fn fail(self, result: impl AsRef<str>) {
        self.finish("✗", result.as_ref());
    }

    fn finish(self, mark: &str, result: &str) {
        self.bar.finish_and_clear();
        if self.quiet {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64();
        let timing = if secs >= 1.0 {
            format!(" ({secs:.0}s)")
        } else {
            String::new()
        };
        if result.is_empty() {
            println!("{} {mark} {}{timing}", self.prefix, self.what);
        } else {
            println!("{} {mark} {}: {result}{timing}", self.prefix, self.what);
        }
    }
}
