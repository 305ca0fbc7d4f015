//! `sluice migrate`'s assessment: for each Ingress written for
//! ingress-nginx, what sluice does with each of its annotations —
//! supported, mapped, ignored as tuning, refused, or not supported — with
//! a one-line reason, and whether anything would serve differently.
//!
//! It is the parser's own verdict (the same [`annotations::parse`] that
//! discovery runs, so a value it would refuse is reported here), completed
//! by the registry's line for each annotation
//! ([`annotations::registry`]).

use k8s_openapi::api::networking::v1::Ingress;
use serde::Serialize;

use crate::discovery::annotations::{self, registry};

const NGINX: &str = "nginx.ingress.kubernetes.io/";
const SLUICE: &str = "sluice.dev/";

/// What becomes of one annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Supported,
    Mapped,
    Tuning,
    /// Refused on purpose (snippets, a WAF).
    Refused,
    /// Not built.
    Unsupported,
    /// A supported annotation whose value is refused.
    Invalid,
    /// Left out, as ingress-nginx leaves it out (a deprecated key).
    Ignored,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Mapped => "mapped",
            Verdict::Tuning => "tuning",
            Verdict::Refused => "refused",
            Verdict::Unsupported => "unsupported",
            Verdict::Invalid => "invalid",
            Verdict::Ignored => "ignored",
        }
    }

    /// Whether an Ingress carrying it serves differently under sluice.
    pub fn changes_behaviour(self) -> bool {
        matches!(
            self,
            Verdict::Refused | Verdict::Unsupported | Verdict::Invalid
        )
    }
}

/// One annotation's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Without the `nginx.ingress.kubernetes.io/` prefix.
    pub annotation: String,
    pub verdict: Verdict,
    pub reason: String,
}

/// One Ingress's verdicts.
#[derive(Debug, Clone, Serialize)]
pub struct IngressReport {
    /// `namespace/name`.
    pub ingress: String,
    /// Its class (`spec.ingressClassName`, or the old annotation).
    pub class: Option<String>,
    pub findings: Vec<Finding>,
    pub changes_behaviour: bool,
}

/// The controller ConfigMap's verdicts, key by key.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigMapReport {
    /// `namespace/name`.
    pub configmap: String,
    /// Each key's verdict; `annotation` holds the key.
    pub findings: Vec<Finding>,
    pub changes_behaviour: bool,
}

/// Every Ingress's verdicts, and the controller ConfigMap's.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ingresses: Vec<IngressReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configmap: Option<ConfigMapReport>,
    /// Some Ingress (or the ConfigMap) would serve differently under
    /// sluice.
    pub changes_behaviour: bool,
}

impl Report {
    pub fn new(ingresses: &[Ingress]) -> Report {
        let ingresses: Vec<IngressReport> = ingresses.iter().map(assess).collect();
        Report {
            changes_behaviour: ingresses.iter().any(|i| i.changes_behaviour),
            ingresses,
            configmap: None,
        }
    }

    /// Adds the controller ConfigMap `id`'s verdicts.
    pub fn with_configmap(
        mut self,
        id: &str,
        data: &std::collections::BTreeMap<String, String>,
    ) -> Report {
        let c = assess_configmap(id, data);
        self.changes_behaviour |= c.changes_behaviour;
        self.configmap = Some(c);
        self
    }

