//! A real gRPC server and client for the tests: grpcio (Python), driven
//! through `tests/grpc/peer.py`. The test command installs grpcio into
//! the directory `SLUICE_TEST_PYTHONPATH` names (by default
//! `~/.cache/sluice-tests/python-grpc`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command};

use crate::workspace_root;

/// Where grpcio was installed.
fn pythonpath() -> PathBuf {
    match std::env::var_os("SLUICE_TEST_PYTHONPATH") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/sluice-tests/python-grpc"),
    }
}

fn peer() -> Command {
    let mut c = Command::new("python3");
    c.arg(workspace_root().join("tests/grpc/peer.py"))
        .env("PYTHONPATH", pythonpath());
    c
}

/// A gRPC server (service `sluice.test.Echo`) on 127.0.0.1, stopped when
/// dropped. `Say(x)` answers `NAME: x` (`missing` gets NOT_FOUND);
/// `Count(n)` streams `NAME 1` … `NAME n`.
pub struct GrpcServer {
    pub addr: SocketAddr,
    child: Child,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GrpcServer {
    /// Starts one; with `tls` (certificate and key files) it serves gRPC
    /// over TLS.
    pub async fn start(name: &str, tls: Option<(&Path, &Path)>) -> GrpcServer {
        let mut c = peer();
        c.arg("server").arg(name);
        if let Some((cert, key)) = tls {
            c.arg("--tls").arg(cert).arg(key);
        }
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().unwrap();
        // Its first line, read on the blocking pool.
        let first = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        let line = tokio::time::timeout(Duration::from_secs(30), first)
            .await
            .expect("the gRPC server starts within 30 s")
            .unwrap()
            .unwrap();
        if line.is_empty() {
            let _ = child.kill();
            panic!(
                "the gRPC server did not start: is grpcio installed in {}? \
                 scripts/test.sh installs it",
                pythonpath().display()
            );
        }
        let port: u16 = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the gRPC server said {line:?}"));
        GrpcServer {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        }
    }
}

/// Calls `method` (`Say` or `Count`) with `message` through `target` (a
/// plaintext HTTP/2 listener) with `:authority` `authority`: one line per
/// reply, or `status CODE details` for a failed call.
pub async fn grpc_call(target: SocketAddr, authority: &str, method: &str, message: &str) -> String {
    let mut c = peer();
    c.arg("client")
        .arg(target.to_string())
        .arg(authority)
        .arg(method)
        .arg(message);
    // The client gives up on its own after 20 s.
    let out = tokio::task::spawn_blocking(move || c.output())
        .await
        .unwrap()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the gRPC client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
