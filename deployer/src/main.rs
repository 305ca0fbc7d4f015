//! The `sluice-deploy` command.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sluice_deploy::app::{AppSpec, Strategy};
use sluice_deploy::cluster::Cluster;
use sluice_deploy::commands::{self, UpOptions};
use sluice_deploy::progress::Progress;
use sluice_deploy::proxy::ProxyOptions;
use sluice_deploy::{build, image, registry, Error, Result};

/// Ships an app and the Sluice ingress proxy onto a Kubernetes cluster.
#[derive(Debug, Parser)]
#[command(name = "sluice-deploy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The kubeconfig to use (default: KUBECONFIG, then ~/.kube/config,
    /// then the in-cluster account).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build and push (when asked), apply the app behind Sluice (installing
    /// Sluice when no controller serves class `sluice`), wait for the
    /// rollouts and print the address.
    Up(Box<UpArgs>),
    /// Set an app's replicas and wait for the rollout.
    Scale {
        /// The app's name.
        app: String,
        #[arg(long)]
        replicas: u32,
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
        /// How long to wait for the rollout.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Ready replicas, endpoints, strategy, address and proxy health.
    Status {
        /// One app; all apps deployed by sluice-deploy in the namespace
        /// when left out.
        app: Option<String>,
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Remove an app (its Ingress, Service and Deployment).
    Down {
        app: String,
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
        /// Also remove the Sluice proxy, if sluice-deploy installed it.
        #[arg(long)]
        with_proxy: bool,
    },
    /// Print the YAML `up` would apply, for review or GitOps.
    Render(Box<RenderArgs>),
    /// Assemble the Sluice image without docker (a base image, or none,
    /// plus one layer with the binary) and push it.
    Image {
        /// Where to push it: REGISTRY/REPOSITORY:TAG.
        #[arg(long)]
        tag: String,
        /// The sluice binary to put in the image (default: the `sluice`
        /// beside this program).
        #[arg(long)]
        binary: Option<PathBuf>,
        /// The base image to layer onto: the Dockerfile's by default (glibc
        /// and CA certificates, no shell); `none` for the binary alone,
        /// which must then be statically linked.
        #[arg(long, default_value = image::DEFAULT_PROXY_BASE)]
        base: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Get a DigitalOcean registry's credentials (as `doctl registry
    /// kubernetes-manifest` does), keep them for pushes, and store them as
    /// the image pull Secret in a namespace.
    RegistryLogin {
        /// The registry's name (registry.digitalocean.com/NAME).
        #[arg(long)]
        registry: String,
        /// The environment variable holding the API token.
        #[arg(long, default_value = "DIGITALOCEAN_TOKEN")]
        token_env: String,
        /// Where to store the pull Secret.
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
        /// The pull Secret's name (default: the registry's name).
        #[arg(long)]
        secret_name: Option<String>,
        /// DigitalOcean's API (for tests and proxies).
        #[arg(
            long,
            env = "DIGITALOCEAN_API_URL",
            default_value = "https://api.digitalocean.com"
        )]
        api_url: String,
        /// Keep the credentials for pushes only; store no Secret.
        #[arg(long)]
        no_secret: bool,
        /// Create the registry (free tier) when the account has none, as
        /// `doctl registry create NAME` does.
        #[arg(long)]
        create: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

/// Registries spoken to without TLS.
#[derive(Debug, Args)]
struct RegistryArgs {
    /// A registry (HOST:PORT) reached over plain HTTP, e.g. a local one
    /// (repeatable).
    #[arg(long, value_name = "HOST:PORT")]
    insecure_registry: Vec<String>,
}

/// The app, as `up` and `render` take it.
#[derive(Debug, Args)]
struct AppArgs {
    /// The app's name: its Deployment, Service and Ingress are called this
    /// (`render` without it renders the proxy alone).
    #[arg(long)]
    name: Option<String>,
    /// The image to run (REGISTRY/REPOSITORY:TAG). With --build, where the
    /// built image is pushed.
    #[arg(long)]
    image: Option<String>,
    /// Replicas (default 2, or what the Deployment has now).
    #[arg(long)]
    replicas: Option<u32>,
    /// The port the app listens on in its container.
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// The host the app is served for (default: any host).
    #[arg(long)]
    host: Option<String>,
    /// The path prefix the app is served under.
    #[arg(long, default_value = "/")]
    path: String,
    /// How Sluice balances the app's pods.
    #[arg(long, value_enum, default_value_t = Strategy::RoundRobin)]
    strategy: Strategy,
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,
    /// An image pull Secret for a private registry (see registry-login).
    #[arg(long)]
    pull_secret: Option<String>,
}

impl AppArgs {
    /// The app, once --name and --image are known to be there.
    fn spec(&self, image: String, replicas: u32) -> AppSpec {
        AppSpec {
            name: self.name.clone().unwrap_or_default(),
            namespace: self.namespace.clone(),
            image,
            replicas,
            port: self.port,
            host: self.host.clone(),
            path: self.path.clone(),
            strategy: self.strategy,
            pull_secret: self.pull_secret.clone(),
        }
    }
}

#[derive(Debug, Args)]
struct UpArgs {
    #[command(flatten)]
    app: AppArgs,
    /// Build the image from this directory (docker, podman or buildah;
    /// without one, add --base and --cmd) and push it to --image.
    #[arg(long, value_name = "DIR")]
    build: Option<PathBuf>,
    /// Build without a builder: layer --build DIR onto this image.
    #[arg(long, requires = "build")]
    base: Option<String>,
    /// With --base: the command the image runs (e.g. "python3 app.py").
    #[arg(long, requires = "base")]
    cmd: Option<String>,
    /// How long to wait for each rollout and for the address.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// The proxy image when `up` installs the proxy (default: the chart's).
    #[arg(long)]
    proxy_image: Option<String>,
    /// An image pull Secret in sluice-system for the proxy image (see
    /// `registry-login -n sluice-system`).
    #[arg(long)]
    proxy_pull_secret: Option<String>,
    /// Skip the request through the LoadBalancer at the end.
    #[arg(long)]
    no_probe: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Debug, Args)]
struct RenderArgs {
    #[command(flatten)]
    app: AppArgs,
    /// Also the proxy's objects, as `up` installs them.
    #[arg(long)]
    with_proxy: bool,
    /// The proxy image (default: the chart's).
    #[arg(long)]
    proxy_image: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let kubeconfig = cli.kubeconfig.as_deref();
    match cli.command {
        Command::Up(args) => {
            let up = *args;
            let Some(name) = up.app.name.clone() else {
                return Err(Error::Invalid(
                    "up needs --name: what to call the app".into(),
                ));
            };
            let image = match (&up.app.image, &up.build) {
                (Some(i), _) => i.clone(),
                (None, Some(_)) => {
                    return Err(Error::Invalid(
                        "--build needs --image: where to push what it builds".into(),
                    ))
                }
                (None, None) => {
                    return Err(Error::Invalid(
                        "up needs --image IMAGE, or --build DIR --image IMAGE".into(),
                    ))
                }
            };
            // Check everything we can before building or touching the cluster.
            up.app.spec(image.clone(), 1).validate()?;
            // connect, controller, apply, rollout, address (+ build, + the
            // proxy's rollout when `up` installed it).
            let steps = 5 + usize::from(up.build.is_some());
            let mut progress = Progress::new(steps, false);
            let image = match &up.build {
                None => image,
                Some(dir) => {
                    let step = progress.step(format!("build and push {image}"));
                    let pushed = match (&up.base, &up.cmd) {
                        (Some(base), Some(cmd)) => {
                            image::push_app_dir(
                                dir,
                                base,
                                cmd,
                                up.app.port,
                                &image,
                                &up.registry.insecure_registry,
                            )
                            .await
                        }
                        (Some(_), None) => Err(Error::Invalid(
                            "--base needs --cmd: the command the image runs".into(),
                        )),
                        _ => build::build_and_push(dir, &image).await,
                    };
                    // Run what was pushed, by digest (a tag pushed again
                    // would roll nothing out).
                    let pushed = match pushed {
                        Ok(r) if r.contains('@') => Ok(r),
                        Ok(tag) => {
                            match image::resolve_digest(&tag, &up.registry.insecure_registry).await
                            {
                                Ok(pinned) => Ok(pinned),
                                Err(e) => {
                                    eprintln!(
                                    "warning: cannot read the digest of {tag} back ({e}); deploying the tag, \
                                     so pushing it again with new content will not roll out"
                                );
                                    Ok(tag)
                                }
                            }
                        }
                        Err(e) => Err(e),
                    };
                    match pushed {
                        Ok(r) => {
                            step.ok(&r);
                            r
                        }
                        Err(e) => {
                            step.fail("failed");
                            return Err(e);
                        }
                    }
                }
            };
            let step = progress.step("connect to the cluster");
            let cluster = Cluster::connect(kubeconfig).await?;
            step.ok("");
            let replicas = match up.app.replicas {
                Some(r) => r,
                None => cluster
                    .get("Deployment", Some(&up.app.namespace), &name)
                    .await?
                    .and_then(|d| d["spec"]["replicas"].as_u64())
                    .map(|r| r as u32)
                    .unwrap_or(2),
            };
            let mut spec = up.app.spec(image, replicas);
            let opts = UpOptions {
                proxy: ProxyOptions {
                    image: up.proxy_image.clone(),
                    pull_secrets: up.proxy_pull_secret.iter().cloned().collect(),
                    ..Default::default()
                },
                timeout: up.timeout,
                no_probe: up.no_probe,
            };
            commands::up(&cluster, &mut spec, &opts, &mut progress).await?;
            Ok(())
        }
        Command::Scale {
            app,
            replicas,
            namespace,
            timeout,
        } => {
            let cluster = Cluster::connect(kubeconfig).await?;
            let mut progress = Progress::new(2, false);
            commands::scale(&cluster, &namespace, &app, replicas, timeout, &mut progress).await
        }
        Command::Status {
            app,
            namespace,
            output,
        } => {
            let cluster = Cluster::connect(kubeconfig).await?;
            let s = commands::status(&cluster, &namespace, app.as_deref()).await?;
            match output {
                Output::Text => commands::print_status(&s),
                Output::Json => {
                    println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default())
                }
            }
            Ok(())
        }
        Command::Down {
            app,
            namespace,
            with_proxy,
        } => {
            let cluster = Cluster::connect(kubeconfig).await?;
            let mut progress = Progress::new(1 + usize::from(with_proxy), false);
            commands::down(&cluster, &namespace, &app, with_proxy, &mut progress).await
        }
        Command::Render(r) => {
            let app = match (&r.app.name, &r.app.image) {
                (None, _) if !r.with_proxy => return Err(Error::Invalid(
                    "render needs --name and --image (the app), --with-proxy (the proxy), or both"
                        .into(),
                )),
                (None, _) => None,
                (Some(_), None) => {
                    return Err(Error::Invalid("render --name needs --image".into()))
                }
                (Some(_), Some(image)) => {
                    let spec = r.app.spec(image.clone(), r.app.replicas.unwrap_or(2));
                    spec.validate()?;
                    Some(spec)
                }
            };
            let proxy = r.with_proxy.then(|| ProxyOptions {
                image: r.proxy_image.clone(),
                ..Default::default()
            });
            print!("{}", commands::render(app.as_ref(), proxy.as_ref()));
            Ok(())
        }
        Command::Image {
            tag,
            binary,
            base,
            registry,
        } => {
            let binary = match binary {
                Some(b) => b,
                None => std::env::current_exe()
                    .ok()
                    .and_then(|p| p.parent().map(|d| d.join("sluice")))
                    .filter(|p| p.exists())
                    .ok_or_else(|| {
                        Error::Invalid(
                            "no sluice binary beside sluice-deploy: name it with --binary".into(),
                        )
                    })?,
            };
            let base = (base != "none").then_some(base);
            let pushed = image::push_proxy_image(
                &binary,
                base.as_deref(),
                &tag,
                &registry.insecure_registry,
            )
            .await?;
            println!("pushed {pushed}");
            Ok(())
        }
        Command::RegistryLogin {
            registry: name,
            token_env,
            namespace,
            secret_name,
            api_url,
            no_secret,
            create,
        } => {
            let token = std::env::var(&token_env).map_err(|_| {
                Error::Invalid(format!(
                    "${token_env} is not set: create a token at DigitalOcean (API → Tokens, with registry scope) and export it"
                ))
            })?;
            let login = registry::login(&api_url, &token, &name, create).await?;
            let path = registry::save_docker_config(&login.push)?;
            println!(
                "push credentials for {}/{} saved in {}",
                login.push.registry,
                login.push.name,
                path.display()
            );
            if !no_secret {
                let cluster = Cluster::connect(kubeconfig).await?;
                let secret_name = secret_name.unwrap_or_else(|| login.pull.name.clone());
                // The namespace first: a Secret cannot be made in one that
                // does not exist yet.
                if namespace != "default"
                    && cluster.get("Namespace", None, &namespace).await?.is_none()
                {
                    cluster
                        .apply(&serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": namespace}}))
                        .await?;
                }
                let secret = registry::pull_secret(&secret_name, &namespace, &login.pull);
                let change = cluster.apply(&secret).await?;
                println!(
                    "pull Secret {namespace}/{secret_name} {}; deploy with --pull-secret {secret_name}",
                    change.as_str()
                );
            }
            Ok(())
        }
    }
}
