//! The exit codes of the `sluice` command: one per kind of failure, so
//! that a script, a CI job or an orchestrator can tell a config to fix from
//! a port to free or a cluster it cannot reach, without reading the
//! message.
//!
//! The table is written once, here: `sluice --help` shows [`HELP`], and
//! the README's command-line section holds the same lines (a test checks
//! it).

use crate::Error;

/// How `sluice` exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done: `serve` stopped after a drain, `check` found no problem.
    Ok,
    /// Anything else that failed at run time: the async runtime, a signal
    /// handler, rustls' settings.
    Failure,
    /// The command line is wrong: clap's usage errors (an unknown flag, a
    /// bad value), and flags that contradict each other.
    Usage,
    /// The config was refused: the file cannot be read or does not
    /// validate, `--backend`s are listed twice, a certificate it names
    /// cannot be loaded. `sluice check` exits with it on any problem.
    Config,
    /// A listener's address cannot be bound (in use, or not ours to take).
    Bind,
    /// The Kubernetes client cannot be set up (`--kube`).
    Kube,
    /// A backend's DNS name does not resolve at start.
    Dns,
}

impl Exit {
    /// Every exit, in the order of its code.
    pub const ALL: [Exit; 7] = [
        Exit::Ok,
        Exit::Failure,
        Exit::Usage,
        Exit::Config,
        Exit::Bind,
        Exit::Kube,
        Exit::Dns,
    ];

    /// The process exit code.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Config => 3,
            Exit::Bind => 4,
            Exit::Kube => 5,
            Exit::Dns => 6,
        }
    }

    /// What the code means, as `--help` and the README say it.
    pub const fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "done (serve stopped after draining; check found no problem)",
            Exit::Failure => "any other failure at run time",
            Exit::Usage => "usage: a bad flag or value, or flags that contradict each other",
            Exit::Config => "config refused: unreadable, invalid, or a certificate it names cannot be loaded (check: any problem; migrate: anything that would serve differently)",
            Exit::Bind => "a listener's address cannot be bound",
            Exit::Kube => "the Kubernetes client cannot be set up (--kube)",
            Exit::Dns => "a backend's DNS name does not resolve at start",
        }
    }

    /// The exit for an error that stopped the proxy.
    pub fn of(e: &Error) -> Exit {
        match e {
            Error::Bind { .. } => Exit::Bind,
            Error::Config(_) | Error::Certificate(_) | Error::NoListener => Exit::Config,
            Error::Kube(_) => Exit::Kube,
            Error::Dns { .. } => Exit::Dns,
            Error::Signal { .. } | Error::Tls(_) => Exit::Failure,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

/// The table of exit codes, for `sluice --help`.
pub const HELP: &str = "\
Exit codes:
  0  done (serve stopped after draining; check found no problem)
  1  any other failure at run time
  2  usage: a bad flag or value, or flags that contradict each other
  3  config refused: unreadable, invalid, or a certificate it names cannot be loaded (check: any problem; migrate: anything that would serve differently)
  4  a listener's address cannot be bound
  5  the Kubernetes client cannot be set up (--kube)
  6  a backend's DNS name does not resolve at start";

#[cfg(test)]
mod tests {
    use super::*;

    /// `HELP` is a constant (clap takes a `&'static str`): it must say
    /// what `code` and `meaning` say.
    #[test]
    fn the_help_table_is_every_exit_in_order() {
        let lines: Vec<String> = Exit::ALL
            .iter()
            .map(|e| format!("  {}  {}", e.code(), e.meaning()))
            .collect();
        assert_eq!(HELP, format!("Exit codes:\n{}", lines.join("\n")));
        for (i, e) in Exit::ALL.iter().enumerate() {
            assert_eq!(usize::from(e.code()), i, "{e:?}");
        }
    }

    #[test]
    fn the_readme_has_the_same_table() {
        let readme = include_str!("../../README.md");
        for e in Exit::ALL {
            let row = format!("| {} | {} |", e.code(), e.meaning());
            assert!(readme.contains(&row), "README lacks: {row}");
        }
    }

    #[test]
    fn each_kind_of_error_has_its_code() {
        let io = || std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let bind = Error::Bind {
            addr: "127.0.0.1:1".parse().unwrap(),
            source: io(),
        };
        assert_eq!(Exit::of(&bind).code(), 4);
        let config = Error::Config(crate::config::ConfigError::Invalid {
            source_name: "t".into(),
            errors: Vec::new(),
        });
        assert_eq!(Exit::of(&config).code(), 3);
        let dns = Error::Dns {
            name: "app.internal:80".into(),
            source: crate::resolve::ResolveError::NoAddresses,
        };
        assert_eq!(Exit::of(&dns).code(), 6);
        assert_eq!(Exit::of(&Error::NoListener).code(), 3);
        let signal = Error::Signal {
            signal: "SIGTERM",
            source: io(),
        };
        assert_eq!(Exit::of(&signal).code(), 1);
    }
}
