//! The `sluice` command: serve, check a config, or run the demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sluice::balance::Strategy;
use sluice::config;
use sluice::exit::Exit;

/// A fast ingress proxy for Kubernetes.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version = sluice::build::LONG_VERSION,
    about,
    after_help = sluice::exit::HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
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

#[derive(Debug, Args)]
struct ServeArgs {
    /// YAML config file (reloaded on change and on SIGHUP).
    #[arg(long, conflicts_with_all = ["backend", "strategy"])]
    config: Option<PathBuf>,
    /// Address to accept traffic on (repeatable); overrides the file's `listen`.
    #[arg(long)]
    listen: Vec<SocketAddr>,
    /// Address to accept HTTPS on (repeatable); overrides the file's
    /// `listen_tls`.
    #[arg(long)]
    listen_tls: Vec<SocketAddr>,
    /// A PEM certificate chain for HTTPS (repeatable, each with its
    /// --tls-key); SNI picks it by the names it holds. Without any, a
    /// self-signed certificate answers.
    #[arg(
        long,
        value_name = "PEM",
        requires = "listen_tls",
        conflicts_with = "config"
    )]
    tls_cert: Vec<PathBuf>,
    /// The PEM private key of the --tls-cert in the same position.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Vec<PathBuf>,
    /// Address of the admin listener; overrides the file's `admin`.
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// A backend as IP:PORT or HOST:PORT, with =WEIGHT optional
    /// (repeatable): one catch-all route.
    #[arg(long, value_name = "ADDR[=WEIGHT]")]
    backend: Vec<config::Backend>,
    /// How the catch-all route balances.
    #[arg(long, value_enum)]
    strategy: Option<Strategy>,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = workers)]
    workers: Option<usize>,
    /// After SIGTERM, keep serving this long with /readyz at 503 before
    /// closing the listeners (e.g. 5s behind a cloud LoadBalancer).
    #[arg(long, value_parser = humantime::parse_duration)]
    shutdown_delay: Option<std::time::Duration>,
    /// Client connections open at once on all traffic listeners (overrides
    /// the file's `limits.max_connections`; 0: no limit; default 10000).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Requests in flight past which new ones get 503 with Retry-After
    /// (overrides the file's `limits.max_in_flight`; 0: no guard; default
    /// 20000).
    #[arg(long, value_name = "N")]
    max_in_flight: Option<usize>,
    /// Resident memory past which new requests get 503 with Retry-After
    /// (overrides the file's `limits.max_memory`: a size like 512m, `auto`
    /// for 90 % of the container's limit, the default, or 0 for no guard).
    #[arg(long, value_name = "SIZE", value_parser = config::parse_max_memory)]
    max_memory: Option<sluice::memory::MaxMemory>,
    /// The longest request target taken, past which 414 (overrides the
    /// file's `limits.max_uri`; 0: no limit; default 8k).
    #[arg(long, value_name = "SIZE", value_parser = config::parse_max_uri)]
    max_uri: Option<usize>,
    /// The largest request head or HTTP/2 header list, past which 431
    /// (overrides the file's `limits.max_header_size`; default 32k).
    #[arg(long, value_name = "SIZE", value_parser = config::parse_max_header_size)]
    max_header_size: Option<usize>,
    /// The most header fields in a request, past which 431 (overrides the
    /// file's `limits.max_headers`; default 100).
    #[arg(long, value_name = "N", value_parser = config::parse_max_headers)]
    max_headers: Option<usize>,
    /// HTTP/2 streams a client may have open at once (overrides the
    /// file's `limits.http2_max_concurrent_streams`; default 128).
    #[arg(long, value_name = "N", value_parser = config::parse_http2_streams)]
    http2_max_concurrent_streams: Option<u32>,
    /// The HTTP/2 flow-control windows offered to clients, per stream and
    /// per connection (override `limits.http2_stream_window` and
    /// `limits.http2_connection_window`; default 1m each).
    #[arg(long, value_name = "SIZE", value_parser = config::parse_http2_window)]
    http2_stream_window: Option<u32>,
    #[arg(long, value_name = "SIZE", value_parser = config::parse_http2_window)]
    http2_connection_window: Option<u32>,
    /// Requests and latency per endpoint too, in
    /// sluice_endpoint_requests_total and sluice_endpoint_response_seconds
    /// (a series per pod; overrides the file's `endpoint_metrics`).
    #[arg(long)]
    endpoint_metrics: bool,
    /// Serve every request through hyper, turning off the lean HTTP/1.1
    /// fast path (overrides the file's `http1_fast_path`).
    #[arg(long)]
    no_fast_path: bool,
    /// The access log on stdout: off, text or json (overrides the file's
    /// `access_log`; default text).
    #[arg(long, value_enum)]
    access_log: Option<sluice::access_log::Format>,
    /// Read a PROXY protocol header (v1 or v2, as a cloud LoadBalancer
    /// sends) first on every client connection.
    #[arg(long)]
    proxy_protocol: bool,
    /// Accept PROXY headers only from this network (repeatable; implies
    /// --proxy-protocol); connections from elsewhere are closed.
    #[arg(long, value_name = "CIDR", value_parser = sluice::config::parse_cidr)]
    proxy_protocol_from: Vec<ipnet::IpNet>,
    /// Take the client's address from X-Forwarded-For when the connection
    /// comes from this network (repeatable): a LoadBalancer that sets it.
    #[arg(long, value_name = "CIDR", value_parser = sluice::config::parse_cidr)]
    trust_forwarded_for: Vec<ipnet::IpNet>,
    #[command(flatten)]
    kube: KubeArgs,
}

