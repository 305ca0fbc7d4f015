//! `sluice-deploy image` and the docker-less app build against a real
//! registry: Debian's `docker-registry` (the CNCF distribution registry)
//! started by the test on 127.0.0.1 with plain HTTP. What was pushed is
//! read back through the registry API by hand, never with the pushing
//! code's own client.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sluice_integration::*;

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A `docker-registry serve` with its storage in a temp dir; killed on drop.
struct Registry {
    addr: SocketAddr,
    child: Child,
    dir: TempDir,
    _auth: Option<TempDir>,
}

impl Registry {
    async fn start() -> Registry {
        Self::start_with("").await
    }

    /// A registry that asks for `user` and `password` (htpasswd, bcrypt).
    async fn start_with_login(user: &str, password: &str) -> Registry {
        let hash = bcrypt::hash(password, 4).unwrap();
        let dir = TempDir::new();
        let file = dir.0.join("htpasswd");
        std::fs::write(&file, format!("{user}:{hash}\n")).unwrap();
        let mut r = Self::start_with(&format!(
            "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
            file.display()
        ))
        .await;
        r._auth = Some(dir);
        r
    }

    /// `extra` is appended to the config file.
    async fn start_with(extra: &str) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: run the tests with scripts/test.sh, which installs it \
             (or `apt-get install docker-registry`)"
        );
        let dir = TempDir::new();
        // Not from the ephemeral range: the registry binds it after this
        // process has let it go, and an outgoing connection of a test beside
        // this one could take such a port in between.
        let addr = stable_addr();
        let config = dir.0.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n{extra}",
                dir.0.join("storage").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.0.join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        let mut registry = Registry {
            addr,
            child,
            dir,
            _auth: None,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            // 200, or 401 from one that asks for a login: it is serving.
            if let Ok((200 | 401, _)) = fetch(addr, "/v2/", None).await {
                break;
            }
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited ({status}): {}", registry.log());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "docker-registry did not answer GET /v2/ within 30 s: {}",
                registry.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        registry
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("registry.log")).unwrap_or_default()
    }

    /// GETs `path`, failing the test unless it answers 200.
    async fn get(&self, path: &str, accept: Option<&str>) -> Bytes {
        let (status, body) = fetch(self.addr, path, accept).await.unwrap();
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        body
    }

    async fn manifest(&self, repo: &str, reference: &str) -> (Bytes, Value) {
        let bytes = self
            .get(
                &format!("/v2/{repo}/manifests/{reference}"),
                Some(OCI_MANIFEST),
            )
            .await;
        let json = serde_json::from_slice(&bytes).unwrap();
        (bytes, json)
    }

    async fn blob(&self, repo: &str, digest: &str) -> Bytes {
        let b = self.get(&format!("/v2/{repo}/blobs/{digest}"), None).await;
        assert_eq!(sha256(&b), digest, "the blob is what its digest says");
        b
    }

    async fn config(&self, repo: &str, manifest: &Value) -> Value {
        let digest = manifest["config"]["digest"].as_str().unwrap();
        serde_json::from_slice(&self.blob(repo, digest).await).unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One GET over plain HTTP: status and body.
async fn fetch(addr: SocketAddr, path: &str, accept: Option<&str>) -> Result<(u16, Bytes), String> {
    let mut req = Request::get(format!("http://{addr}{path}"));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let req = req.body(empty()).unwrap();
    let fut = async {
        let resp = client(None)
            .request(req)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .map_err(|_| "timed out".to_string())?
}

fn sha256(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A layer's entries: path → (mode, uid, contents).
fn untar_gz(gz: &[u8]) -> Vec<(String, u32, u64, Vec<u8>)> {
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut tar_bytes)
        .unwrap();
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let h = entry.header();
        out.push((
            entry.path().unwrap().display().to_string(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            data,
        ));
    }
    out
}

/// `sluice-deploy ARGS` with an empty docker config (no credentials of
/// whoever runs the tests).
fn deploy(args: &[&str], docker_config: &Path) -> Output {
    Command::new(deploy_bin())
        .args(args)
        .env("DOCKER_CONFIG", docker_config)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// The `…@sha256:…` reference `sluice-deploy image` printed.
fn pushed(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sluice-deploy image failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("pushed "))
        .unwrap_or_else(|| panic!("no `pushed REF` line in: {stdout}"));
    line.trim().to_owned()
}

fn digest_of(reference: &str) -> &str {
    let (_, digest) = reference
        .split_once('@')
        .unwrap_or_else(|| panic!("{reference} has no digest"));
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    digest
}

/// `sluice-deploy image` of /bin/true alone (no base) as `tag`, the
/// registry spoken to over plain HTTP when `insecure` names it.
fn push_true(tag: &str, insecure: Option<&str>, docker_config: &TempDir) -> Output {
    let mut args = vec![
        "image",
        "--tag",
        tag,
        "--base",
        "none",
        "--binary",
        "/bin/true",
    ];
    if let Some(host) = insecure {
        args.extend(["--insecure-registry", host]);
    }
    deploy(&args, &docker_config.0)
}

/// A small base image: /bin/true as its one layer. Returns its
/// `…@sha256:…` reference.
fn push_small_base(host: &str, tag: &str, docker_config: &TempDir) -> String {
    pushed(&push_true(tag, Some(host), docker_config))
}

/// A copy of the sluice binary: a build running beside the test may
/// replace the original while the test compares against it.
fn sluice_copy(dir: &TempDir) -> PathBuf {
    let copy = dir.0.join("sluice");
    std::fs::copy(sluice_bin(), &copy).unwrap();
    copy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_image_pulls_back_byte_identical_and_reproducibly() {
    let registry = Registry::start().await;
    let host = registry.host();
    let tmp = TempDir::new();
    let binary = sluice_copy(&tmp);
    let tag = format!("{host}/sluice:test");
    let args = [
        "image",
        "--tag",
        &tag,
        "--base",
        "none",
        "--binary",
        binary.to_str().unwrap(),
        "--insecure-registry",
        &host,
    ];
    let first = pushed(&deploy(&args, &tmp.0));
    assert!(first.starts_with(&format!("{tag}@sha256:")), "{first}");
    let digest = digest_of(&first).to_owned();

    // The manifest, by tag and by digest: OCI, one layer, the digest printed.
    let (bytes, manifest) = registry.manifest("sluice", "test").await;
    assert_eq!(
        sha256(&bytes),
        digest,
        "the printed digest is the manifest's"
    );
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    registry.manifest("sluice", &digest).await;
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "no base: the binary's layer alone");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    // The config runs the proxy as 65532, with its ports.
    let config = registry.config("sluice", &manifest).await;
    assert_eq!(config["os"], "linux");
    // The binary's own architecture, as Go (and OCI) name it.
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(config["architecture"], arch);
    let c = &config["config"];
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/usr/local/bin/sluice"])
    );
    // As proxy/Dockerfile's CMD: the in-cluster controller.
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["serve", "--config", "/etc/sluice/config.yaml", "--kube"])
    );
    assert_eq!(c["User"], "65532:65532");
    for port in ["8080/tcp", "8443/tcp", "9901/tcp"] {
        assert!(c["ExposedPorts"][port].is_object(), "{port} exposed: {c}");
    }
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), layers.len());

    // The layer holds the binary, byte for byte, executable.
    let layer_digest = layers[0]["digest"].as_str().unwrap();
    let gz = registry.blob("sluice", layer_digest).await;
    assert_eq!(gz.len() as u64, layers[0]["size"].as_u64().unwrap());
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut tar_bytes)
        .unwrap();
    assert_eq!(
        sha256(&tar_bytes),
        diff_ids[0].as_str().unwrap(),
        "diff_id is the uncompressed layer's digest"
    );
    let entries = untar_gz(&gz);
    let (_, mode, uid, data) = entries
        .iter()
        .find(|e| e.0 == "usr/local/bin/sluice")
        .unwrap_or_else(|| {
            panic!(
                "no usr/local/bin/sluice in {:?}",
                entries.iter().map(|e| &e.0).collect::<Vec<_>>()
            )
        });
    assert_eq!(*mode, 0o755);
    assert_eq!(*uid, 65532);
    assert!(
        *data == std::fs::read(&binary).unwrap(),
        "the binary in the image is not the one pushed"
    );

    // Pushing the same binary again gives the same image.
    let second = pushed(&deploy(&args, &tmp.0));
    assert_eq!(second, first, "the image is reproducible");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_dir_is_layered_onto_a_base() {
    let registry = Registry::start().await;
    let host = registry.host();
    let tmp = TempDir::new();
    let insecure = vec![host.clone()];

    // A small base, pushed the same way: /bin/true as its one layer.
    let base_tag = format!("{host}/base:1");
    let base_ref = push_small_base(&host, &base_tag, &tmp);
    assert!(
        base_ref.starts_with(&format!("{base_tag}@sha256:")),
        "{base_ref}"
    );
    let (_, base_manifest) = registry.manifest("base", "1").await;
    let base_config = registry.config("base", &base_manifest).await;

    // The app: two files, a subdirectory, and a .git left out.
    let app = tmp.0.join("app");
    std::fs::create_dir_all(app.join("static")).unwrap();
    std::fs::create_dir_all(app.join(".git")).unwrap();
    std::fs::write(app.join("server.py"), "print('hello')\n").unwrap();
    std::fs::write(app.join("static/index.html"), "<h1>hi</h1>\n").unwrap();
    std::fs::write(app.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();

    let tag = format!("{host}/shop/app:v1");
    let out = sluice_deploy::image::push_app_dir(
        &app,
        &base_tag,
        "python3 -m 'http.server' 8000",
        8000,
        &tag,
        &insecure,
    )
    .await
    .unwrap_or_else(|e| panic!("push_app_dir: {e}\nregistry log: {}", registry.log()));
    assert!(out.starts_with(&format!("{tag}@sha256:")), "{out}");

    let (bytes, manifest) = registry.manifest("shop/app", "v1").await;
    assert_eq!(sha256(&bytes), digest_of(&out));
    let layers = manifest["layers"].as_array().unwrap();
    let base_layers = base_manifest["layers"].as_array().unwrap();
    assert_eq!(
        layers.len(),
        base_layers.len() + 1,
        "the base's layers plus one"
    );
    for (l, b) in layers.iter().zip(base_layers) {
        assert_eq!(l["digest"], b["digest"]);
        // Copied into the new repository.
        registry
            .blob("shop/app", l["digest"].as_str().unwrap())
            .await;
    }

    let config = registry.config("shop/app", &manifest).await;
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let base_diff_ids = base_config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), layers.len());
    assert_eq!(&diff_ids[..base_diff_ids.len()], &base_diff_ids[..]);
    let c = &config["config"];
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["python3", "-m", "http.server", "8000"])
    );
    assert!(
        c["Entrypoint"].is_null(),
        "the base's Entrypoint is cleared: {c}"
    );
    assert_eq!(
        c["Env"], base_config["config"]["Env"],
        "the base's Env is kept"
    );
    assert!(c["ExposedPorts"]["8000/tcp"].is_object(), "{c}");

    let gz = registry
        .blob(
            "shop/app",
            layers.last().unwrap()["digest"].as_str().unwrap(),
        )
        .await;
    let entries = untar_gz(&gz);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "app/",
            "app/server.py",
            "app/static/",
            "app/static/index.html"
        ]
    );
    assert_eq!(entries[1].3, b"print('hello')\n");
}

