//! DigitalOcean registry credentials, as `doctl registry login` and `doctl
//! registry kubernetes-manifest` get them: the API hands out a docker
//! config (`{"auths":{"registry.digitalocean.com":{"auth":"…"}}}`) for the
//! account's registry, which is kept in the docker config file for pushes
//! and stored as a `kubernetes.io/dockerconfigjson` Secret for pulls.
//!
//! The API token is only ever sent in the `Authorization` header: it is
//! never printed, logged or put in an error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::{source_chain, Error, Result};

/// DigitalOcean's registry host.
pub const DO_REGISTRY_HOST: &str = "registry.digitalocean.com";

/// Docker credentials for one registry host.
#[derive(Clone)]
pub struct Credentials {
    /// The registry host, e.g. registry.digitalocean.com.
    pub registry: String,
    /// The whole `.dockerconfigjson` document.
    pub docker_config: Value,
    /// The registry's name on DigitalOcean (registry.digitalocean.com/NAME).
    pub name: String,
}

// Credentials hold a password: Debug shows the hosts only.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("registry", &self.registry)
            .field("name", &self.name)
            .field("docker_config", &"<redacted>")
            .finish()
    }
}

/// What `registry-login` gets: read-write credentials to push with, and
/// read-only ones for the cluster's pull Secret (as `doctl registry
/// kubernetes-manifest` gives it), so that whoever can read Secrets in the
/// namespace cannot push images.
#[derive(Debug, Clone)]
pub struct Login {
    pub push: Credentials,
    pub pull: Credentials,
}

/// [`docker_credentials`] for pushing, then read-only credentials for
/// pulling. With `create`, an account without a registry gets one named
/// `registry` on the free tier first (what `doctl registry create` does).
pub async fn login(api_url: &str, token: &str, registry: &str, create: bool) -> Result<Login> {
    let push = docker_credentials_with(api_url, token, registry, create, true).await?;
    let pull = docker_credentials_with(api_url, token, registry, false, false).await?;
    Ok(Login { push, pull })
}

/// Asks DigitalOcean's API (`api_url`, e.g. https://api.digitalocean.com)
/// for read-write docker credentials, after checking that the token's
/// account owns the registry `registry` (its name, or
/// `registry.digitalocean.com/NAME`).
pub async fn docker_credentials(api_url: &str, token: &str, registry: &str) -> Result<Credentials> {
    docker_credentials_with(api_url, token, registry, false, true).await
}

async fn docker_credentials_with(
    api_url: &str,
    token: &str,
    registry: &str,
    create: bool,
    read_write: bool,
) -> Result<Credentials> {
    let wanted = registry
        .trim()
        .trim_start_matches(DO_REGISTRY_HOST)
        .trim_matches('/')
        .to_owned();
    if wanted.is_empty() || wanted.contains('/') {
        return Err(Error::Invalid(format!(
            "--registry {registry:?}: give the registry's name, as in registry.digitalocean.com/NAME"
        )));
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("sluice-deploy/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            Error::DigitalOcean(format!("cannot make an HTTP client: {}", source_chain(&e)))
        })?;
    let base = api_url.trim_end_matches('/');

    let (mut status, mut body) = get(&client, &format!("{base}/v2/registry"), token).await?;
    if status == 404 && create {
        // The free tier holds one repository; a paid tier is chosen in
        // DigitalOcean's console.
        let resp = client
            .post(format!("{base}/v2/registry"))
            .bearer_auth(token)
            .json(&json!({"name": wanted, "subscription_tier_slug": "starter"}))
            .send()
            .await
            .map_err(|e| {
                Error::DigitalOcean(format!("cannot reach the API: {}", source_chain(&e)))
            })?;
        status = resp.status().as_u16();
        body = resp.json().await.unwrap_or(Value::Null);
        if status != 201 && status != 200 {
            return Err(status_error(status, &body, "POST /v2/registry"));
        }
    }
    match status {
        200 | 201 => {}
        404 => {
            return Err(Error::DigitalOcean(format!(
                "this account has no registry: add --create to create {wanted}, \
                 or create one with `doctl registry create {wanted}`"
            )))
        }
        _ => return Err(status_error(status, &body, "GET /v2/registry")),
    }
    let actual = body["registry"]["name"].as_str().unwrap_or_default();
    if actual.is_empty() {
        return Err(Error::DigitalOcean(
            "GET /v2/registry answered without a registry name".into(),
        ));
    }
    if actual != wanted {
        return Err(Error::DigitalOcean(format!(
            "the token's account has registry {actual:?}, not {wanted:?}: \
             use --registry {actual}, or the token of the account that owns {wanted}"
        )));
    }

    let (status, docker_config) = get(
        &client,
        &format!("{base}/v2/registry/docker-credentials?read_write={read_write}"),
        token,
    )
    .await?;
    if status != 200 {
        return Err(status_error(
            status,
            &docker_config,
            "GET /v2/registry/docker-credentials",
        ));
    }
    let auths = docker_config["auths"]
        .as_object()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Error::DigitalOcean("the docker credentials hold no `auths`".into()))?;
    let host = if auths.contains_key(DO_REGISTRY_HOST) {
        DO_REGISTRY_HOST.to_owned()
    } else {
        auths.keys().next().cloned().unwrap_or_default()
    };
    Ok(Credentials {
        registry: host,
        docker_config,
        name: wanted,
    })
}