    /// For people: one block per Ingress, one line per annotation.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for i in &self.ingresses {
            out.push_str(&i.ingress);
            if let Some(c) = &i.class {
                out.push_str(&format!(" (class {c})"));
            }
            out.push('\n');
            if i.findings.is_empty() {
                out.push_str("  no ingress-nginx annotation: served as it is\n");
            }
            for f in &i.findings {
                out.push_str(&format!(
                    "  {:<11} {}: {}\n",
                    f.verdict.as_str(),
                    f.annotation,
                    f.reason
                ));
            }
        }
        if let Some(c) = &self.configmap {
            out.push_str(&format!("configmap {}\n", c.configmap));
            for f in &c.findings {
                out.push_str(&format!(
                    "  {:<11} {}: {}\n",
                    f.verdict.as_str(),
                    f.annotation,
                    f.reason
                ));
            }
        }
        let changing = self
            .ingresses
            .iter()
            .filter(|i| i.changes_behaviour)
            .count();
        out.push_str(&format!(
            "{} Ingress(es), {changing} would serve differently under sluice\n",
            self.ingresses.len()
        ));
        out
    }
}

/// One Ingress's verdicts.
pub fn assess(ing: &Ingress) -> IngressReport {
    let meta = &ing.metadata;
    let id = format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or("")
    );
    let class = ing
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.clone())
        .or_else(|| {
            meta.annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/ingress.class").cloned())
        });
    let parsed = annotations::parse(&meta.annotations);
    let mut findings = Vec::new();
    for key in meta.annotations.iter().flat_map(|a| a.keys()) {
        let (name, ours) = match (key.strip_prefix(NGINX), key.strip_prefix(SLUICE)) {
            (Some(n), _) => (n, false),
            (_, Some(_)) => (key.as_str(), true),
            _ => continue,
        };
        // The parser's own words about this annotation, if it had any.
        let problem = parsed
            .problems
            .iter()
            .find(|p| p.starts_with(key.as_str()) && p[key.len()..].starts_with(':'))
            .map(|p| p[key.len() + 1..].trim().to_owned());
        let entry = (!ours).then(|| registry::lookup(name)).flatten();
        // A problem that ends as ingress-nginx's does changes nothing: the
        // annotation keeps its verdict, and the problem is the reason.
        let (problem, notice) = match problem {
            Some(p) if annotations::as_ingress_nginx(&p) => (None, Some(p)),
            p => (p, None),
        };
        let (verdict, reason) = match (problem, entry) {
            (Some(_), Some(e)) if e.support == registry::Support::Refused => {
                (Verdict::Refused, e.note.to_owned())
            }
            (Some(_), Some(e)) if e.support == registry::Support::NotYet => {
                (Verdict::Unsupported, e.note.to_owned())
            }
            (Some(p), _) if !ours && p.starts_with("refused") => (Verdict::Refused, p),
            (Some(p), None) if !ours && p.contains("refused") => (Verdict::Refused, p),
            (Some(p), None) if !ours => (Verdict::Unsupported, p),
            (Some(p), _) => (Verdict::Invalid, p),
            (None, Some(e)) => (
                match e.support {
                    registry::Support::Supported => Verdict::Supported,
                    registry::Support::Mapped => Verdict::Mapped,
                    registry::Support::Tuning => Verdict::Tuning,
                    registry::Support::Refused => Verdict::Refused,
                    registry::Support::NotYet => Verdict::Unsupported,
                },
                e.note.to_owned(),
            ),
            (None, None) if ours => (Verdict::Supported, "sluice's own".to_owned()),
            (None, None) if notice.is_some() => (Verdict::Ignored, String::new()),
            (None, None) => (
                Verdict::Unsupported,
                "not an annotation sluice knows".to_owned(),
            ),
        };
        findings.push(Finding {
            annotation: name.to_owned(),
            verdict,
            reason: notice.unwrap_or(reason),
        });
    }
    IngressReport {
        ingress: id,
        class,
        changes_behaviour: findings.iter().any(|f| f.verdict.changes_behaviour()),
        findings,
    }
}

