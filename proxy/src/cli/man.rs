//! `sluice man`: the man page (roff) on stdout, made from the same clap
//! definition as the parser and the help.

use clap::CommandFactory;

use super::args::Cli;
use super::error::CliError;

/// Writes the man page.
pub fn man() -> Result<(), CliError> {
    clap_mangen::Man::new(Cli::command())
        .render(&mut std::io::stdout())
        .map_err(CliError::Man)
}