/// Kubernetes discovery: an ingress controller.
#[derive(Debug, Args)]
struct KubeArgs {
    /// Discover routes from Ingresses, Services and EndpointSlices (in-cluster
    /// config, or --kubeconfig, or KUBECONFIG). Routes from --config or
    /// --backend are served too, and win a duplicate host and path.
    #[arg(long)]
    kube: bool,
    /// A kubeconfig file to reach the API server with.
    #[arg(long, requires = "kube")]
    kubeconfig: Option<PathBuf>,
    /// The IngressClass served (its spec.controller must be
    /// sluice.dev/ingress-controller when the IngressClass exists).
    #[arg(long, default_value = "sluice", requires = "kube")]
    ingress_class: String,
    /// Also serve Ingresses that name no class.
    #[arg(long, requires = "kube")]
    watch_ingress_without_class: bool,
    /// Watch one namespace only (default: all).
    #[arg(long, requires = "kube")]
    namespace: Option<String>,
    /// NAMESPACE/NAME of the Service whose LoadBalancer address Ingresses
    /// report in their status.
    #[arg(long, value_name = "NAMESPACE/NAME", requires = "kube", value_parser = namespaced_name)]
    publish_service: Option<String>,
    /// How long the status Lease is held without renewal before another
    /// replica may take it.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration, requires = "publish_service")]
    status_lease_duration: std::time::Duration,
    /// NAMESPACE/NAME of a kubernetes.io/tls Secret whose certificate
    /// answers names no other certificate holds (instead of a self-signed
    /// one; ingress-nginx's --default-ssl-certificate).
    #[arg(long, value_name = "NAMESPACE/NAME", requires = "kube", value_parser = namespaced_name)]
    default_tls_secret: Option<String>,
    /// How long to gather cluster events before rebuilding the routes.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration, requires = "kube")]
    kube_debounce: std::time::Duration,
}

/// A flag's value that clap's own parsers do not refuse.
#[derive(Debug, thiserror::Error)]
enum FlagError {
    #[error("must be 1 or more (leave it out for one per core)")]
    NoWorkers,
    #[error("{0:?} is not a number of threads")]
    NotThreads(String, #[source] std::num::ParseIntError),
    #[error("{0:?} is not NAMESPACE/NAME")]
    NotNamespacedName(String),
}

/// `--workers N`: at least one.
fn workers(s: &str) -> Result<usize, FlagError> {
    match s.parse::<usize>() {
        Ok(0) => Err(FlagError::NoWorkers),
        Ok(n) => Ok(n),
        Err(e) => Err(FlagError::NotThreads(s.to_owned(), e)),
    }
}

/// `namespace/name`, both parts present.
fn namespaced_name(s: &str) -> Result<String, FlagError> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(s.to_owned())
        }
        _ => Err(FlagError::NotNamespacedName(s.to_owned())),
    }
}

