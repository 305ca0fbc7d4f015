//! `sluice migrate`: reads Ingresses (from files or the cluster) and says,
//! per Ingress and annotation, how sluice would serve what was written for
//! ingress-nginx ([`sluice::migrate`]). Exits 3 when anything would serve
//! differently, so a CI job can gate a switch of IngressClass on it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use k8s_openapi::api::networking::v1::Ingress;
use sluice::discovery::annotations::registry;
use sluice::exit::Exit;
use sluice::migrate::{configmap_from_yaml, ingresses_from_yaml, Report};

use super::args::Output;

/// Where the Ingresses come from.
pub enum Source {
    Files(Vec<PathBuf>),
    Cluster {
        kubeconfig: Option<PathBuf>,
        namespace: Option<String>,
    },
}

impl Source {
    pub fn new(
        files: Vec<PathBuf>,
        kubeconfig: Option<PathBuf>,
        namespace: Option<String>,
    ) -> Self {
        if files.is_empty() {
            Source::Cluster {
                kubeconfig,
                namespace,
            }
        } else {
            Source::Files(files)
        }
    }
}

pub fn migrate(source: Source, configmap: Option<String>, output: Output, table: bool) -> ExitCode {
    if table {
        print!("{}", registry::markdown_table());
        return ExitCode::from(Exit::Ok.code());
    }
    let (ingresses, cm) = match read(source, configmap.as_deref()) {
        Ok(i) => i,
        Err((exit, message)) => {
            eprintln!("sluice migrate: {message}");
            return ExitCode::from(exit.code());
        }
    };
    let mut report = Report::new(&ingresses);
    if let (Some(id), Some(data)) = (&configmap, cm) {
        report = report.with_configmap(id, &data);
    }
    match output {
        Output::Text => print!("{}", report.text()),
        Output::Json => match serde_json::to_string_pretty(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("sluice migrate: {e}");
                return ExitCode::from(Exit::Failure.code());
            }
        },
    }
    let exit = if report.changes_behaviour {
        Exit::Config
    } else {
        Exit::Ok
    };
    ExitCode::from(exit.code())
}

/// The Ingresses, and the controller ConfigMap's data when one is named.
type Read = (Vec<Ingress>, Option<BTreeMap<String, String>>);

fn read(source: Source, configmap: Option<&str>) -> Result<Read, (Exit, String)> {
    match source {
        Source::Files(files) => {
            let mut out = Vec::new();
            let mut cm = None;
            for f in files {
                let text = std::fs::read_to_string(&f)
                    .map_err(|e| (Exit::Config, format!("{}: {e}", f.display())))?;
                let found = ingresses_from_yaml(&text)
                    .map_err(|e| (Exit::Config, format!("{}: {e}", f.display())))?;
                out.extend(found);
                if configmap.is_some() && cm.is_none() {
                    cm = configmap_from_yaml(&text)
                        .map_err(|e| (Exit::Config, format!("{}: {e}", f.display())))?;
                }
            }
            if let (Some(id), None) = (configmap, &cm) {
                return Err((
                    Exit::Config,
                    format!("no ConfigMap in the files for --configmap {id}"),
                ));
            }
            Ok((out, cm))
        }
        Source::Cluster {
            kubeconfig,
            namespace,
        } => {
            let rt = super::runtime::runtime(Some(1)).map_err(|e| {
                (
                    Exit::Failure,
                    format!("cannot start the async runtime: {e}"),
                )
            })?;
            rt.block_on(async {
                let client = sluice::discovery::connect(kubeconfig.as_deref())
                    .await
                    .map_err(|e| (Exit::Kube, e.to_string()))?;
                let api: kube::Api<Ingress> = match &namespace {
                    Some(ns) => kube::Api::namespaced(client.clone(), ns),
                    None => kube::Api::all(client.clone()),
                };
                let list = api
                    .list(&Default::default())
                    .await
                    .map_err(|e| (Exit::Kube, format!("listing Ingresses: {e}")))?;
                let cm = match configmap.and_then(|c| c.split_once('/')) {
                    Some((ns, name)) => {
                        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
                            kube::Api::namespaced(client, ns);
                        let got = api.get(name).await.map_err(|e| {
                            (Exit::Kube, format!("reading ConfigMap {ns}/{name}: {e}"))
                        })?;
                        Some(got.data.unwrap_or_default())
                    }
                    None => None,
                };
                Ok((list.items, cm))
            })
        }
    }
}
