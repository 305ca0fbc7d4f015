//! How a route's path is compared with the request's: the path types of an
//! Ingress rule. The matching itself is [`crate::routing::PathTable`]'s.

use std::fmt;
use std::str::FromStr;

/// How a route's path is compared with the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PathType {
    Exact,
    #[default]
    Prefix,
    /// Kubernetes leaves this to the controller; we treat it as Prefix.
    ImplementationSpecific,
}

impl PathType {
    /// The form a rule's path is stored in: Prefix rules lose their
    /// trailing slash (except `/` itself).
    pub fn normalize(self, path: &str) -> String {
        match self {
            PathType::Exact => path.to_owned(),
            PathType::Prefix | PathType::ImplementationSpecific => {
                let p = path.trim_end_matches('/');
                if p.is_empty() {
                    "/".to_owned()
                } else {
                    p.to_owned()
                }
            }
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            PathType::Exact => "Exact",
            PathType::Prefix => "Prefix",
            PathType::ImplementationSpecific => "ImplementationSpecific",
        }
    }
}

/// A path type that is none of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not Exact, Prefix or ImplementationSpecific")]
pub struct PathTypeError(pub String);

impl FromStr for PathType {
    type Err = PathTypeError;
    fn from_str(s: &str) -> Result<Self, PathTypeError> {
        match s {
            "Exact" | "exact" => Ok(PathType::Exact),
            "Prefix" | "prefix" => Ok(PathType::Prefix),
            "ImplementationSpecific" | "implementation-specific" => {
                Ok(PathType::ImplementationSpecific)
            }
            other => Err(PathTypeError(other.to_owned())),
        }
    }
}

impl fmt::Display for PathType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
