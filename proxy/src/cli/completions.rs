//! `sluice completions SHELL`: shell completions on stdout, made from the
//! same clap definition as the parser, so they never miss a flag.

use std::process::ExitCode;

use clap::CommandFactory;

use super::args::Cli;

/// Writes the completions for `shell`.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    clap_complete::generate(shell, &mut Cli::command(), "sluice", &mut std::io::stdout());
    ExitCode::SUCCESS
}
