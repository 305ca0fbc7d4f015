//! OCI images without docker, the way `ko` and `jib` build them: pull the
//! base image's manifest and config, add ONE new gzip'd tar layer made
//! here, write a new config and an OCI manifest, and push the blobs and
//! the manifest with `oci-client`.
//!
//! Everything that goes into the new layer and the config is fixed (file
//! times, owners, the `created` dates), so the same inputs always give the
//! same digest: pushing twice pushes nothing new.
//!
//! Registries are spoken to over HTTPS, except the `HOST:PORT`s named with
//! `--insecure-registry`, which get plain HTTP. Credentials come from the
//! docker config file (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`), as `docker login` and `sluice-deploy
//! registry-login` write it; credential helpers (`credsStore`) are not
//! consulted.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    ImageIndexEntry, OciDescriptor, OciImageManifest, IMAGE_CONFIG_MEDIA_TYPE,
    IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE, IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE,
    IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{source_chain, Error, Result};

/// Where the proxy binary lives in its image.
pub const PROXY_BINARY_PATH: &str = "usr/local/bin/sluice";
/// The user the proxy runs as (distroless' `nonroot`), owner of its binary.
pub const PROXY_USER: &str = "65532:65532";
const PROXY_UID: u64 = 65532;
/// The ports the proxy listens on: HTTP, HTTPS and admin.
pub const PROXY_PORTS: [u16; 3] = [8080, 8443, 9901];
/// Where an app directory goes in its image.
pub const APP_DIR: &str = "app";
/// The date written into configs and history, for reproducible digests.
const EPOCH: &str = "1970-01-01T00:00:00Z";
/// The modification time of every file in the layers made here.
const MTIME: u64 = 0;
/// `PATH` of an image with no base.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The architecture of app images: what DigitalOcean's nodes run.
const APP_ARCH: &str = "amd64";

/// The Sluice image's default command, as in `proxy/Dockerfile`: the
/// in-cluster controller reading the chart's config (the chart passes its
/// own arguments anyway).
pub const PROXY_CMD: [&str; 4] = ["serve", "--config", "/etc/sluice/config.yaml", "--kube"];

/// The base of the Sluice image, as in `proxy/Dockerfile`: glibc and CA
/// certificates, no shell, no package manager.
pub const DEFAULT_PROXY_BASE: &str = "gcr.io/distroless/cc-debian12:nonroot";

/// Parses an image reference, with a message that says how to write one.
pub fn parse_reference(s: &str) -> Result<oci_client::Reference> {
    s.parse::<oci_client::Reference>()
        .map_err(|e| Error::InvalidImage {
            reference: s.to_owned(),
            reason: e.to_string(),
        })
}

/// A reference to push to: it needs a tag (a digest is what a push
/// produces, not what it is told).
fn push_reference(s: &str) -> Result<Reference> {
    let r = parse_reference(s)?;
    if r.digest().is_some() {
        return Err(Error::InvalidImage {
            reference: s.to_owned(),
            reason: "an image is pushed to a tag; leave the @sha256:… digest out".into(),
        });
    }
    Ok(r)
}

// ------------------------------------------------------------------ pushes

/// Pushes the Sluice image: `base` (or nothing) plus one layer holding
/// `binary` at `/usr/local/bin/sluice`. Returns the pushed reference with
/// its digest, `REGISTRY/REPOSITORY:TAG@sha256:…`.
pub async fn push_proxy_image(
    binary: &Path,
    base: Option<&str>,
    tag: &str,
    insecure: &[String],
) -> Result<String> {
    let target = push_reference(tag)?;
    let base_ref = base.map(parse_reference).transpose()?;
    let bytes = tokio::fs::read(binary).await.map_err(|source| Error::Io {
        path: binary.to_owned(),
        source,
    })?;
    let exe = Executable::inspect(&bytes).ok_or_else(|| {
        Error::Invalid(format!(
            "{} is not a Linux executable (ELF): build sluice for Linux, e.g. --target x86_64-unknown-linux-musl",
            binary.display()
        ))
    })?;
    if base.is_none() {
        if let Some(interp) = &exe.interpreter {
            tracing::warn!(
                "{} is dynamically linked (it needs {interp}) and the image has no base, so no libc: \
                 build sluice for a musl target, or add --base gcr.io/distroless/cc-debian12",
                binary.display()
            );
        }
    }
    let client = client(insecure, exe.arch.clone());
    login(&client, &target, insecure).await?;
    let base = match &base_ref {
        Some(r) => Some(pull_base(&client, r, insecure).await?),
        None => None,
    };
    let layer = tokio::task::spawn_blocking(move || binary_layer(&bytes))
        .await
        .map_err(|e| Error::Invalid(format!("building the layer: {e}")))?
        .map_err(|source| Error::Io {
            path: binary.to_owned(),
            source,
        })?;
    let config = proxy_config(base.as_ref().map(|b| &b.config), &exe.arch, &layer.diff_id)?;
    push_image(&client, &target, base.as_ref(), &layer, &config, insecure).await
}

