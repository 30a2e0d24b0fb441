//! Sluice, started with its quick flags (no config file): the command line
//! *is* the configuration, and that is what the report prints.

use std::path::PathBuf;
use std::process::Command;

use super::{Peer, PeerCtx};
use crate::error::Result;
use crate::pin::Pinning;

pub struct Sluice {
    bin: PathBuf,
}

impl Sluice {
    pub fn new(bin: PathBuf) -> Self {
        Self { bin }
    }

    fn args(ctx: &PeerCtx) -> Vec<String> {
        let mut args = vec!["--listen".to_string(), ctx.listen.to_string()];
        for o in ctx.origins {
            args.push("--backend".into());
            args.push(o.to_string());
        }
        args.extend(["--workers", "1", "--lb", "round-robin"].map(String::from));
        if let Some(tls) = ctx.tls_listen {
            args.push("--tls-listen".into());
            args.push(tls.to_string());
            args.push("--cert".into());
            args.push(ctx.cert.cert.display().to_string());
            args.push("--key".into());
            args.push(ctx.cert.key.display().to_string());
        }
        if let Some(level) = ctx.gzip_level {
            args.push("--gzip".into());
            args.push(level.to_string());
        }
        args
    }
}

impl Peer for Sluice {
    fn name(&self) -> &'static str {
        "sluice"
    }

    fn program(&self) -> String {
        self.bin.display().to_string()
    }

    fn apt_package(&self) -> Option<&'static str> {
        None
    }

    fn version(&self) -> String {
        format!("sluice {}", crate::install::git_rev())
    }

    fn configure(&self, ctx: &PeerCtx, pin: &Pinning) -> Result<(String, Command)> {
        let args = Self::args(ctx);
        let text = format!("sluice {}", args.join(" "));
        let mut cmd = pin.proxy_command(&self.program());
        cmd.args(&args);
        Ok((text, cmd))
    }
}
