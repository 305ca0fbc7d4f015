//! The `sluice` process under test: started on free ports, ready once
//! `/readyz` says so, and killed when the test ends. Also what a test asks
//! of it: its logs, signals, memory, descriptors and metrics.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::{fill, free_addrs, get, sluice_bin, TempDir};

/// A running `sluice` process, killed on drop. Its stderr goes to a file
/// that [`Sluice::log`] reads.
pub struct Sluice {
    pub child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// Reserved for HTTPS: arguments and config templates name it
    /// `{LISTEN_TLS}`.
    pub tls: SocketAddr,
    log: PathBuf,
    _dir: TempDir,
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sluice {
    /// Starts `sluice serve` with `--listen` and `--admin` on fresh ports
    /// plus `args` (where `{LISTEN_TLS}` becomes a third fresh port), and
    /// waits until `/readyz` answers 200.
    pub async fn serve(args: &[&str]) -> Sluice {
        // The addresses are free when chosen, but another socket may take
        // one before the proxy binds it: then it is tried again, afresh.
        for _ in 0..3 {
            let [listen, admin, tls] = free_addrs();
            let mut full: Vec<String> = vec![
                "serve".into(),
                "--listen".into(),
                listen.to_string(),
                "--admin".into(),
                admin.to_string(),
            ];
            full.extend(
                args.iter()
                    .map(|s| s.replace("{LISTEN_TLS}", &tls.to_string())),
            );
            if let Some(s) = Self::spawn(full, [listen, admin, tls], TempDir::new()).await {
                return s;
            }
        }
        panic!("three sets of free addresses were all taken before sluice could bind them");
    }

    /// Starts `sluice serve --config FILE` where FILE holds `yaml` with
    /// `{LISTEN}`, `{ADMIN}` and `{LISTEN_TLS}` replaced by fresh
    /// addresses (and `{TLS_PORT}` by the last one's port). Returns the
    /// process and the file's path, for reload tests.
    pub async fn with_config(yaml: &str) -> (Sluice, PathBuf) {
        Self::with_config_args(yaml, &[]).await
    }

    /// [`Sluice::with_config`] with flags after `--config FILE`.
    pub async fn with_config_args(yaml: &str, extra: &[&str]) -> (Sluice, PathBuf) {
        for _ in 0..3 {
            let [listen, admin, tls] = free_addrs();
            let dir = TempDir::new();
            let path = dir.0.join("sluice.yaml");
            let text = fill(yaml, listen, admin)
                .replace("{LISTEN_TLS}", &tls.to_string())
                .replace("{TLS_PORT}", &tls.port().to_string());
            std::fs::write(&path, text).unwrap();
            let mut args = vec![
                "serve".to_string(),
                "--config".into(),
                path.display().to_string(),
            ];
            args.extend(extra.iter().map(|a| a.to_string()));
            if let Some(s) = Self::spawn(args, [listen, admin, tls], dir).await {
                return (s, path);
            }
        }
        panic!("three sets of free addresses were all taken before sluice could bind them");
    }

    /// Starts the process and waits for `/readyz`. `None` when it could
    /// not bind an address (taken since it was chosen); any other early
    /// exit fails the test.
    async fn spawn(args: Vec<String>, addrs: [SocketAddr; 3], dir: TempDir) -> Option<Sluice> {
        let [listen, admin, tls] = addrs;
        let log = dir.0.join("sluice.log");
        let mut args = args;
        if args.first().is_some_and(|a| a == "serve") && hyper_only() {
            args.push("--no-fast-path".into());
        }
        let stdout = dir.0.join("stdout.log");
        let child = Command::new(sluice_bin())
            .args(&args)
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("sluice starts");
        let mut s = Sluice {
            child,
            listen,
            admin,
            tls,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = s.child.try_wait() {
                let log = s.log();
                if log.contains("Address already in use") {
                    return None;
                }
                panic!("sluice exited with {status} before it was ready:\n{log}");
            }
            if let Ok((200, _)) = get(s.admin, "/readyz").await {
                return Some(s);
            }
            assert!(
                Instant::now() < deadline,
                "sluice not ready in time:\n{}",
                s.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.listen, path)
    }

    /// What the process has logged so far.
    /// What the process wrote on stdout: the access log.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self._dir.0.join("stdout.log")).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Sends a signal (`TERM`, `HUP`, `INT`) to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit; returns its exit code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "sluice did not exit in {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process's resident memory now, and at its peak so far, in KiB
    /// (VmRSS and VmHWM).
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// The process's open file descriptors.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// A metric's value from `/metrics` (the first line starting with `series`).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = get(self.admin, "/metrics").await.ok()?;
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Sluice {
    /// A config template filled with this process's addresses.
    pub fn fill(&self, yaml: &str) -> String {
        fill(yaml, self.listen, self.admin)
            .replace("{LISTEN_TLS}", &self.tls.to_string())
            .replace("{TLS_PORT}", &self.tls.port().to_string())
    }
}

/// True when the suite runs with the HTTP/1.1 fast path turned off
/// (`SLUICE_TEST_HYPER_ONLY=1`): every test then goes through hyper alone,
/// and the two runs check that both paths behave alike.
pub fn hyper_only() -> bool {
    std::env::var_os("SLUICE_TEST_HYPER_ONLY").is_some_and(|v| v == "1")
}
