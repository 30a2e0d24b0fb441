//! Installing what is missing, and recording every version for the report.
//!
//! apt-get runs once, for every missing package at once; a package that
//! cannot be installed only removes the peers or scenarios that need it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::pin::which;

/// Whether `what` is there: a program on `$PATH`, or a file when it is a path.
fn present(what: &str) -> bool {
    if what.contains('/') {
        Path::new(what).exists()
    } else {
        which(what).is_some()
    }
}

/// Installs the missing Debian packages among `packages` (name → a binary
/// on `$PATH`, or a file path, that the package provides). Returns the ones
/// still missing afterwards.
pub fn ensure_apt(packages: &[(&str, &str)], log: &mut Vec<String>) -> Vec<String> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, bin)| !present(bin))
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Vec::new();
    }
    log.push(format!("apt-get install -y {}", missing.join(" ")));
    eprintln!("installing: {}", missing.join(" "));
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let _ = apt(&["update", "-q"]);
    if !apt(&[&["install", "-y", "-q"][..], &missing].concat()) {
        // One missing package fails the whole transaction: retry singly.
        for pkg in &missing {
            let _ = apt(&["install", "-y", "-q", pkg]);
        }
    }
    let still: Vec<String> = packages
        .iter()
        .filter(|(_, bin)| !present(bin))
        .map(|(pkg, _)| pkg.to_string())
        .collect();
    let installed: Vec<&str> = missing
        .into_iter()
        .filter(|pkg| !still.iter().any(|s| s == pkg))
        .collect();
    stop_services(&installed, log);
    still
}

/// Debian's nginx, haproxy and caddy packages enable and start a daemon of
/// their own (nginx and Caddy on :80, Caddy's admin API on :2019). The
/// harness runs its own instances on generated ports and never talks to
/// those, but an idle daemon still wakes up on the cores being measured, so
/// one the harness installed itself is stopped and disabled. Only where
/// systemd is running (in a container `policy-rc.d` usually kept it from
/// starting at all); a service that was there before the run is left alone.
fn stop_services(installed: &[&str], log: &mut Vec<String>) {
    if !Path::new("/run/systemd/system").is_dir() {
        return;
    }
    for unit in installed
        .iter()
        .filter(|pkg| matches!(**pkg, "nginx" | "haproxy" | "caddy"))
    {
        let stopped = Command::new("systemctl")
            .args(["disable", "--now", &format!("{unit}.service")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if stopped {
            log.push(format!(
                "systemctl disable --now {unit}.service (the package's own daemon)"
            ));
        }
    }
}

/// `cargo install oha` when it is absent; true if oha is usable afterwards.
pub fn ensure_oha(log: &mut Vec<String>) -> bool {
    if which("oha").is_some() {
        return true;
    }
    // --locked: oha's own Cargo.lock, so every machine gets the same build.
    log.push("cargo install --locked oha".into());
    let _ = Command::new("cargo")
        .args(["install", "--locked", "oha"])
        .status();
    which("oha").is_some()
}

/// The workspace's `HEAD` (short), with `-dirty` when the tree has changes.
pub fn git_rev() -> String {
    let out = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(workspace_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = out(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = out(&["status", "--porcelain", "--", "engine"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{rev}-dirty") } else { rev }
}

/// The workspace root (the parent of this crate's manifest dir).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The target dir the harness builds into: `$CARGO_TARGET_DIR`, else the
/// one this binary was built in (`target/<profile>/sluice-bench`), else the
/// workspace's `target/`. Sharing it means the dependencies are already
/// compiled.
pub fn target_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let profile = exe.parent()?;
            matches!(profile.file_name()?.to_str()?, "release" | "debug")
                .then(|| profile.parent().map(Path::to_path_buf))
                .flatten()
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The Cargo profile a build is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `--release`: the binary users run, and the only one a benchmark
    /// measures.
    Release,
    /// For the harness's own tests only (a quicker build).
    Debug,
}

/// The arguments of `cargo build` for `bin` of `package`: that package
/// alone, its default features, the release profile (for Sluice, the
/// `sluice` binary the root README's Quick use runs). Never `--features`, `--all-features` nor `--workspace`: with
/// those, Cargo unifies the features other members enable (a test crate's
/// `test-util`) into the binary, and the bench would measure something no
/// user runs.
pub fn cargo_build_args(package: &str, bin: &str, profile: Profile) -> Vec<String> {
    let mut args = vec!["build".to_string()];
    if profile == Profile::Release {
        args.push("--release".into());
    }
    args.extend(["-p".into(), package.into(), "--bin".into(), bin.into()]);
    args
}

/// `cargo build` of `bin` of `package` into `target_dir` (see
/// [`cargo_build_args`]); the binary's path, and the command as the report
/// prints it. A test passes its own `target_dir`, so the nested cargo never
/// waits on the lock of the cargo that is running the test.
pub fn cargo_build(
    package: &str,
    bin: &str,
    target_dir: &Path,
    profile: Profile,
) -> std::result::Result<(PathBuf, String), String> {
    let args = cargo_build_args(package, bin, profile);
    let shown = format!(
        "cargo {} (CARGO_TARGET_DIR={})",
        args.join(" "),
        target_dir.display()
    );
    eprintln!("building: {shown}");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // Flags meant for the harness's own build must not reach this one.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let ok = cmd
        .args(&args)
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target_dir)
        .status()
        .is_ok_and(|s| s.success());
    let path = target_dir
        .join(match profile {
            Profile::Release => "release",
            Profile::Debug => "debug",
        })
        .join(bin);
    if ok && path.is_file() {
        Ok((path, shown))
    } else {
        Err(format!("`{shown}` failed"))
    }
}

/// `cargo build --release -p sluice --bin sluice`: exactly the binary users
/// get (see [`cargo_build_args`]).
pub fn build_sluice(target_dir: &Path) -> std::result::Result<(PathBuf, String), String> {
    cargo_build("sluice", "sluice", target_dir, Profile::Release)
}

/// Machine facts for the report: CPU model, core count, kernel.
pub fn machine() -> (String, usize, String) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    // Not available_parallelism(): the harness has pinned itself to one core.
    let cores = std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| t.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0)
        .max(1);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    (cpu, cores, kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench builds what the README tells users to build, and nothing
    /// that could switch on another package's features.
    #[test]
    fn sluice_is_built_the_way_users_build_it() {
        assert_eq!(
            cargo_build_args("sluice", "sluice", Profile::Release),
            ["build", "--release", "-p", "sluice", "--bin", "sluice"]
        );
        let args = cargo_build_args("sluice-cache", "sluice-cache", Profile::Release);
        assert!(
            !args
                .iter()
                .any(|a| a.contains("feature") || a == "--workspace" || a == "--all"),
            "{args:?}"
        );
    }
}
