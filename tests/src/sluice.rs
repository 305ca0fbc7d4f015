//! The `sluice` process under test: started with its listeners on port 0,
//! their real addresses read from the lines it prints when bound
//! (`listening on ADDR (http|https|admin)`), ready once `/readyz` says so,
//! and killed when the test ends. Also what a test asks of it: its logs,
//! signals, memory, descriptors and metrics.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::{free_addr, get, sluice_bin, TempDir};

/// What a listener asks for when any port will do: the kernel picks one,
/// and the process prints it.
pub const ANY_PORT: &str = "127.0.0.1:0";

/// A running `sluice` process, killed on drop. Its stderr goes to a file
/// that [`Sluice::log`] reads.
pub struct Sluice {
    pub child: Child,
    /// The first plain HTTP listener, as bound.
    pub listen: SocketAddr,
    /// The admin listener, as bound.
    pub admin: SocketAddr,
    /// Every traffic listener as bound, HTTPS ones marked `true`, in the
    /// order the process printed them.
    pub listeners: Vec<(SocketAddr, bool)>,
    /// What `{LISTEN}`, `{ADMIN}` and `{LISTEN_TLS}` stood for when it
    /// started, so that a rewritten config asks for the same listeners.
    asked: Placeholders,
    log: PathBuf,
    dir: TempDir,
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The addresses a config template or argument list is filled with.
#[derive(Debug, Clone)]
struct Placeholders {
    listen: String,
    admin: String,
    tls: String,
}

impl Placeholders {
    /// Every listener on a port the kernel picks.
    fn any() -> Self {
        Placeholders {
            listen: ANY_PORT.into(),
            admin: ANY_PORT.into(),
            tls: ANY_PORT.into(),
        }
    }

    /// Fills `{LISTEN}`, `{ADMIN}`, `{LISTEN_TLS}` and `{TLS_PORT}`.
    fn fill(&self, text: &str) -> String {
        let tls_port = self.tls.rsplit(':').next().unwrap_or_default();
        text.replace("{LISTEN}", &self.listen)
            .replace("{ADMIN}", &self.admin)
            .replace("{LISTEN_TLS}", &self.tls)
            .replace("{TLS_PORT}", tls_port)
    }
}

/// True when the suite runs with the HTTP/1.1 fast path turned off
/// (`SLUICE_TEST_HYPER_ONLY=1`): every test then goes through hyper alone,
/// and the two runs check that both paths behave alike.
pub fn hyper_only() -> bool {
    std::env::var_os("SLUICE_TEST_HYPER_ONLY").is_some_and(|v| v == "1")
}

impl Sluice {
    /// Starts `sluice serve --listen 127.0.0.1:0 --admin 127.0.0.1:0` plus
    /// `args` (where `{LISTEN_TLS}` is `127.0.0.1:0` too, for
    /// `--listen-tls`), and waits until `/readyz` answers 200.
    pub async fn serve(args: &[&str]) -> Sluice {
        let asked = Placeholders::any();
        let mut full: Vec<String> = vec![
            "serve".into(),
            "--listen".into(),
            asked.listen.clone(),
            "--admin".into(),
            asked.admin.clone(),
        ];
        full.extend(args.iter().map(|a| asked.fill(a)));
        Self::spawn(full, asked, TempDir::new())
            .await
            .unwrap_or_else(|log| panic!("sluice could not bind port 0:\n{log}"))
    }

    /// Starts `sluice serve --config FILE` where FILE holds `yaml` with
    /// `{LISTEN}`, `{ADMIN}` and `{LISTEN_TLS}` replaced by `127.0.0.1:0`.
    /// Returns the process and the file's path, for reload tests.
    ///
    /// A template that names `{TLS_PORT}` needs the HTTPS port before the
    /// process starts: that listener then gets a free port chosen here,
    /// which another socket may take first, and the start is tried again.
    pub async fn with_config(yaml: &str) -> (Sluice, PathBuf) {
        Self::with_config_args(yaml, &[]).await
    }