/// Pushes `dir` layered onto `base` under `/app`, running `cmd` there,
/// listening on `port`. Returns the pushed reference with its digest.
///
/// `cmd` is split into words as a shell would split a simple command:
/// on whitespace, with '…' and "…" quoting and `\` escapes, but without
/// variables, globs or pipes; for those, say `sh -c '…'`. The base's
/// Entrypoint is cleared so that the image runs `cmd` as given; its Env is
/// kept.
pub async fn push_app_dir(
    dir: &Path,
    base: &str,
    cmd: &str,
    port: u16,
    tag: &str,
    insecure: &[String],
) -> Result<String> {
    let target = push_reference(tag)?;
    let base_ref = parse_reference(base)?;
    let words = split_command(cmd)?;
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "--build {}: not a directory",
            dir.display()
        )));
    }
    let client = client(insecure, APP_ARCH.to_owned());
    login(&client, &target, insecure).await?;
    let base = pull_base(&client, &base_ref, insecure).await?;
    let owned = dir.to_owned();
    let layer = tokio::task::spawn_blocking(move || dir_layer(&owned))
        .await
        .map_err(|e| Error::Invalid(format!("building the layer: {e}")))??;
    let config = app_config(&base.config, &words, port, &layer.diff_id)?;
    push_image(&client, &target, Some(&base), &layer, &config, insecure).await
}

/// The digest-pinned form (`REF@sha256:…`) of an image in its registry.
/// Deployments run that, not the tag: a tag pushed again with new content
/// would otherwise change nothing in the Deployment, and roll nothing out.
pub async fn resolve_digest(reference: &str, insecure: &[String]) -> Result<String> {
    let r = parse_reference(reference)?;
    let client = client(insecure, std::env::consts::ARCH.to_owned());
    let auth = registry_auth(r.resolve_registry());
    let digest = client
        .fetch_manifest_digest(&r, &auth)
        .await
        .map_err(|e| registry_error(&r, "pull", &e, insecure))?;
    let without_digest = reference.split('@').next().unwrap_or(reference);
    Ok(format!("{without_digest}@{digest}"))
}

/// A base image: its manifest and config, and where it came from.
struct Base {
    reference: Reference,
    manifest: OciImageManifest,
    config: Value,
}

fn client(insecure: &[String], arch: String) -> Client {
    // reqwest is built without a default crypto provider; the binary
    // installs ring at start, this covers library callers (tests).
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure.to_vec()),
        // A multi-platform base: the linux image of the binary's architecture.
        platform_resolver: Some(Box::new(move |entries: &[ImageIndexEntry]| {
            entries
                .iter()
                .find(|e| {
                    e.platform.as_ref().is_some_and(|p| {
                        p.os.to_string() == "linux" && p.architecture.to_string() == arch
                    })
                })
                .map(|e| e.digest.clone())
        })),
        connect_timeout: Some(Duration::from_secs(30)),
        ..Default::default()
    })
}

/// Asks the target registry for push access before any work: a registry
/// that is down, speaks no TLS or refuses the credentials fails here, not
/// after the layer is built.
async fn login(client: &Client, target: &Reference, insecure: &[String]) -> Result<()> {
    let auth = registry_auth(target.resolve_registry());
    client
        .auth(target, &auth, RegistryOperation::Push)
        .await
        .map(drop)
        .map_err(|e| registry_error(target, "push", &e, insecure))
}

async fn pull_base(client: &Client, base: &Reference, insecure: &[String]) -> Result<Base> {
    let host = base.resolve_registry();
    let auth = registry_auth(host);
    let (manifest, _digest, config) = client
        .pull_manifest_and_config(base, &auth)
        .await
        .map_err(|e| registry_error(base, "pull", &e, insecure))?;
    let config: Value = serde_json::from_str(&config).map_err(|e| Error::Registry {
        registry: base.registry().to_owned(),
        action: "pull",
        reference: base.whole(),
        reason: format!("its config is not JSON: {e}"),
        hint: String::new(),
    })?;
    let diff_ids = config["rootfs"]["diff_ids"].as_array().map_or(0, Vec::len);
    if diff_ids != manifest.layers.len() {
        return Err(Error::Registry {
            registry: base.registry().to_owned(),
            action: "pull",
            reference: base.whole(),
            reason: format!(
                "its manifest has {} layers but its config {diff_ids} diff_ids",
                manifest.layers.len()
            ),
            hint: String::new(),
        });
    }
    Ok(Base {
        reference: base.clone(),
        manifest,
        config,
    })
}

