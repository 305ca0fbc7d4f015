//! The commands of the `sluice` binary, one module each, and the command
//! line they are parsed from. Part of the binary, not of the library:
//! they turn flags into calls of the library and its errors into exit
//! codes.
//!
//! - `args`: the command, its global flags and its subcommands;
//!   `serve_args`: the flags of `serve`;
//! - `serve`, `check`, `migrate`, `demo`, `version`, `completions`,
//!   `man`: the commands;
//! - `error`: why a command stopped, and its exit code;
//! - `runtime`: the async runtime `serve` and `demo` run on.

pub mod args;
pub mod check;
pub mod completions;
pub mod demo;
pub mod error;
pub mod man;
pub mod migrate;
mod runtime;
pub mod serve;
mod serve_args;
pub mod version;

pub use error::report;