    /// [`Sluice::with_config`] with flags after `--config FILE`.
    pub async fn with_config_args(yaml: &str, extra: &[&str]) -> (Sluice, PathBuf) {
        let tls_port_known = yaml.contains("{TLS_PORT}");
        let tries = if tls_port_known { 3 } else { 1 };
        let mut last = String::new();
        for _ in 0..tries {
            let mut asked = Placeholders::any();
            if tls_port_known {
                asked.tls = free_addr().to_string();
            }
            let dir = TempDir::new();
            let path = dir.0.join("sluice.yaml");
            std::fs::write(&path, asked.fill(yaml)).unwrap();
            let mut args = vec![
                "serve".to_string(),
                "--config".into(),
                path.display().to_string(),
            ];
            args.extend(extra.iter().map(|a| a.to_string()));
            match Self::spawn(args, asked, dir).await {
                Ok(s) => return (s, path),
                Err(log) => last = log,
            }
        }
        panic!("sluice could not bind its listeners in {tries} tries:\n{last}");
    }

    /// Starts the process, reads the addresses it bound and waits for
    /// `/readyz`. `Err(log)` when it could not bind an address (one
    /// chosen in advance, taken since); any other early exit fails the
    /// test.
    async fn spawn(args: Vec<String>, asked: Placeholders, dir: TempDir) -> Result<Sluice, String> {
        let log = dir.0.join("sluice.log");
        let mut args = args;
        if args.first().is_some_and(|a| a == "serve") && hyper_only() {
            args.push("--no-fast-path".into());
        }
        let stdout = dir.0.join("stdout.log");
        let mut child = Command::new(sluice_bin())
            .args(&args)
            // SLUICE_TEST_LOG=debug: a failing test's whole story in `log()`.
            .env(
                "RUST_LOG",
                std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("sluice starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        // The admin line comes last: once it is there, so are the others.
        let printed = loop {
            let printed = bound(&read(&stdout));
            if printed.iter().any(|(_, kind)| kind == "admin") {
                break printed;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let text = read(&log);
                if text.contains("Address already in use") {
                    return Err(text);
                }
                panic!("sluice exited with {status} before it was ready:\n{text}");
            }
            if Instant::now() > deadline {
                // Not yet a Sluice, which would kill it on drop.
                let _ = child.kill();
                let _ = child.wait();
                panic!("sluice printed no admin address in time:\n{}", read(&log));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let admin = printed.iter().find(|(_, k)| k == "admin").unwrap().0;
        let traffic: Vec<(SocketAddr, bool)> = printed
            .iter()
            .filter(|(_, k)| k != "admin")
            .map(|(a, k)| (*a, k == "https"))
            .collect();
        let Some(listen) = traffic.iter().find(|(_, https)| !https).map(|(a, _)| *a) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sluice printed no plain HTTP listener:\n{}", read(&stdout));
        };
        let mut s = Sluice {
            child,
            listen,
            admin,
            listeners: traffic,
            asked,
            log,
            dir,
        };
        loop {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!(
                    "sluice exited with {status} before it was ready:\n{}",
                    s.log()
                );
            }
            if let Ok((200, _)) = get(s.admin, "/readyz").await {
                return Ok(s);
            }
            assert!(
                Instant::now() < deadline,
                "sluice not ready in time:\n{}",
                s.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The first HTTPS listener, as bound.
    pub fn tls(&self) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(_, https)| *https)
            .map(|(a, _)| *a)
            .expect("this sluice has no HTTPS listener (--listen-tls {LISTEN_TLS})")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.listen, path)
    }

    /// What the process wrote on stdout: a line per listener bound, then
    /// the access log.
    pub fn stdout(&self) -> String {
        read(&self.dir.0.join("stdout.log"))
    }

    /// What the process has logged so far (its stderr).
    pub fn log(&self) -> String {
        read(&self.log)
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

    /// A config template filled as the one it started with: `{LISTEN}`,
    /// `{ADMIN}` and `{LISTEN_TLS}` ask for the same listeners (port 0
    /// stays port 0, so a reload sees no listener change).
    pub fn fill(&self, yaml: &str) -> String {
        self.asked.fill(yaml)
    }

    /// [`Sluice::fill`] as a value of its own, for another thread.
    pub fn filler(&self) -> impl Fn(&str) -> String + Send + 'static {
        let asked = self.asked.clone();
        move |yaml| asked.fill(yaml)
    }
}

/// The listeners a process printed on stdout, `listening on ADDR (KIND)`,
/// in order.
fn bound(stdout: &str) -> Vec<(SocketAddr, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let (addr, kind) = l.strip_prefix("listening on ")?.split_once(" (")?;
            Some((addr.parse().ok()?, kind.strip_suffix(')')?.to_owned()))
        })
        .collect()
}

/// A file's text so far, empty when it cannot be read.
fn read(path: &std::path::Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}