/// Pushes the base's layers (those the target lacks), the new layer, the
/// config and the manifest. Returns `REGISTRY/REPOSITORY:TAG@DIGEST`.
async fn push_image(
    client: &Client,
    target: &Reference,
    base: Option<&Base>,
    layer: &Layer,
    config: &Value,
    insecure: &[String],
) -> Result<String> {
    let push_err = |e: OciDistributionError| registry_error(target, "push", &e, insecure);
    let mut layers = Vec::new();
    if let Some(base) = base {
        for d in &base.manifest.layers {
            copy_blob(client, base, target, d, insecure).await?;
            layers.push(OciDescriptor {
                media_type: oci_layer_media_type(&d.media_type),
                digest: d.digest.clone(),
                size: d.size,
                urls: d.urls.clone(),
                annotations: d.annotations.clone(),
                ..Default::default()
            });
        }
    }

    let layer_digest = sha256_digest(&layer.gzip);
    if !client
        .blob_exists(target, &layer_digest)
        .await
        .map_err(push_err)?
    {
        client
            .push_blob(target, layer.gzip.clone(), &layer_digest)
            .await
            .map_err(push_err)?;
    }
    layers.push(OciDescriptor {
        media_type: IMAGE_LAYER_GZIP_MEDIA_TYPE.to_owned(),
        digest: layer_digest,
        size: layer.gzip.len() as i64,
        ..Default::default()
    });

    let config_bytes = serde_json::to_vec(config).expect("a JSON value serializes");
    let config_digest = sha256_digest(&config_bytes);
    if !client
        .blob_exists(target, &config_digest)
        .await
        .map_err(push_err)?
    {
        client
            .push_blob(target, config_bytes.clone(), &config_digest)
            .await
            .map_err(push_err)?;
    }

    let manifest = image_manifest(
        OciDescriptor {
            media_type: IMAGE_CONFIG_MEDIA_TYPE.to_owned(),
            digest: config_digest,
            size: config_bytes.len() as i64,
            ..Default::default()
        },
        layers,
    );
    let manifest_bytes = serde_json::to_vec(&manifest).expect("a manifest serializes");
    let digest = sha256_digest(&manifest_bytes);
    client
        .push_manifest_raw(
            target,
            manifest_bytes,
            reqwest::header::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
        )
        .await
        .map_err(push_err)?;
    Ok(format!(
        "{}/{}:{}@{digest}",
        target.registry(),
        target.repository(),
        target.tag().unwrap_or("latest")
    ))
}

fn image_manifest(config: OciDescriptor, layers: Vec<OciDescriptor>) -> OciImageManifest {
    OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_owned()),
        config,
        layers,
        ..Default::default()
    }
}

/// Makes one of the base's layers available in the target repository:
/// already there, mounted from the base's repository on the same registry,
/// or pulled and pushed again.
async fn copy_blob(
    client: &Client,
    base: &Base,
    target: &Reference,
    d: &OciDescriptor,
    insecure: &[String],
) -> Result<()> {
    let push_err = |e: OciDistributionError| registry_error(target, "push", &e, insecure);
    if d.media_type.contains("nondistributable") || d.media_type.contains("foreign") {
        // Foreign layers are fetched from their URLs, never pushed.
        return Ok(());
    }
    if client
        .blob_exists(target, &d.digest)
        .await
        .map_err(push_err)?
    {
        return Ok(());
    }
    if base.reference.resolve_registry() == target.resolve_registry()
        && client
            .mount_blob(target, &base.reference, &d.digest)
            .await
            .is_ok()
    {
        return Ok(());
    }
    let mut data = Vec::with_capacity(usize::try_from(d.size).unwrap_or(0));
    client
        .pull_blob(&base.reference, d, &mut data)
        .await
        .map_err(|e| registry_error(&base.reference, "pull", &e, insecure))?;
    client
        .push_blob(target, data, &d.digest)
        .await
        .map_err(push_err)?;
    Ok(())
}

/// The OCI media type of a layer: docker's gzip'd and plain tars are the
/// same bytes as OCI's.
fn oci_layer_media_type(media_type: &str) -> String {
    match media_type {
        IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE => IMAGE_LAYER_GZIP_MEDIA_TYPE.to_owned(),
        IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE => IMAGE_LAYER_MEDIA_TYPE.to_owned(),
        other => other.to_owned(),
    }
}

// ------------------------------------------------------------------ errors

