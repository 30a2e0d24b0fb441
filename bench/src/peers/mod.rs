//! The proxies under test, each a pluggable [`Peer`]: how to write its
//! configuration, how to start it, and which process to account CPU to.
//!
//! Every peer gets the *same* shape of configuration: one worker, keep-alive
//! to the two origins, access logs off, round robin. A peer is started fresh
//! for every measurement, in its own temp dir, so peak RSS is per scenario
//! and no state leaks from one scenario into the next.

pub mod caddy;
pub mod direct;
pub mod haproxy;
pub mod nginx;
pub mod pingora;
pub mod sluice;
pub mod sluice_config;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{IoContext, Result};
use crate::pin::Pinning;
pub use crate::process::Running;
use crate::scenario::{Coding, Scenario};

/// The self-signed certificate every TLS listener uses.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// cert followed by key, for HAProxy's `crt`.
    pub combined: PathBuf,
}

impl CertFiles {
    /// Generates a fresh P-256 cert for `127.0.0.1`/`localhost` into `dir`.
    pub fn generate(dir: &Path) -> Result<Self> {
        let ck = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])?;
        let cert_pem = ck.cert.pem();
        let key_pem = ck.signing_key.serialize_pem();
        let files = Self {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            combined: dir.join("combined.pem"),
        };
        for (path, text) in [
            (&files.cert, cert_pem.clone()),
            (&files.key, key_pem.clone()),
            (&files.combined, format!("{cert_pem}{key_pem}")),
        ] {
            std::fs::write(path, text).ctx(|| format!("writing {}", path.display()))?;
        }
        Ok(files)
    }
}

/// Everything a peer needs to write its configuration for one measurement.
#[derive(Debug, Clone)]
pub struct PeerCtx {
    /// The peer's own scratch dir (config, pid file, temp paths, logs).
    pub dir: PathBuf,
    pub listen: SocketAddr,
    /// The TLS (h2 + http/1.1 ALPN) listener, only for TLS scenarios.
    pub tls_listen: Option<SocketAddr>,
    pub origins: [SocketAddr; 2],
    pub cert: CertFiles,
    /// Compression level for `application/json`, only for compression
    /// scenarios, of `coding`.
    pub gzip_level: Option<u32>,
    pub coding: Coding,
}

impl PeerCtx {
    /// The configuration as Sluice's quick flags (`--listen`, `--backend`
    /// ×2, `--tls-listen`/`--cert`/`--key`, `--gzip`).
    pub fn cli_flags(&self) -> Vec<String> {
        let mut args = vec!["--listen".to_string(), self.listen.to_string()];
        for o in self.origins {
            args.push("--backend".into());
            args.push(o.to_string());
        }
        if let Some(tls) = self.tls_listen {
            args.push("--tls-listen".into());
            args.push(tls.to_string());
            args.push("--cert".into());
            args.push(self.cert.cert.display().to_string());
            args.push("--key".into());
            args.push(self.cert.key.display().to_string());
        }
        // br and zstd have no flag: `Sluice` runs those from a config file.
        if let (Some(level), Coding::Gzip) = (self.gzip_level, self.coding) {
            args.push("--gzip".into());
            args.push(level.to_string());
        }
        args
    }
}

/// A proxy (or the origin itself) that the harness can configure and run.
pub trait Peer {
    fn name(&self) -> &'static str;
    /// The executable started, for `which` and error messages.
    fn program(&self) -> String;
    /// The Debian package that provides it, if apt can install it.
    fn apt_package(&self) -> Option<&'static str> {
        None
    }
    /// A one-line version string for the report.
    fn version(&self) -> String;
    /// Writes the configuration into `ctx.dir` and returns its text (for the
    /// report) plus the command line that runs it.
    fn configure(&self, ctx: &PeerCtx, pin: &Pinning) -> Result<(String, Command)>;

    /// Why this peer's configuration for `s` cannot be made equivalent to
    /// the others', when it cannot: the report prints it in the scenario's
    /// notes column and marks the peer's figures in the headline table.
    fn caveat(&self, _s: &Scenario) -> Option<String> {
        None
    }

    /// Starts the peer and waits until it proxies a request.
    fn start(&self, ctx: &PeerCtx, pin: &Pinning) -> Result<Running> {
        let (config, mut cmd) = self.configure(ctx, pin)?;
        let mut running = Running::spawn(
            self.name(),
            &mut cmd,
            ctx.listen,
            "/ping",
            &ctx.dir.join("output.log"),
            Duration::from_secs(10),
        )?;
        running.tls_addr = ctx.tls_listen;
        running.config = config;
        Ok(running)
    }
}

/// A peer whose command line is its whole configuration (Sluice, Pingora):
/// the text the report prints (`label args…`) and the command that runs
/// `bin` on the proxy core.
pub fn flags_only(label: &str, bin: &Path, args: &[String], pin: &Pinning) -> (String, Command) {
    let mut cmd = pin.proxy_command(&bin.display().to_string());
    cmd.args(args);
    (format!("{label} {}", args.join(" ")), cmd)
}

/// The first line of `program args…`'s stdout+stderr, or "unknown".
pub fn version_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Looks a peer up by name.
pub fn by_name(name: &str, sluice_bin: &Path) -> Option<Box<dyn Peer>> {
    match name {
        "sluice" => Some(Box::new(sluice::Sluice::new(sluice_bin.to_path_buf()))),
        "nginx" => Some(Box::new(nginx::Nginx)),
        "haproxy" => Some(Box::new(haproxy::Haproxy)),
        "caddy" => Some(Box::new(caddy::Caddy)),
        "pingora" => Some(Box::new(pingora::Pingora::new(
            pingora::Pingora::default_bin(),
        ))),
        _ => None,
    }
}

/// The context the peers' config tests render: fixed ports and paths, TLS,
/// and gzip at `gzip_level`.
#[cfg(test)]
pub(crate) fn test_ctx(gzip_level: Option<u32>) -> PeerCtx {
    PeerCtx {
        dir: "/tmp/x".into(),
        listen: "127.0.0.1:8080".parse().unwrap(),
        tls_listen: Some("127.0.0.1:8443".parse().unwrap()),
        origins: [
            "127.0.0.1:9001".parse().unwrap(),
            "127.0.0.1:9002".parse().unwrap(),
        ],
        cert: CertFiles {
            cert: "/tmp/x/cert.pem".into(),
            key: "/tmp/x/key.pem".into(),
            combined: "/tmp/x/combined.pem".into(),
        },
        gzip_level,
        coding: Coding::Gzip,
    }
}