#[test]
fn a_registry_that_is_not_there_and_a_bad_tag_say_so() {
    let tmp = TempDir::new();
    let dead = dead();
    let host = dead.addr.to_string();
    let tag = format!("{host}/sluice:test");
    let out = push_true(&tag, Some(&host), &tmp);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "pushing to nothing succeeded: {stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("registry {host}")), "{stderr}");
    assert!(stderr.contains("is a registry listening"), "{stderr}");

    // The same without --insecure-registry: the hint says how to add it.
    let out = push_true(&tag, None, &tmp);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--insecure-registry {host}")),
        "{stderr}"
    );

    let out = deploy(
        &[
            "image",
            "--tag",
            "Not A/Valid:Tag!",
            "--base",
            "none",
            "--binary",
            "/bin/true",
        ],
        &tmp.0,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid image reference"), "{stderr}");
}

/// `up --build DIR --base IMAGE --cmd …` on a machine without docker:
/// the folder is layered onto the base, pushed to the real registry, and
/// the Deployment applied to the tests' API server runs exactly that image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_builds_without_docker_pushes_and_deploys_what_it_pushed() {
    use sluice_integration::kube_api::{KubeApi, Rollouts};

    let registry = Registry::start().await;
    let host = registry.host();
    let tmp = TempDir::new();
    let base_tag = format!("{host}/base:1");
    push_small_base(&host, &base_tag, &tmp);
    let app = tmp.0.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("app.py"), "print('hello')\n").unwrap();

    let api = KubeApi::start().await;
    api.set_rollouts(Rollouts::Complete);
    api.set_lb_address(Some("127.0.0.1"));
    let image = format!("{host}/shop:1.0");
    let args: Vec<String> = [
        "--kubeconfig",
        &api.kubeconfig().display().to_string(),
        "up",
        "--name",
        "shop",
        "--build",
        &app.display().to_string(),
        "--base",
        &base_tag,
        "--cmd",
        "python3 app.py",
        "--image",
        &image,
        "--insecure-registry",
        &host,
        "--port",
        "8000",
        "--timeout",
        "20s",
        "--no-probe",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let docker_config = tmp.0.clone();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        deploy(&args, &docker_config)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "up --build failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("build and push {image}")),
        "{stdout}"
    );

    // The registry holds the app: the base's layer and the folder's.
    let (_, manifest) = registry.manifest("shop", "1.0").await;
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        2,
        "{manifest}"
    );
    let config = registry.config("shop", &manifest).await;
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["python3", "app.py"])
    );
    assert_eq!(config["config"]["WorkingDir"], "/app");

    // And the cluster runs what was pushed.
    let dep = api
        .get("Deployment", "default", "shop")
        .expect("Deployment");
    // By digest: pushing the tag again with new content rolls out.
    let deployed = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        deployed.starts_with(&format!("{image}@sha256:")),
        "{deployed}"
    );
    let (raw, _) = registry.manifest("shop", "1.0").await;
    assert_eq!(digest_of(&deployed), sha256(&raw));
}

/// A registry that wants a login refuses an anonymous push with advice,
/// and takes the push once the docker config holds the credentials (as
/// `registry-login` or `docker login` leave them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_refuses_the_push_says_to_log_in_and_a_login_works() {
    use base64::Engine;
    let registry = Registry::start_with_login("pusher", "s3cret-pass").await;
    let host = registry.host();
    let tmp = TempDir::new();
    let tag = format!("{host}/sluice:auth");
    let out = push_true(&tag, Some(&host), &tmp);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("registry {host} refused to push")),
        "{stderr}"
    );
    assert!(stderr.contains("log in first"), "{stderr}");

    let auth = base64::engine::general_purpose::STANDARD.encode("pusher:s3cret-pass");
    std::fs::write(
        tmp.0.join("config.json"),
        serde_json::json!({"auths": {host.clone(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let reference = pushed(&push_true(&tag, Some(&host), &tmp));
    assert!(
        reference.starts_with(&format!("{tag}@sha256:")),
        "{reference}"
    );
    assert!(
        !String::from_utf8_lossy(&push_true(&tag, Some(&host), &tmp).stderr)
            .contains("s3cret-pass")
    );
}
