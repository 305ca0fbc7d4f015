//! The corpus of Kubernetes manifests the discovery tests apply: YAML files
//! under `tests/corpus/` (as people write them for ingress-nginx), with
//! `${NAME}` placeholders for what only the test knows, such as the ports
//! its backends got.

use serde::Deserialize;
use serde_json::Value;

/// Every document of `tests/corpus/<file>`, placeholders filled from
/// `vars` (`("PORT", "8080")` fills `${PORT}`). A placeholder left without
/// a value, or a document that is not YAML, fails the test.
pub fn manifests(file: &str, vars: &[(&str, &str)]) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(file);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    for (name, value) in vars {
        text = text.replace(&format!("${{{name}}}"), value);
    }
    if let Some(at) = text.find("${") {
        let end = text[at..].find('}').map_or(text.len(), |e| at + e + 1);
        panic!("{}: no value for {}", path.display(), &text[at..end]);
    }
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}
