//! Configuration: parsed once into typed structs, validated with every
//! error named by its field, and never re-read as strings on the hot path.
//!
//! Two sources produce the same [`Config`]: the quick form on the command
//! line (`--backend`, `--strategy`) and a YAML file (`--config`). Later the
//! Kubernetes discovery produces the same [`RouteSpec`]s.
//!
//! This file is the namespace: the entry points for a file ([`load_file`],
//! [`parse_file_text`], [`parse_str`]) and what the rest of the crate
//! names as `config::X`. The work is done by files that import one way:
//!
//! - `model`: the typed [`Config`], its sections and their defaults;
//! - `raw`: the file as written, loosely typed, as serde reads it;
//! - `schema`: the file's shape, checked first, with positions;
//! - `validate`: from `raw` to `model`, one file per section;
//! - `quick`: the configs without a file ([`quick`], [`discovery_only`]);
//! - `overrides`: what the command line sets over any config;
//! - `backend`, `value`: values written alike in the file and in flags;
//! - `error`: why a config was refused.

pub mod backend;
mod error;
mod model;
mod overrides;
mod quick;
mod raw;
pub mod schema;
mod validate;
mod value;

use std::path::{Path, PathBuf};

pub use crate::spec::{
    CanarySpec, RetryPolicy, RouteSpec, RouteTimeouts, ServerHeader, DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
};
pub use backend::{Backend, BackendError};
pub use error::{count, ConfigError, FieldError};
pub use model::{
    Config, Defaults, ListenerSettings, TlsConfig, DEFAULTS, DEFAULT_DNS_REFRESH, DEFAULT_DRAIN,
    DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS, DEFAULT_HTTP2_WINDOW, DEFAULT_LISTENER,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_URI, DEFAULT_RELOAD_INTERVAL,
};
pub use overrides::{ControllerDefaults, Overrides};
pub use quick::{discovery_only, quick};
pub use raw::RawConfig;
pub use validate::overlap;
use validate::validate;
pub use value::{
    parse_cidr, parse_http2_streams, parse_http2_window, parse_max_header_size, parse_max_headers,
    parse_max_memory, parse_max_uri, parse_size, ValueError,
};

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_file_text(&text, path)
}

/// Parses the text of the config file at `path`. Relative certificate paths
/// are taken from the file's folder, as nginx takes its paths from its
/// configuration's, not from wherever the proxy was started.
pub fn parse_file_text(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut config = parse_str(text, &path.display().to_string())?;
    if let Some(dir) = path.parent() {
        let anchor = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        for f in config
            .tls
            .certificates
            .iter_mut()
            .chain(config.tls.default_certificate.as_mut())
        {
            anchor(&mut f.cert);
            anchor(&mut f.key);
        }
    }
    Ok(config)
}

