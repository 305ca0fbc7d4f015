//! `sluice-deploy`: ships an app and the Sluice ingress proxy onto a
//! Kubernetes cluster in one command.
//!
//! - [`app`] and [`proxy`] build the objects (the proxy's mirror the Helm
//!   chart's defaults);
//! - [`cluster`] applies them with server-side apply and reads them back;
//! - [`rollout`] waits for Deployments and the LoadBalancer's address;
//! - [`image`] assembles and pushes OCI images without docker, [`build`]
//!   drives docker, podman or buildah when they are there;
//! - [`registry`] gets DigitalOcean registry credentials;
//! - [`commands`] is one function per subcommand, [`progress`] what the
//!   user sees meanwhile.

pub mod app;
pub mod build;
pub mod cluster;
pub mod commands;
pub mod error;
pub mod image;
pub mod progress;
pub mod proxy;
pub mod registry;
pub mod rollout;

pub use error::{Error, Result};
