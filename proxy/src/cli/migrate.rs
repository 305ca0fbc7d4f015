//! `sluice migrate`: reads Ingresses (from files or the cluster) and says,
//! per Ingress and annotation, how sluice would serve what was written for
//! ingress-nginx ([`sluice::migrate`]). Exits 3 when anything would serve
//! differently, so a CI job can gate a switch of IngressClass on it.

use std::path::PathBuf;
use std::process::ExitCode;

use k8s_openapi::api::networking::v1::Ingress;
use sluice::discovery::annotations::registry;
use sluice::exit::Exit;
use sluice::migrate::{ingresses_from_yaml, Report};

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

pub fn migrate(source: Source, output: Output, table: bool) -> ExitCode {
    if table {
        print!("{}", registry::markdown_table());
        return ExitCode::from(Exit::Ok.code());
    }
    let ingresses = match read(source) {
        Ok(i) => i,
        Err((exit, message)) => {
            eprintln!("sluice migrate: {message}");
            return ExitCode::from(exit.code());
        }
    };
    let report = Report::new(&ingresses);
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

fn read(source: Source) -> Result<Vec<Ingress>, (Exit, String)> {
    match source {
        Source::Files(files) => {
            let mut out = Vec::new();
            for f in files {
                let text = std::fs::read_to_string(&f)
                    .map_err(|e| (Exit::Config, format!("{}: {e}", f.display())))?;
                let found = ingresses_from_yaml(&text)
                    .map_err(|e| (Exit::Config, format!("{}: {e}", f.display())))?;
                out.extend(found);
            }
            Ok(out)
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
                    Some(ns) => kube::Api::namespaced(client, ns),
                    None => kube::Api::all(client),
                };
                let list = api
                    .list(&Default::default())
                    .await
                    .map_err(|e| (Exit::Kube, format!("listing Ingresses: {e}")))?;
                Ok(list.items)
            })
        }
    }
}
