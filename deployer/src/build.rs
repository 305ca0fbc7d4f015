//! Builds with docker, podman or buildah when one is on PATH: `<tool>
//! build --platform linux/amd64 -t TAG DIR` (`buildah bud …`), then
//! `<tool> push TAG`, their output going straight to the terminal. The
//! platform is explicit because the cluster's nodes are amd64 and the
//! laptop building may not be (an arm64 image there fails with "exec
//! format error").

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What the cluster's nodes run (DigitalOcean's are amd64).
pub const PLATFORM: &str = "linux/amd64";

/// The container builders, in the order they are looked for.
pub const BUILDERS: [&str; 3] = ["docker", "podman", "buildah"];

/// Builds `dir` with the first builder on PATH and pushes it as `tag`.
/// Returns `tag`.
pub async fn build_and_push(dir: &Path, tag: &str) -> Result<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    build_and_push_with_path(dir, tag, &path).await
}

/// [`build_and_push`] with the builders looked for in `path` (a PATH
/// value), which is also the PATH the builder runs with.
pub async fn build_and_push_with_path(dir: &Path, tag: &str, path: &OsStr) -> Result<String> {
    crate::image::parse_reference(tag)?;
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "--build {}: not a directory",
            dir.display()
        )));
    }
    let (name, exe) = find_builder(path).ok_or(Error::NoBuilder)?;
    let dir_arg = dir.as_os_str().to_owned();
    let verb = if name == "buildah" { "bud" } else { "build" };
    let build: Vec<OsString> = vec![
        verb.into(),
        "--platform".into(),
        PLATFORM.into(),
        "-t".into(),
        tag.into(),
        dir_arg,
    ];
    run(name, &exe, build, path).await?;
    run(name, &exe, vec!["push".into(), tag.into()], path).await?;
    Ok(tag.to_owned())
}

/// The first of [`BUILDERS`] found as an executable file in `path`.
pub fn find_builder(path: &OsStr) -> Option<(&'static str, PathBuf)> {
    BUILDERS
        .iter()
        .find_map(|name| which(name, path).map(|p| (*name, p)))
}

/// `name` in the directories of `path`, as a shell finds it: the first
/// regular file with an execute bit. Empty entries (the current directory)
/// are skipped.
pub fn which(name: &str, path: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

async fn run(name: &str, exe: &Path, args: Vec<OsString>, path: &OsStr) -> Result<()> {
    let command = std::iter::once(name.to_owned())
        .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = std::process::Command::new(exe);
    cmd.args(&args).env("PATH", path);
    let exe_path = exe.to_owned();
    // Inherited stdio: the builder's progress goes to the terminal.
    let status = tokio::task::spawn_blocking(move || cmd.status())
        .await
        .map_err(|e| Error::Build {
            command: command.clone(),
            status: e.to_string(),
        })?
        .map_err(|source| Error::Io {
            path: exe_path,
            source,
        })?;
    if !status.success() {
        return Err(Error::Build {
            command,
            status: status.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let d =
                std::env::temp_dir().join(format!("sluice-build-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A fake builder that appends its name and arguments to `log`, and
    /// exits with `code` when its first argument is `fail_on`.
    fn fake(bin: &Path, name: &str, log: &Path, fail_on: Option<&str>) {
        let fail = fail_on
            .map(|f| format!("if [ \"$1\" = {f} ]; then exit 3; fi\n"))
            .unwrap_or_default();
        let script = format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\n{fail}exit 0\n",
            log.display()
        );
        let p = bin.join(name);
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn log_of(log: &Path) -> Vec<String> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test]
    async fn docker_is_preferred_and_builds_then_pushes() {
        let t = Dir::new("docker");
        let (bin1, bin2, app) = (t.0.join("bin1"), t.0.join("bin2"), t.0.join("app"));
        for d in [&bin1, &bin2, &app] {
            std::fs::create_dir_all(d).unwrap();
        }
        let log = t.0.join("log");
        // podman comes first on PATH, but docker is looked for first.
        fake(&bin1, "podman", &log, None);
        fake(&bin2, "docker", &log, None);
        let path = std::env::join_paths([&bin1, &bin2]).unwrap();
        let tag = "registry.example/team/app:1";
        let out = build_and_push_with_path(&app, tag, &path).await.unwrap();
        assert_eq!(out, tag);
        assert_eq!(
            log_of(&log),
            [
                format!(
                    "docker build --platform linux/amd64 -t {tag} {}",
                    app.display()
                ),
                format!("docker push {tag}")
            ]
        );
    }

    #[tokio::test]
    async fn podman_then_buildah() {
        let t = Dir::new("podman");
        let (bin, app) = (t.0.join("bin"), t.0.join("app"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&app).unwrap();
        let log = t.0.join("log");
        fake(&bin, "buildah", &log, None);
        // Not executable: skipped.
        std::fs::write(bin.join("podman"), "#!/bin/sh\nexit 1\n").unwrap();
        build_and_push_with_path(&app, "r.example/a:b", bin.as_os_str())
            .await
            .unwrap();
        assert_eq!(
            log_of(&log),
            [
                format!(
                    "buildah bud --platform linux/amd64 -t r.example/a:b {}",
                    app.display()
                ),
                "buildah push r.example/a:b".to_owned()
            ]
        );

        std::fs::remove_file(&log).unwrap();
        fake(&bin, "podman", &log, None);
        build_and_push_with_path(&app, "r.example/a:b", bin.as_os_str())
            .await
            .unwrap();
        assert_eq!(
            log_of(&log)[0],
            format!(
                "podman build --platform linux/amd64 -t r.example/a:b {}",
                app.display()
            )
        );
    }

    #[tokio::test]
    async fn no_builder() {
        let t = Dir::new("none");
        let e = build_and_push_with_path(&t.0, "r.example/a:b", t.0.as_os_str())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::NoBuilder), "{e}");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--base IMAGE --cmd"), "{e}");
        assert!(find_builder(OsStr::new("")).is_none());
    }

    #[tokio::test]
    async fn a_failing_step_names_its_command() {
        let t = Dir::new("fail");
        let (bin, app) = (t.0.join("bin"), t.0.join("app"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&app).unwrap();
        let log = t.0.join("log");
        fake(&bin, "docker", &log, Some("push"));
        let e = build_and_push_with_path(&app, "r.example/a:b", bin.as_os_str())
            .await
            .unwrap_err();
        match &e {
            Error::Build { command, status } => {
                assert_eq!(command, "docker push r.example/a:b");
                assert!(status.contains('3'), "{status}");
            }
            other => panic!("{other}"),
        }
        // The build ran; the push failed.
        assert_eq!(log_of(&log).len(), 2);

        let e = build_and_push_with_path(&app, "Not A Tag", bin.as_os_str())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidImage { .. }), "{e}");
    }
}