/// An oci-client error as [`Error::Registry`], with what to do next.
fn registry_error(
    reference: &Reference,
    action: &'static str,
    e: &OciDistributionError,
    insecure: &[String],
) -> Error {
    let host = reference.resolve_registry();
    let is_insecure = insecure.iter().any(|h| h == host);
    let login_hint = format!(
        "\n  log in first: `sluice-deploy registry-login --registry NAME` for DigitalOcean, or `docker login {host}`"
    );
    let (reason, hint) = match e {
        OciDistributionError::UnauthorizedError { .. } => {
            ("unauthorized (401)".to_owned(), login_hint)
        }
        OciDistributionError::AuthenticationFailure(m) => {
            (format!("authentication failed: {m}"), login_hint)
        }
        OciDistributionError::ServerError {
            code: code @ (401 | 403),
            message,
            ..
        } => (format!("{code}: {message}"), login_hint),
        OciDistributionError::RegistryError { envelope, .. } => {
            let reason = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            let hint = if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                login_hint
            } else if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) && action == "pull"
            {
                "\n  check the image's name and tag".to_owned()
            } else {
                String::new()
            };
            (reason, hint)
        }
        OciDistributionError::ImageManifestNotFoundError(m) => (
            format!("not found: {m}"),
            "\n  check the image's name and tag".to_owned(),
        ),
        OciDistributionError::RequestError(re) => {
            let chain = source_chain(re);
            let lower = chain.to_lowercase();
            let tls = [
                "tls",
                "certificate",
                "invalidcontenttype",
                "corrupt message",
                "handshake",
            ]
            .iter()
            .any(|w| lower.contains(w));
            let hint = if !is_insecure && tls {
                format!("\n  for a registry without TLS, add --insecure-registry {host}")
            } else if !is_insecure && re.is_connect() {
                format!(
                    "\n  is a registry listening at {host}? for a registry without TLS, add --insecure-registry {host}"
                )
            } else if re.is_connect() {
                format!("\n  is a registry listening at {host}?")
            } else if re.status().is_some_and(|s| s == 401 || s == 403) {
                login_hint
            } else {
                String::new()
            };
            (chain, hint)
        }
        other => (source_chain(other), String::new()),
    };
    Error::Registry {
        registry: reference.registry().to_owned(),
        action,
        reference: reference.whole(),
        reason,
        hint,
    }
}

// ------------------------------------------------------------------ auth

/// The docker config file: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// The credentials `docker login` (or `registry-login`) stored for `host`,
/// or anonymous access.
pub fn registry_auth(host: &str) -> RegistryAuth {
    let config = docker_config_path()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    match config {
        Some(c) => registry_auth_from(&c, host),
        None => RegistryAuth::Anonymous,
    }
}

/// [`registry_auth`] from a parsed docker config.
pub fn registry_auth_from(config: &Value, host: &str) -> RegistryAuth {
    use base64::Engine as _;
    let Some(auths) = config["auths"].as_object() else {
        return RegistryAuth::Anonymous;
    };
    let wanted = normalize_host(host);
    for (key, entry) in auths {
        if normalize_host(key) != wanted {
            continue;
        }
        if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            if let Some((user, pass)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                return RegistryAuth::Basic(user.to_owned(), pass.to_owned());
            }
        }
        if let (Some(user), Some(pass)) = (entry["username"].as_str(), entry["password"].as_str()) {
            return RegistryAuth::Basic(user.to_owned(), pass.to_owned());
        }
    }
    RegistryAuth::Anonymous
}

/// A docker config key as a bare host: `https://index.docker.io/v1/` →
/// `index.docker.io`; Docker Hub's names all become one.
fn normalize_host(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "index.docker.io".into()
        }
        _ => host,
    }
}

// ------------------------------------------------------------------ layers

/// A layer made here: the gzip'd tar that is pushed, and the digest of the
/// uncompressed tar that goes into the config's `rootfs.diff_ids`.
#[derive(Debug, Clone)]
pub struct Layer {
    pub gzip: Vec<u8>,
    pub diff_id: String,
}

impl Layer {
    fn from_tar(tar: &[u8]) -> std::io::Result<Layer> {
        use std::io::Write;
        // flate2 writes a header with mtime 0 and no name: reproducible.
        let mut gz = GzEncoder::new(Vec::with_capacity(tar.len() / 3), Compression::default());
        gz.write_all(tar)?;
        Ok(Layer {
            gzip: gz.finish()?,
            diff_id: sha256_digest(tar),
        })
    }
}

/// `sha256:HEX` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    use std::fmt::Write;
    let hash = Sha256::digest(data);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in hash.iter() {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn header(kind: tar::EntryType, mode: u32, uid: u64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(uid);
    h.set_size(size);
    h.set_mtime(MTIME);
    h
}

/// The proxy's layer: `usr/local/bin/sluice` (0755, owned by 65532) and its
/// directories (0755, root's).
pub fn binary_layer(binary: &[u8]) -> std::io::Result<Layer> {
    let mut tar = tar::Builder::new(Vec::with_capacity(binary.len() + 8192));
    for d in ["usr/", "usr/local/", "usr/local/bin/"] {
        tar.append_data(
            &mut header(tar::EntryType::Directory, 0o755, 0, 0),
            d,
            std::io::empty(),
        )?;
    }
    tar.append_data(
        &mut header(
            tar::EntryType::Regular,
            0o755,
            PROXY_UID,
            binary.len() as u64,
        ),
        PROXY_BINARY_PATH,
        binary,
    )?;
    Layer::from_tar(&tar.into_inner()?)
}

/// An app's layer: `dir` under `app/`, recursively, in name order. Regular
/// files, directories and symbolic links, with their permission bits, owned
/// by root, dated 1970; `.git` directories and other file types are left
/// out.
pub fn dir_layer(dir: &Path) -> Result<Layer> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_data(
        &mut header(tar::EntryType::Directory, 0o755, 0, 0),
        format!("{APP_DIR}/"),
        std::io::empty(),
    )
    .map_err(io(dir))?;
    append_dir(&mut tar, dir, Path::new(APP_DIR))?;
    let bytes = tar.into_inner().map_err(io(dir))?;
    Layer::from_tar(&bytes).map_err(io(dir))
}

