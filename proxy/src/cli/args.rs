//! The command line: the `sluice` command, its global flags and its
//! subcommands, with clap's derive (each `///` comment is the help text).
//! `sluice serve`'s many flags are in `serve_args`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use super::serve_args::ServeArgs;

/// A fast ingress proxy for Kubernetes.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version = sluice::build::LONG_VERSION,
    about,
    after_help = sluice::exit::HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// How `sluice check` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// How the log lines of `serve` and `demo` are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy, from a config file or from --backend flags.
    #[command(after_help = sluice::exit::HELP)]
    Serve(Box<ServeArgs>),
    /// Validate a config file and print every error with its field (exit
    /// code 3 on any).
    Check {
        /// The config file to check.
        #[arg(long)]
        config: PathBuf,
        /// `text` (one line per problem) or `json` (for editors and CI).
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// The version, the git commit it was built from, and what is built in.
    Version,
    /// Shell completions on stdout: `sluice completions bash > /etc/bash_completion.d/sluice`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The man page (roff) on stdout: `sluice man | man -l -`.
    Man,
    /// How the Ingresses written for ingress-nginx would be served: each
    /// annotation supported, mapped, ignored as tuning, refused or not
    /// supported, with a reason (exit code 3 when anything would serve
    /// differently).
    Migrate {
        /// Ingress manifests (YAML; several documents, or a List as
        /// `kubectl get ingress -A -o yaml` writes). Without any, the
        /// cluster's Ingresses are read.
        #[arg(long = "file", short = 'f')]
        files: Vec<PathBuf>,
        /// A kubeconfig; otherwise in-cluster settings or KUBECONFIG.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Only this namespace's Ingresses (when reading the cluster).
        #[arg(long)]
        namespace: Option<String>,
        /// NAMESPACE/NAME of ingress-nginx's controller ConfigMap: its keys
        /// are assessed too (read from the cluster, or from the first
        /// ConfigMap in the -f files when files are given).
        #[arg(long, value_name = "NAMESPACE/NAME")]
        configmap: Option<String>,
        /// `text` (a block per Ingress) or `json` (for CI).
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Print the support table of every ingress-nginx annotation (the
        /// README's), and nothing else.
        #[arg(long)]
        table: bool,
    },
    /// Three built-in backends and the proxy in front of them.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
        /// The first backend's port; the others take the next two.
        #[arg(long, default_value_t = 9001)]
        backend_port: u16,
    },
}
