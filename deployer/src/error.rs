//! The one error type of `sluice-deploy`. Every variant says what failed
//! and what to do about it, because the person reading it is at a terminal
//! in the middle of a deploy.

use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong while shipping an app.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No kubeconfig, or the API server does not answer.
    #[error(
        "no cluster reachable: {reason}\n  \
         point KUBECONFIG (or --kubeconfig) at your cluster's config, e.g. \
         `doctl kubernetes cluster kubeconfig save NAME`, and check `kubectl cluster-info`"
    )]
    NoCluster { reason: String },

    /// The API server answered 403.
    #[error(
        "forbidden: your credentials may not {verb} {resource}{scope}: {message}\n  \
         ask a cluster admin for a Role (or ClusterRole) that allows `{verb}` on `{resource}`"
    )]
    Forbidden {
        verb: String,
        resource: String,
        /// ` in namespace NS`, or empty for cluster-wide resources.
        scope: String,
        message: String,
    },

    /// Any other answer of the API server.
    #[error("{action} failed: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },

    /// An image reference that does not parse.
    #[error("invalid image reference {reference:?}: {reason}\n  write it as REGISTRY/REPOSITORY:TAG, e.g. registry.digitalocean.com/my-registry/my-app:1.0")]
    InvalidImage { reference: String, reason: String },

    /// The registry refused a pull or a push.
    #[error("registry {registry} refused to {action} {reference}: {reason}{hint}")]
    Registry {
        registry: String,
        action: &'static str,
        reference: String,
        reason: String,
        /// What to try next, starting with a newline, or empty.
        hint: String,
    },

    /// A rollout that did not finish within `--timeout`.
    #[error("{what} did not become ready within {}: {}{}", humantime::format_duration(*after), summary, reasons_text(reasons))]
    RolloutTimeout {
        what: String,
        after: Duration,
        summary: String,
        /// The pods' own reasons: ImagePullBackOff, CrashLoopBackOff, …
        reasons: Vec<String>,
    },

    /// `--build` without a container builder on PATH.
    #[error(
        "--build needs docker, podman or buildah on PATH, and none was found\n  \
         install one of them (e.g. `apt-get install podman`), or build without one: \
         `--build DIR --base IMAGE --cmd \"COMMAND\"` layers DIR onto IMAGE and pushes it directly"
    )]
    NoBuilder,

    /// docker, podman or buildah failed.
    #[error(
        "`{command}` failed ({status}); its output is above\n  \
         without a working builder (e.g. no docker daemon), build without one: \
         `--build DIR --base IMAGE --cmd \"COMMAND\"`"
    )]
    Build { command: String, status: String },

    /// DigitalOcean's API refused or failed.
    #[error("DigitalOcean API: {0}")]
    DigitalOcean(String),

    /// A file that could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A command-line value that cannot work.
    #[error("{0}")]
    Invalid(String),
}

fn reasons_text(reasons: &[String]) -> String {
    if reasons.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n  the pods say:");
    for r in reasons {
        s.push_str("\n    ");
        s.push_str(r);
    }
    s
}

impl Error {
    /// Wraps a kube error, turning a 403 into [`Error::Forbidden`] (naming
    /// the verb and resource) and a connection failure into
    /// [`Error::NoCluster`].
    pub fn kube(
        action: impl Into<String>,
        verb: &str,
        resource: &str,
        namespace: Option<&str>,
        source: kube::Error,
    ) -> Error {
        match &source {
            kube::Error::Api(s) if s.code == 403 => Error::Forbidden {
                verb: verb.to_owned(),
                resource: resource.to_owned(),
                scope: namespace
                    .map(|ns| format!(" in namespace {ns}"))
                    .unwrap_or_default(),
                message: s.message.clone(),
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) => Error::NoCluster {
                reason: format!("{}: {}", action.into(), source_chain(&source)),
            },
            _ => Error::Kube {
                action: action.into(),
                source,
            },
        }
    }

    /// The process exit code: 2 for what the user must change, 1 for the
    /// rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Invalid(_) | Error::InvalidImage { .. } | Error::NoBuilder => 2,
            _ => 1,
        }
    }
}

/// An error and its causes on one line.
pub fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