fn append_dir(tar: &mut tar::Builder<Vec<u8>>, dir: &Path, inside: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        let mode = meta.permissions().mode() & 0o7777;
        let at = inside.join(&name);
        let kind = meta.file_type();
        if kind.is_dir() {
            if name == ".git" {
                continue;
            }
            let mut h = header(tar::EntryType::Directory, mode, 0, 0);
            tar.append_data(&mut h, format!("{}/", at.display()), std::io::empty())
                .map_err(io(&path))?;
            append_dir(tar, &path, &at)?;
        } else if kind.is_file() {
            let mut h = header(tar::EntryType::Regular, mode, 0, meta.len());
            let file = std::fs::File::open(&path).map_err(io(&path))?;
            tar.append_data(&mut h, &at, file.take(meta.len()))
                .map_err(io(&path))?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&path).map_err(io(&path))?;
            let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0);
            tar.append_link(&mut h, &at, &target).map_err(io(&path))?;
        } else {
            tracing::warn!(
                "{}: not a file, directory or link; left out of the image",
                path.display()
            );
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ configs

/// What the binary is: its OCI architecture, and its ELF interpreter if it
/// is dynamically linked.
#[derive(Debug, Clone, PartialEq)]
pub struct Executable {
    pub arch: String,
    pub interpreter: Option<String>,
}

impl Executable {
    /// Reads the ELF header; `None` if it is not an ELF file.
    pub fn inspect(bytes: &[u8]) -> Option<Executable> {
        if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
            return None;
        }
        let is64 = bytes[4] == 2;
        let le = bytes[5] == 1;
        let u16_at = |o: usize| -> Option<u64> {
            let b: [u8; 2] = bytes.get(o..o + 2)?.try_into().ok()?;
            Some(u64::from(if le {
                u16::from_le_bytes(b)
            } else {
                u16::from_be_bytes(b)
            }))
        };
        let u32_at = |o: usize| -> Option<u64> {
            let b: [u8; 4] = bytes.get(o..o + 4)?.try_into().ok()?;
            Some(u64::from(if le {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }))
        };
        let u64_at = |o: usize| -> Option<u64> {
            let b: [u8; 8] = bytes.get(o..o + 8)?.try_into().ok()?;
            Some(if le {
                u64::from_le_bytes(b)
            } else {
                u64::from_be_bytes(b)
            })
        };
        let arch = match (u16_at(18)?, is64) {
            (0x3e, true) => "amd64",
            (0xb7, true) => "arm64",
            (0x03, false) => "386",
            (0x28, false) => "arm",
            (0xf3, true) => "riscv64",
            (0x15, true) if le => "ppc64le",
            (0x16, true) => "s390x",
            _ => "unknown",
        }
        .to_owned();
        // Program headers: a PT_INTERP (3) entry names the dynamic loader.
        let (phoff, phentsize, phnum) = if is64 {
            (u64_at(32)?, u16_at(54)?, u16_at(56)?)
        } else {
            (u32_at(28)?, u16_at(42)?, u16_at(44)?)
        };
        let mut interpreter = None;
        for i in 0..phnum {
            let ph = usize::try_from(phoff + i * phentsize).ok()?;
            if u32_at(ph)? != 3 {
                continue;
            }
            let (off, size) = if is64 {
                (u64_at(ph + 8)?, u64_at(ph + 32)?)
            } else {
                (u32_at(ph + 4)?, u32_at(ph + 16)?)
            };
            let (off, size) = (usize::try_from(off).ok()?, usize::try_from(size).ok()?);
            let name = bytes.get(off..off.checked_add(size)?)?;
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            interpreter = Some(String::from_utf8_lossy(name).into_owned());
        }
        Some(Executable { arch, interpreter })
    }
}

