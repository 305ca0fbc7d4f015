//! `sluice version`: the version, the git commit it was built from, the
//! compiler, and what is built in, for bug reports.

use std::process::ExitCode;

/// Prints the build's facts, one a line.
pub fn version() -> ExitCode {
    println!("sluice {}", sluice::build::VERSION);
    println!("commit:   {}", sluice::build::COMMIT);
    println!("compiler: {}", sluice::build::RUSTC);
    println!("features: {}", sluice::build::FEATURES.join(", "));
    ExitCode::SUCCESS
}