/// Why `sluice serve` or `sluice demo` stopped, each with its exit code
/// ([`Exit`]): the command line's own refusals, a config refused, or the
/// proxy's [`sluice::Error`].
#[derive(Debug, thiserror::Error)]
enum CliError {
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
fn report(result: Result<(), CliError>) -> ExitCode {
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

fn runtime(workers: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, output } => check(&config, output),
        Command::Version => {
            println!("sluice {}", sluice::build::VERSION);
            println!("commit:   {}", sluice::build::COMMIT);
            println!("compiler: {}", sluice::build::RUSTC);
            println!("features: {}", sluice::build::FEATURES.join(", "));
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "sluice", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            use clap::CommandFactory;
            report(
                clap_mangen::Man::new(Cli::command())
                    .render(&mut std::io::stdout())
                    .map_err(CliError::Man),
            )
        }
        Command::Serve(args) => {
            init_logs(cli.log_format);
            report(serve(*args))
        }
        Command::Demo {
            listen,
            admin,
            backend_port,
        } => {
            init_logs(cli.log_format);
            report(demo(listen, admin, backend_port))
        }
    }
}

/// What `sluice check --output json` prints.
#[derive(serde::Serialize)]
struct CheckReport {
    file: String,
    ok: bool,
    errors: Vec<config::FieldError>,
    warnings: Vec<config::FieldError>,
    routes: usize,
    default_backend: bool,
}

/// `sluice check`: every problem of the file, the certificates it names
/// read and checked too.
fn check(path: &std::path::Path, output: Output) -> ExitCode {
    let mut report = CheckReport {
        file: path.display().to_string(),
        ok: false,
        errors: Vec::new(),
        warnings: Vec::new(),
        routes: 0,
        default_backend: false,
    };
    match config::load_file(path) {
        Ok(c) => {
            report.warnings = c.warnings.clone();
            report.routes = c.routes.len();
            report.default_backend = c.default_backend.is_some();
            for (field, files) in c
                .tls
                .certificates
                .iter()
                .enumerate()
                .map(|(i, f)| (format!("tls.certificates[{i}]"), f))
                .chain(
                    c.tls
                        .default_certificate
                        .iter()
                        .map(|f| ("tls.default_certificate".to_owned(), f)),
                )
            {
                if let Err(e) = files.read().and_then(|b| files.parse(&b)) {
                    report.errors.push(config::FieldError {
                        field,
                        message: e.to_string(),
                        line: None,
                        column: None,
                    });
                }
            }
        }
        Err(e) => report.errors = e.problems(),
    }
    report.ok = report.errors.is_empty();
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Output::Text => {
            let at = |p: &config::FieldError| match (p.line, p.column) {
                (Some(l), Some(c)) => format!("{}:{l}:{c}", report.file),
                (Some(l), None) => format!("{}:{l}", report.file),
                _ => report.file.clone(),
            };
            let what = |p: &config::FieldError| {
                if p.field.is_empty() {
                    p.message.clone()
                } else {
                    format!("{}: {}", p.field, p.message)
                }
            };
            for w in &report.warnings {
                println!("{}: warning: {}", at(w), what(w));
            }
            for e in &report.errors {
                eprintln!("{}: {}", at(e), what(e));
            }
            if report.ok {
                println!(
                    "{}: ok ({}{})",
                    report.file,
                    config::count(report.routes, "route"),
                    if report.default_backend {
                        " and a default backend"
                    } else {
                        ""
                    }
                );
            } else {
                eprintln!(
                    "{}: {}",
                    report.file,
                    config::count(report.errors.len(), "error")
                );
            }
        }
    }
    if report.ok {
        Exit::Ok.into()
    } else {
        Exit::Config.into()
    }
}

