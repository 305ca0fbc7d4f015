//! The app's objects: a Deployment, a ClusterIP Service and an Ingress of
//! class `sluice` carrying the balancing strategy. What `kubectl create
//! deployment`, `kubectl scale` and `kubectl expose` did by hand, with the
//! LoadBalancer moved in front of Sluice instead of the app.

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::proxy::{INGRESS_CLASS, MANAGED_BY};

/// How Sluice balances the app's pods (the `sluice.dev/load-balance`
/// annotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    RoundRobin,
    Weighted,
    IpHash,
    LeastRequest,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round-robin",
            Strategy::Weighted => "weighted",
            Strategy::IpHash => "ip-hash",
            Strategy::LeastRequest => "least-request",
        }
    }
}

/// The annotation that carries the strategy.
pub const STRATEGY_ANNOTATION: &str = "sluice.dev/load-balance";

/// One app, as `up` and `render` are told it.
#[derive(Debug, Clone)]
pub struct AppSpec {
    pub name: String,
    pub namespace: String,
    pub image: String,
    pub replicas: u32,
    /// The port the app listens on in its container.
    pub port: u16,
    /// The Ingress host; any host when `None`.
    pub host: Option<String>,
    pub path: String,
    pub strategy: Strategy,
    pub pull_secret: Option<String>,
}

impl AppSpec {
    /// Checks what the API server would refuse later, with a message that
    /// names the flag.
    pub fn validate(&self) -> Result<()> {
        dns_label("--name", &self.name)?;
        dns_label("--namespace", &self.namespace)?;
        if let Some(s) = &self.pull_secret {
            dns_subdomain("--pull-secret", s)?;
        }
        if let Some(h) = &self.host {
            let bare = h.strip_prefix("*.").unwrap_or(h);
            dns_subdomain("--host", bare)?;
        }
        if !self.path.starts_with('/') {
            return Err(Error::Invalid(format!(
                "--path {:?} must start with /",
                self.path
            )));
        }
        if self.port == 0 {
            return Err(Error::Invalid("--port must be 1-65535".into()));
        }
        crate::image::parse_reference(&self.image)?;
        Ok(())
    }

    /// The labels on every object of the app; the first is its selector.
    fn labels(&self) -> Value {
        json!({
            "app.kubernetes.io/name": self.name,
            "app.kubernetes.io/managed-by": MANAGED_BY,
        })
    }

    pub fn selector(&self) -> Value {
        json!({"app.kubernetes.io/name": self.name})
    }

    fn meta(&self) -> Value {
        json!({"name": self.name, "namespace": self.namespace, "labels": self.labels()})
    }

    /// The Namespace (unless it is `default`), Deployment, Service and
    /// Ingress, in apply order.
    pub fn objects(&self) -> Vec<Value> {
        let mut objs = Vec::new();
        if self.namespace != "default" {
            objs.push(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": self.namespace}}));
        }
        objs.push(self.deployment());
        objs.push(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": self.meta(),
            "spec": {
                "type": "ClusterIP",
                "selector": self.selector(),
                "ports": [{"name": "http", "port": self.port, "targetPort": "http", "protocol": "TCP"}],
            },
        }));
        let mut rule = json!({"http": {"paths": [{
            "path": self.path, "pathType": "Prefix",
            "backend": {"service": {"name": self.name, "port": {"name": "http"}}},
        }]}});
        if let Some(h) = &self.host {
            rule["host"] = json!(h);
        }
        let mut meta = self.meta();
        meta["annotations"] = json!({STRATEGY_ANNOTATION: self.strategy.as_str()});
        objs.push(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": {"ingressClassName": INGRESS_CLASS, "rules": [rule]},
        }));
        objs
    }

    pub fn deployment(&self) -> Value {
        let mut pod = json!({
            "containers": [{
                "name": self.name,
                "image": self.image,
                "ports": [{"name": "http", "containerPort": self.port, "protocol": "TCP"}],
                // Ready once it accepts connections: Sluice sends traffic
                // only to ready pods, and the rollout waits for them.
                "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 5},
            }],
        });
        if let Some(s) = &self.pull_secret {
            pod["imagePullSecrets"] = json!([{"name": s}]);
        }
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": self.meta(),
            "spec": {
                "replicas": self.replicas,
                "selector": {"matchLabels": self.selector()},
                "template": {"metadata": {"labels": self.labels()}, "spec": pod},
            },
        })
    }
}

/// An RFC 1123 label: what Kubernetes takes as a name of a Deployment,
/// Service or Namespace.
pub fn dns_label(flag: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{flag} {s:?} is not a valid name: lower-case letters, digits and '-', \
             at most 63, starting and ending with a letter or digit"
        )))
    }
}

fn dns_subdomain(flag: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 253 || s.split('.').any(|l| dns_label(flag, l).is_err()) {
        return Err(Error::Invalid(format!(
            "{flag} {s:?} is not a valid DNS name"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> AppSpec {
        AppSpec {
            name: "shop".into(),
            namespace: "default".into(),
            image: "registry.example.com/team/shop:1.0".into(),
            replicas: 2,
            port: 8000,
            host: Some("shop.example.com".into()),
            path: "/".into(),
            strategy: Strategy::IpHash,
            pull_secret: None,
        }
    }

    #[test]
    fn the_ingress_carries_the_strategy_and_class() {
        let objs = spec().objects();
        let ing = objs.iter().find(|o| o["kind"] == "Ingress").unwrap();
        assert_eq!(ing["spec"]["ingressClassName"], "sluice");
        assert_eq!(
            ing["metadata"]["annotations"][STRATEGY_ANNOTATION],
            "ip-hash"
        );
        assert_eq!(ing["spec"]["rules"][0]["host"], "shop.example.com");
        assert!(!objs.iter().any(|o| o["kind"] == "Namespace"));
    }

    #[test]
    fn bad_names_name_their_flag() {
        let mut s = spec();
        s.name = "Shop_App".into();
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("--name"), "{e}");
        let mut s = spec();
        s.path = "shop".into();
        assert!(s.validate().unwrap_err().to_string().contains("--path"));
        let mut s = spec();
        s.host = Some("bad host".into());
        assert!(s.validate().unwrap_err().to_string().contains("--host"));
        assert!(spec().validate().is_ok());
    }
}