/// The controller ConfigMap's keys: applied, tuning, refused or not read
/// ([`crate::discovery::configmap::read`] is what `--configmap` runs).
pub fn assess_configmap(
    id: &str,
    data: &std::collections::BTreeMap<String, String>,
) -> ConfigMapReport {
    use crate::discovery::configmap;
    let mut scratch = crate::config::Overrides::default();
    let read = configmap::read(data, &mut scratch);
    let mut findings = Vec::new();
    for key in data.keys() {
        let (verdict, reason) = if let Some(p) = read.problem(key) {
            let verdict = if p.contains("not read") {
                Verdict::Unsupported
            } else {
                Verdict::Invalid
            };
            (verdict, p.to_owned())
        } else if read.applied.contains(key) {
            (Verdict::Supported, "applied with `--configmap`".to_owned())
        } else if read.tuning.contains(key) {
            (
                Verdict::Tuning,
                "nginx tuning, nothing to change".to_owned(),
            )
        } else {
            (Verdict::Unsupported, "not read by sluice".to_owned())
        };
        findings.push(Finding {
            annotation: key.clone(),
            verdict,
            reason,
        });
    }
    ConfigMapReport {
        configmap: id.to_owned(),
        changes_behaviour: findings.iter().any(|f| f.verdict.changes_behaviour()),
        findings,
    }
}