/// GETs `url` with the token; the status and the JSON body (Null if none).
async fn get(client: &reqwest::Client, url: &str, token: &str) -> Result<(u16, Value)> {
    let resp = client
        .get(url)
        .bearer_auth(token)
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| Error::DigitalOcean(format!("cannot reach the API: {}", source_chain(&e))))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| {
        Error::DigitalOcean(format!("reading the API's answer: {}", source_chain(&e)))
    })?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// An error status, with the API's own `message`.
fn status_error(status: u16, body: &Value, what: &str) -> Error {
    let message = body["message"].as_str().unwrap_or("");
    match status {
        401 => Error::DigitalOcean(format!(
            "the token was refused ({message}): check $DIGITALOCEAN_TOKEN (it needs registry read/write scope)"
        )),
        403 => Error::DigitalOcean(format!(
            "the token may not do this ({message}): it needs registry read/write scope"
        )),
        _ => Error::DigitalOcean(format!("{what} answered {status}: {message}")),
    }
}

/// Merges the credentials into the docker config file pushes read:
/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. Returns its
/// path.
pub fn save_docker_config(creds: &Credentials) -> Result<PathBuf> {
    let path = crate::image::docker_config_path().ok_or_else(|| {
        Error::Invalid(
            "neither $DOCKER_CONFIG nor $HOME is set: no docker config to save the credentials in"
                .into(),
        )
    })?;
    save_docker_config_at(&path, creds)?;
    Ok(path)
}

