//! `sluice serve`: the proxy, from a config file, the quick form's
//! `--backend` flags, or Kubernetes discovery alone; with what the command
//! line sets over the file.

use std::net::SocketAddr;

use sluice::config;

use super::error::CliError;
use super::runtime::runtime;
use super::serve_args::ServeArgs;

/// Runs the proxy until it is told to stop.
pub fn serve(args: ServeArgs) -> Result<(), CliError> {
    // First, while this is the only thread.
    sluice::memory::tune_allocator();
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
    let rt = runtime(args.workers).map_err(CliError::Runtime)?;
    let mut overrides = overrides(&args);
    if args.kube.adopt_ingress_nginx {
        overrides.controller = sluice::discovery::configmap::ingress_nginx_defaults();
        // --forwarded-for and --x-real-ip, when given, stand.
        overrides
            .forwarding
            .get_or_insert_with(sluice::discovery::configmap::ingress_nginx_forwarding);
    }
    if let Some(cm) = &args.kube.configmap {
        rt.block_on(controller_configmap(&args, cm, &mut overrides));
    }
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
    let status = match &args.kube.publish_service {
        Some(s) => Some(sluice::discovery::status::StatusOptions::parse(
            s,
            args.kube.class(),
            args.kube.status_lease_duration,
        )?),
        None => None,
    };
    let kube = args.kube.kube.then(|| sluice::discovery::Options {
        kubeconfig: args.kube.kubeconfig.clone(),
        namespace: args.kube.namespace.clone(),
        settings: sluice::discovery::TranslateSettings {
            class: args.kube.class().to_owned(),
            watch_without_class: args.kube.watch_ingress_without_class,
            defaults: cfg.defaults,
            ssl_passthrough: args.kube.enable_ssl_passthrough,
            controller: args.kube.controller().to_owned(),
            controller_config: sluice::discovery::ControllerConfig {
                strategy: overrides.controller.strategy,
                force_ssl_redirect: overrides.controller.force_ssl_redirect.unwrap_or(false),
                allow_snippets: overrides.controller.allow_snippets.unwrap_or(true),
            },
            default_backend_service: args.kube.default_backend_service.as_deref().and_then(|s| {
                s.split_once('/')
                    .map(|(ns, n)| (ns.to_owned(), n.to_owned()))
            }),
            custom_http_errors: overrides.controller.custom_http_errors,
        },
        debounce: args.kube.kube_debounce,
        status,
        default_tls_secret: args.kube.default_tls_secret.clone(),
        gateway_class: args.kube.gateway_class.clone(),
    });
    rt.block_on(sluice::app::run(cfg, file, kube, overrides))?;
    Ok(())
}

/// Reads ingress-nginx's controller ConfigMap into `overrides`. One that
/// cannot be read is reported, and sluice starts without it: routes do not
/// depend on it, and a retry needs nothing but a restart.
async fn controller_configmap(args: &ServeArgs, cm: &str, overrides: &mut config::Overrides) {
    let Some((ns, name)) = cm.split_once('/') else {
        return;
    };
    let got = async {
        let client = sluice::discovery::connect(args.kube.kubeconfig.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client, ns);
        api.get(name).await.map_err(|e| e.to_string())
    }
    .await;
    match got {
        Ok(map) => {
            let read = sluice::discovery::configmap::read(&map.data.unwrap_or_default(), overrides);
            for p in &read.problems {
                tracing::warn!(configmap = %cm, "{p}");
            }
            tracing::info!(
                configmap = %cm,
                applied = %overrides,
                not_read = read.ignored.len(),
                "ingress-nginx's controller ConfigMap read"
            );
        }
        Err(e) => {
            tracing::warn!(configmap = %cm, error = %e, "cannot read the controller ConfigMap; starting without it")
        }
    }
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
        http2_fast_path: if args.no_fast_path {
            Some(false)
        } else {
            args.http2_fast_path.then_some(true)
        },
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
        forwarding: (args.forwarded_for.is_some() || args.x_real_ip).then(|| {
            sluice::policy::Forwarding {
                forwarded_for: args.forwarded_for.unwrap_or_default(),
                real_ip: args.x_real_ip,
            }
        }),
        forwarded_for_header: args.forwarded_for_header.clone(),
        shutdown_delay: args.shutdown_delay,
        default_listen: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
        controller: Default::default(),
    }
}