/// The `data` of the first ConfigMap in a YAML stream.
pub fn configmap_from_yaml(
    text: &str,
) -> Result<Option<std::collections::BTreeMap<String, String>>, ManifestError> {
    use serde::Deserialize;
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(doc)
            .map_err(|source| ManifestError::Yaml { index, source })?;
        if value["kind"].as_str() == Some("ConfigMap") {
            let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(value)
                .map_err(|source| ManifestError::Ingress { index, source })?;
            return Ok(Some(cm.data.unwrap_or_default()));
        }
    }
    Ok(None)
}

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {index}: {source}")]
    Yaml {
        index: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("document {index}: an object that does not read: {source}")]
    Ingress {
        index: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// The Ingresses of a YAML stream (several documents, and `kind: List`
/// documents, as `kubectl get -o yaml` writes them); other kinds are
/// skipped.
pub fn ingresses_from_yaml(text: &str) -> Result<Vec<Ingress>, ManifestError> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(doc)
            .map_err(|source| ManifestError::Yaml { index, source })?;
        let items = match value["kind"].as_str() {
            Some("List") | Some("IngressList") => {
                value["items"].as_array().cloned().unwrap_or_default()
            }
            _ => vec![value],
        };
        for item in items {
            if item["kind"].as_str() != Some("Ingress") {
                continue;
            }
            let ing: Ingress = serde_json::from_value(item)
                .map_err(|source| ManifestError::Ingress { index, source })?;
            out.push(ing);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFESTS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /$2
    nginx.ingress.kubernetes.io/use-regex: "true"
    nginx.ingress.kubernetes.io/proxy-buffering: "off"
    nginx.ingress.kubernetes.io/load-balance: ewma
spec:
  ingressClassName: nginx
---
apiVersion: v1
kind: List
items:
  - apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata:
      name: legacy
      namespace: shop
      annotations:
        kubernetes.io/ingress.class: nginx
        nginx.ingress.kubernetes.io/configuration-snippet: "more_set_headers \"X: y\"; rewrite ^ /x;"
        nginx.ingress.kubernetes.io/proxy-read-timeout: "soon"
        nginx.ingress.kubernetes.io/mirror-target: "http://mirror"
        nginx.ingress.kubernetes.io/made-up: "1"
  - apiVersion: v1
    kind: Service
    metadata: {name: web}
"#;

    #[test]
    fn each_annotation_gets_its_verdict() {
        let ings = ingresses_from_yaml(MANIFESTS).unwrap();
        assert_eq!(ings.len(), 2);
        let r = Report::new(&ings);
        let web = &r.ingresses[0];
        assert_eq!(web.class.as_deref(), Some("nginx"));
        assert!(!web.changes_behaviour, "{web:#?}");
        let verdict = |i: &IngressReport, name: &str| {
            i.findings
                .iter()
                .find(|f| f.annotation == name)
                .unwrap_or_else(|| panic!("{name}"))
                .verdict
        };
        assert_eq!(verdict(web, "rewrite-target"), Verdict::Supported);
        assert_eq!(verdict(web, "proxy-buffering"), Verdict::Tuning);
        assert_eq!(verdict(web, "load-balance"), Verdict::Mapped);
        let legacy = &r.ingresses[1];
        assert_eq!(legacy.class.as_deref(), Some("nginx"));
        assert!(legacy.changes_behaviour);
        assert_eq!(verdict(legacy, "configuration-snippet"), Verdict::Refused);
        assert_eq!(verdict(legacy, "proxy-read-timeout"), Verdict::Invalid);
        assert_eq!(verdict(legacy, "mirror-target"), Verdict::Unsupported);
        assert_eq!(verdict(legacy, "made-up"), Verdict::Unsupported);
        assert!(r.changes_behaviour);
        let text = r.text();
        assert!(text.contains("shop/legacy (class nginx)"), "{text}");
        assert!(text.contains("1 would serve differently"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["ingresses"][1]["findings"][0]["verdict"], "refused");
    }

    /// Values ingress-nginx ignores too are said, but change nothing: the
    /// annotation keeps its verdict and the exit status stays 0.
    #[test]
    fn what_ingress_nginx_also_ignores_is_no_change() {
        let ings = ingresses_from_yaml(
            r#"
kind: Ingress
metadata:
  name: old
  annotations:
    nginx.ingress.kubernetes.io/affinity: cookie
    nginx.ingress.kubernetes.io/session-cookie-hash: sha1
    nginx.ingress.kubernetes.io/enable-cors: "true"
    nginx.ingress.kubernetes.io/cors-allow-methods: "GET; rm -rf"
    nginx.ingress.kubernetes.io/canary-by-header-value: "always"
"#,
        )
        .unwrap();
        let r = Report::new(&ings);
        let old = &r.ingresses[0];
        assert!(!old.changes_behaviour, "{old:#?}");
        assert!(!r.changes_behaviour);
        for name in [
            "session-cookie-hash",
            "cors-allow-methods",
            "canary-by-header-value",
        ] {
            let f = old.findings.iter().find(|f| f.annotation == name).unwrap();
            assert!(!f.verdict.changes_behaviour(), "{f:?}");
            assert!(f.reason.ends_with(annotations::AS_INGRESS_NGINX), "{f:?}");
        }
    }

    #[test]
    fn configmap_keys_get_their_verdicts() {
        let data = configmap_from_yaml(
            "kind: ConfigMap\nmetadata: {name: c}\ndata:\n  proxy-body-size: 8m\n  worker-processes: \"4\"\n  use-gzip: \"true\"\n  limit-req-status-code: \"429\"\n  proxy-read-timeout: soon\n",
        )
        .unwrap()
        .unwrap();
        let r = Report::new(&[]).with_configmap("ingress-nginx/c", &data);
        let c = r.configmap.as_ref().unwrap();
        let v = |k: &str| {
            c.findings
                .iter()
                .find(|f| f.annotation == k)
                .unwrap()
                .verdict
        };
        assert_eq!(v("proxy-body-size"), Verdict::Supported);
        assert_eq!(v("worker-processes"), Verdict::Tuning);
        assert_eq!(v("use-gzip"), Verdict::Unsupported);
        assert_eq!(v("limit-req-status-code"), Verdict::Unsupported);
        assert_eq!(v("proxy-read-timeout"), Verdict::Invalid);
        assert!(r.changes_behaviour);
        assert!(
            r.text().contains("configmap ingress-nginx/c"),
            "{}",
            r.text()
        );
    }

    #[test]
    fn bad_yaml_names_its_document() {
        let e = ingresses_from_yaml("kind: Ingress\n---\n: : :\n").unwrap_err();
        assert!(e.to_string().starts_with("document"), "{e}");
    }
}