/// [`save_docker_config`] into `path`: its other registries and keys are
/// kept; the file is written whole (renamed into place) with mode 0600.
pub fn save_docker_config_at(path: &Path, creds: &Credentials) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| Error::Io { path: p, source }
    };
    let mut config = match std::fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => json!({}),
        Ok(b) => serde_json::from_slice::<Value>(&b)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{} is not a JSON object: fix or move it, then log in again",
                    path.display()
                ))
            })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(io(path)(e)),
    };
    if !config["auths"].is_object() {
        config["auths"] = json!({});
    }
    if let Some(auths) = creds.docker_config["auths"].as_object() {
        for (host, entry) in auths {
            config["auths"][host] = entry.clone();
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let tmp = dir.join(format!(".config.json.sluice-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    let mut text = serde_json::to_vec_pretty(&config).expect("JSON serializes");
    text.push(b'\n');
    let written = file.write_all(&text).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    Ok(())
}

/// The `kubernetes.io/dockerconfigjson` Secret for pods to pull with.
pub fn pull_secret(name: &str, namespace: &str, creds: &Credentials) -> Value {
    use base64::Engine as _;
    let config = serde_json::to_vec(&creds.docker_config).expect("JSON serializes");
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": crate::proxy::MANAGED_BY},
        },
        "type": "kubernetes.io/dockerconfigjson",
        "data": {
            ".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(config),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const TOKEN: &str = "dop_v1_secret-token";

    /// A fake DigitalOcean API on 127.0.0.1: answers `answer(path and
    /// query, Authorization header)` with a status and a JSON body, and
    /// keeps the request lines it saw.
    struct FakeApi {
        url: String,
        seen: Arc<Mutex<Vec<String>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for FakeApi {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn fake_api(answer: fn(&str, Option<&str>) -> (u16, Value)) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let mut lines = head.split("\r\n");
                let request_line = lines.next().unwrap_or_default().to_owned();
                let target = request_line
                    .split(' ')
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let auth = lines
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                    .map(|(_, v)| v.trim().to_owned());
                log.lock().unwrap().push(request_line);
                let (status, body) = answer(&target, auth.as_deref());
                let body = body.to_string();
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
                let _ = conn.shutdown().await;
            }
        });
        FakeApi { url, seen, task }
    }

    fn auth_b64() -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode("dotoken:dotoken")
    }

    /// DigitalOcean for an account with registry `my-reg`.
    fn do_api(target: &str, auth: Option<&str>) -> (u16, Value) {
        if auth != Some(&format!("Bearer {TOKEN}")) {
            return (
                401,
                json!({"id": "unauthorized", "message": "Unable to authenticate you"}),
            );
        }
        match target {
            "/v2/registry" => (
                200,
                json!({"registry": {"name": "my-reg", "region": "fra1"}}),
            ),
            "/v2/registry/docker-credentials?read_write=true" => (
                200,
                json!({"auths": {"registry.digitalocean.com": {"auth": auth_b64()}}}),
            ),
            _ => (404, json!({"id": "not_found", "message": "nope"})),
        }
    }

    #[tokio::test]
    async fn gets_read_write_credentials() {
        let api = fake_api(do_api).await;
        let creds = docker_credentials(&api.url, TOKEN, "my-reg").await.unwrap();
        assert_eq!(creds.registry, "registry.digitalocean.com");
        assert_eq!(creds.name, "my-reg");
        assert_eq!(
            creds.docker_config["auths"]["registry.digitalocean.com"]["auth"],
            auth_b64()
        );
        assert_eq!(
            *api.seen.lock().unwrap(),
            [
                "GET /v2/registry HTTP/1.1",
                "GET /v2/registry/docker-credentials?read_write=true HTTP/1.1"
            ]
        );
        // The full registry path works too, and Debug shows no secret.
        let creds = docker_credentials(&api.url, TOKEN, "registry.digitalocean.com/my-reg")
            .await
            .unwrap();
        let shown = format!("{creds:?}");
        assert!(!shown.contains(&auth_b64()), "{shown}");
    }

    #[tokio::test]
    async fn names_the_accounts_registry() {
        let api = fake_api(do_api).await;
        let e = docker_credentials(&api.url, TOKEN, "other-reg")
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("\"my-reg\"") && msg.contains("--registry my-reg"),
            "{msg}"
        );
        assert!(!msg.contains(TOKEN));
        // No credentials were asked for.
        assert_eq!(api.seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn refused_token() {
        let api = fake_api(do_api).await;
        let e = docker_credentials(&api.url, "wrong-token", "my-reg")
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("the token was refused"), "{msg}");
        assert!(msg.contains("$DIGITALOCEAN_TOKEN"), "{msg}");
        assert!(!msg.contains("wrong-token"), "{msg}");
    }

    #[tokio::test]
    async fn account_without_registry() {
        let api =
            fake_api(|_, _| (404, json!({"id": "not_found", "message": "no registry"}))).await;
        let e = docker_credentials(&api.url, TOKEN, "my-reg")
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("doctl registry create my-reg"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn unreachable_api() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = docker_credentials(&format!("http://{addr}"), TOKEN, "my-reg")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cannot reach the API"), "{e}");
        assert!(!e.to_string().contains(TOKEN));
    }

    fn creds() -> Credentials {
        Credentials {
            registry: DO_REGISTRY_HOST.into(),
            docker_config: json!({"auths": {DO_REGISTRY_HOST: {"auth": auth_b64()}}}),
            name: "my-reg".into(),
        }
    }

    #[test]
    fn saving_merges_and_keeps_the_file_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("sluice-docker-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("nested").join("config.json");

        save_docker_config_at(&path, &creds()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let saved: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(saved["auths"][DO_REGISTRY_HOST]["auth"], auth_b64());

        // Other registries and keys survive; ours is replaced.
        std::fs::write(
            &path,
            json!({
                "auths": {"ghcr.io": {"auth": "Z2g6eA=="}, DO_REGISTRY_HOST: {"auth": "old"}},
                "credHelpers": {"gcr.io": "gcloud"}
            })
            .to_string(),
        )
        .unwrap();
        save_docker_config_at(&path, &creds()).unwrap();
        let saved: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(saved["auths"]["ghcr.io"]["auth"], "Z2g6eA==");
        assert_eq!(saved["auths"][DO_REGISTRY_HOST]["auth"], auth_b64());
        assert_eq!(saved["credHelpers"]["gcr.io"], "gcloud");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // And image pushes read it back.
        assert_eq!(
            crate::image::registry_auth_from(&saved, DO_REGISTRY_HOST),
            oci_client::secrets::RegistryAuth::Basic("dotoken".into(), "dotoken".into())
        );

        // A file that is not JSON is left alone.
        std::fs::write(&path, "not json").unwrap();
        assert!(save_docker_config_at(&path, &creds()).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not json");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pull_secret_is_a_dockerconfigjson() {
        use base64::Engine as _;
        let s = pull_secret("my-reg", "shop", &creds());
        assert_eq!(s["apiVersion"], "v1");
        assert_eq!(s["kind"], "Secret");
        assert_eq!(s["type"], "kubernetes.io/dockerconfigjson");
        assert_eq!(s["metadata"]["name"], "my-reg");
        assert_eq!(s["metadata"]["namespace"], "shop");
        assert_eq!(
            s["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "sluice-deploy"
        );
        let data = base64::engine::general_purpose::STANDARD
            .decode(s["data"][".dockerconfigjson"].as_str().unwrap())
            .unwrap();
        let config: Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(config, creds().docker_config);
    }
}
