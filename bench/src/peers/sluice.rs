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
        let mut args = ctx.cli_flags();
        args.extend(["--workers", "1", "--lb", "round-robin"].map(String::from));
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
