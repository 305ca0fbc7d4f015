//! Why a command stopped, and the exit code each reason gives: the
//! command line's own refusals, a config refused, or the proxy's error.

use std::net::SocketAddr;
use std::process::ExitCode;

use sluice::config;
use sluice::exit::Exit;

/// Why `sluice serve` or `sluice demo` stopped, each with its exit code
/// ([`Exit`]): the command line's own refusals, a config refused, or the
/// proxy's [`sluice::Error`].
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "nothing to serve: give --backend IP:PORT (repeatable), --config FILE, or --kube \
         (see `sluice serve --help`, or `sluice demo` to try it)"
    )]
    NothingToServe,
    #[error("{certs} --tls-cert but {keys} --tls-key: give each certificate its key")]
    CertWithoutKey { certs: usize, keys: usize },
    #[error(
        "--default-tls-secret {secret} is outside --namespace {namespace}, whose Secrets alone \
         are watched"
    )]
    SecretOutsideNamespace { secret: String, namespace: String },
    #[error(
        "--publish-service {service} is outside --namespace {namespace}, whose Services alone \
         are watched: its address could never be read"
    )]
    ServiceOutsideNamespace { service: String, namespace: String },
    #[error(transparent)]
    PublishService(#[from] sluice::discovery::status::NotNamespacedName),
    #[error(
        "--admin {admin} overlaps the traffic listener {traffic}: give the admin listener a port \
         of its own, so that it is never reachable where traffic is"
    )]
    AdminOverlaps {
        admin: SocketAddr,
        traffic: SocketAddr,
    },
    #[error(
        "--listen {http} and --listen-tls {https} overlap: one port cannot be both HTTP and HTTPS"
    )]
    ListenersOverlap { http: SocketAddr, https: SocketAddr },
    /// The quick form was refused, or the config file could not be read.
    #[error("{0}")]
    Config(#[source] config::ConfigError),
    /// The config file was refused: reported one line per problem, each
    /// naming the file (see [`report`]).
    #[error("{source}")]
    ConfigFile {
        path: std::path::PathBuf,
        #[source]
        source: config::ConfigError,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot write the man page: {0}")]
    Man(#[source] std::io::Error),
    #[error(transparent)]
    Run(#[from] sluice::Error),
}

impl CliError {
    fn exit(&self) -> Exit {
        match self {
            CliError::NothingToServe
            | CliError::CertWithoutKey { .. }
            | CliError::SecretOutsideNamespace { .. }
            | CliError::ServiceOutsideNamespace { .. }
            | CliError::PublishService(_)
            | CliError::AdminOverlaps { .. }
            | CliError::ListenersOverlap { .. } => Exit::Usage,
            CliError::Config(_) | CliError::ConfigFile { .. } => Exit::Config,
            CliError::Runtime(_) | CliError::Man(_) => Exit::Failure,
            CliError::Run(e) => Exit::of(e),
        }
    }
}

/// Prints why the command stopped and gives its exit code. A file's
/// problems take a line each, every line naming the file.
pub fn report(result: Result<(), CliError>) -> ExitCode {
    let e = match result {
        Ok(()) => return Exit::Ok.into(),
        Err(e) => e,
    };
    match &e {
        CliError::ConfigFile { path, source } => {
            for line in source.lines() {
                eprintln!("sluice: {}: {line}", path.display());
            }
        }
        _ => eprintln!("sluice: {e}"),
    }
    e.exit().into()
}
