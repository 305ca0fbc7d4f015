//! The programs tests run: the workspace's binaries (built once per test
//! process, so a test never runs a stale one) and command-line clients.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

/// The `sluice` binary, built once per test process so tests never run a
/// stale one; `SLUICE_BIN` names another (the benches run a release build).
pub fn sluice_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("SLUICE_BIN") {
        return PathBuf::from(bin);
    }
    static BUILD: Once = Once::new();
    workspace_bin(&BUILD, "sluice", "sluice")
}

/// The `sluice-deploy` binary, built once per test process.
pub fn deploy_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    workspace_bin(&BUILD, "sluice-deploy", "sluice-deploy")
}

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn workspace_bin(once: &Once, package: &str, bin: &str) -> PathBuf {
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    once.call_once(|| {
        if std::env::var_os("SLUICE_SKIP_BUILD").is_some() {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", package, "--bin", bin])
            .current_dir(&root);
        // What `cargo test` sets for this crate is not the environment of a
        // plain build: left in, it makes build scripts that watch it (ring
        // watches CARGO_MANIFEST_DIR) rebuild, and the binary with them.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_MANIFEST_")
                || k.starts_with("CARGO_CRATE_")
                || k.starts_with("CARGO_BIN_")
                || k == "CARGO_PRIMARY_PACKAGE"
                || k == "CARGO_TARGET_TMPDIR"
            {
                cmd.env_remove(&*k);
            }
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building the {bin} binary failed");
    });
    let bin = target.join("debug").join(bin);
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}

/// Runs a command-line client (curl and friends) and returns its stdout,
/// panicking with its stderr when it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} cannot run ({e}): the test command installs it"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
