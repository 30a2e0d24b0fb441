//! The real `sluice` binary as users build and run it: built once per test
//! run, started as a child process, its log read for the addresses it bound,
//! signalled, and waited for. Also `cargo` itself, for the tests that read
//! the workspace's manifests.

use super::control::Admin;
use super::{STEP, eventually};
use parking_lot::Mutex;
use std::ffi::{OsStr, OsString};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
}

/// A `cargo` command run in the workspace root: the cargo that runs the
/// tests (`$CARGO`), else the one on `PATH`.
///
/// Without the variables Cargo sets for this test process
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, …): build scripts that rerun when
/// one of them changes (ring's does) would otherwise see different values
/// in this cargo and in the one running the tests, and each would rebuild
/// ring, rustls and the engine after the other.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    for (key, _) in std::env::vars_os() {
        let set_for_tests = key.to_str().is_some_and(|k| {
            [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
            ]
            .iter()
            .any(|p| k.starts_with(p))
                || [
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                ]
                .contains(&k)
        });
        if set_for_tests {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// The `sluice` binary, built once per test run into the same target
/// directory as this test binary (`<target>/debug/deps/e2e-…` →
/// `<target>/debug/sluice`).
///
/// It is built with `cargo build --workspace --bin sluice`: the features of
/// `sluice` are unified over every workspace member's normal dependencies,
/// exactly as in `cargo build --release` at the root (a virtual manifest
/// builds every member), so this is the binary users get, only in the dev
/// profile. The README's `cargo build --release -p sluice` enables a subset
/// of those features (only the engine's own), so what holds for this binary
/// holds for that one. Only the `sluice` binary and its dependencies are
/// compiled.
pub fn sluice_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("<target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("<target>");
        let status = cargo()
            .args(["build", "--quiet", "--workspace", "--bin", "sluice"])
            .env("CARGO_TARGET_DIR", target_dir)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --bin sluice failed");
        let bin = profile_dir.join("sluice");
        assert!(bin.exists(), "{} not built", bin.display());
        bin
    })
    .clone()
}

/// Waits (bounded) for a child process to exit; returns its status.
pub async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let waited = tokio::time::timeout(STEP, async {
        loop {
            if let Some(s) = child.try_wait().expect("wait for child") {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    match waited {
        Ok(s) => s,
        Err(_) => {
            let _ = child.kill();
            panic!("child did not exit within {STEP:?}");
        }
    }
}

/// Runs `sluice args…`, which must exit by itself (a bad config, a port
/// it cannot take): its exit status and stderr. One that starts serving
/// instead fails the test ([`wait_exit`] is bounded).
pub async fn run_to_exit<S: AsRef<OsStr>>(
    args: impl IntoIterator<Item = S>,
) -> (std::process::ExitStatus, String) {
    run_to_exit_env(args, &[]).await
}

/// As [`run_to_exit`], with these environment variables set too.
pub async fn run_to_exit_env<S: AsRef<OsStr>>(
    args: impl IntoIterator<Item = S>,
    vars: &[(&str, &str)],
) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(sluice_bin())
        .args(args)
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice");
    let status = wait_exit(&mut child).await;
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    (status, stderr)
}

/// Sends `signal` (e.g. `"TERM"`) to process `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// The binary, running; killed if the test fails before it exits.
pub struct Sluice {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sluice {
    /// `sluice --config <config>`.
    pub fn start(config: &Path) -> Sluice {
        Sluice::start_with(config, &[])
    }

    /// With extra command-line flags after `--config`.
    pub fn start_with(config: &Path, flags: &[String]) -> Sluice {
        let mut args = vec![OsString::from("--config"), config.into()];
        args.extend(flags.iter().map(OsString::from));
        Sluice::run(args)
    }

    /// `sluice <args>`, logging at `info` without colour.
    pub fn run<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Sluice {
        Sluice::run_env(args, &[])
    }

    /// `sluice <args>` with these environment variables set too.
    pub fn run_env<S: AsRef<OsStr>>(
        args: impl IntoIterator<Item = S>,
        vars: &[(&str, &str)],
    ) -> Sluice {
        let mut child = Command::new(sluice_bin())
            .args(args)
            .envs(vars.iter().copied())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sluice");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        // Keeps reading so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                sink.lock().push(strip_ansi(&line));
            }
        });
        Sluice { child, lines }
    }

    /// The first listener's address, once it accepts connections.
    pub async fn listening(&self) -> SocketAddr {
        let addr = self.logged_addr(" listening").await;
        super::client::wait_ready(addr).await;
        addr
    }

    /// The proxy's address and its admin API, once both answer. An admin
    /// answer also means the main runtime ran its startup tasks (the SIGHUP
    /// handler among them).
    pub async fn serving(&self) -> (SocketAddr, Admin) {
        let addr = self.listening().await;
        let admin = Admin::new(self.logged_addr("admin API listening").await);
        assert_eq!(admin.get("/readyz").await.status, 200);
        (addr, admin)
    }

    /// The address logged on the first line containing `message`.
    pub async fn logged_addr(&self, message: &str) -> SocketAddr {
        let mut found = None;
        eventually(&format!("sluice to log {message:?}"), || {
            found = self
                .lines
                .lock()
                .iter()
                .filter(|l| l.contains(message))
                .find_map(|l| address_field(l));
            found.is_some()
        })
        .await;
        found.expect("address")
    }

    /// Everything logged so far, one line each.
    pub fn log(&self) -> String {
        self.lines.lock().join("\n")
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn address_field(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("address=")? + "address=".len()..];
    rest.split_whitespace().next()?.parse().ok()
}
