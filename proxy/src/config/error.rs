//! Why a config was refused: every wrong field at once, each named by its
//! path in the file (and placed at its line and column when known), as
//! `sluice check` and the reloader report them.
//!
//! Its own module, below the schema check and the validator that both
//! produce [`FieldError`]s.

use std::fmt;
use std::path::PathBuf;

/// One wrong field (as `sluice check --output json` prints it too).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Where it is, as `routes[2].backends[0].weight`.
    pub field: String,
    pub message: String,
    /// Where in the file (1-based), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse {
        path: PathBuf,
        message: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    #[error("config {source_name} has {}: {}", count(.errors.len(), "error"), join(.errors))]
    Invalid {
        source_name: String,
        errors: Vec<FieldError>,
    },
}

/// `1 error`, `2 errors`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ConfigError {
    /// Every problem, as `sluice check` reports them.
    pub fn problems(&self) -> Vec<FieldError> {
        match self {
            ConfigError::Invalid { errors, .. } => errors.clone(),
            ConfigError::Parse {
                message,
                line,
                column,
                ..
            } => vec![FieldError {
                field: String::new(),
                message: message.clone(),
                line: *line,
                column: *column,
            }],
            ConfigError::Read { source, .. } => vec![FieldError {
                field: String::new(),
                message: format!("cannot read it: {source}"),
                line: None,
                column: None,
            }],
        }
    }

    /// Every problem, one per line, for `sluice check`, which names the
    /// file once in front of each (so the lines do not name it again).
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { errors, .. } => errors.iter().map(ToString::to_string).collect(),
            ConfigError::Parse { message, .. } => vec![message.clone()],
            ConfigError::Read { source, .. } => vec![format!("cannot read it: {source}")],
        }
    }
}