/// The config of a new image: the base's (or an empty linux one), with the
/// new layer's diff_id and a history entry appended and the dates fixed.
fn derived_config(
    base: Option<&Value>,
    arch: &str,
    diff_id: &str,
    created_by: &str,
) -> Result<Value> {
    let mut c = match base {
        Some(b) if b.is_object() => b.clone(),
        Some(_) => {
            return Err(Error::Invalid(
                "the base image's config is not a JSON object".into(),
            ))
        }
        None => json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Env": [DEFAULT_PATH]},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        }),
    };
    c["created"] = json!(EPOCH);
    if !c["config"].is_object() {
        c["config"] = json!({});
    }
    if !c["rootfs"]["diff_ids"].is_array() {
        c["rootfs"] = json!({"type": "layers", "diff_ids": []});
    }
    c["rootfs"]["diff_ids"]
        .as_array_mut()
        .expect("diff_ids is an array")
        .push(json!(diff_id));
    if !c["history"].is_array() {
        c["history"] = json!([]);
    }
    c["history"]
        .as_array_mut()
        .expect("history is an array")
        .push(json!({
            "created": EPOCH,
            "created_by": created_by,
            "comment": "sluice-deploy",
        }));
    Ok(c)
}

/// The proxy image's config: runs `/usr/local/bin/sluice serve` as 65532.
pub fn proxy_config(base: Option<&Value>, arch: &str, diff_id: &str) -> Result<Value> {
    let mut c = derived_config(
        base,
        arch,
        diff_id,
        &format!("COPY sluice /{PROXY_BINARY_PATH} # sluice-deploy image"),
    )?;
    let cfg = &mut c["config"];
    cfg["Entrypoint"] = json!([format!("/{PROXY_BINARY_PATH}")]);
    cfg["Cmd"] = json!(PROXY_CMD);
    cfg["User"] = json!(PROXY_USER);
    let ports: serde_json::Map<String, Value> = PROXY_PORTS
        .iter()
        .map(|p| (format!("{p}/tcp"), json!({})))
        .collect();
    cfg["ExposedPorts"] = Value::Object(ports);
    Ok(c)
}

/// An app image's config: the base's, with WorkingDir /app, `cmd` as Cmd,
/// no Entrypoint and `port` exposed. The base's Env and User are kept.
pub fn app_config(base: &Value, cmd: &[String], port: u16, diff_id: &str) -> Result<Value> {
    let mut c = derived_config(
        Some(base),
        APP_ARCH,
        diff_id,
        &format!("COPY . /{APP_DIR} # sluice-deploy up --build --base"),
    )?;
    let cfg = &mut c["config"];
    cfg["WorkingDir"] = json!(format!("/{APP_DIR}"));
    cfg["Entrypoint"] = Value::Null;
    cfg["Cmd"] = json!(cmd);
    cfg["ExposedPorts"] = json!({ format!("{port}/tcp"): {} });
    Ok(c)
}

