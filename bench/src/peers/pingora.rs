//! Pingora, optional (`--with-pingora`, or `pingora` in `--peers`): a tiny
//! proxy program on the pingora crates (`bench/pingora/`, its own
//! workspace and Cargo.lock, so its dependency tree stays out of the main
//! workspace), built by the harness with `cargo build --release
//! --manifest-path bench/pingora/Cargo.toml`. Round robin over the two
//! origins through `pingora-load-balancing`, Pingora's upstream connection
//! pool (keep-alive, on by default), `threads: 1`, no access log (Pingora
//! logs nothing per request unless asked), TLS by the system's OpenSSL with
//! h2 by ALPN, gzip through Pingora's downstream compression module at the
//! scenario's level. The command line is its whole configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Peer, PeerCtx};
use crate::error::Result;
use crate::pin::Pinning;

/// What building it needs from Debian (package → file that shows it is
/// there): cmake for zlib-ng (pingora-core's flate2 backend), and the
/// OpenSSL headers with pkg-config to link the system OpenSSL.
pub const APT_BUILD_DEPS: &[(&str, &str)] = &[
    ("cmake", "cmake"),
    ("pkg-config", "pkg-config"),
    ("libssl-dev", "/usr/include/openssl/ssl.h"),
];

pub struct Pingora {
    bin: PathBuf,
}

impl Pingora {
    pub fn new(bin: PathBuf) -> Self {
        Self { bin }
    }

    /// `bench/pingora/`: the program's own workspace.
    pub fn crate_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pingora")
    }

    /// Where [`Pingora::build`] puts the binary (a target dir of its own,
    /// so the build never waits on the lock of the cargo running us).
    pub fn default_bin() -> PathBuf {
        Self::crate_dir().join("target/release/sluice-bench-pingora")
    }

    /// `cargo build --release --locked` of `bench/pingora/`; the binary's
    /// path on success. `OPENSSL_NO_VENDOR=1` makes `openssl-sys` link the
    /// system OpenSSL (the one nginx and HAProxy use) instead of building
    /// the copy `pingora-openssl` asks for.
    pub fn build(log: &mut Vec<String>) -> Option<PathBuf> {
        let dir = Self::crate_dir();
        let manifest = dir.join("Cargo.toml");
        log.push(format!(
            "OPENSSL_NO_VENDOR=1 cargo build --release --locked --manifest-path {}",
            manifest.display()
        ));
        eprintln!("building pingora ({})", manifest.display());
        let ok = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--locked", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(dir.join("target"))
            .env("OPENSSL_NO_VENDOR", "1")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let bin = Self::default_bin();
        (ok && bin.is_file()).then_some(bin)
    }

    fn args(ctx: &PeerCtx) -> Vec<String> {
        let mut args = vec!["--dir".to_string(), ctx.dir.display().to_string()];
        args.extend(ctx.cli_flags());
        args
    }
}

/// The version of `package` recorded in a `Cargo.lock`.
pub fn locked_version(lock: &str, package: &str) -> Option<String> {
    let name_line = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == name_line {
            return lines
                .next()?
                .trim()
                .strip_prefix("version = \"")?
                .strip_suffix('"')
                .map(str::to_string);
        }
    }
    None
}

impl Peer for Pingora {
    fn name(&self) -> &'static str {
        "pingora"
    }

    fn program(&self) -> String {
        self.bin.display().to_string()
    }

    fn version(&self) -> String {
        let lock =
            std::fs::read_to_string(Self::crate_dir().join("Cargo.lock")).unwrap_or_default();
        let v = |p: &str| locked_version(&lock, p).unwrap_or_else(|| "unknown".into());
        format!(
            "pingora {} (pingora-proxy {}, sluice-bench-pingora, system OpenSSL)",
            v("pingora"),
            v("pingora-proxy")
        )
    }

    fn configure(&self, ctx: &PeerCtx, pin: &Pinning) -> Result<(String, Command)> {
        Ok(super::flags_only(
            "sluice-bench-pingora",
            &self.bin,
            &Self::args(ctx),
            pin,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_the_lock_file() {
        let lock = "[[package]]\nname = \"pingora-core\"\nversion = \"0.9.1\"\n\n[[package]]\nname = \"pingora\"\nversion = \"0.9.1\"\nsource = \"registry\"\n";
        assert_eq!(locked_version(lock, "pingora").as_deref(), Some("0.9.1"));
        assert_eq!(locked_version(lock, "pingora-proxy"), None);
        // The lock file committed beside the program parses too.
        let real = std::fs::read_to_string(Pingora::crate_dir().join("Cargo.lock")).unwrap();
        assert!(locked_version(&real, "pingora").is_some());
    }
}
