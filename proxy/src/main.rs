//! The `sluice` command: serve, check a config, or run the demo.
//!
//! This file parses the command line, sets up logging for the commands
//! that run the proxy, and hands each command to its module in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, Command, LogFormat};
use cli::report;

/// Logs on stderr, as `--log-format` says, filtered by `RUST_LOG` (`info`
/// when unset).
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn main() -> ExitCode {
    let args = Cli::parse();
    match args.command {
        Command::Check { config, output } => cli::check::check(&config, output),
        Command::Version => cli::version::version(),
        Command::Completions { shell } => cli::completions::completions(shell),
        Command::Man => report(cli::man::man()),
        Command::Migrate {
            files,
            kubeconfig,
            namespace,
            configmap,
            output,
            table,
        } => cli::migrate::migrate(
            cli::migrate::Source::new(files, kubeconfig, namespace),
            configmap,
            output,
            table,
        ),
        Command::Serve(serve) => {
            init_logs(args.log_format);
            report(cli::serve::serve(*serve))
        }
        Command::Demo {
            listen,
            admin,
            backend_port,
        } => {
            init_logs(args.log_format);
            report(cli::demo::demo(listen, admin, backend_port))
        }
    }
}