/// Splits a command line into words: whitespace separates words, '…'
/// keeps everything literally, "…" keeps everything but `\"` and `\\`, and
/// a `\` outside quotes escapes the next character. No variables, globs or
/// operators: `sh -c '…'` for those.
pub fn split_command(cmd: &str) -> Result<Vec<String>> {
    let bad = |why: &str| Error::Invalid(format!("--cmd {cmd:?}: {why}"));
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(bad("unterminated ' quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(bad("unterminated \" quote")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(bad("unterminated \" quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(bad("ends with a lone \\")),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err(bad(
            "empty: say what the image runs, e.g. --cmd \"python3 app.py\"",
        ));
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read;

    use super::*;

    fn untar(layer: &Layer) -> Vec<(String, tar::EntryType, u32, u64, u64, Vec<u8>)> {
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(&layer.gzip[..])
            .read_to_end(&mut tar_bytes)
            .unwrap();
        assert_eq!(
            sha256_digest(&tar_bytes),
            layer.diff_id,
            "diff_id is the uncompressed tar's digest"
        );
        let mut out = Vec::new();
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push((
                e.path().unwrap().display().to_string(),
                h.entry_type(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.mtime().unwrap(),
                data,
            ));
        }
        out
    }

    #[test]
    fn binary_layer_holds_the_binary_owned_by_nonroot() {
        let binary = b"\x7fELF pretend binary".repeat(1000);
        let layer = binary_layer(&binary).unwrap();
        let entries = untar(&layer);
        let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/sluice"
            ]
        );
        let (_, kind, mode, uid, mtime, data) = &entries[3];
        assert_eq!(*kind, tar::EntryType::Regular);
        assert_eq!(*mode, 0o755);
        assert_eq!(*uid, 65532);
        assert_eq!(*mtime, 0);
        assert_eq!(data, &binary);
        for (_, kind, mode, uid, _, _) in &entries[..3] {
            assert_eq!((*kind, *mode, *uid), (tar::EntryType::Directory, 0o755, 0));
        }
    }

    #[test]
    fn layers_are_reproducible() {
        let a = binary_layer(b"same bytes").unwrap();
        let b = binary_layer(b"same bytes").unwrap();
        assert_eq!(a.gzip, b.gzip);
        assert_eq!(a.diff_id, b.diff_id);
        let c = binary_layer(b"other bytes").unwrap();
        assert_ne!(a.diff_id, c.diff_id);

        let dir = test_dir("repro");
        std::fs::write(dir.join("a.txt"), "a").unwrap();
        let first = dir_layer(&dir).unwrap();
        // A later mtime changes nothing.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(dir.join("a.txt"), "a").unwrap();
        let second = dir_layer(&dir).unwrap();
        assert_eq!(first.gzip, second.gzip);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn test_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sluice-image-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn dir_layer_keeps_tree_and_modes_and_skips_git() {
        use std::os::unix::fs::PermissionsExt;
        let dir = test_dir("tree");
        std::fs::write(dir.join("app.py"), "print('hi')").unwrap();
        std::fs::write(dir.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(dir.join("run.sh"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        std::fs::create_dir_all(dir.join("static/css")).unwrap();
        std::fs::write(dir.join("static/css/site.css"), "body{}").unwrap();
        std::fs::create_dir_all(dir.join(".git/objects")).unwrap();
        std::fs::write(dir.join(".git/HEAD"), "ref").unwrap();
        std::os::unix::fs::symlink("app.py", dir.join("main.py")).unwrap();

        let layer = dir_layer(&dir).unwrap();
        let entries = untar(&layer);
        let by_name: BTreeMap<_, _> = entries.iter().map(|e| (e.0.clone(), e)).collect();
        let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "app/",
                "app/app.py",
                "app/main.py",
                "app/run.sh",
                "app/static/",
                "app/static/css/",
                "app/static/css/site.css"
            ]
        );
        assert!(!names.iter().any(|n| n.contains(".git")));
        assert_eq!(by_name["app/run.sh"].2, 0o750);
        assert_eq!(by_name["app/app.py"].5, b"print('hi')");
        assert_eq!(by_name["app/main.py"].1, tar::EntryType::Symlink);
        assert_eq!(by_name["app/static/"].1, tar::EntryType::Directory);
        assert!(
            entries.iter().all(|e| e.3 == 0 && e.4 == 0),
            "root-owned, dated 1970"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `proxy/Dockerfile` and `sluice-deploy image` make the same image:
    /// the same base, user, ports, entrypoint and command.
    #[test]
    fn the_dockerfile_and_the_docker_free_image_agree() {
        let dockerfile = include_str!("../../proxy/Dockerfile");
        let last = |word: &str| {
            dockerfile
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix(word))
                .unwrap_or_else(|| panic!("no {word} in the Dockerfile"))
                .trim()
                .to_owned()
        };
        let from = last("FROM ");
        assert_eq!(from, DEFAULT_PROXY_BASE);
        assert_eq!(last("USER "), PROXY_USER);
        let exposed: Vec<u16> = last("EXPOSE ")
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(exposed, PROXY_PORTS);
        let entry: Vec<String> = serde_json::from_str(&last("ENTRYPOINT ")).unwrap();
        assert_eq!(entry, [format!("/{PROXY_BINARY_PATH}")]);
        let cmd: Vec<String> = serde_json::from_str(&last("CMD ")).unwrap();
        assert_eq!(cmd, PROXY_CMD);
    }

    #[test]
    fn proxy_config_without_base() {
        let c = proxy_config(None, "amd64", "sha256:abc").unwrap();
        assert_eq!(c["os"], "linux");
        assert_eq!(c["architecture"], "amd64");
        assert_eq!(c["created"], EPOCH);
        assert_eq!(c["config"]["Entrypoint"], json!(["/usr/local/bin/sluice"]));
        assert_eq!(c["config"]["Cmd"], json!(PROXY_CMD));
        assert_eq!(c["config"]["User"], "65532:65532");
        assert_eq!(
            c["config"]["ExposedPorts"],
            json!({"8080/tcp": {}, "8443/tcp": {}, "9901/tcp": {}})
        );
        assert_eq!(
            c["rootfs"],
            json!({"type": "layers", "diff_ids": ["sha256:abc"]})
        );
        assert_eq!(c["history"].as_array().unwrap().len(), 1);
        // Serialization is stable (sorted keys): same config, same digest.
        assert_eq!(
            serde_json::to_vec(&c).unwrap(),
            serde_json::to_vec(&proxy_config(None, "amd64", "sha256:abc").unwrap()).unwrap()
        );
    }

    fn base_config() -> Value {
        json!({
            "architecture": "arm64",
            "os": "linux",
            "created": "2024-05-01T10:00:00Z",
            "config": {
                "Env": ["PATH=/usr/bin", "LANG=C.UTF-8"],
                "Entrypoint": ["docker-entrypoint.sh"],
                "Cmd": ["python3"],
                "Labels": {"x": "y"}
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:1", "sha256:2"]},
            "history": [{"created_by": "one"}, {"created_by": "two"}]
        })
    }

    #[test]
    fn proxy_config_onto_base_keeps_its_layers_and_arch() {
        let c = proxy_config(Some(&base_config()), "amd64", "sha256:new").unwrap();
        assert_eq!(c["architecture"], "arm64", "the base's architecture");
        assert_eq!(
            c["rootfs"]["diff_ids"],
            json!(["sha256:1", "sha256:2", "sha256:new"])
        );
        assert_eq!(c["history"].as_array().unwrap().len(), 3);
        assert_eq!(c["config"]["Env"], json!(["PATH=/usr/bin", "LANG=C.UTF-8"]));
        assert_eq!(c["config"]["Labels"], json!({"x": "y"}));
        assert_eq!(c["config"]["Entrypoint"], json!(["/usr/local/bin/sluice"]));
        assert_eq!(c["created"], EPOCH);
    }

    #[test]
    fn app_config_runs_cmd_in_app() {
        let cmd = split_command("python3 -m http.server 8000").unwrap();
        let c = app_config(&base_config(), &cmd, 8000, "sha256:app").unwrap();
        assert_eq!(c["config"]["WorkingDir"], "/app");
        assert_eq!(
            c["config"]["Cmd"],
            json!(["python3", "-m", "http.server", "8000"])
        );
        assert_eq!(c["config"]["Entrypoint"], Value::Null);
        assert_eq!(c["config"]["Env"], json!(["PATH=/usr/bin", "LANG=C.UTF-8"]));
        assert_eq!(c["config"]["ExposedPorts"], json!({"8000/tcp": {}}));
        assert_eq!(
            c["rootfs"]["diff_ids"],
            json!(["sha256:1", "sha256:2", "sha256:app"])
        );
    }

    #[test]
    fn command_splitting() {
        let s = |c: &str| split_command(c).unwrap();
        assert_eq!(s("python3 app.py"), ["python3", "app.py"]);
        assert_eq!(s("  node   server.js  "), ["node", "server.js"]);
        assert_eq!(
            s("sh -c 'echo hi && sleep 1'"),
            ["sh", "-c", "echo hi && sleep 1"]
        );
        assert_eq!(s(r#"echo "a \"b\" c" d"#), ["echo", "a \"b\" c", "d"]);
        assert_eq!(s(r"echo a\ b"), ["echo", "a b"]);
        assert_eq!(s("echo ''"), ["echo", ""]);
        assert_eq!(s("x'y'\"z\""), ["xyz"]);
        for bad in ["", "   ", "echo 'oops", "echo \"oops", "echo \\"] {
            let e = split_command(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
    }

    #[test]
    fn auth_from_docker_config() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode("user:pa:ss");
        let config = json!({
            "auths": {
                "registry.digitalocean.com": {"auth": b64},
                "https://index.docker.io/v1/": {"auth": base64::engine::general_purpose::STANDARD.encode("hub:secret")},
                "127.0.0.1:5000": {}
            },
            "credsStore": "desktop"
        });
        assert_eq!(
            registry_auth_from(&config, "registry.digitalocean.com"),
            RegistryAuth::Basic("user".into(), "pa:ss".into())
        );
        assert_eq!(
            registry_auth_from(&config, "index.docker.io"),
            RegistryAuth::Basic("hub".into(), "secret".into())
        );
        assert_eq!(
            registry_auth_from(&config, "127.0.0.1:5000"),
            RegistryAuth::Anonymous
        );
        assert_eq!(
            registry_auth_from(&config, "ghcr.io"),
            RegistryAuth::Anonymous
        );
        assert_eq!(
            registry_auth_from(&json!({}), "ghcr.io"),
            RegistryAuth::Anonymous
        );
        // The password never shows in Debug output.
        let shown = format!(
            "{:?}",
            registry_auth_from(&config, "registry.digitalocean.com")
        );
        assert!(!shown.contains("pa:ss"), "{shown}");
    }

    #[test]
    fn references_to_push_need_a_tag() {
        assert!(push_reference("127.0.0.1:5000/sluice:test").is_ok());
        let digest = format!("r.example/x@sha256:{}", "a".repeat(64));
        assert!(matches!(
            push_reference(&digest),
            Err(Error::InvalidImage { .. })
        ));
        let e = parse_reference("Bad Ref!").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("invalid image reference"), "{e}");
    }

    #[test]
    fn elf_inspection() {
        // This test binary is a Linux ELF of the host's architecture.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let exe = Executable::inspect(&me).unwrap();
        let host = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        assert_eq!(exe.arch, host);
        assert!(Executable::inspect(b"#!/bin/sh\necho hi\n").is_none());
    }

    #[test]
    fn manifest_is_oci() {
        let m = image_manifest(
            OciDescriptor {
                media_type: IMAGE_CONFIG_MEDIA_TYPE.into(),
                digest: "sha256:c".into(),
                size: 2,
                ..Default::default()
            },
            vec![],
        );
        let v: Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["mediaType"], OCI_IMAGE_MEDIA_TYPE);
        assert_eq!(v["config"]["mediaType"], IMAGE_CONFIG_MEDIA_TYPE);
        assert_eq!(
            oci_layer_media_type(IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE),
            IMAGE_LAYER_GZIP_MEDIA_TYPE
        );
    }
}
