//! The `sluice` command: serve, check a config, or run the demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sluice::balance::Strategy;
use sluice::config;

/// A fast ingress proxy for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy, from a config file or from --backend flags.
    Serve(Box<ServeArgs>),
    /// Validate a config file and print every error with its field.
    Check {
        /// The config file to check.
        #[arg(long)]
        config: PathBuf,
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
    /// A backend as IP:PORT or IP:PORT=WEIGHT (repeatable): one catch-all route.
    #[arg(long, required_unless_present_any = ["config", "kube"])]
    backend: Vec<String>,
    /// How the catch-all route balances.
    #[arg(long, value_enum)]
    strategy: Option<Strategy>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// After SIGTERM, keep serving this long with /readyz at 503 before
    /// closing the listeners (e.g. 5s behind a cloud LoadBalancer).
    #[arg(long, value_parser = humantime::parse_duration)]
    shutdown_delay: Option<std::time::Duration>,
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
    #[arg(long, requires = "kube")]
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

/// `namespace/name`, both parts present.
fn namespaced_name(s: &str) -> Result<String, String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(s.to_owned())
        }
        _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
    }
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
        Command::Check { config } => match config::load_file(&config) {
            Ok(c) => {
                for w in &c.warnings {
                    println!("{}: warning: {w}", config.display());
                }
                let mut bad = false;
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
                        eprintln!("{}: {field}: {e}", config.display());
                        bad = true;
                    }
                }
                if bad {
                    return ExitCode::FAILURE;
                }
                println!(
                    "{}: ok ({} route{}{})",
                    config.display(),
                    c.routes.len(),
                    if c.routes.len() == 1 { "" } else { "s" },
                    if c.default_backend.is_some() {
                        " and a default backend"
                    } else {
                        ""
                    }
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                for line in e.lines() {
                    eprintln!("{}: {line}", config.display());
                }
                ExitCode::FAILURE
            }
        },
        Command::Serve(args) => {
            init_logs(cli.log_format);
            serve(*args)
        }
        Command::Demo {
            listen,
            admin,
            backend_port,
        } => {
            init_logs(cli.log_format);
            demo(listen, admin, backend_port)
        }
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("sluice: {e}");
    ExitCode::FAILURE
}

fn serve(args: ServeArgs) -> ExitCode {
    let (mut cfg, file) = match &args.config {
        Some(path) => {
            // Parsed from these bytes, which the reloader then compares
            // with: an edit made while the proxy starts is not missed.
            let bytes = match std::fs::read(path) {
                Ok(b) => b,
                Err(source) => {
                    return fail(config::ConfigError::Read {
                        path: path.clone(),
                        source,
                    })
                }
            };
            let text = String::from_utf8_lossy(&bytes).into_owned();
            match config::parse_file_text(&text, path) {
                Ok(c) => (
                    c,
                    Some(sluice::app::ConfigFile {
                        path: path.clone(),
                        bytes,
                    }),
                ),
                Err(e) => {
                    for line in e.lines() {
                        eprintln!("sluice: {}: {line}", path.display());
                    }
                    return ExitCode::FAILURE;
                }
            }
        }
        None if args.backend.is_empty() && args.kube.kube => (
            config::discovery_only(args.listen.clone(), args.admin),
            None,
        ),
        None => match config::quick(
            args.listen.clone(),
            args.admin,
            &args.backend,
            args.strategy.unwrap_or_default(),
        ) {
            Ok(c) => (c, None),
            Err(e) => return fail(e),
        },
    };
    if args.tls_cert.len() != args.tls_key.len() {
        return fail(format!(
            "{} --tls-cert but {} --tls-key: give each certificate its key",
            args.tls_cert.len(),
            args.tls_key.len()
        ));
    }
    if let (Some(ns), Some(secret)) = (&args.kube.namespace, &args.kube.default_tls_secret) {
        if secret.split_once('/').map(|(n, _)| n) != Some(ns.as_str()) {
            return fail(format!(
                "--default-tls-secret {secret} is outside --namespace {ns}, whose Secrets alone are watched"
            ));
        }
    }
    if let (Some(ns), Some(svc)) = (&args.kube.namespace, &args.kube.publish_service) {
        if svc.split_once('/').map(|(n, _)| n) != Some(ns.as_str()) {
            return fail(format!(
                "--publish-service {svc} is outside --namespace {ns}, whose Services alone are watched: \
                 its address could never be read"
            ));
        }
    }
    let args = std::sync::Arc::new(args);
    let overrides: sluice::app::Overrides = {
        let args = args.clone();
        std::sync::Arc::new(move |c: &mut config::Config| apply_overrides(&args, c))
    };
    overrides(&mut cfg);
    if cfg.admin.is_some_and(|a| cfg.listen_tls.contains(&a))
        || cfg.listen.iter().any(|l| cfg.listen_tls.contains(l))
    {
        return fail("admin, listen and listen-tls addresses must all differ");
    }
    let rt = match runtime(args.workers) {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let status = match &args.kube.publish_service {
        Some(s) => match sluice::discovery::status::StatusOptions::parse(
            s,
            &args.kube.ingress_class,
            args.kube.status_lease_duration,
        ) {
            Ok(o) => Some(o),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let kube = args.kube.kube.then(|| sluice::discovery::Options {
        kubeconfig: args.kube.kubeconfig.clone(),
        namespace: args.kube.namespace.clone(),
        settings: sluice::discovery::Settings {
            class: args.kube.ingress_class.clone(),
            watch_without_class: args.kube.watch_ingress_without_class,
            defaults: cfg.defaults,
        },
        debounce: args.kube.kube_debounce,
        status,
        default_tls_secret: args.kube.default_tls_secret.clone(),
    });
    match rt.block_on(sluice::app::run(cfg, file, kube, overrides)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// What the command line sets over the config file: applied at start and to
/// every reload of the file, so that a reload neither drops them nor warns
/// that they differ.
fn apply_overrides(args: &ServeArgs, cfg: &mut config::Config) {
    if !args.listen.is_empty() {
        cfg.listen = args.listen.clone();
    }
    if !args.listen_tls.is_empty() {
        cfg.listen_tls = args.listen_tls.clone();
    }
    cfg.tls
        .certificates
        .extend(args.tls_cert.iter().zip(&args.tls_key).map(|(cert, key)| {
            sluice::tls::CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            }
        }));
    if args.admin.is_some() {
        cfg.admin = args.admin;
    }
    if args.no_fast_path {
        cfg.listener.http1_fast_path = false;
    }
    if let Some(f) = args.access_log {
        cfg.access_log = f;
    }
    if !args.trust_forwarded_for.is_empty() {
        cfg.listener.trust_forwarded_for = Some(std::sync::Arc::new(
            sluice::proxy_protocol::Trusted(args.trust_forwarded_for.clone()),
        ));
    }
    if args.proxy_protocol || !args.proxy_protocol_from.is_empty() {
        cfg.listener.proxy_protocol = Some(std::sync::Arc::new(sluice::proxy_protocol::Trusted(
            args.proxy_protocol_from.clone(),
        )));
    }
    if let Some(d) = args.shutdown_delay {
        cfg.shutdown_delay = d;
    }
    if cfg.listen.is_empty() {
        cfg.listen.push(SocketAddr::from(([0, 0, 0, 0], 8080)));
    }
}

fn demo(listen: SocketAddr, admin: SocketAddr, base_port: u16) -> ExitCode {
    let rt = match runtime(None) {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let result = rt.block_on(async {
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
        sluice::app::run(cfg, None, None, std::sync::Arc::new(|_| {})).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}
