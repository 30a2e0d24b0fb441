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

/// Finds the `sluice` binary: an explicit path, else `release/sluice` then
/// `debug/sluice` under `$CARGO_TARGET_DIR` and the workspace's `target/`.
pub fn find_sluice(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return p.is_file().then(|| p.to_path_buf());
    }
    let mut dirs = vec![workspace_root().join("target")];
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        dirs.insert(0, PathBuf::from(t));
    }
    dirs.iter()
        .flat_map(|d| [d.join("release/sluice"), d.join("debug/sluice")])
        .find(|p| p.is_file())
}

/// `cargo build -p sluice` into `target_dir`; the binary's path on success.
/// A test passes its own `target_dir`, so the nested cargo never waits on
/// the lock of the cargo that is running the test.
pub fn build_sluice(target_dir: &Path, release: bool) -> Option<PathBuf> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "-p", "sluice"]);
    if release {
        cmd.arg("--release");
    }
    eprintln!("building sluice into {}", target_dir.display());
    let ok = cmd
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target_dir)
        .status()
        .is_ok_and(|s| s.success());
    let bin = target_dir.join(if release {
        "release/sluice"
    } else {
        "debug/sluice"
    });
    (ok && bin.is_file()).then_some(bin)
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
