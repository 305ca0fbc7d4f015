//! `sluice check`: a config file's every problem, each at its line, as
//! text for people or JSON for editors and CI.

use std::process::ExitCode;

use sluice::config;
use sluice::exit::Exit;

use super::args::Output;

/// What `sluice check --output json` prints.
#[derive(serde::Serialize)]
struct CheckReport {
    file: String,
    ok: bool,
    errors: Vec<config::FieldError>,
    warnings: Vec<config::FieldError>,
    routes: usize,
    default_backend: bool,
}

/// `sluice check`: every problem of the file, the certificates it names
/// read and checked too.
pub fn check(path: &std::path::Path, output: Output) -> ExitCode {
    let mut report = CheckReport {
        file: path.display().to_string(),
        ok: false,
        errors: Vec::new(),
        warnings: Vec::new(),
        routes: 0,
        default_backend: false,
    };
    match config::load_file(path) {
        Ok(c) => {
            report.warnings = c.warnings.clone();
            report.routes = c.routes.len();
            report.default_backend = c.default_backend.is_some();
            for (field, files) in c
                .tls
                .certificates
                .iter()
                .enumerate()
                .map(|(i, f)| (format!("tls.certificates[{i}]"), f))
                .chain(
                    c.tls
                        .default_certificate
                        .iter()
                        .map(|f| ("tls.default_certificate".to_owned(), f)),
                )
            {
                if let Err(e) = files.read().and_then(|b| files.parse(&b)) {
                    report.errors.push(config::FieldError {
                        field,
                        message: e.to_string(),
                        line: None,
                        column: None,
                    });
                }
            }
        }
        Err(e) => report.errors = e.problems(),
    }
    report.ok = report.errors.is_empty();
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Output::Text => {
            let at = |p: &config::FieldError| match (p.line, p.column) {
                (Some(l), Some(c)) => format!("{}:{l}:{c}", report.file),
                (Some(l), None) => format!("{}:{l}", report.file),
                _ => report.file.clone(),
            };
            let what = |p: &config::FieldError| {
                if p.field.is_empty() {
                    p.message.clone()
                } else {
                    format!("{}: {}", p.field, p.message)
                }
            };
            for w in &report.warnings {
                println!("{}: warning: {}", at(w), what(w));
            }
            for e in &report.errors {
                eprintln!("{}: {}", at(e), what(e));
            }
            if report.ok {
                println!(
                    "{}: ok ({}{})",
                    report.file,
                    config::count(report.routes, "route"),
                    if report.default_backend {
                        " and a default backend"
                    } else {
                        ""
                    }
                );
            } else {
                eprintln!(
                    "{}: {}",
                    report.file,
                    config::count(report.errors.len(), "error")
                );
            }
        }
    }
    if report.ok {
        Exit::Ok.into()
    } else {
        Exit::Config.into()
    }
}