fn serve(args: ServeArgs) -> Result<(), CliError> {
    let (mut cfg, file) = match &args.config {
        Some(path) => {
            // Parsed from these bytes, which the reloader then compares
            // with: an edit made while the proxy starts is not missed.
            let bytes = std::fs::read(path).map_err(|source| {
                CliError::Config(config::ConfigError::Read {
                    path: path.clone(),
                    source,
                })
            })?;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let c =
                config::parse_file_text(&text, path).map_err(|source| CliError::ConfigFile {
                    path: path.clone(),
                    source,
                })?;
            (
                c,
                Some(sluice::app::ConfigFile {
                    path: path.clone(),
                    bytes,
                }),
            )
        }
        None if args.backend.is_empty() && args.kube.kube => (
            config::discovery_only(args.listen.clone(), args.admin),
            None,
        ),
        None if args.backend.is_empty() => return Err(CliError::NothingToServe),
        None => (
            config::quick(
                args.listen.clone(),
                args.admin,
                &args.backend,
                args.strategy.unwrap_or_default(),
            )
            .map_err(CliError::Config)?,
            None,
        ),
    };
    if args.tls_cert.len() != args.tls_key.len() {
        return Err(CliError::CertWithoutKey {
            certs: args.tls_cert.len(),
            keys: args.tls_key.len(),
        });
    }
    if let (Some(ns), Some(secret)) = (&args.kube.namespace, &args.kube.default_tls_secret) {
        if secret.split_once('/').map(|(n, _)| n) != Some(ns.as_str()) {
            return Err(CliError::SecretOutsideNamespace {
                secret: secret.clone(),
                namespace: ns.clone(),
            });
        }
    }
    if let (Some(ns), Some(svc)) = (&args.kube.namespace, &args.kube.publish_service) {
        if svc.split_once('/').map(|(n, _)| n) != Some(ns.as_str()) {
            return Err(CliError::ServiceOutsideNamespace {
                service: svc.clone(),
                namespace: ns.clone(),
            });
        }
    }
    let overrides = overrides(&args);
    overrides.apply(&mut cfg);
    if let Some(admin) = cfg.admin {
        if let Some(&traffic) = cfg
            .listen
            .iter()
            .chain(&cfg.listen_tls)
            .find(|l| config::overlap(admin, **l))
        {
            return Err(CliError::AdminOverlaps { admin, traffic });
        }
    }
    if let Some((&http, &https)) = cfg.listen.iter().find_map(|l| {
        cfg.listen_tls
            .iter()
            .find(|t| config::overlap(*l, **t))
            .map(|t| (l, t))
    }) {
        return Err(CliError::ListenersOverlap { http, https });
    }
    let rt = runtime(args.workers).map_err(CliError::Runtime)?;
    let status = match &args.kube.publish_service {
        Some(s) => Some(sluice::discovery::status::StatusOptions::parse(
            s,
            &args.kube.ingress_class,
            args.kube.status_lease_duration,
        )?),
        None => None,
    };
    let kube = args.kube.kube.then(|| sluice::discovery::Options {
        kubeconfig: args.kube.kubeconfig.clone(),
        namespace: args.kube.namespace.clone(),
        settings: sluice::discovery::TranslateSettings {
            class: args.kube.ingress_class.clone(),
            watch_without_class: args.kube.watch_ingress_without_class,
            defaults: cfg.defaults,
        },
        debounce: args.kube.kube_debounce,
        status,
        default_tls_secret: args.kube.default_tls_secret.clone(),
    });
    rt.block_on(sluice::app::run(cfg, file, kube, overrides))?;
    Ok(())
}

/// What the command line sets over the config file: applied at start and to
/// every reload of the file, so that a reload neither drops them nor warns
/// that they differ.
fn overrides(args: &ServeArgs) -> config::Overrides {
    let nonempty = |v: &Vec<SocketAddr>| (!v.is_empty()).then(|| v.clone());
    config::Overrides {
        listen: nonempty(&args.listen),
        listen_tls: nonempty(&args.listen_tls),
        certificates: args
            .tls_cert
            .iter()
            .zip(&args.tls_key)
            .map(|(cert, key)| sluice::tls::CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            })
            .collect(),
        admin: args.admin,
        http1_fast_path: args.no_fast_path.then_some(false),
        access_log: args.access_log,
        endpoint_metrics: args.endpoint_metrics.then_some(true),
        max_connections: args.max_connections,
        max_in_flight: args.max_in_flight,
        max_memory: args.max_memory,
        max_uri: args.max_uri,
        max_header_size: args.max_header_size,
        max_headers: args.max_headers,
        http2_max_concurrent_streams: args.http2_max_concurrent_streams,
        http2_stream_window: args.http2_stream_window,
        http2_connection_window: args.http2_connection_window,
        trust_forwarded_for: (!args.trust_forwarded_for.is_empty())
            .then(|| args.trust_forwarded_for.clone()),
        proxy_protocol: (args.proxy_protocol || !args.proxy_protocol_from.is_empty())
            .then(|| args.proxy_protocol_from.clone()),
        shutdown_delay: args.shutdown_delay,
        default_listen: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
    }
}

fn demo(listen: SocketAddr, admin: SocketAddr, base_port: u16) -> Result<(), CliError> {
    let rt = runtime(None).map_err(CliError::Runtime)?;
    rt.block_on(async {
        for (name, addr, _) in sluice::demo::backends(base_port) {
            sluice::demo::start_backend(name, addr).await?;
        }
        let cfg = sluice::demo::config(listen, admin, base_port);
        // Printed once the proxy is bound, so every command works at once.
        let banner = sluice::demo::instructions(listen, admin, base_port);
        tokio::spawn(async move {
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(listen).await.is_ok() {
                    println!("{banner}");
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        sluice::app::run(cfg, None, None, config::Overrides::default()).await
    })?;
    Ok(())
}
