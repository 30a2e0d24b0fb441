//! The service under test: its binary (given, or built the way the README
//! runs it) and its process on the proxy core, ready when `GET /ready`
//! answers 200.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ServicesArgs;
use crate::error::{Error, Result};
use crate::install::{self, Profile};
use crate::pin::Pinning;
use crate::process::Running;

/// A started service and its command line as the report prints it.
pub struct Service {
    pub running: Running,
    pub command: String,
}

impl Service {
    /// Starts `bin args…` on the proxy core (output into `log`) and waits
    /// up to 30 s for `/ready`.
    pub fn start(
        name: &'static str,
        pin: &Pinning,
        bin: &Path,
        args: &[String],
        addr: SocketAddr,
        log: &Path,
    ) -> Result<Self> {
        let bin_s = bin.to_string_lossy().into_owned();
        let mut cmd = pin.proxy_command(&bin_s);
        cmd.args(args).env("RUST_LOG", "warn");
        let running = Running::spawn(name, &mut cmd, addr, "/ready", log, Duration::from_secs(30))?;
        Ok(Self {
            running,
            command: format!("{}{bin_s} {}", pin.proxy_prefix(), args.join(" ")),
        })
    }

    pub fn pid(&self) -> u32 {
        self.running.pid
    }
}

/// `--cache-bin`/`--log-bin`, or `cargo build --release -p <service>` of
/// each into the harness's target dir (one package per build, as the README
/// runs them, so no feature of one leaks into the other).
pub fn service_bins(a: &ServicesArgs, notes: &mut Vec<String>) -> Result<(PathBuf, PathBuf)> {
    let target = install::target_dir();
    let mut bin = |given: &Option<PathBuf>, name: &str| -> Result<PathBuf> {
        let path = match given {
            Some(p) => p.clone(),
            None => {
                let (path, shown) = install::cargo_build(name, name, &target, Profile::Release)
                    .map_err(|detail| Error::Tool {
                        tool: "cargo build".into(),
                        detail,
                    })?;
                notes.push(format!("{name} built with `{shown}`"));
                path
            }
        };
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::MissingBinary(path))
        }
    };
    Ok((
        bin(&a.cache_bin, "sluice-cache")?,
        bin(&a.log_bin, "sluice-log")?,
    ))
}