/// Parses and validates config text; `source_name` names it in errors.
/// The file's shape is checked first ([`schema`]): every unknown field and
/// value of the wrong kind is reported at once, at its line and column.
/// Then serde reads it, and validation checks what the values mean; its
/// errors are placed at their keys too.
pub fn parse_str(text: &str, source_name: &str) -> Result<Config, ConfigError> {
    let tree = schema::parse(text).map_err(|(message, pos)| ConfigError::Parse {
        path: PathBuf::from(source_name),
        message: format!("not valid YAML: {message}"),
        line: Some(pos.line),
        column: Some(pos.column),
    })?;
    let Some(tree) = tree else {
        return validate(RawConfig::default()).map_err(|errors| ConfigError::Invalid {
            source_name: source_name.to_owned(),
            errors,
        });
    };
    let mut errors = Vec::new();
    schema::check(&tree, &schema::CONFIG, "", &mut errors);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid {
            source_name: source_name.to_owned(),
            errors,
        });
    }
    let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| {
        // The position is kept apart; the message need not repeat it.
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(i) if e.location().is_some() => message[..i].to_owned(),
            _ => message,
        };
        ConfigError::Parse {
            path: PathBuf::from(source_name),
            line: e.location().map(|l| l.line()),
            column: e.location().map(|l| l.column()),
            message,
        }
    })?;
    let place = |e: &mut FieldError| {
        if e.line.is_none() {
            if let Some(pos) = tree.locate(&e.field) {
                e.line = Some(pos.line);
                e.column = Some(pos.column);
            }
        }
    };
    match validate(raw) {
        Ok(mut c) => {
            c.warnings.iter_mut().for_each(place);
            Ok(c)
        }
        Err(mut errors) => {
            errors.iter_mut().for_each(place);
            Err(ConfigError::Invalid {
                source_name: source_name.to_owned(),
                errors,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../examples/sluice.yaml");

    #[test]
    fn the_example_file_is_valid() {
        let c = parse_str(EXAMPLE, "examples/sluice.yaml").unwrap();
        assert!(!c.routes.is_empty());
        assert!(c.admin.is_some());
    }

    /// Every key of the example, misspelt one at a time, is refused at
    /// its own line, with its field named.
    #[test]
    fn a_misspelling_of_any_field_is_caught_at_its_line() {
        let mut tried = 0;
        for (i, line) in EXAMPLE.lines().enumerate() {
            let body = line.trim_start().trim_start_matches("- ");
            if body.starts_with('#') {
                continue;
            }
            let Some((key, _)) = body.split_once(':') else {
                continue;
            };
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                continue;
            }
            let typo = format!("{key}x");
            let at = line.find(key).unwrap();
            let mut lines: Vec<String> = EXAMPLE.lines().map(str::to_owned).collect();
            lines[i].replace_range(at..at + key.len(), &typo);
            let text = lines.join("\n");
            let errors = match parse_str(&text, "example") {
                Err(ConfigError::Invalid { errors, .. }) => errors,
                other => panic!("line {}: `{typo}` was not refused: {other:?}", i + 1),
            };
            assert!(
                errors.iter().any(|e| e.line == Some(i + 1)
                    && e.column == Some(at + 1)
                    && e.field.ends_with(&typo)
                    && e.message.contains(&format!("did you mean `{key}`?"))),
                "line {}: `{typo}` reported as {errors:?}",
                i + 1
            );
            tried += 1;
        }
        assert!(tried > 40, "only {tried} keys found in the example");
    }

    #[test]
    fn schema_errors_come_all_at_once_and_semantic_ones_at_their_keys() {
        let text = "listen: 127.0.0.1:8080\nretry:\n  attemps: 3\nroutes:\n  - name: a\n    backends:\n      - {address: 127.0.0.1:9001, wieght: 5}\ndefault_backend:\n  backendz: [127.0.0.1:9001]\n";
        let Err(ConfigError::Invalid { errors, .. }) = parse_str(text, "t") else {
            panic!("accepted");
        };
        let lines: Vec<Option<usize>> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [Some(3), Some(7), Some(9)], "{errors:?}");

        let text = "listen: [127.0.0.1:8080]\nroutes:\n  - name: a\n    backends: [127.0.0.1:9001]\n    retry:\n      attempts: 50\n";
        let Err(ConfigError::Invalid { errors, .. }) = parse_str(text, "t") else {
            panic!("accepted");
        };
        assert_eq!(errors[0].field, "routes[0].retry.attempts");
        assert_eq!((errors[0].line, errors[0].column), (Some(6), Some(7)));
        // One address without brackets is a list of one.
        let c = parse_str(
            "listen: 127.0.0.1:8080\ndefault_backend: {backends: [127.0.0.1:1]}\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.listen.len(), 1);
    }

    #[test]
    fn relative_certificate_paths_are_the_files_folder() {
        let text = "listen_tls: [127.0.0.1:443]\ntls:\n  certificates: [{cert: certs/a.pem, key: /abs/a.key}]\n  default_certificate: {cert: d.pem, key: d.key}\nroutes:\n  - backends: [127.0.0.1:1]\n";
        let c = parse_file_text(text, Path::new("/etc/sluice/sluice.yaml")).unwrap();
        assert_eq!(
            c.tls.certificates[0].cert,
            PathBuf::from("/etc/sluice/certs/a.pem")
        );
        assert_eq!(c.tls.certificates[0].key, PathBuf::from("/abs/a.key"));
        let d = c.tls.default_certificate.unwrap();
        assert_eq!(d.key, PathBuf::from("/etc/sluice/d.key"));
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let err = parse_str("routes:\n  - backendz: []\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("backendz"), "{err}");
    }
}
